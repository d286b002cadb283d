"""The step cache: content-addressed, crash-safe entries under ``<workdir>/cache/<step>/<key>/``.

A step's key is the sha256 of canonical JSON of everything that decides its
output (parameters, input content hashes, code version, model identity), so a
rerun finds finished work by asking "is there an entry for this key?".

Crash safety rests on one rule: *only a folder named ``<key>/`` holding a valid
``manifest.json`` counts as finished.* An entry is built in a temporary folder
``.tmp-<key>@<host>+<ns>+<pid>+<start>+<rand>/`` beside it; the outputs are
fsynced and hashed, the manifest is written last, and the whole folder is
``os.replace``d onto ``<key>/`` in one rename. Whatever byte a process dies at,
a rerun sees either nothing or a complete entry; leftovers of dead processes
are swept at run start.

The cache may live on storage that several hosts share (a Ray cluster). A temp
folder's name says which host, boot/pid namespace, pid and process start made
it (``orchestrator.hosts``), so the sweep judges only its own host's folders
by their pid, and leaves another host's alone until nothing in it has changed
for ``FOREIGN_STALE_S`` (a day: far longer than any segment, whose writer
touches its files as the clip grows; such a folder's host is down or gone).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Iterator

from orchestrator import __version__ as LONGTAKE_VERSION
from orchestrator.atomic import atomic_write_text, fsync_dir
from orchestrator.errors import LongtakeError, WorkdirError, concerns, find_write_os_error, write_failure
from orchestrator.hosts import ProcessId, host_name

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

CACHE_DIRNAME = "cache"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

# Prefixes of the hidden working folders beside entries: being built, being
# replaced, and found broken. Each carries the process that made it (host,
# namespace, pid, start), so a sweep can tell a live writer's folder from a dead one's.
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_BROKEN_PREFIX = ".broken-"
_WORK_PREFIXES = (_TMP_PREFIX, _TRASH_PREFIX, _BROKEN_PREFIX)

# Another host's working folder is removed only when nothing in it changed for this long.
FOREIGN_STALE_S = 24 * 3600.0

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# Working folders this process is filling right now; a sweep must not remove
# them even though their pid (ours) is alive. Folders with our pid that are NOT
# listed here were left by an earlier process that had the same pid (containers
# often reuse low pids on every start).
_ACTIVE_WORK_DIRS: set[Path] = set()


class CacheError(LongtakeError):
    """A step used the cache wrongly (undeclared or missing output, bad name) (exit 1)."""


class OutputNotFound(KeyError):
    """A cache entry has no output of that name."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else "output not found"


# --------------------------------------------------------------------------- keys


