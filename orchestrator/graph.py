"""The run graph: steps, their cache keys, what is done, what must run and why.

``ingest → vad → plan → encode_prompts → segment 0 … N−1 → stitch → report``
(plus ``portrait``), as a networkx DAG. A step's key is the sha256 of its
parameters, the content hashes of its inputs, its code version and, for
segments, the generator's model identity. Segment i's inputs include segment
i−1's output (its tail) in chained modes, so editing segment 7's prompt reruns
7…N−1; in ``anchor`` mode only 7. The segment nodes exist once the plan does.

Finished entries are never lost: every step writes into a temporary folder
that the cache renames into place only when complete (``orchestrator.cache``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np

from orchestrator import preflight, steps
from orchestrator.atomic import atomic_write_text
from orchestrator.cache import CacheEntry, EntryWriter, StepCache, canonical_json, file_sha256, step_key
from orchestrator.config import Project
from orchestrator.errors import ConfigError, MediaError, not_a_file
from orchestrator.events import Events
from segmenters.plan import INDEPENDENT_MODES, Plan

log = logging.getLogger("longtake")

STATE_FILE = "state.json"

# Human names for what changed, used in status reasons ("prompt changed").
_INPUT_NAMES = {
    "voiceover": "voiceover file",
    "portrait_file": "portrait file",
    "ingest": "ingested audio",
    "vad": "VAD",
    "plan": "plan",
    "portrait": "prepared portrait",
    "audio": "this segment's audio",
    "master": "master audio",
    "captions": "captions",
    "script": "captions script",
}


# Steps whose code returns its warnings in the result instead of logging them (the portrait's and
# the stitch's): the graph prints them once when the step runs. `status` shows every step's again.
_QUIET_STEPS = ("portrait", "stitch")


def _warnings_of(entry: CacheEntry) -> tuple[str, ...]:
    found = entry.meta.get("warnings") or ()
    return tuple(str(w) for w in found) if isinstance(found, (list, tuple)) else ()


class _Pending(Exception):
    """A step's key can't be computed yet: an upstream step has not run."""

    def __init__(self, node: str):
        super().__init__(node)
        self.node = node


@dataclass
class StepStatus:
    node: str
    done: bool
    reason: str  # "done" | "prompt changed" | "missing" | "waits on segment_006" …
    key: str | None = None
    seconds: float | None = None  # duration of the finished step
    warnings: tuple[str, ...] = ()  # what the finished step warned about (kept in its manifest)

    def to_dict(self) -> dict:
        return {"step": self.node, "done": self.done, "reason": self.reason, "key": self.key, "warnings": list(self.warnings)}


@dataclass
class _Spec:
    node: str
    step: str  # cache folder
    deps: list[str]
    material: Callable[[], tuple[dict, dict]]  # (params, inputs); raises _Pending
    execute: Callable[[EntryWriter], Any]
    with_model: bool = False
    # The params alone, computable while an input is still pending (`clean` matches entries by them).
    params: Callable[[], dict] | None = None


@dataclass
class RunSummary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    output: Path | None = None
    report: dict | None = None


def segment_node(index: int) -> str:
    return f"segment_{index:03d}"


class RunGraph:
    """Builds and walks the graph for one project. Not thread-safe; hold the workdir lock around ``run``."""

    def __init__(self, project: Project, events: Events | None = None, *, vad: str | None = None,
                 cache: StepCache | None = None, record: bool = True, generator=None):
        """``generator``: an instance the caller keeps resident across projects (a Ray actor's); not closed here.
        ``record=False`` where several processes run one project's steps (state.json is the driver's)."""
        from generators import get_generator_class
        from segmenters.planner import context_frames_for

        self.project = project
        self.events = events or Events(progress=False)
        self.vad_name = vad or project.segmenter.vad
        self.cache = cache if cache is not None else StepCache(project.workdir)
        self._record = record  # False: leave state.json alone (planning for `clean`)
        self.gen_cls = get_generator_class(project.generator.backend)
        self.grid = self.gen_cls.grid_for(project.generator)
        self.context_frames = context_frames_for(
            project.generator.chaining, project.segmenter.context_frames, project.stitcher.anchor_overlap_frames, self.grid
        )
        self._generator = generator
        self._own_generator = generator is None
        self._loaded = False
        self.entries: dict[str, CacheEntry] = {}
        self.plan: Plan | None = None
        self._file_hashes: dict[Path, str] = {}
        self._state_path = Path(project.workdir) / STATE_FILE
        self._audio_hash: dict[int, str] = {}
        self._prompts_encoded = False
        self._reference_stats = None  # colour-hold reference, measured on first use
        self._executing_key = ""
        self._prefetched = False
        self._only_segments: set[int] | None = None

    # -- generator ------------------------------------------------------------------------
    @property
    def generator(self):
        if self._generator is None:
            self._generator = self.gen_cls(self.project.generator, cache_dir=Path(self.project.workdir) / "models")
        return self._generator

    def model_identity(self) -> str:
        return self.generator.model_identity()

    # -- cost -----------------------------------------------------------------------------
    def cost_model(self):
        """The generator's cost model for this project's options (no weights loaded), or None."""
        return self.gen_cls.cost_model(self.project.generator)

    def target_choice(self):
        """The segment length the planner aims for: the project's, or the cheapest under the seam limit."""
        from segmenters.planner import generation_size
        from segmenters.segment_length import resolve_target

        seg, video = self.project.segmenter, self.project.video
        model = self.cost_model() if seg.target_segment_s is None else None
        cost_fn = None
        if model is not None:
            width, height = generation_size(video.width, video.height, self.grid.spatial_multiple)
            cost_fn = lambda frames: model.segment_cost(width=width, height=height, num_frames=frames, fps=video.fps).total  # noqa: E731
        return resolve_target(
            seg.target_segment_s, cost_fn, fps=video.fps, grid=self.grid, context_frames=self.context_frames,
            min_segment_s=seg.min_segment_s, max_segment_s=seg.max_segment_s, max_seams_per_minute=seg.max_seams_per_minute,
            unit=model.unit if model is not None else "",
        )  # fmt: skip

    # -- inputs ---------------------------------------------------------------------------
    def _file_hash(self, path: Path, key: str) -> str:
        path = Path(path)
        if path not in self._file_hashes:
            problem = not_a_file(path)
            if problem:
                raise MediaError(f"{key} file {path} {problem} (fix `{key}:` in {self.project.project_file or 'the project file'})")
            self._file_hashes[path] = file_sha256(path)
        return self._file_hashes[path]

    def _need(self, node: str) -> CacheEntry:
        entry = self.entries.get(node)
        if entry is None:
            raise _Pending(node)
        return entry

    # -- specs ----------------------------------------------------------------------------
    def _spec(self, node: str) -> _Spec:
        p = self.project
        if node == "ingest":
            return _Spec(
                node, "ingest", [],
                lambda: (p.audio.model_dump(mode="json"), {"voiceover": self._file_hash(p.voiceover, "voiceover")}),
                lambda w: steps.run_ingest(p, w),
            )
        if node == "vad":
            return _Spec(
                node, "vad", ["ingest"],
                lambda: ({"backend": self.vad_name, "threshold": p.segmenter.vad_threshold},
                         {"ingest": self._need("ingest").output_hash("vad16k.npy")}),
                lambda w: steps.run_vad(self.vad_name, p.segmenter.vad_threshold, self._need("ingest"), w),
            )
        if node == "plan":
            def material():
                ingest = self._need("ingest")
                params = {
                    "segmenter": p.segmenter.model_dump(mode="json", exclude={"vad"}),
                    "grid": [self.grid.frame_grid, self.grid.spatial_multiple],
                    "video": p.video.model_dump(mode="json"),
                    "chaining": p.generator.chaining,
                    "context_frames": self.context_frames,
                    "master": {k: ingest.meta[k] for k in ("sample_rate_hz", "duration_samples", "trim_start_sample")},
                }
                if p.segmenter.target_segment_s is None:
                    params["target_segment_s"] = self.target_choice().target_segment_s  # depends on the generator's cost model
                if self._guides_cuts():
                    # The sentence ends, not the script: editing words inside a sentence leaves the plan alone.
                    params["sentence_ends"] = self._sentence_end_frames()
                return params, {"ingest": ingest.output_hash("vad16k.npy"), "vad": self._need("vad").output_hash("vad.npy")}

            return _Spec(node, "plan", ["ingest", "vad"] + (["captions"] if self._guides_cuts() else []), material,
                         lambda w: steps.run_plan(p, self.grid, self.context_frames, self._need("ingest"), self._need("vad"), w,
                                                  target_segment_s=self.target_choice().target_segment_s,
                                                  sentence_end_frames=self._sentence_end_frames() if self._guides_cuts() else ()))
        if node == "captions":
            return _Spec(
                node, "captions", ["ingest"],
                lambda: ({"voice": p.captions.voice},
                         {"script": self._file_hash(p.captions.script, "captions.script"), "ingest": self._need("ingest").output_hash("vad16k.npy")}),
                lambda w: steps.run_captions(p, self._need("ingest"), w),
                params=lambda: {"voice": p.captions.voice},
            )
        if node == "portrait":
            def portrait_material():
                plan = self._require_plan()
                return {"width": plan.width, "height": plan.height}, {"portrait_file": self._file_hash(p.portrait, "portrait")}

            return _Spec(node, "portrait", ["plan"], portrait_material,
                         lambda w: steps.run_portrait(p, self._require_plan().width, self._require_plan().height, w))
        if node.startswith("segment_"):
            return self._segment_spec(int(node.split("_")[1]))
        if node == "stitch":
            return _Spec(node, "stitch", [segment_node(s.index) for s in self._require_plan().segments] + ["portrait"],
                         self._stitch_material, self._stitch_execute, params=self._stitch_params)
        if node == "report":
            return _Spec(node, "report", ["stitch"], self._report_material, self._report_execute, params=dict)
        raise KeyError(node)

    def _segment_spec(self, index: int) -> _Spec:
        p = self.project
        plan = self._require_plan()
        seg = plan.segments[index]
        chained = plan.chaining not in INDEPENDENT_MODES and index > 0
        prev = segment_node(index - 1)
        tail_start, tail_frames = steps.tail_range(plan, seg)

        def params_of() -> dict:
            params = {
                "index": index,
                "gen_frames": seg.gen_frames,
                "context_frames": seg.context_frames,
                "tail": [tail_start, tail_frames],
                "size": [plan.width, plan.height],
                "fps": plan.fps,
                "prompt": p.prompt_for(index),
                "negative_prompt": p.negative_prompt,
                "seed": steps.segment_seed(p.seed, index),
                "chaining": plan.chaining,
                "identity_anchor_strength": p.generator.identity_anchor_strength,
            }
            if chained:
                params["color_hold"] = [p.stitcher.color_hold, p.stitcher.color_hold_strength]
            return params

        def material():
            ingest = self._need("ingest")
            params = params_of()
            inputs = {"audio": self._segment_audio_hash(ingest, index), "portrait": self._need("portrait").output_hash("portrait.png")}
            if chained:
                prev_entry = self._need(prev)
                inputs["prev_segment"] = prev_entry.output_hash("tail.npy")
                if p.stitcher.color_hold == "first" and index > 1:
                    inputs["first_segment"] = self._need(segment_node(0)).output_hash("tail.npy")
            return params, inputs

        deps = ["ingest", "portrait"] + ([prev] if chained else [])
        return _Spec(segment_node(index), "segment", deps, material, lambda w: self._segment_execute(index, w), with_model=True,
                     params=params_of)

    def _segment_audio_hash(self, ingest: CacheEntry, index: int) -> str:
        if index not in self._audio_hash:
            seg = self._require_plan().segments[index]
            span = steps.read_audio_span(ingest.output("master.wav"), seg.audio_start_sample, seg.audio_end_sample)
            self._audio_hash[index] = steps.audio_span_sha256(span)
        return self._audio_hash[index]

    def _segment_execute(self, index: int, w: EntryWriter) -> None:
        p = self.project
        plan = self._require_plan()
        seg = plan.segments[index]
        self._ensure_generator()
        portrait = steps.load_portrait(self._need("portrait"))
        context = None
        if plan.chaining not in INDEPENDENT_MODES and index > 0:
            context = np.load(self._need(segment_node(index - 1)).output("tail.npy"))
            context = self._color_hold_context(context, portrait)
        audio = steps.read_audio_span(self._need("ingest").output("master.wav"), seg.audio_start_sample, seg.audio_end_sample)

        def progress(done: int, total: int, stage: str) -> None:
            self.events.progress(f"segment {index}: {stage}", done, total)
            self.events.emit("progress", step=segment_node(index), stage=stage, done=done, total=total)

        if plan.chaining in INDEPENDENT_MODES and not self._prefetched:
            self._prefetched = True
            self.generator.prefetch(self._pending_requests(portrait))
        steps.run_segment(
            generator=self.generator, plan=plan, seg=seg, prompt=p.prompt_for(index), negative_prompt=p.negative_prompt,
            seed=steps.segment_seed(p.seed, index), portrait=portrait, audio=audio, context=context,
            identity_anchor_strength=p.generator.identity_anchor_strength, out=w, progress=progress,
            job_key=self._executing_key,
        )

    def _pending_requests(self, portrait: np.ndarray) -> list:
        """Requests of the independent segments this run will still generate, in order (for ``Generator.prefetch``)."""
        p = self.project
        plan = self._require_plan()
        requests = []
        for seg in plan.segments:
            node = segment_node(seg.index)
            if node in self.entries or (self._only_segments is not None and seg.index not in self._only_segments):
                continue
            spec = self._spec(node)
            key, _params, _inputs = self._key(spec)
            if self._lookup(spec, key, execute=False)[0] is not None:
                continue
            audio = steps.read_audio_span(self._need("ingest").output("master.wav"), seg.audio_start_sample, seg.audio_end_sample)
            requests.append(steps.build_request(
                plan=plan, seg=seg, prompt=p.prompt_for(seg.index), negative_prompt=p.negative_prompt,
                seed=steps.segment_seed(p.seed, seg.index), portrait=portrait, audio=audio, context=None,
                identity_anchor_strength=p.generator.identity_anchor_strength, out_dir=Path("."), job_key=key,
            ))
        return requests

    def pending_cost(self):
        """The generator's cost estimate for the segments still to generate (None for a free backend)."""
        plan = self._require_plan()
        pending = [s.index for s in plan.segments if not self.resolve(segment_node(s.index), execute=False).done]
        if not pending:
            return None
        return self.gen_cls.estimate_cost(self.project.generator, plan, pending)

    def _color_hold_context(self, context: np.ndarray, portrait: np.ndarray) -> np.ndarray:
        from stitchers.color import apply_color_hold, color_stats

        mode = self.project.stitcher.color_hold
        if mode == "off" or self.project.stitcher.color_hold_strength == 0:
            return context
        if self._reference_stats is None:
            # The same reference for every segment of the run: measure it once.
            source = portrait if mode == "portrait" else np.load(self._need(segment_node(0)).output("tail.npy"))
            self._reference_stats = color_stats(source)
        return apply_color_hold(context, color_stats(context), self._reference_stats, self.project.stitcher.color_hold_strength)

    def load_generator(self) -> None:
        """Load the generator and encode the prompts of the segments still to run (a pool's actor does it up front)."""
        self._require_plan()
        self._ensure_generator()

    def _ensure_generator(self) -> None:
        if self._loaded:
            return
        t0 = time.monotonic()
        self.events.status(f"loading the {self.gen_cls.NAME} generator", final=True)
        self.generator.load()
        plan = self._require_plan()
        self.generator.preflight(plan.width, plan.height, max(s.gen_frames for s in plan.segments))
        self._loaded = True
        self.events.emit("generator_loaded", backend=self.gen_cls.NAME, seconds=round(time.monotonic() - t0, 3))
        if not self._prompts_encoded:
            # Every distinct prompt of segments still to run, once; the generator caches embeddings on disk.
            pending = [s.index for s in self._require_plan().segments if segment_node(s.index) not in self.entries]
            prompts = sorted({self.project.prompt_for(i) for i in pending} | {self.project.negative_prompt})
            t0 = time.monotonic()
            self.events.emit("step_started", step="encode_prompts", prompts=len(prompts))
            self.generator.encode_prompts(prompts)
            self.events.emit("step_finished", step="encode_prompts", seconds=round(time.monotonic() - t0, 3))
            self._prompts_encoded = True

    # -- captions ---------------------------------------------------------------------------
    def _aligns(self) -> bool:
        """Captions come from a script, so there is an alignment step."""
        return self.project.captions is not None and self.project.captions.script is not None

    def _guides_cuts(self) -> bool:
        return self._aligns() and self.project.captions.guide_cuts

    def _alignment(self):
        from captions.align import Alignment

        return Alignment.from_json(self._need("captions").output("words.json").read_text(encoding="utf-8"))

    def _sentence_end_frames(self) -> list[int]:
        from captions.cues import sentence_end_samples
        from orchestrator.timebase import sample_to_frame

        alignment = self._alignment()
        return [sample_to_frame(s, self.project.video.fps, alignment.sample_rate_hz) for s in sentence_end_samples(alignment)]

    def _caption_track(self):
        """The captions on the video's time line, as the stitcher takes them (None: no captions)."""
        from captions.cues import sentence_cues, timed_words
        from stitchers.captions import CaptionStyle, CaptionTrack, hex_rgb, load_captions, mouth_box_from_face

        cfg = self.project.captions
        if cfg is None:
            return None
        plan = self._require_plan()
        if cfg.script is not None:
            alignment = self._alignment()
            cues, words = tuple(sentence_cues(alignment)), tuple(timed_words(alignment))
        else:
            video_ms = int(plan.total_frames * 1000 / plan.fps)
            offset_ms = -round(plan.trim_start_sample * 1000 / plan.sample_rate_hz)  # file times are voiceover times
            cues, words = tuple(load_captions(cfg.file, offset_ms=offset_ms, duration_ms=video_ms)), ()
        style = CaptionStyle(
            mode=cfg.resolved_style, words_on_screen=cfg.words_on_screen, font_path=cfg.font, size_pct=cfg.size_pct,
            color=hex_rgb(cfg.color), highlight_color=hex_rgb(cfg.highlight_color), outline_color=hex_rgb(cfg.outline_color),
            outline_pct=cfg.outline_pct, position=cfg.position,
        )
        face_box = self._need("portrait").meta.get("face_box")
        return CaptionTrack(cues, words, style, cfg.burn, mouth_box_from_face(face_box, plan.width, plan.height))

    def _stitch_material(self) -> tuple[dict, dict]:
        p = self.project
        plan = self._require_plan()
        inputs = {segment_node(s.index): self._need(segment_node(s.index)).output_hash("clip.mp4") for s in plan.segments}
        inputs["master"] = self._need("ingest").output_hash("master.wav")
        inputs["plan"] = self._need("plan").output_hash("plan.json")
        inputs["portrait"] = self._need("portrait").output_hash("portrait.png")
        if p.captions is not None:
            if p.captions.script is not None:
                inputs["captions"] = self._need("captions").output_hash("words.json")
            else:
                inputs["captions"] = self._file_hash(p.captions.file, "captions.file")
        return self._stitch_params(), inputs

    def _stitch_params(self) -> dict:
        p = self.project
        params = {
            "stitcher": p.stitcher.model_dump(mode="json"),
            "export": self._export_config().model_dump(mode="json", exclude={"captions"}),
            "video": p.video.model_dump(mode="json"),
        }
        if p.captions is not None:
            params["captions"] = p.captions.model_dump(mode="json", exclude={"script", "file", "voice", "guide_cuts"})
            if p.captions.font is not None:
                params["captions"]["font"] = self._file_hash(p.captions.font, "captions.font")
        return params

    def _stitch_execute(self, w: EntryWriter) -> None:
        from stitchers.stitch import stitch

        p = self.project
        plan = self._require_plan()
        clips = [self._need(segment_node(s.index)).output("clip.mp4") for s in plan.segments]
        try:
            result = stitch(
                plan, clips, self._need("ingest").output("master.wav"), w.add_output("video.mp4"),
                stitcher=p.stitcher, export=self._export_config(), reference_rgb=steps.load_portrait(self._need("portrait")),
                progress=lambda done, total: self.events.progress("stitching frame", done, total),
                captions=self._caption_track(),
            )
        except MediaError as exc:
            # A damaged clip's message says `--redo N`; name the real project file in it.
            if p.project_file is not None and "PROJECT.yaml" in str(exc):
                raise MediaError(str(exc).replace("PROJECT.yaml", str(p.project_file))) from None
            raise
        w.meta.update(frames=result.frames, duration_s=result.duration_s, size_bytes=result.size_bytes, warnings=list(result.warnings))

    def _export_config(self):
        """The export settings with the output size resolved: export.width/height, else the preset's, else video's.

        A preset without a size of its own (master) would otherwise keep the generation size (1088×1920);
        the user asked for video.width × video.height.
        """
        from stitchers.export import PRESETS

        export = self.project.export
        if export.width is None and export.height is None and PRESETS[export.preset].width is None:
            export = export.model_copy(update={"width": self.project.video.width, "height": self.project.video.height})
        return export

    def _report_material(self) -> tuple[dict, dict]:
        return {}, {"video": self._need("stitch").output_hash("video.mp4"), "plan": self._need("plan").output_hash("plan.json"),
                    "portrait": self._need("portrait").output_hash("portrait.png")}

    def _report_execute(self, w: EntryWriter) -> None:
        from quality.report import build_report

        report = build_report(self._need("stitch").output("video.mp4"), plan=self._require_plan(),
                              portrait=self._need("portrait").output("portrait.png"), out_dir=w.dir,
                              progress=lambda done, total: self.events.progress("report: frame", done, total))
        for name in ("report.json", "report.png", "contact_sheet.png"):
            if (w.dir / name).exists():
                w.add_output(name)
        w.meta["verdicts"] = report.verdicts()

    # -- the graph --------------------------------------------------------------------------
    def _require_plan(self) -> Plan:
        if self.plan is None:
            entry = self._need("plan")
            self.plan = Plan.load(entry.output("plan.json"))
        return self.plan

    def nodes(self) -> list[str]:
        """Every node in run order (segments only once a plan exists)."""
        graph = nx.DiGraph()
        pre = self._pre_nodes()
        for node in pre:
            graph.add_node(node)
        graph.add_edges_from([("ingest", "vad"), ("vad", "plan")])
        if self._aligns():
            graph.add_edge("ingest", "captions")
            graph.add_edge("captions", "plan" if self._guides_cuts() else "stitch")
            graph.add_edge("captions", "stitch")
        if self.plan is not None or "plan" in self.entries:
            graph.add_edge("plan", "portrait")
            for seg in self._require_plan().segments:
                spec = self._spec(segment_node(seg.index))
                for dep in spec.deps:
                    graph.add_edge(dep, spec.node)
                graph.add_edge(spec.node, "stitch")
            graph.add_edge("portrait", "stitch")
            graph.add_edge("stitch", "report")
        if not nx.is_directed_acyclic_graph(graph):  # a bug in the specs, never the user's doing
            raise RuntimeError(f"run graph has a cycle: {nx.find_cycle(graph)}")
        order = {n: i for i, n in enumerate(["ingest", "vad", "captions", "plan", "portrait"])}
        return list(nx.lexicographical_topological_sort(graph, key=lambda n: (order.get(n, 5), n)))

    def _key(self, spec: _Spec) -> tuple[str, dict, dict]:
        params, inputs = spec.material()
        model = self.model_identity() if spec.with_model else None
        key = step_key(spec.step, params=params, inputs=inputs, code_version=steps.CODE_VERSIONS[spec.step], model_identity=model)
        return key, params, inputs

    def _lookup(self, spec: _Spec, key: str, *, execute: bool) -> tuple[CacheEntry | None, str | None]:
        """(entry, problem). Only a run (holding the lock) discards a broken entry; `status` just reports it."""
        if execute:
            return self.cache.lookup(spec.step, key), None
        return self.cache.inspect(spec.step, key)

    def resolve(self, node: str, *, execute: bool, force: bool = False) -> StepStatus:
        spec = self._spec(node)
        try:
            key, params, inputs = self._key(spec)
        except _Pending as pending:
            return StepStatus(node, False, f"waits on {pending.node}")
        entry, broken = (None, None) if force else self._lookup(spec, key, execute=execute)
        if entry is not None:
            self.entries[node] = entry
            self.events.emit("step_cached", step=node, key=key[:12])
            return StepStatus(node, True, "done", key, entry.duration_s, _warnings_of(entry))
        if force:
            reason = "redo requested"
        elif broken:
            reason = f"cache entry broken ({broken}); `longtake run` redoes it"
        else:
            reason = self._why(node, spec, key, params, inputs)
        if not execute:
            return StepStatus(node, False, reason, key)
        self.events.status(f"{node}: running ({reason})", final=True)
        self.events.emit("step_started", step=node, reason=reason)
        t0 = time.monotonic()
        self._executing_key = key  # a hosted generator files its request under the segment's key
        with self.cache.writing(spec.step, key, params=params, inputs=inputs, code_version=steps.CODE_VERSIONS[spec.step],
                                model_identity=self.model_identity() if spec.with_model else None) as writer:
            spec.execute(writer)
        entry = self.cache.lookup(spec.step, key)
        if entry is None:  # pragma: no cover - the cache just wrote it
            raise RuntimeError(f"cache entry for {node} vanished after writing")
        self.entries[node] = entry
        self._remember(node, spec.step, key)
        if spec.step in _QUIET_STEPS:
            for text in _warnings_of(entry):
                log.warning("%s", text)
        seconds = time.monotonic() - t0
        self.events.emit("step_finished", step=node, key=key[:12], seconds=round(seconds, 3))
        return StepStatus(node, True, f"ran ({reason})", key, seconds, _warnings_of(entry))

    # -- reasons -------------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _remember(self, node: str, step: str, key: str) -> None:
        if not self._record:
            return
        state = self._state()
        state[node] = {"step": step, "key": key}
        atomic_write_text(self._state_path, json.dumps(state, indent=1, sort_keys=True),
                          elsewhere="set `workdir:` in the project file to another disk")

    def _why(self, node: str, spec: _Spec, key: str, params: dict, inputs: dict) -> str:
        last = self._state().get(node)
        if not last:
            return "missing"
        old, _broken = self.cache.inspect(last["step"], last["key"])
        if old is None:
            return "missing (cache entry removed)" if last["key"] != key else "missing"
        m = old.manifest
        changed: list[str] = []
        old_params = m.get("params", {})
        for name, value in params.items():
            # Compare in the manifest's own spelling (Fractions as "24/1", tuples as lists).
            if canonical_json(old_params.get(name)) != canonical_json(value):
                changed.append(f"{name.replace('_', ' ')} changed")
        for name, value in inputs.items():
            if m.get("inputs", {}).get(name) != value:
                if name == "prev_segment":
                    changed.append(f"input segment {int(node.split('_')[1]) - 1} changed")
                elif name.startswith("segment_"):
                    changed.append(f"input segment {int(name.split('_')[1])} changed")
                else:
                    changed.append(f"{_INPUT_NAMES.get(name, name)} changed")
        if m.get("code_version") != steps.CODE_VERSIONS[spec.step]:
            changed.append("longtake code changed")
        if spec.with_model and m.get("model_identity") != self.model_identity():
            changed.append("model changed")
        return ", ".join(changed[:3]) + (f" (+{len(changed) - 3} more)" if len(changed) > 3 else "") if changed else "changed"

    # -- entry points -------------------------------------------------------------------------------
    def _pre_nodes(self) -> list[str]:
        """The steps before (and including) the plan; the script's alignment is one when the planner uses it."""
        return ["ingest", "vad"] + (["captions"] if self._aligns() else []) + ["plan"]

    def run_plan(self, *, execute: bool = True) -> Plan | None:
        for node in self._pre_nodes():
            status = self.resolve(node, execute=execute)
            if not status.done:
                return None
        self.plan = None
        return self._require_plan()

    def run_captions(self):
        """Ingest and align the captions script (cached like any step); returns the alignment."""
        if not self._aligns():
            where = self.project.project_file or "the project file"
            raise ConfigError(f"{where} has no captions script: add `captions: {{script: narration.txt}}` (a plain-text copy of the narration)")
        for node in ("ingest", "captions"):
            self.resolve(node, execute=True)
        return self._alignment()

    def status(self) -> list[StepStatus]:
        """Every step, done or to run and why. Reads only; writes nothing."""
        result = []
        for node in self._pre_nodes():
            result.append(self.resolve(node, execute=False))
        if not result[-1].done:
            result.append(StepStatus("segments", False, "waits on plan"))
            return result
        self._require_plan()
        any_pending = False
        from generators.fal import journal_for_workdir

        journal = journal_for_workdir(self.project.workdir)
        for node in self.nodes():
            if node in self._pre_nodes():
                continue
            st = self.resolve(node, execute=False)
            if node.startswith("segment_") and not st.done and st.key:
                record = journal.read(st.key)
                if record and record.get("status") in ("submitted", "completed"):
                    state = "finished, to download" if record["status"] == "completed" else "in flight"
                    st.reason = f"{st.reason}; {state} on fal (request {record.get('request_id')})"
            if node.startswith("segment_") and not st.done and not any_pending:
                any_pending = True
            result.append(st)
        if any_pending:
            idx = next(i for i, s in enumerate(result) if s.node.startswith("segment_"))
            result.insert(idx, StepStatus("encode_prompts", False, "segments to generate"))
        return result

    def begin(self, *, redo: set[int] = frozenset(), only_segments: set[int] | None = None, max_cost_usd: float | None = None) -> Plan:
        """Check the project, sweep dead writers' leftovers, plan, and check the segment numbers the user gave.

        With ``max_cost_usd``, refuse (ConfigError) when the segments still to generate are estimated to cost more.
        """
        preflight.check_project(self.project)
        self.cache.sweep_temp()
        plan = self.run_plan()
        assert plan is not None
        self.export_plan_files()
        self.check_plan(plan)
        self._only_segments = only_segments
        if max_cost_usd is not None:
            cost = self.pending_cost()
            if cost is not None:
                self.events.emit("cost_estimate", total_usd=round(cost.total_usd, 4), requests=cost.requests, megapixels=cost.megapixels)
                if cost.total_usd > max_cost_usd:
                    raise ConfigError(
                        f"{cost.describe()}, above generator.max_cost_usd ${max_cost_usd:.2f}; "
                        "raise generator.max_cost_usd, or run with --yes to accept this cost"
                    )
        unknown = sorted(i for i in set(redo) | set(only_segments or ()) if i >= len(plan.segments) or i < 0)
        if unknown:
            raise ConfigError(f"segment(s) {unknown} do not exist: the plan has segments 0–{len(plan.segments) - 1}")
        extra = sorted(ov.index for ov in self.project.segments if ov.index >= len(plan.segments))
        if extra:
            log.warning(f"segments: overrides for index {extra} match no segment (the plan has {len(plan.segments)})")
        self.events.total_segments = len(plan.segments)
        return plan

    def run(self, *, redo: set[int] = frozenset(), only_segments: set[int] | None = None, max_cost_usd: float | None = None) -> RunSummary:
        summary = RunSummary()
        self.begin(redo=redo, only_segments=only_segments, max_cost_usd=max_cost_usd)
        for node in self.nodes():
            if node in self._pre_nodes():
                continue
            if node.startswith("segment_"):
                index = int(node.split("_")[1])
                if only_segments is not None and index not in only_segments:
                    st = self.resolve(node, execute=False)
                    if st.done:
                        self.events.segment_done(0, cached=True)
                    continue
                t0 = time.monotonic()
                st = self.resolve(node, execute=True, force=index in redo)
                if not st.done:
                    raise ConfigError(f"segment {index} can't run: it {st.reason}; include that segment in --only-segments")
                self.events.segment_done(time.monotonic() - t0, cached=st.reason == "done")
            elif only_segments is not None and node in ("stitch", "report"):
                break  # --only-segments generates, it does not stitch
            else:
                st = self.run_step(node, summary)
            (summary.cached if st.reason == "done" else summary.ran).append(node)
        return summary

    def run_step(self, node: str, summary: RunSummary) -> StepStatus:
        """Run (or find cached) one step that is not a segment, exporting what it makes for the user."""
        st = self.resolve(node, execute=True)
        if node == "stitch":
            # The video reaches the user before the report runs: a failed report loses nothing.
            summary.output = self._export_video()
        elif node == "report":
            summary.report = self._export_report()
        return st

    # -- for executors that run segments elsewhere (orchestrator.ray_executor) -------------------
    def ready_segments(self, skip: set[int], force: set[int]) -> tuple[list[int], list[int]]:
        """(segments that can run now, segments found done), leaving out ``skip``.

        The graph decides independence: a segment is ready once every step it
        reads is done, so anchor (and any mode whose segments read no other
        segment) yields them all at once, chained modes one per project.
        """
        ready, done = [], []
        for seg in self._require_plan().segments:
            if seg.index in skip:
                continue
            st = self.resolve(segment_node(seg.index), execute=False, force=seg.index in force)
            if st.done:
                done.append(seg.index)
            elif st.key is not None:  # no key: it waits on a step not yet done
                ready.append(seg.index)
        return ready, done

    def prepare_segment(self, index: int) -> None:
        """Look up (never run) every step segment ``index`` reads, in a process that did not run them."""
        if self.run_plan(execute=False) is None:
            raise RuntimeError(f"segment {index} was sent out before the plan was done")

        def visit(node: str) -> None:
            for dep in self._spec(node).deps:
                if dep in self.entries:
                    continue
                visit(dep)
                st = self.resolve(dep, execute=False)
                if not st.done:
                    raise RuntimeError(f"{node} was sent out before {dep} was done ({st.reason})")

        visit(segment_node(index))

    def record_finished(self, node: str) -> StepStatus:
        """Adopt a step another process finished: look it up and remember it for status reasons."""
        spec = self._spec(node)
        key, _params, _inputs = self._key(spec)
        entry, _broken = self._lookup(spec, key, execute=True)
        if entry is None:
            return StepStatus(node, False, "missing", key)
        self.entries[node] = entry
        self._remember(node, spec.step, key)
        return StepStatus(node, True, "done", key, entry.duration_s)

    def finish(self, summary: RunSummary) -> RunSummary:
        """Every step after the segments (stitch, report), once all segments are done."""
        for node in self.nodes():
            if node in ("ingest", "vad", "plan") or node.startswith("segment_"):
                continue
            st = self.run_step(node, summary)
            (summary.cached if st.reason == "done" else summary.ran).append(node)
        return summary

    def export_plan_files(self) -> None:
        """plan.json and plan.png in the workdir, where `longtake report --plan W/plan.json` finds them."""
        from orchestrator.atomic import atomic_copy

        entry = self._need("plan")
        for name in ("plan.json", "plan.png"):
            atomic_copy(entry.output(name), Path(self.project.workdir) / name, elsewhere="set `workdir:` in the project file to another disk")

    def check_plan(self, plan: Plan) -> None:
        """What needs the plan to check, before any segment is generated: can the export settings encode it?"""
        channels = int(self._need("ingest").meta.get("channels", 1))
        preflight.check_plan_exports(self.project, plan, self._export_config(), channels)

    def _export_video(self) -> Path:
        """Put the stitched video at the user's output path, unless the same bytes are already there."""
        out = Path(self.project.output)
        entry = self._need("stitch")
        if not out.is_file() or out.stat().st_size != entry.manifest["outputs"]["video.mp4"]["bytes"] or file_sha256(out) != entry.output_hash("video.mp4"):
            # The old video's report must not sit beside the new video if this run stops before its report.
            for stale in preflight.report_paths(out):
                stale.unlink(missing_ok=True)
            steps.export_to_output(entry.output("video.mp4"), out)
        self._export_subtitles(out)
        return out

    def _export_subtitles(self, video: Path) -> None:
        """Sidecar subtitles beside the video, timed to it (video.srt, video.vtt): for a platform's own caption upload."""
        from stitchers.captions import format_cues

        track = self._caption_track()
        if track is None:
            return
        inputs = {os.path.realpath(path) for path in preflight.project_inputs(self.project).values()}
        for kind in ("srt", "vtt"):
            sidecar = video.with_suffix("." + kind)
            if os.path.realpath(sidecar) in inputs:  # never over the user's own caption file
                log.warning(f"not writing {sidecar}: it is one of the project's inputs; the video's subtitles are in the workdir's captions files")
                continue
            atomic_write_text(sidecar, format_cues(track.cues, kind))

    def _export_report(self) -> dict:
        out = Path(self.project.output)
        report = self._need("report")
        for name, target in zip(("report.json", "report.png"), preflight.report_paths(out)):
            if name in report.outputs:
                steps.export_to_output(report.output(name), target)
        return json.loads(report.output("report.json").read_text())

    def reuse_filter(self, node: str) -> tuple[str, dict | None, str | None]:
        """(cache step, params or None, model identity) of ``node``: what an entry must match to be reused by it.

        For `clean`, when ``node``'s key cannot be computed yet (an input step has no entry).
        """
        spec = self._spec(node)
        return spec.step, (spec.params() if spec.params is not None else None), (self.model_identity() if spec.with_model else None)

    def step_of(self, node: str) -> str:
        return self._spec(node).step

    def close(self) -> None:
        if self._generator is not None and self._own_generator:
            self._generator.close()
