"""`longtake clean`: find the cache entries no rerun of any project using this work folder would reuse.

The keep-set is computed by planning, not by asking which keys can be computed
now: ingest, VAD, plan and portrait are re-derived on the CPU (into a scratch
folder, so the work folder is left exactly as it was), and every step's key is
computed from that fresh plan. An edit that changes the plan's key without
changing the plan (any segmenter setting, before `plan` runs again) therefore
keeps every segment. Where a key still cannot be computed (a chained segment
after a missing one), every entry whose parameters match what the rerun would
ask for is kept: a rerun may reproduce the missing input bit for bit.

Several project files may share one work folder. Each `plan` and `run` records
its project file in ``<workdir>/projects.json``; `clean` keeps what any of
them still uses, and refuses to remove anything while one of them cannot be
read.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from orchestrator.atomic import atomic_write_text
from orchestrator.cache import CacheEntry, CacheError, Removal, StepCache, canonical_json
from orchestrator.config import Project, load_project
from orchestrator.errors import ConfigError, LongtakeError

PROJECTS_FILE = "projects.json"


# -- which projects use a work folder -------------------------------------------------------

def register_project(workdir: Path, project_file: Path | None) -> None:
    """Record that ``project_file`` uses ``workdir`` (call with the workdir lock held)."""
    if project_file is None:
        return
    known = registered_projects(workdir)
    path = str(Path(project_file).resolve())
    if path in (str(p) for p in known):
        return
    atomic_write_text(Path(workdir) / PROJECTS_FILE, json.dumps({"projects": [str(p) for p in known] + [path]}, indent=1) + "\n")


def registered_projects(workdir: Path) -> list[Path]:
    try:
        data = json.loads((Path(workdir) / PROJECTS_FILE).read_text(encoding="utf-8"))
        return [Path(p) for p in data.get("projects", []) if isinstance(p, str)]
    except (OSError, ValueError, AttributeError):
        return []


# -- planning into a scratch folder ----------------------------------------------------------

class _ScratchCache(StepCache):
    """Reads the work folder's cache and writes new entries into ``scratch``: planning for `clean` changes nothing."""

    def __init__(self, workdir: Path, scratch: Path):
        super().__init__(workdir)
        self._scratch = StepCache(scratch)

    def lookup(self, step: str, key: str, *, verify: bool = False) -> CacheEntry | None:
        entry, _problem = super().inspect(step, key, verify=verify)
        return entry or self._scratch.lookup(step, key, verify=verify)

    def inspect(self, step: str, key: str, *, verify: bool = False):
        entry, problem = super().inspect(step, key, verify=verify)
        return (entry, problem) if entry is not None else self._scratch.inspect(step, key, verify=verify)

    def writing(self, step: str, key: str, **kwargs):  # type: ignore[override]
        return self._scratch.writing(step, key, **kwargs)


@dataclass(frozen=True)
class _Wanted:
    """A step whose key is not computable yet: entries of ``step`` with these params (and code/model) are kept."""

    step: str
    params: str | None  # canonical JSON; None: keep every entry of the step
    code_version: str
    model_identity: str | None


def _project_keeps(project: Project, scratch: Path) -> tuple[set[tuple[str, str]], list[_Wanted]]:
    from orchestrator import steps
    from orchestrator.graph import RunGraph

    graph = RunGraph(project, cache=_ScratchCache(project.workdir, scratch), record=False)
    quiet = logging.getLogger("longtake")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # planning warnings (forced cuts, loudness) were shown by `plan`/`run`; not clean's business
    try:
        plan = graph.run_plan()
        assert plan is not None
        graph.resolve("portrait", execute=True)  # CPU only; segment keys hash the prepared portrait
    finally:
        quiet.setLevel(level)
    keep: set[tuple[str, str]] = set()
    wanted: list[_Wanted] = []
    for status in graph.status():
        if status.node in ("segments", "encode_prompts"):
            continue
        if status.key is not None:
            keep.add((graph.step_of(status.node), status.key))
            continue
        step, params, model = graph.reuse_filter(status.node)
        wanted.append(_Wanted(step, canonical_json(params) if params is not None else None, steps.CODE_VERSIONS[step], model))
    return keep, wanted


def _matches(entry: CacheEntry, wanted: list[_Wanted]) -> bool:
    m = entry.manifest
    for w in wanted:
        if w.step != entry.step or m.get("code_version") != w.code_version or m.get("model_identity") != w.model_identity:
            continue
        if w.params is None or canonical_json(m.get("params")) == w.params:
            return True
    return False


# -- the clean plan --------------------------------------------------------------------------

@dataclass
class CleanPlan:
    removals: list[Removal]
    projects: list[Path]  # the project files whose keep-sets were honoured

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)

    @property
    def segments(self) -> list[Removal]:
        return [r for r in self.removals if r.step == "segment"]

    def by_step(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.removals:
            counts[r.step][0] += 1
            counts[r.step][1] += r.bytes
        return {step: (n, size) for step, (n, size) in sorted(counts.items())}

    def summary(self) -> str:
        """"4 cache entries, 12.3 MB: segment ×2 (12.0 MB), stitch ×1 (0.3 MB), report ×1 (0.0 MB)"."""
        n = len(self.removals)
        parts = ", ".join(f"{step} ×{count} ({_mb(size)})" for step, (count, size) in self.by_step().items())
        return f"{n} cache entr{'y' if n == 1 else 'ies'}, {_mb(self.bytes)}" + (f": {parts}" if parts else "")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def plan_clean(project: Project) -> CleanPlan:
    """What `clean` would remove for ``project``, honouring every project that recorded itself in the work folder.

    Reads only (planning happens in a scratch folder). Raises ConfigError when another project using this
    work folder cannot be read or planned: its entries can't be told apart, so nothing may go.
    """
    workdir = Path(project.workdir)
    cache = StepCache(workdir)
    own = Path(project.project_file).resolve() if project.project_file else None
    others = [p for p in registered_projects(workdir) if p != own]
    keep: set[tuple[str, str]] = set()
    wanted: list[_Wanted] = []
    honoured = [own] if own else []
    with tempfile.TemporaryDirectory(prefix="longtake-clean-") as scratch:
        k, w = _project_keeps(project, Path(scratch) / "own")
        keep |= k
        wanted += w
        for i, other_file in enumerate(others):
            if not other_file.exists():
                continue  # a project file that is gone cannot be rerun
            try:
                other = load_project(other_file)
                if os.path.realpath(other.workdir) != os.path.realpath(workdir):
                    continue  # it moved to another work folder
                k, w = _project_keeps(other, Path(scratch) / f"other{i}")
            except LongtakeError as exc:
                raise ConfigError(
                    f"{other_file} also uses the work folder {workdir}, and clean cannot tell which entries it still uses: "
                    f"{str(exc).splitlines()[0]} Fix that project (or delete it if it is no longer needed), then clean again; "
                    "nothing was removed."
                ) from None
            keep |= k
            wanted += w
            honoured.append(other_file)
    removals = []
    for removal in cache.unused(keep):
        try:
            entry, _problem = cache.inspect(removal.step, removal.key)
        except CacheError:  # a folder no longtake made (odd name): not an entry any run could reuse
            entry = None
        if entry is not None and wanted and _matches(entry, wanted):
            continue
        removals.append(removal)
    return CleanPlan(removals, honoured)
