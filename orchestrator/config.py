"""The project file: a YAML document validated by pydantic.

Every problem is reported at once, each naming the key, its line in the YAML,
what is wrong and how to fix it (``ConfigError``, exit 2). Paths are relative
to the project file. Unknown keys are errors (with a "did you mean" hint).
"""

from __future__ import annotations

import difflib
import logging
import typing
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from orchestrator.errors import ConfigError, not_a_file
from orchestrator.timebase import parse_fps

log = logging.getLogger("longtake")

MAX_PASS_S = 20.0  # LTX-2.3's positional embedding is trained on 20 s; no pass may be longer


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class VideoConfig(_Strict):
    width: int = Field(1080, ge=16, le=8192, description="output width in pixels")
    height: int = Field(1920, ge=16, le=8192, description="output height in pixels")
    fps: Annotated[Fraction, Field(description="frames per second: 24, 25, 30 or a fraction like 30000/1001")] = Fraction(24)

    @field_validator("fps", mode="before")
    @classmethod
    def _fps(cls, value: Any) -> Fraction:
        try:
            fps = parse_fps(value)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"must be a positive number like 24 or 30000/1001, got {value!r}") from None
        if not (1 <= fps <= 120):
            raise ValueError(f"fps must be between 1 and 120, got {fps}")
        return fps

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even for H.264 4:2:0 video, got {value}; use {value + 1}")
        return value


class AudioConfig(_Strict):
    target_lufs: float = Field(-14.0, ge=-40.0, le=-5.0)
    true_peak_dbtp: float = Field(-1.0, ge=-9.0, le=0.0)
    trim_leading_silence: bool = True
    lead_in_ms: int = Field(250, ge=0, le=5000)
    max_duration_s: float = Field(900.0, gt=0)