def canonical_json(obj: Any) -> str:
    """One JSON text per value: sorted keys, no spaces, UTF-8, stable float repr.

    Paths become strings, ``Fraction(24, 1)`` becomes ``"24/1"``, tuples become
    lists. Anything else that JSON cannot carry exactly (sets, bytes, numpy
    scalars, objects) raises TypeError naming where it was found, so a key can
    never silently depend on an object's ``repr``. NaN and infinities raise
    ValueError: they are not JSON and no parameter should be one.
    """
    return json.dumps(
        _plain(obj, "$"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as plain JSON types (dict/list/str/int/float/bool/None)."""
    if obj is None or obj is True or obj is False:
        return obj
    if isinstance(obj, str):
        return str.__str__(obj)  # the value of a str-Enum, not "Cls.member"
    if isinstance(obj, int):
        return int.__index__(obj)
    if isinstance(obj, float):
        value = float(obj)
        if not math.isfinite(value):
            raise ValueError(f"canonical_json: {where} is {value!r}; NaN and infinities have no canonical JSON form")
        return value
    if isinstance(obj, Fraction):
        return f"{obj.numerator}/{obj.denominator}"
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"canonical_json: {where} has a key {k!r} of type {type(k).__name__}; keys must be str "
                    "(an int key and its str form would hash alike)"
                )
            out[str.__str__(k)] = _plain(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"canonical_json: {where} is a {type(obj).__module__}.{type(obj).__qualname__} ({obj!r:.80}); "
        "use dict/list/tuple/str/int/float/bool/None, Path or Fraction"
    )


def step_key(
    step: str,
    *,
    params: dict,
    inputs: dict[str, str],
    code_version: str,
    model_identity: str | None = None,
) -> str:
    """sha256 hex of canonical JSON of everything that decides a step's output.

    ``inputs`` maps an input's name to its content hash (not its path or mtime:
    a moved or touched file must not rerun a step, an edited one must).
    """
    payload = {
        "key_format": 1,
        "step": step,
        "params": params,
        "inputs": inputs,
        "code_version": code_version,
        "model_identity": model_identity,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex of a file's content, read in chunks (a segment can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------ entries


@dataclass(frozen=True)
class CacheEntry:
    """A finished step: its folder and the manifest that vouches for it."""

    step: str
    key: str
    path: Path
    manifest: dict

    def __hash__(self) -> int:  # the manifest dict is unhashable; (step, key, path) identifies an entry
        return hash((self.step, self.key, self.path))

    def output(self, name: str) -> Path:
        """Path of the named output file inside the entry."""
        if name not in self.manifest.get("outputs", {}):
            have = ", ".join(sorted(self.outputs)) or "none"
            raise OutputNotFound(f"cache entry {self.step}/{self.key[:12]} has no output {name!r} (it has: {have})")
        return self.path / name

    def output_hash(self, name: str) -> str:
        """Recorded sha256 of the named output."""
        self.output(name)
        return self.manifest["outputs"][name]["sha256"]

    @property
    def outputs(self) -> dict[str, str]:
        """Output name -> sha256."""
        return {name: rec["sha256"] for name, rec in self.manifest.get("outputs", {}).items()}

    @property
    def duration_s(self) -> float:
        return float(self.manifest.get("duration_s", 0.0))

    @property
    def meta(self) -> dict:
        return dict(self.manifest.get("meta") or {})

    @property
    def bytes(self) -> int:
        """Total size of the outputs."""
        return sum(int(rec["bytes"]) for rec in self.manifest.get("outputs", {}).values())


@dataclass(frozen=True)
class Removal:
    """A cache folder `clean` would remove: its step, key, path and size on disk."""

    step: str
    key: str
    path: Path
    bytes: int


@dataclass
class EntryWriter:
    """What a step writes into while its entry is being built (see ``StepCache.writing``)."""

    dir: Path
    meta: dict = field(default_factory=dict)
    _outputs: list[str] = field(default_factory=list, repr=False)

    def add_output(self, name: str) -> Path:
        """Register ``name`` as an output (hashed at commit) and return ``dir / name``.

        ``name`` is a relative POSIX path; sub-folders are created.
        """
        _check_output_name(name)
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name not in self._outputs:
            self._outputs.append(name)
        return path

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)


def _check_output_name(name: str) -> None:
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    bad = (
        not isinstance(name, str)
        or not name
        or "\\" in name
        or "\0" in name
        or PurePosixPath(name).is_absolute()
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
        or name == MANIFEST_NAME
    )
    if bad:
        raise CacheError(
            f"output name {name!r} is not allowed: use a relative path without '..' or hidden parts, "
            f"other than {MANIFEST_NAME!r}"
        )


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise CacheError(f"cache {kind} {value!r} is not a safe folder name (letters, digits, '_', '.', '-', '=', '+')")


# -------------------------------------------------------------------------- cache


class StepCache:
    """The cache of one work folder. Callers hold the ``WorkdirLock`` while writing."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root = self.workdir / CACHE_DIRNAME

    def entry_dir(self, step: str, key: str) -> Path:
        _check_name("step", step)
        _check_name("key", key)
        return self.root / step / key

    # ---- reading

    def lookup(self, step: str, key: str, *, verify: bool = False) -> CacheEntry | None:
        """The finished entry for (step, key), or None.

        Outputs are always checked to exist with their recorded size (a stat);
        ``verify=True`` also re-hashes them. A broken entry is a logged warning
        and a miss, and is moved out of the way so the step is simply redone.
        Only a caller holding the workdir lock may call this; readers use ``inspect``.
        """
        path = self.entry_dir(step, key)
        if not path.exists():
            return None
        entry, problem, removable = self._load(step, key, path, verify=verify)
        if entry is not None:
            return entry
        log.warning("cache entry %s/%s is unusable (%s); the step will be redone", step, key[:12], problem)
        if removable:
            self._discard(path, _BROKEN_PREFIX)
        return None

    def inspect(self, step: str, key: str, *, verify: bool = False) -> tuple[CacheEntry | None, str | None]:
        """(entry, None) for a finished entry, (None, problem) for a broken one, (None, None) when absent.

        Reads only: a broken entry stays where it is (``status`` reports it; ``run``, under the lock, discards it).
        """
        path = self.entry_dir(step, key)
        if not path.exists():
            return None, None
        entry, problem, _removable = self._load(step, key, path, verify=verify)
        return (entry, None) if entry is not None else (None, problem)

    def entries(self) -> list[CacheEntry]:
        """Every finished entry (valid manifest, outputs present at their recorded sizes)."""
        found: list[CacheEntry] = []
        for step_dir in self._step_dirs():
            for key_dir in sorted(step_dir.iterdir()):
                if key_dir.name.startswith(".") or not key_dir.is_dir():
                    continue
                entry, _problem, _ = self._load(step_dir.name, key_dir.name, key_dir, verify=False)
                if entry is not None:
                    found.append(entry)
        return found

    def _load(self, step: str, key: str, path: Path, *, verify: bool) -> tuple[CacheEntry | None, str, bool]:
        """(entry, problem, removable): entry is None when the folder is not a finished entry."""
        manifest_path = path / MANIFEST_NAME
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, f"no {MANIFEST_NAME}: it never finished", True
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"{MANIFEST_NAME} unreadable: {exc}", True
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"{MANIFEST_NAME} is corrupt: {exc}", True
        problem = _manifest_problem(manifest, step, key)
        if problem:
            newer = isinstance(manifest, dict) and isinstance(manifest.get("format"), int) and manifest["format"] > MANIFEST_FORMAT
            return None, problem, not newer  # a newer longtake's entry is left alone
        for name, rec in manifest["outputs"].items():
            out = path / name
            try:
                size = out.stat().st_size if out.is_file() else None
            except OSError:
                size = None
            if size is None:
                return None, f"output {name!r} is missing", True
            if size != rec["bytes"]:
                return None, f"output {name!r} is {size} bytes, the manifest says {rec['bytes']}", True
            if verify:
                try:
                    digest = file_sha256(out)
                except OSError as exc:
                    return None, f"output {name!r} unreadable: {exc}", True
                if digest != rec["sha256"]:
                    return None, f"output {name!r} does not match its recorded sha256", True
        return CacheEntry(step=step, key=key, path=path, manifest=manifest), "", False

    # ---- writing

    @contextlib.contextmanager
    def writing(
        self,
        step: str,
        key: str,
        *,
        params: dict | None = None,
        inputs: dict | None = None,
        code_version: str = "",
        model_identity: str | None = None,
    ) -> Iterator[EntryWriter]:
        """Build the entry for (step, key) in a temporary folder; commit it on a normal exit.

        Write each output to ``writer.add_output(name)``. On exit the outputs are
        fsynced and hashed, ``manifest.json`` is written last, and the folder is
        renamed onto ``entry_dir(step, key)`` (replacing whatever was there). On
        an exception (Ctrl-C included) the temporary folder is removed and the
        exception re-raised; a full or read-only disk becomes a ``WorkdirError``.
        """
        started = time.monotonic()
        final = self.entry_dir(step, key)
        step_dir = final.parent
        try:
            step_dir.mkdir(parents=True, exist_ok=True)
            tmp = _make_work_dir(step_dir, _TMP_PREFIX, key)
        except OSError as exc:
            raise self._translate(exc, step, step_dir) or exc
        writer = EntryWriter(dir=tmp)
        try:
            try:
                yield writer
                self._commit(
                    writer,
                    final,
                    step=step,
                    key=key,
                    params=params,
                    inputs=inputs,
                    code_version=code_version,
                    model_identity=model_identity,
                    started=started,
                )
            except BaseException as exc:
                _rmtree_quiet(tmp)
                translated = self._translate(exc, step, step_dir)
                if translated is not None:
                    raise translated from exc
                raise
        finally:
            _ACTIVE_WORK_DIRS.discard(tmp)

    def _commit(self, writer: EntryWriter, final: Path, *, step, key, params, inputs, code_version, model_identity, started) -> None:
        tmp = writer.dir
        outputs: dict[str, dict[str, Any]] = {}
        for name in writer.output_names:
            path = tmp / name
            if not path.is_file():
                raise CacheError(f"step {step} registered output {name!r} but did not write it (expected {path})")
            outputs[name] = _hash_and_fsync(path)
        for folder in {(tmp / n).parent for n in writer.output_names} - {tmp}:
            fsync_dir(folder)
        manifest = {
            "format": MANIFEST_FORMAT,
            "step": step,
            "key": key,
            "code_version": code_version,
            "params": _plain(params or {}, "params"),
            "inputs": _plain(inputs or {}, "inputs"),
            "model_identity": model_identity,
            "outputs": outputs,
            "meta": _plain(writer.meta, "meta"),
            "created_utc": _utc_now(),
            "duration_s": round(time.monotonic() - started, 6),
            "longtake_version": LONGTAKE_VERSION,
        }
        # atomic_write_text fsyncs the file and the temp folder: after this the
        # folder is complete on disk, and only the rename below publishes it.
        atomic_write_text(tmp / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
        trash = None
        if os.path.lexists(final):
            # A rename cannot replace a non-empty folder: move the old one (a broken
            # leftover, or the entry a --redo replaces) aside first. A crash between
            # the two renames leaves no entry, which is a miss, never a false hit.
            trash = _work_dir_name(final.parent, _TRASH_PREFIX, key)
            os.replace(final, trash)
        try:
            os.replace(tmp, final)
        except BaseException:
            if trash is not None:
                with contextlib.suppress(OSError):
                    os.replace(trash, final)
            raise
        fsync_dir(final.parent)
        fsync_dir(self.root)
        if trash is not None:
            _rmtree_quiet(trash)

    def _translate(self, exc: BaseException, step: str, folder: Path) -> WorkdirError | None:
        if not isinstance(exc, Exception):
            return None  # Ctrl-C / SystemExit stay what they are
        os_exc = find_write_os_error(exc)
        if os_exc is None:
            return None
        if not concerns(os_exc, self.workdir, folder_only=True):
            return None  # some other disk's problem; not ours to reword
        return workdir_error(os_exc, folder, f"write the cache entry for step `{step}`")

    # ---- housekeeping

    def sweep_temp(self) -> int:
        """Remove working folders (.tmp-/.trash-/.broken-) left by dead processes; returns how many."""
        removed, _ = self._sweep()
        return removed

    def remove_except(self, keep: set[tuple[str, str]]) -> tuple[int, int]:
        """Remove every entry whose (step, key) is not in ``keep``, and dead processes' leftovers.

        Returns (entries removed, bytes freed). Incomplete ``<key>/`` folders count as entries.
        """
        return self.remove(self.unused(keep))

    def unused(self, keep: set[tuple[str, str]]) -> list[Removal]:
        """Every ``<step>/<key>/`` folder whose (step, key) is not in ``keep``, finished or not, with its size."""
        found = []
        for step_dir in self._step_dirs():
            for key_dir in sorted(step_dir.iterdir()):
                if key_dir.name.startswith(".") or (step_dir.name, key_dir.name) in keep:
                    continue
                found.append(Removal(step_dir.name, key_dir.name, key_dir, _tree_bytes(key_dir)))
        return found

    def remove(self, removals: list[Removal]) -> tuple[int, int]:
        """Remove these entries and dead processes' leftovers; (entries removed, bytes freed)."""
        removed = 0
        freed = 0
        for item in removals:
            if self._discard(item.path, _TRASH_PREFIX):
                removed += 1
                freed += item.bytes
        _, swept_bytes = self._sweep()
        for step_dir in self._step_dirs():
            with contextlib.suppress(OSError):
                step_dir.rmdir()  # only succeeds when empty
        return removed, freed + swept_bytes

    def _sweep(self, *, now: float | None = None) -> tuple[int, int]:
        removed = 0
        freed = 0
        now = time.time() if now is None else now
        for step_dir in self._step_dirs():
            for child in step_dir.iterdir():
                if not child.name.startswith(_WORK_PREFIXES) or child in _ACTIVE_WORK_DIRS:
                    continue
                owner = _owner_of(child.name)
                if owner is not None and owner.is_local():
                    # Our own pid here is a folder this process gave up on (or an earlier
                    # process's with a reused pid, whose start differs): dead either way.
                    if owner.pid != os.getpid() and owner.alive():
                        continue
                    why = f"left by an interrupted run (pid {owner.pid})"
                elif owner is not None:
                    idle_s = now - _newest_mtime(child)
                    if idle_s < FOREIGN_STALE_S:
                        continue  # another host's work in progress, or not yet provably abandoned
                    why = f"left by host {owner.host} (pid {owner.pid}), untouched for {idle_s / 3600:.0f} h"
                else:
                    why = "with no owner in its name"
                size = _tree_bytes(child)
                if _rmtree_quiet(child):
                    removed += 1
                    freed += size
                    log.info("removed %s, %s", child, why)
        return removed, freed

    def _step_dirs(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def _discard(self, path: Path, prefix: str) -> bool:
        """Rename ``path`` aside (so it stops being an entry at once), then delete it."""
        try:
            aside = _work_dir_name(path.parent, prefix, path.name)
            os.replace(path, aside)
        except OSError as exc:
            log.warning("could not remove %s (%s); it is ignored", path, exc)
            return False
        _rmtree_quiet(aside)
        return True


# ------------------------------------------------------------------------ helpers


def workdir_error(exc: BaseException, folder: Path, doing: str) -> WorkdirError | None:
    """A sentence for a full or read-only work folder (``orchestrator.errors.write_failure``), or None for other errors."""
    return write_failure(
        exc, Path(folder), f"{doing} in {folder}",
        elsewhere="set `workdir:` in the project file to another disk", then="Finished steps are kept.", cls=WorkdirError,
    )


def _manifest_problem(m: Any, step: str, key: str) -> str:
    if not isinstance(m, dict):
        return f"{MANIFEST_NAME} is not an object"
    if m.get("format") != MANIFEST_FORMAT:
        return f"{MANIFEST_NAME} has format {m.get('format')!r}, this longtake reads {MANIFEST_FORMAT}"
    if m.get("step") != step or m.get("key") != key:
        return f"{MANIFEST_NAME} is for {m.get('step')!r}/{str(m.get('key'))[:12]!r}, not this folder"
    outs = m.get("outputs")
    if not isinstance(outs, dict):
        return f"{MANIFEST_NAME} has no outputs table"
    for name, rec in outs.items():
        try:
            _check_output_name(name)
        except CacheError:
            return f"{MANIFEST_NAME} names a bad output {name!r}"
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("sha256"), str)
            and _SHA256_RE.match(rec["sha256"])
            and isinstance(rec.get("bytes"), int)
            and not isinstance(rec.get("bytes"), bool)
            and rec["bytes"] >= 0
        ):
            return f"{MANIFEST_NAME} has a malformed record for output {name!r}"
    if not isinstance(m.get("meta", {}), dict):
        return f"{MANIFEST_NAME} has a malformed meta"
    if not isinstance(m.get("duration_s", 0.0), (int, float)):
        return f"{MANIFEST_NAME} has a malformed duration_s"
    return ""


def _hash_and_fsync(path: Path, chunk_bytes: int = 1 << 20) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(fh.fileno())
    return {"sha256": digest.hexdigest(), "bytes": size}


def _work_dir_name(parent: Path, prefix: str, key: str) -> Path:
    me = _me()
    return parent / f"{prefix}{key}@{me.host}+{me.namespace}+{me.pid}+{me.start}+{secrets.token_hex(4)}"


def _me() -> ProcessId:
    # Recomputed when the pid or host name changes (a fork, a test playing another host).
    global _ME
    if _ME is None or _ME.pid != os.getpid() or _ME.host != host_name():
        _ME = ProcessId.me()
    return _ME


_ME: ProcessId | None = None


def _make_work_dir(parent: Path, prefix: str, key: str) -> Path:
    for _ in range(100):
        path = _work_dir_name(parent, prefix, key)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        _ACTIVE_WORK_DIRS.add(path)
        return path
    raise FileExistsError(_errno.EEXIST, "could not find a free temporary folder name", str(parent))


def _owner_of(name: str) -> ProcessId | None:
    """The process that made a working folder, from its name; None when the name says nothing usable."""
    head, at, tail = name.rpartition("@")
    if at:
        parts = tail.split("+")
        if len(parts) != 5:
            return None
        host, namespace, pid, start, _rand = parts
        try:
            return ProcessId(host, namespace, int(pid), int(start))
        except ValueError:
            return None
    # Before host-aware names (".tmp-<key>-<pid>-<rand>"): written by this host, start unknown.
    parts = name.rsplit("-", 2)
    if len(parts) != 3:
        return None
    try:
        pid = int(parts[1])
    except ValueError:
        return None
    me = _me()
    return ProcessId(me.host, me.namespace, pid, 0)


def _newest_mtime(path: Path) -> float:
    """The latest change to the folder or anything in it (a writer appending to a clip moves it)."""
    newest = 0.0
    for dirpath, _dirs, files in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(name).st_mtime)
    return newest


def _rmtree_quiet(path: Path) -> bool:
    try:
        shutil.rmtree(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
        return False


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