class SegmenterConfig(_Strict):
    vad: Literal["silero", "webrtc", "energy"] = "silero"
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    max_segment_s: float = Field(20.0, gt=0.0)
    min_segment_s: float = Field(4.0, gt=0.0)
    # None: the length of least GPU cost per output second under max_seams_per_minute (segmenters.segment_length).
    target_segment_s: float | None = Field(None, gt=0.0)
    max_seams_per_minute: float = Field(6.0, gt=0.0, description="with target_segment_s unset, at most this many joins per minute of video")
    min_pause_ms: int = Field(250, ge=0)
    context_frames: int = Field(9, ge=1)

    @field_validator("max_segment_s")
    @classmethod
    def _max_pass(cls, value: float) -> float:
        if value > MAX_PASS_S:
            raise ValueError(f"must be at most {MAX_PASS_S:g} s (LTX-2.3 generates at most 20 s per pass), got {value:g}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "SegmenterConfig":
        if self.target_segment_s is None:
            if self.min_segment_s > self.max_segment_s:
                raise ValueError(f"need min_segment_s ≤ max_segment_s, got {self.min_segment_s:g} > {self.max_segment_s:g}")
        elif not (self.min_segment_s <= self.target_segment_s <= self.max_segment_s):
            raise ValueError(
                f"need min_segment_s ≤ target_segment_s ≤ max_segment_s, got "
                f"{self.min_segment_s:g} ≤ {self.target_segment_s:g} ≤ {self.max_segment_s:g}"
            )
        return self


ChainingMode = Literal["tail", "last-frame", "anchor", "bookend"]


class _GeneratorBase(_Strict):
    chaining: ChainingMode = "tail"
    identity_anchor_strength: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _context_parallel_is_ltx2s(cls, data: Any) -> Any:
        # Only the local ltx2 transformer can be split over GPUs; say so rather than "unknown key".
        if isinstance(data, dict) and "context_parallel" in data and data.get("backend", "ltx2") != "ltx2":
            raise ValueError(
                f"context_parallel splits an ltx2 segment over the GPUs of this host; the {data.get('backend')} backend "
                "runs no local transformer (remove context_parallel, or use backend: ltx2)"
            )
        return data


class LTX2Options(_GeneratorBase):
    backend: Literal["ltx2"] = "ltx2"
    # Lightricks' single file (ltx-2.3-22b-dev.safetensors / ltx-2.3-22b-distilled-1.1.safetensors), a diffusers-format
    # folder, or a hub id of one; relative paths are resolved against the project file.
    model: str = "models/ltx-2.3-22b-dev.safetensors"
    # Gemma-3's folder, for a single-file `model` (a diffusers folder carries its own text_encoder/ and tokenizer/).
    text_encoder: str | None = None
    upsampler: str | None = None
    stage2: Literal["distilled", "none"] = "distilled"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    device: str = "cuda"
    # How many GPUs of this host one segment's transformer passes are split over (generators/ltx2_cp_launch.py):
    # rank 0 runs on `device`, one worker process per further GPU. 1 = off.
    context_parallel: int = Field(1, ge=1, le=64)
    offload: Literal["none", "model", "sequential"] = "none"
    vae_tiling: Literal["auto", "on", "off"] = "auto"
    stage1_steps: int = Field(30, ge=1, le=200)
    guidance_scale: float = Field(3.0, ge=1.0)
    stg_scale: float = Field(1.0, ge=0.0)
    stg_blocks: list[int] = Field(default_factory=lambda: [28])
    guidance_rescale: float = Field(0.7, ge=0.0, le=1.0)
    modality_scale: float = Field(3.0, ge=1.0)
    image_crf: int = Field(33, ge=0, le=51)
    # "dev": stage 1 runs stage1_steps guided steps (the dev checkpoint); "distilled": `model` is the distilled
    # checkpoint, stage 1 runs its 8 fixed sigmas without guidance (guidance_scale/stg/modality are ignored).
    # "auto": distilled when `model` is a single file named ...distilled..., dev otherwise.
    model_variant: Literal["auto", "dev", "distilled"] = "auto"
    # LTX-2.3's distilled LoRA (ltx-2.3-22b-distilled-lora-384.safetensors), switched on for stage 2 only.
    stage2_lora: str | None = None
    stage2_lora_scale: float = Field(1.0, ge=0.0, le=2.0)
    # Store the transformer's weights as float8_e4m3fn and upcast each layer to `dtype` for its forward.
    fp8_storage: bool = False
    # Which Lightricks release to follow where the reference changed: how the frozen (clean) voiceover is modulated
    # (1.2.0: sigma 0, each modality's own timesteps for the cross-attention scale/shift; 1.0.0: the step sigma) and
    # how a keyframe guide starts (1.2.0: one pixel frame wide, from noise; 1.0.0: eight frames wide, from the image).
    reference_release: Literal["ltx-2-1.2.0", "ltx-2-1.0.0"] = "ltx-2-1.2.0"
    # Speed options (generators/ltx2_speed.py; the README says which are exact). Approximate ones are off by default.
    fp8_linears: Literal["off", "on", "emulated"] = "off"
    fp8_edge_blocks_bf16: int = Field(1, ge=0)
    fp8_keep_bf16: list[str] = Field(default_factory=list)
    compile: Literal["off", "blocks"] = "off"
    attention: Literal["auto", "native", "sage", "sage-hub"] = "auto"
    stage2_lora_mode: Literal["unfused", "fused"] = "unfused"
    # Stage 2 per overlapping spatial tile of this many output pixels (generators/ltx2_tiles.py; approximate): 0 = off.
    stage2_tile_px: int = Field(0, ge=0)
    stage2_tile_overlap_px: int = Field(64, ge=0)

    @model_validator(mode="after")
    def _stage2_tiles(self) -> "LTX2Options":
        if self.stage2_tile_px:
            from generators.ltx2_tiles import Stage2Tiling
            from orchestrator.errors import GeneratorError

            try:
                Stage2Tiling(self.stage2_tile_px, self.stage2_tile_overlap_px)
            except GeneratorError as exc:  # a config error here: pydantic reports a ValueError as the model's
                raise ValueError(str(exc)) from exc
        return self

    @field_validator("fp8_linears", "compile", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any, info) -> Any:
        # YAML reads a bare `off` / `on` as a boolean.
        if isinstance(value, bool):
            return ("on" if info.field_name == "fp8_linears" else "blocks") if value else "off"
        return value


class AnimaticOptions(_GeneratorBase):
    backend: Literal["animatic"]
    motion_strength: float = Field(1.0, ge=0.0, le=5.0)
    mouth_gain: float = Field(1.0, ge=0.0, le=5.0)


FalEndpoint = Literal[
    "fal-ai/ltx-2.3-22b/distilled/audio-to-video",
    "fal-ai/ltx-2.3-22b/audio-to-video",
    "fal-ai/ltx-2.3-quality/audio-to-video",
]


class FalOptions(_GeneratorBase):
    """LTX-2.3 audio-to-video hosted on fal.ai (generators/fal.py); the key comes from FAL_KEY, never from this file."""

    backend: Literal["fal"]
    chaining: ChainingMode = "bookend"
    endpoint: FalEndpoint = "fal-ai/ltx-2.3-22b/distilled/audio-to-video"
    max_cost_usd: float = Field(10.0, ge=0.0, description="`longtake run` refuses to start when the estimate for the segments still to generate is above this (unless --yes)")
    max_in_flight: int = Field(4, ge=1, le=64, description="requests queued on fal at once when segments are independent (anchor, bookend)")
    image_strength: float = Field(1.0, ge=0.0, le=1.0)
    end_image_strength: float = Field(1.0, ge=0.0, le=1.0)
    audio_strength: float = Field(1.0, ge=0.0, le=1.0)
    poll_interval_s: float = Field(2.0, gt=0.0, le=60.0)

    @field_validator("chaining")
    @classmethod
    def _hosted_chaining(cls, value: str) -> str:
        if value == "tail":
            raise ValueError(
                "tail chaining needs the previous segment's frames as a latent prefix, which fal's endpoints cannot take; "
                "use bookend (parallel, starts and ends on the portrait), anchor (parallel) or last-frame (sequential)"
            )
        return value


GeneratorConfig = Annotated[Union[LTX2Options, AnimaticOptions, FalOptions], Field(discriminator="backend")]


class StitcherConfig(_Strict):
    color_hold: Literal["portrait", "first", "off"] = "first"
    color_hold_strength: float = Field(0.8, ge=0.0, le=1.0)
    anchor_overlap_frames: int = Field(8, ge=0)
    color_ramp_frames: int = Field(12, ge=0, description="frames over which the colour correction moves to the next segment's where clips do not overlap (last-frame chaining, hard cuts)")


_HEX_COLOUR = r"^#[0-9A-Fa-f]{6}$"


class CaptionsConfig(_Strict):
    """Captions: aligned from a script (``script``) or read from a caption file (``file``); exactly one."""

    script: Path | None = Field(None, description="plain-text narration script (paragraphs allowed); its words are aligned to the voiceover")
    file: Path | None = Field(None, description="an SRT or WebVTT file with timed cues (e.g. captions.srt from `longtake captions`, edited)")
    style: Literal["words", "lines"] | None = Field(None, description="words: 1–3 words on screen, the spoken one highlighted; lines: sentence cues. None: words with a script, lines with a file")
    burn: bool = Field(True, description="draw the captions into the picture; false: mux them as a subtitle track instead")
    words_on_screen: int = Field(3, ge=1, le=3)
    font: Path | None = Field(None, description="a .ttf/.otf font file; None: DejaVu Sans Bold (Debian fonts-dejavu-core)")
    size_pct: float = Field(4.5, gt=0.5, le=15.0, description="text height as a percentage of the video height")
    color: str = Field("#FFFFFF", pattern=_HEX_COLOUR)
    highlight_color: str = Field("#FFD21F", pattern=_HEX_COLOUR)
    outline_color: str = Field("#000000", pattern=_HEX_COLOUR)
    outline_pct: float = Field(12.0, ge=0.0, le=40.0, description="outline width as a percentage of the text height")
    position: Literal["bottom", "middle", "top"] = "bottom"
    voice: str = Field("en-us", description="espeak-ng voice that reads the script for the alignment: the script's language (espeak-ng --voices)")
    guide_cuts: bool = Field(True, description="the planner prefers cutting in pauses at sentence ends (needs a script)")

    @model_validator(mode="after")
    def _one_source(self) -> "CaptionsConfig":
        if (self.script is None) == (self.file is None):
            raise ValueError("give exactly one of `script` (a text to align) or `file` (an SRT/VTT with times)")
        if self.style == "words" and self.file is not None:
            raise ValueError("style words needs word times, which only a script gives; use `script:` or set `style: lines`")
        return self

    @property
    def resolved_style(self) -> str:
        return self.style or ("words" if self.script is not None else "lines")


class ExportConfig(_Strict):
    preset: Literal["tiktok", "reels", "shorts", "master"] = "tiktok"
    crf: int | None = Field(None, ge=0, le=51)
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"] = "medium"
    max_file_mb: float | None = Field(None, gt=0)
    captions: Path | None = Field(None, description="deprecated: use captions.file")
    burn_captions: bool = Field(False, description="deprecated: use captions.burn")
    width: int | None = Field(None, ge=16, le=8192, multiple_of=2, description="output width in pixels; None: the preset's (1080 for tiktok/reels/shorts, the generation width for master)")
    height: int | None = Field(None, ge=16, le=8192, multiple_of=2, description="output height in pixels; None: the preset's (1920 for tiktok/reels/shorts, the generation height for master)")


class SegmentOverride(_Strict):
    index: int = Field(ge=0)
    prompt: str


# LTX-2's own default negative prompt (ltx-pipelines' DEFAULT_NEGATIVE_PROMPT): it names lip-sync and voice failures.
LTX_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, g"
    "rainy texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, "
    "deformed facial features, asymmetrical face, missing facial features, extra limbs, disfigured hands,"
    " wrong hand count, artifacts around text, inconsistent perspective, camera shake, incorrect depth of"
    " field, background too sharp, background clutter, distracting reflections, harsh shadows, inconsiste"
    "nt lighting direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, unca"
    "nny valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction,"
    " mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, background noise,"
    " off-sync audio, incorrect dialogue, added dialogue, repetitive speech, jittery movement, awkward pa"
    "uses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, flat lighting, i"
    "nconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)


class Project(_Strict):
    voiceover: Path
    portrait: Path
    prompt: str = "A person talking to the camera, natural head movement, soft studio light."
    negative_prompt: str = LTX_NEGATIVE_PROMPT
    output: Path = Path("out/longtake.mp4")
    workdir: Path | None = None
    seed: int = Field(0, ge=0, lt=2**32)
    video: VideoConfig = Field(default_factory=VideoConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    generator: GeneratorConfig = Field(default_factory=LTX2Options)
    stitcher: StitcherConfig = Field(default_factory=StitcherConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    captions: CaptionsConfig | None = None
    segments: list[SegmentOverride] = Field(default_factory=list)

    # Set by load_project, not by the YAML: where the project file lives.
    project_file: Path | None = Field(None, exclude=True)
    _deprecations: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _old_captions_key(self) -> "Project":
        """``export.captions`` (before captions had a section) keeps working, as ``captions.file``."""
        if self.export.captions is None:
            return self
        if self.captions is not None:
            raise ValueError("captions are given twice: `export.captions` (deprecated) and `captions:`; keep only `captions:`")
        self.captions = CaptionsConfig(file=self.export.captions, burn=self.export.burn_captions, style="lines")
        self.export = self.export.model_copy(update={"captions": None, "burn_captions": False})
        self._deprecations.append(
            "`export.captions` is deprecated: write `captions: {file: …, burn: …}` instead "
            "(export.burn_captions becomes captions.burn); it still works for now"
        )
        return self

    @model_validator(mode="after")
    def _unique_overrides(self) -> "Project":
        seen: set[int] = set()
        for ov in self.segments:
            if ov.index in seen:
                raise ValueError(f"segments: index {ov.index} is listed twice; keep one entry per segment")
            seen.add(ov.index)
        return self

    def prompt_for(self, index: int) -> str:
        for ov in self.segments:
            if ov.index == index:
                return ov.prompt
        return self.prompt


# ---------------------------------------------------------------------------------
# loading with line numbers
# ---------------------------------------------------------------------------------

def load_project(path: str | Path) -> Project:
    """Read, validate and resolve a project file; raise ConfigError listing every problem."""
    path = Path(path)
    problem = not_a_file(path)
    if problem and problem != "does not exist":
        raise ConfigError(f"project file {path} {problem}; name the project's .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"project file not found: {path} (create one with `longtake init VOICEOVER PORTRAIT`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read project file {path}: {exc}") from None
    return parse_project(text, path)


def parse_project(text: str, path: Path) -> Project:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # The context mark is where the broken construct began (an unclosed "{"), the more useful line.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context:
            problem = f"{context}, {problem}"
        raise ConfigError(f"{where}: the project file is not valid YAML: {problem} (check indentation and quoting)") from None
    duplicates = _duplicate_keys(root, path)
    if duplicates:
        raise ConfigError(f"{path}: {len(duplicates)} key(s) set twice in the project file", duplicates)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the project file must be a mapping of keys (voiceover: …, portrait: …), got {type(data).__name__}")
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc.error_count()} problem(s) in the project file", _describe_errors(exc, root, path, data)) from None
    for message in project._deprecations:
        log.warning(f"{path.name}: {message}")
    return _resolve_paths(project, path)


def _duplicate_keys(node: yaml.Node | None, path: Path, where: tuple[str, ...] = ()) -> list[str]:
    """Every key set twice in one mapping, at any depth, with both lines (YAML itself lets the last one win silently)."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            if name is not None and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                first = seen.get((key_node.tag, name))
                seen.setdefault((key_node.tag, name), line)
                if first is not None:
                    dotted = ".".join((*where, name))
                    problems.append(
                        f"{path.name}:{line}: `{dotted}` is set twice (first on line {first}, again on line {line}); "
                        "YAML would silently keep the last one: delete one of them"
                    )
            problems += _duplicate_keys(value_node, path, (*where, name if name is not None else "?"))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, path, (*where[:-1], f"{where[-1]}[{i}]") if where else (f"[{i}]",))
    return problems


def _resolve_paths(project: Project, path: Path) -> Project:
    base = path.resolve().parent
    updates: dict[str, Any] = {
        "voiceover": (base / project.voiceover).resolve(),
        "portrait": (base / project.portrait).resolve(),
        "output": (base / project.output).resolve(),
        "workdir": (base / project.workdir).resolve() if project.workdir else base / f"{path.stem}.longtake-work",
        "project_file": path.resolve(),
    }
    if project.captions is not None:
        captions = project.captions
        updates["captions"] = captions.model_copy(update={
            key: (base / getattr(captions, key)).resolve() for key in ("script", "file", "font") if getattr(captions, key) is not None
        })
    generator = project.generator
    if isinstance(generator, LTX2Options):
        changes = {}
        for key in ("model", "text_encoder", "upsampler", "stage2_lora"):
            value = getattr(generator, key)
            # A hub id ("owner/name") stays as written; text_encoder is always a local folder.
            local = key == "text_encoder" or value.endswith(".safetensors") if value else False
            if value and (local or value.startswith((".", "/", "~")) or (base / value).exists()):
                changes[key] = str((base / Path(value).expanduser()).resolve())
        if changes:
            updates["generator"] = generator.model_copy(update=changes)
    return project.model_copy(update=updates)


def _describe_errors(exc: ValidationError, root: yaml.Node | None, path: Path, data: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p in ("ltx2", "animatic", "fal"))]
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"{path.name}:{line}" if line else path.name
        problems.append(f"{where}: `{key}`: {_explain(err, loc, data)}")
    return problems


def _explain(err: dict, loc: list, data: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        parent = _model_at(loc[:-1], data)
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(name, list(parent.model_fields), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; known keys here: {', '.join(k for k in parent.model_fields if k != 'project_file')}"
        return f"unknown key{hint} (remove it or fix the spelling)"
    if kind == "missing":
        return "is required but missing; add it"
    if kind in ("literal_error", "union_tag_invalid"):
        expected = err.get("ctx", {}).get("expected") or err.get("ctx", {}).get("expected_tags")
        return f"must be one of {expected} (got {err.get('input')!r})"
    if kind == "union_tag_not_found":
        return "needs `backend:` (ltx2, animatic or fal)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg if "got " in msg else f"{msg} (got {err.get('input')!r})"


def _model_at(loc: list, data: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (for "did you mean" hints)."""
    model: type[BaseModel] = Project
    for part in loc:
        if isinstance(part, int):
            continue
        if model is Project and part == "generator":
            gen = data.get("generator") if isinstance(data, dict) else None
            backend = gen.get("backend", "ltx2") if isinstance(gen, dict) else "ltx2"
            found = {"ltx2": LTX2Options, "animatic": AnimaticOptions, "fal": FalOptions}.get(backend)
            if found is None:
                return None
            model = found
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def _line_of(node: yaml.Node | None, loc: list) -> int | None:
    """1-based line of the YAML node at ``loc``; the nearest existing parent when the key is missing."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
