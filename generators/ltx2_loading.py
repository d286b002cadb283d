"""Find, check, size up and load an LTX-2.3 model in diffusers format (or, through ``ltx2_official``, Lightricks' single files).

Everything that can go wrong with a model folder is found here, before any
weight is read and before any segment starts, and reported as one sentence
with the fix (``GeneratorError``): a missing folder, a missing or half-
downloaded component (named), a folder of another model type, ``device: cuda``
without a GPU, or settings that cannot fit the GPU's memory.

The model identity that cache keys use is computed here too: it hashes every
component's config files and the names and sizes of its weight files (reading
40 GB of weights to hash them would cost more than a segment).

Expected layout (``diffusers/LTX-2.3-Diffusers``, plus the upsampler)::

    <model>/model_index.json          (optional; checked when present)
    <model>/transformer/              LTX2VideoTransformer3DModel
    <model>/vae/                      AutoencoderKLLTX2Video
    <model>/audio_vae/                AutoencoderKLLTX2Audio
    <model>/connectors/               LTX2TextConnectors
    <model>/text_encoder/             Gemma3ForConditionalGeneration
    <model>/tokenizer/                Gemma tokenizer
    <model>/scheduler/                FlowMatchEulerDiscreteScheduler
    <model>/latent_upsampler/         LTX2LatentUpsamplerModel (or generator.upsampler)

The vocoder is never loaded: longtake keeps the original voiceover.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from orchestrator.errors import GeneratorError, ModelFileError

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

GiB = 1024**3

# Which class each component must be, as its config names it.
DIFFUSERS_COMPONENTS: dict[str, tuple[str, ...]] = {
    "transformer": ("LTX2VideoTransformer3DModel",),
    "vae": ("AutoencoderKLLTX2Video",),
    "audio_vae": ("AutoencoderKLLTX2Audio",),
    "connectors": ("LTX2TextConnectors",),
}
SCHEDULER_CLASSES = ("FlowMatchEulerDiscreteScheduler",)
TEXT_ENCODER_MODEL_TYPES = ("gemma3", "gemma3_text")
UPSAMPLER_CLASSES = ("LTX2LatentUpsamplerModel",)
# Components needed to generate (text components are needed only to encode a new prompt).
GENERATION_COMPONENTS = ("transformer", "vae", "audio_vae", "scheduler")
TEXT_COMPONENTS = ("text_encoder", "tokenizer", "connectors")
ALL_COMPONENTS = (*GENERATION_COMPONENTS, *TEXT_COMPONENTS)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

# Peak activation memory of one LTX-2 transformer forward in this pipeline, in bytes per video token per unit of
# hidden size at 16-bit compute. With per-token timesteps (conditioned tokens sit at their own noise level) every
# token carries its own AdaLN modulation, which doubles what a scalar-timestep forward needs (36 B, LTX.md).
# Measured on an H100 (benchmarks/results/ltx2_gpu_h100.txt), LTX-2.3 transformer, 4096 wide: peak minus resident
# weights 15.4 GiB at 53,680 tokens and 35.6 GiB at 124,440 tokens — 74–75 bytes·token⁻¹·dim⁻¹. The default
# reference_release 1.2.0 also embeds the A/V cross-attention scale/shift per token: +3.3 GiB at 53,680 tokens on
# an H200 (benchmarks/results/ltx2_parity_step_h200.txt), i.e. ~90 bytes·token⁻¹·dim⁻¹ in all.
ACTIVATION_BYTES_PER_TOKEN_DIM = 91
# CUDA context, allocator fragmentation, cuBLAS workspaces.
RUNTIME_OVERHEAD_BYTES = int(1.5 * GiB)
# Tiled VAE decode working set beyond its output (LTX-2.3 decoder, 512 px / 16-frame tiles); an upper estimate.
VAE_DECODE_WORKSPACE_BYTES = 4 * GiB

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Temporal VAE tiles: 8 latent frames (64 video frames) every 7, i.e. 8 frames blended between tiles.
DECODE_TILE_LATENT_FRAMES = 8
DECODE_STRIDE_LATENT_FRAMES = 7


# ----------------------------------------------------------------------------------------------
# where the model is
# ----------------------------------------------------------------------------------------------

def looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not Path(spec).exists()


def resolve_model_dir(spec: str, *, what: str = "generator.model", allow_patterns: Iterable[str] | None = None) -> Path:
    """A local folder for ``spec``: the folder itself, or the hub snapshot (downloaded once, then read from the cache)."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise GeneratorError(
                f"{what} must be a diffusers-format folder or a Lightricks .safetensors checkpoint, but {path} is some other file; "
                "point it at ltx-2.3-22b-dev.safetensors or at the folder that holds model_index.json"
            )
        return path
    if not looks_like_hub_id(spec):
        raise GeneratorError(
            f"{what}: model folder not found: {path}; download Lightricks' LTX-2.3 checkpoint "
            f"(`hf download Lightricks/LTX-2.3 ltx-2.3-22b-dev.safetensors --local-dir models`) and set {what} to the file"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with diffusers
        raise GeneratorError(f"{what} is a hub id ({spec}) but huggingface_hub is missing: {exc}") from None
    patterns = list(allow_patterns) if allow_patterns else None
    try:
        return Path(snapshot_download(spec, allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    try:
        log.info("downloading %s from the Hugging Face Hub (once; later runs read the local cache)", spec)
        return Path(snapshot_download(spec, allow_patterns=patterns))
    except Exception as exc:
        raise GeneratorError(
            f"{what}: cannot fetch {spec} from the Hugging Face Hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"download it where there is network (`hf download {spec} --local-dir models/LTX-2.3`) and set {what} to that folder"
        ) from None


# ----------------------------------------------------------------------------------------------
# what is in it
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComponentInfo:
    name: str
    path: Path
    class_name: str
    config: dict
    weight_files: tuple[Path, ...]
    num_parameters: int  # 0 for components without weights (scheduler, tokenizer)

    def parameter_bytes(self, bytes_per_param: float) -> int:
        return int(self.num_parameters * bytes_per_param)


@dataclass(frozen=True)
class ModelInfo:
    """A checked model folder: its components, without any weights loaded."""

    root: Path
    components: dict[str, ComponentInfo]
    upsampler: ComponentInfo | None = None
    index: dict = field(default_factory=dict)
    kind: str = "diffusers"  # or "official": Lightricks' single file (root is the .safetensors)
    distilled: bool = False  # an official file named as the distilled checkpoint

    def __getitem__(self, name: str) -> ComponentInfo:
        return self.components[name]

    @property
    def transformer_config(self) -> dict:
        return self.components["transformer"].config

    @property
    def transformer_hidden_size(self) -> int:
        cfg = self.transformer_config
        return int(cfg.get("num_attention_heads", 32)) * int(cfg.get("attention_head_dim", 128))

    @property
    def transformer_layers(self) -> int:
        return int(self.transformer_config.get("num_layers", 48))


def _read_json(path: Path, component: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeneratorError(f"model component `{component}` is incomplete: {path} is missing; re-download the model folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeneratorError(f"model component `{component}` is damaged: cannot read {path} ({exc}); re-download the model folder") from None
    if not isinstance(data, dict):
        raise GeneratorError(f"model component `{component}` is damaged: {path} is not a JSON object; re-download the model folder")
    return data


def safetensors_num_parameters(path: Path) -> int:
    """Parameters in a safetensors file, from its header alone; raises GeneratorError if the file is cut short."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("no header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size, 100 * 1024**2):
                raise ValueError("header length out of range")
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise GeneratorError(f"weight file {path} is damaged ({exc}); re-download it") from None
    numel, data_end = 0, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        numel += count
        data_end = max(data_end, int(entry.get("data_offsets", [0, 0])[1]))
    if 8 + header_len + data_end > size:
        raise GeneratorError(
            f"weight file {path} is incomplete ({size:,} of {8 + header_len + data_end:,} bytes; an interrupted download?); re-download it"
        )
    return numel


def _weight_files(folder: Path, component: str) -> tuple[Path, ...]:
    """The component's weight files; every shard an index names must be present."""
    indexes = sorted(folder.glob("*.index.json"))
    if indexes:
        files: list[Path] = []
        for index in indexes:
            weight_map = _read_json(index, component).get("weight_map", {})
            for shard in sorted(set(weight_map.values())):
                shard_path = folder / shard
                if not shard_path.is_file():
                    raise GeneratorError(
                        f"model component `{component}` is incomplete: shard {shard} listed in {index.name} is missing from {folder}; "
                        "finish or repeat the download"
                    )
                files.append(shard_path)
        return tuple(files)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise GeneratorError(f"model component `{component}` has no weights: no *.safetensors in {folder}; finish or repeat the download")
    return tuple(files)


def _count_parameters(files: tuple[Path, ...]) -> int:
    total = 0
    for path in files:
        if path.suffix == ".safetensors":
            total += safetensors_num_parameters(path)
        else:  # pickled weights: estimate from size at 2 bytes/param (never loaded here)
            total += path.stat().st_size // 2
    return total


def _check_diffusers_component(folder: Path, name: str, classes: tuple[str, ...], root: Path, config_file: str = "config.json") -> ComponentInfo:
    if not folder.is_dir():
        raise GeneratorError(
            f"model folder {root} is missing the `{name}` component ({folder} does not exist); "
            "download the complete LTX-2.3 diffusers folder (all of transformer, vae, audio_vae, connectors, text_encoder, tokenizer, scheduler)"
        )
    config = _read_json(folder / config_file, name)
    class_name = str(config.get("_class_name", ""))
    if class_name not in classes:
        raise GeneratorError(
            f"wrong model type: {folder / config_file} describes a {class_name or 'model without _class_name'}, but LTX-2.3's "
            f"`{name}` must be {' or '.join(classes)}; point generator.model at an LTX-2.3 folder in diffusers format"
        )
    if config_file == "scheduler_config.json":
        return ComponentInfo(name, folder, class_name, config, (), 0)
    files = _weight_files(folder, name)
    return ComponentInfo(name, folder, class_name, config, files, _count_parameters(files))


def _check_text_encoder(folder: Path, root: Path) -> ComponentInfo:
    if not folder.is_dir():
        raise GeneratorError(f"model folder {root} is missing the `text_encoder` component ({folder} does not exist); download the complete LTX-2.3 diffusers folder")
    config = _read_json(folder / "config.json", "text_encoder")
    model_type = str(config.get("model_type", ""))
    if model_type not in TEXT_ENCODER_MODEL_TYPES:
        raise GeneratorError(
            f"wrong model type: the text encoder in {folder} is `{model_type or 'unknown'}`, but LTX-2.3 uses Gemma-3 "
            f"({', '.join(TEXT_ENCODER_MODEL_TYPES)}); point generator.model at an LTX-2.3 folder in diffusers format"
        )
    architectures = config.get("architectures") or ["Gemma3ForConditionalGeneration"]
    files = _weight_files(folder, "text_encoder")
    return ComponentInfo("text_encoder", folder, str(architectures[0]), config, files, _count_parameters(files))


def _check_tokenizer(folder: Path, root: Path) -> ComponentInfo:
    if not folder.is_dir() or not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise GeneratorError(f"model folder {root} is missing the `tokenizer` component (no {' / '.join(TOKENIZER_FILES)} in {folder}); download the complete LTX-2.3 diffusers folder")
    config = _read_json(folder / "tokenizer_config.json", "tokenizer") if (folder / "tokenizer_config.json").is_file() else {}
    return ComponentInfo("tokenizer", folder, str(config.get("tokenizer_class", "tokenizer")), config, (), 0)


def inspect_model(root: Path, *, upsampler: Path | None = None, need_upsampler: bool = False) -> ModelInfo:
    """Check every component of the model folder (and the upsampler) without loading weights."""
    root = Path(root)
    index: dict = {}
    if (root / "model_index.json").is_file():
        index = _read_json(root / "model_index.json", "model_index.json")
        class_name = str(index.get("_class_name", ""))
        if not class_name.startswith("LTX2"):
            raise GeneratorError(
                f"wrong model type: {root} holds a {class_name or 'pipeline of unknown class'} (model_index.json), not LTX-2.x; "
                "point generator.model at an LTX-2.3 folder in diffusers format"
            )
    components: dict[str, ComponentInfo] = {}
    for name, classes in DIFFUSERS_COMPONENTS.items():
        components[name] = _check_diffusers_component(root / name, name, classes, root)
    components["scheduler"] = _check_diffusers_component(root / "scheduler", "scheduler", SCHEDULER_CLASSES, root, "scheduler_config.json")
    components["text_encoder"] = _check_text_encoder(root / "text_encoder", root)
    components["tokenizer"] = _check_tokenizer(root / "tokenizer", root)

    up_info = None
    if upsampler is not None:
        folder = upsampler / "latent_upsampler" if (upsampler / "latent_upsampler" / "config.json").is_file() else upsampler
        up_info = _check_diffusers_component(folder, "latent_upsampler", UPSAMPLER_CLASSES, folder)
    elif need_upsampler:
        raise GeneratorError(
            f"stage2: distilled needs LTX-2.3's ×2 latent upsampler, but there is none at {root / 'latent_upsampler'}; "
            "set generator.upsampler to the spatial upsampler's diffusers folder, or set generator.stage2: none"
        )
    return ModelInfo(root=root, components=components, upsampler=up_info, index=index)


def default_upsampler_dir(model_root: Path) -> Path | None:
    candidate = Path(model_root) / "latent_upsampler"
    return candidate if candidate.is_dir() else None


def inspect_official(checkpoint: Path, *, text_encoder: str | None, upsampler: str | None, need_upsampler: bool) -> ModelInfo:
    """Check a Lightricks single-file checkpoint, its Gemma folder and its upsampler file from their headers and configs."""
    from generators import ltx2_official as O

    checkpoint = Path(checkpoint).expanduser()
    header = O.read_header(checkpoint)
    O.identify(header)
    gemma = Path(text_encoder).expanduser() if text_encoder else O.find_beside(checkpoint, "gemma-3*")
    if gemma is None:
        raise ModelFileError(f"generator.text_encoder is not set: {checkpoint.name} does not include Gemma-3; {O.GEMMA_HINT}")
    if not gemma.is_dir():
        raise ModelFileError(f"generator.text_encoder: Gemma-3 folder not found: {gemma}; {O.GEMMA_HINT}")
    if not (gemma / "config.json").is_file():
        raise ModelFileError(f"generator.text_encoder: {gemma} has no config.json, so it is not a Gemma-3 model folder; {O.GEMMA_HINT}")
    try:
        text_info = _check_text_encoder(gemma, gemma)
    except GeneratorError as exc:
        reason = str(exc).split(";")[0]
        raise ModelFileError(f"generator.text_encoder: {gemma} is not a usable Gemma-3 folder ({reason}); {O.GEMMA_HINT}") from None
    try:
        tokenizer = _check_tokenizer(gemma / "tokenizer" if (gemma / "tokenizer").is_dir() else gemma, gemma)
    except GeneratorError:
        raise ModelFileError(f"generator.text_encoder: {gemma} has no tokenizer (tokenizer.json / tokenizer.model); {O.GEMMA_HINT}") from None
    configs = O.checkpoint_configs(header, gemma_config=text_info.config)
    classes = {"transformer": "LTX2VideoTransformer3DModel", "vae": "AutoencoderKLLTX2Video", "audio_vae": "AutoencoderKLLTX2Audio", "connectors": "LTX2TextConnectors"}
    components = {
        name: ComponentInfo(name, checkpoint, classes[name], configs[name], (checkpoint,), O.component_num_parameters(header, name))
        for name in classes
    }
    components["scheduler"] = ComponentInfo("scheduler", O.CONFIG_DIR / "scheduler", "FlowMatchEulerDiscreteScheduler", O.shipped_config("scheduler"), (), 0)
    components["text_encoder"] = text_info
    components["tokenizer"] = tokenizer

    up_info = None
    if need_upsampler:
        up_path = Path(upsampler).expanduser() if upsampler else O.find_beside(checkpoint, "*spatial-upscaler-x2*.safetensors")
        if up_path is None:
            raise ModelFileError(
                f"stage2: distilled needs LTX-2.3's x2 latent upsampler, but generator.upsampler is not set and there is none beside {checkpoint.name}; "
                f"{O.UPSAMPLER_HINT}, or set generator.stage2: none"
            )
        if up_path.is_dir():
            folder = up_path / "latent_upsampler" if (up_path / "latent_upsampler" / "config.json").is_file() else up_path
            up_info = _check_diffusers_component(folder, "latent_upsampler", UPSAMPLER_CLASSES, folder)
        else:
            up_header = O.check_upsampler_file(up_path)
            up_info = ComponentInfo(
                "latent_upsampler", up_path, "LTX2LatentUpsamplerModel", O.upsampler_config(up_header), (up_path,),
                up_header.num_parameters(tuple(up_header.tensors)),
            )  # fmt: skip
    return ModelInfo(root=checkpoint, components=components, upsampler=up_info, kind="official", distilled=O.looks_distilled(checkpoint))


# ----------------------------------------------------------------------------------------------
# identity
# ----------------------------------------------------------------------------------------------

def _file_fingerprint(path: Path, root: Path) -> list:
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
    size = path.stat().st_size
    if size <= 1024**2 and path.suffix in (".json", ".txt", ".model"):
        return [rel, size, hashlib.sha256(path.read_bytes()).hexdigest()]
    return [rel, size]


def component_fingerprint(info: ComponentInfo) -> list:
    """Config content + weight file names and sizes (+ small tokenizer/config files by content)."""
    if info.path.is_file():
        # A component inside a single file: the file's name and size, and the config it is built from.
        return [info.name, info.class_name, file_fingerprint(info.path), fingerprint_digest(info.config)]
    files = sorted(p for p in info.path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [info.name, info.class_name, [_file_fingerprint(p, info.path) for p in files]]


def fingerprint_digest(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def file_fingerprint(path: Path) -> list:
    st = Path(path).stat()
    return [Path(path).name, st.st_size]


# ----------------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of one segment, split so the message can say where it goes."""

    weights_bytes: int  # resident while denoising
    activation_bytes: int
    decode_bytes: int  # decoded clip + tiled-decode working set
    decode_resident_bytes: int  # weights still on the GPU while decoding
    overhead_bytes: int = RUNTIME_OVERHEAD_BYTES

    @property
    def denoise_peak_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def peak_bytes(self) -> int:
        return max(self.denoise_peak_bytes, self.decode_resident_bytes + self.decode_bytes + self.overhead_bytes)

    def describe(self) -> str:
        return f"{self.peak_bytes / GiB:.1f} GiB ({self.weights_bytes / GiB:.1f} GiB weights + {self.activation_bytes / GiB:.1f} GiB activations)"


def video_tokens(width: int, height: int, num_frames: int, spatial: int, temporal: int) -> int:
    return ((num_frames - 1) // temporal + 1) * (height // spatial) * (width // spatial)


def estimate_memory(
    info: ModelInfo,
    *,
    width: int,
    height: int,
    num_frames: int,
    dtype: str,
    offload: str,
    fp8_storage: bool,
    two_stage: bool,
    spatial: int,
    temporal: int,
    identity_anchor: bool = False,
) -> MemoryEstimate:
    """Peak GPU bytes for a segment of this shape under these settings (the text encoder is released by then)."""
    pbytes = DTYPE_BYTES[dtype]
    transformer = info["transformer"].parameter_bytes(1 if fp8_storage else pbytes)
    others = sum(info[name].parameter_bytes(pbytes) for name in ("vae", "audio_vae"))
    if info.upsampler is not None and two_stage:
        others += info.upsampler.parameter_bytes(pbytes)
    if offload == "sequential":
        # Group offloading streams one block in while the previous runs: about two blocks resident.
        resident_transformer = 2 * transformer // max(1, info.transformer_layers)
    else:
        resident_transformer = transformer
    tokens = video_tokens(width, height, num_frames, spatial, temporal)
    if identity_anchor:
        tokens += (height // spatial) * (width // spatial)
    activations = tokens * info.transformer_hidden_size * ACTIVATION_BYTES_PER_TOKEN_DIM * max(1, pbytes // 2)
    # Streaming decode: one temporal tile of frames in flight (float conversion included) plus the VAE's working set.
    tile_values = width * height * 3 * (DECODE_TILE_LATENT_FRAMES * temporal + 1)
    decode = tile_values * (pbytes + 4 + 1) + VAE_DECODE_WORKSPACE_BYTES
    # With model offload every model but the VAE leaves the GPU before the decode; without offload all stay.
    decode_resident = resident_transformer + others if offload != "model" else info["vae"].parameter_bytes(pbytes)
    return MemoryEstimate(
        weights_bytes=resident_transformer + others, activation_bytes=activations, decode_bytes=decode, decode_resident_bytes=decode_resident
    )


def check_fits(
    info: ModelInfo,
    *,
    free_bytes: int,
    width: int,
    height: int,
    num_frames: int,
    dtype: str,
    offload: str,
    fp8_storage: bool,
    two_stage: bool,
    spatial: int,
    temporal: int,
    identity_anchor: bool = False,
    device_name: str = "cuda",
) -> MemoryEstimate:
    """Raise GeneratorError naming a setting that fits when this one does not."""
    kw = dict(width=width, height=height, num_frames=num_frames, dtype=dtype, two_stage=two_stage, spatial=spatial, temporal=temporal, identity_anchor=identity_anchor)
    est = estimate_memory(info, offload=offload, fp8_storage=fp8_storage, **kw)
    if est.peak_bytes <= free_bytes:
        return est
    fixes = []
    for alt_offload, alt_fp8, text in (
        ("model", fp8_storage, "set generator.offload: model"),
        ("sequential", fp8_storage, "set generator.offload: sequential"),
        ("sequential", True, "set generator.offload: sequential and generator.fp8_storage: true"),
    ):
        if (alt_offload, alt_fp8) == (offload, fp8_storage):
            continue
        if estimate_memory(info, offload=alt_offload, fp8_storage=alt_fp8, **kw).peak_bytes <= free_bytes:
            fixes.append(text)
            break
    fix = fixes[0] if fixes else "generate a smaller size or shorter segments (video.width/height, segmenter.max_segment_s)"
    raise GeneratorError(
        f"not enough GPU memory for {width}×{height}, {num_frames} frames with offload: {offload}: needs about {est.describe()}, "
        f"but {device_name} has {free_bytes / GiB:.1f} GiB free; {fix}"
    )


def cuda_memory(device) -> tuple[int, int]:
    """(free, total) bytes of a CUDA device."""
    import torch

    return torch.cuda.mem_get_info(torch.device(device))


def check_device(device: str) -> None:
    """``device: cuda`` with no usable GPU → one sentence with the fix."""
    import torch

    kind = str(device).split(":")[0]
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build of PyTorch" if torch.version.cuda is None else "no GPU visible (driver or CUDA_VISIBLE_DEVICES)"
            raise GeneratorError(
                f"generator.device is {device} but PyTorch sees no CUDA GPU ({build}, torch {torch.__version__}); "
                "install a CUDA build of torch on a GPU machine, or set generator.device: cpu (very slow)"
            )
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise GeneratorError(f"generator.device is {device} but only {torch.cuda.device_count()} CUDA device(s) exist; use cuda:0")
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            raise GeneratorError(f"generator.device is {device} but MPS is not available here; set generator.device: cpu")
    elif kind != "cpu":
        raise GeneratorError(f"generator.device must be cuda, cuda:N, mps or cpu, got {device!r}")


def host_memory_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------

def torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def _quiet_from_pretrained(cls, path: Path, **kwargs):
    """``from_pretrained`` with a GeneratorError that names the folder when the weights do not match the config."""
    try:
        return cls.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(f"cannot load {cls.__name__} from {path}: {first}; the folder may be damaged or from another model version") from None


def build_pipeline(info: ModelInfo, *, dtype: str, two_stage: bool, load_device: str | None = None):
    """The generation components (transformer, VAEs, scheduler, upsampler) as an ``LTX2AudioToVideoPipeline``.

    ``load_device`` (e.g. "cuda") reads the weights straight onto that device, skipping a host copy of ~40 GB;
    by default they are loaded on the CPU for the offload modes to place.
    """
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    from generators.ltx2_pipeline import LTX2AudioToVideoPipeline

    tdtype = torch_dtype(dtype)
    kw: dict[str, Any] = {"torch_dtype": tdtype}
    if load_device is not None:
        kw["device_map"] = str(load_device)
    if info.kind == "official":
        from generators import ltx2_official as O

        header = O.read_header(info.root)
        transformer, vae, audio_vae = (
            O.load_from_checkpoint(name, header, info[name].config, dtype=tdtype, device=load_device) for name in ("transformer", "vae", "audio_vae")
        )
    else:
        transformer = _quiet_from_pretrained(LTX2VideoTransformer3DModel, info["transformer"].path, **kw)
        vae = _quiet_from_pretrained(AutoencoderKLLTX2Video, info["vae"].path, **kw)
        audio_vae = _quiet_from_pretrained(AutoencoderKLLTX2Audio, info["audio_vae"].path, **kw)
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(info["scheduler"].path))
    upsampler = None
    if two_stage:
        if info.upsampler is None:  # inspect_model guarantees it; a direct caller may not
            raise GeneratorError("two-stage generation needs the latent upsampler; set generator.upsampler or generator.stage2: none")
        if info.upsampler.path.is_file():
            from generators import ltx2_official as O

            upsampler = O.load_upsampler_file(info.upsampler.path, dtype=tdtype, device=load_device)
        else:
            upsampler = _quiet_from_pretrained(LTX2LatentUpsamplerModel, info.upsampler.path, **kw)
    pipe = LTX2AudioToVideoPipeline(scheduler=scheduler, vae=vae, audio_vae=audio_vae, transformer=transformer, latent_upsampler=upsampler)
    pipe.compute_dtype = tdtype
    pipe.set_progress_bar_config(disable=True)
    for module in (transformer, vae, audio_vae, upsampler):
        if module is not None:
            module.eval()
    return pipe


def load_stage2_lora(pipe, path: str, scale: float, adapter_name: str = "stage2_distilled") -> tuple[str, float]:
    """Load the distilled LoRA into the transformer only (prompts stay LoRA-free, as in ltx-pipelines); returns the adapter."""
    lora_path = Path(path).expanduser()
    if not lora_path.is_file():
        raise GeneratorError(
            f"generator.stage2_lora: file not found: {lora_path}; point it at LTX-2.3's distilled LoRA "
            "(ltx-2.3-22b-distilled-lora-384.safetensors from Lightricks/LTX-2.3) or remove the key"
        )
    try:
        import peft  # noqa: F401
    except ImportError:
        raise GeneratorError("generator.stage2_lora needs the `peft` package; install it with `pip install peft`") from None
    try:
        state = pipe.lora_state_dict(str(lora_path))
        transformer_state = {k: v for k, v in state.items() if k.startswith("transformer.")}
        if not transformer_state:
            raise ValueError("no transformer weights in it")
        pipe.load_lora_into_transformer(transformer_state, transformer=pipe.transformer, adapter_name=adapter_name)
    except GeneratorError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(f"generator.stage2_lora: cannot apply {lora_path} to the LTX-2 transformer ({first}); is it an LTX-2.3 LoRA?") from None
    pipe.transformer.disable_lora()  # stage 1 runs without it; the pipeline switches it on for stage 2
    return adapter_name, float(scale)


def place_pipeline(pipe, *, device: str, offload: str, fp8_storage: bool, dtype: str) -> None:
    """Put the generation components where ``offload`` says (none: all on the device; model: one at a time;
    sequential: the transformer streamed block by block from pinned host memory)."""
    import torch

    dev = torch.device(device)
    compute = torch_dtype(dtype)
    if fp8_storage:
        # Weights stored as float8_e4m3fn, each layer upcast to the compute dtype for its forward (diffusers hook).
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    pipe.device_override = dev
    if offload == "none" or dev.type == "cpu":
        pipe.to(dev)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=dev)
    elif offload == "sequential":
        from diffusers.hooks import apply_group_offloading

        use_stream = dev.type == "cuda"
        apply_group_offloading(
            pipe.transformer,
            onload_device=dev,
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=use_stream,
            non_blocking=use_stream,
        )
        for name in ("vae", "audio_vae", "latent_upsampler"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(dev)
    else:  # pragma: no cover - the config validates it
        raise GeneratorError(f"generator.offload must be none, model or sequential, got {offload!r}")


def configure_vae_tiling(pipe, mode: str, *, width: int, height: int, num_frames: int) -> bool:
    """Tiled (spatial + temporal) VAE encode/decode: always, never, or when the clip is large ("auto")."""
    vae = pipe.vae
    if mode == "auto":
        on = width * height > 512 * 512 or num_frames > 65
    else:
        on = mode == "on"
    if on:
        # Spatial tiles as diffusers' defaults (512 px, 64 px overlap); temporal tiles of 8 latent frames with one of
        # overlap (the default 2-with-1 decodes every latent frame about three times over).
        t = vae.temporal_compression_ratio
        vae.enable_tiling(
            tile_sample_min_height=512, tile_sample_min_width=512, tile_sample_stride_height=448, tile_sample_stride_width=448,
            tile_sample_min_num_frames=DECODE_TILE_LATENT_FRAMES * t, tile_sample_stride_num_frames=DECODE_STRIDE_LATENT_FRAMES * t,
        )
        vae.use_framewise_decoding = True
        vae.use_framewise_encoding = True
    else:
        vae.disable_tiling()
        vae.use_framewise_decoding = False
        vae.use_framewise_encoding = False
    return on


def load_text_stage(pipe, info: ModelInfo, *, dtype: str, device: str, offload: str) -> None:
    """Load Gemma-3, its tokenizer and the text connectors into ``pipe`` (only when a prompt needs encoding)."""
    import torch
    import transformers
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    tdtype = torch_dtype(dtype)
    enc_info = info["text_encoder"]
    cls = getattr(transformers, enc_info.class_name, None) or transformers.Gemma3ForConditionalGeneration
    dev = torch.device(device)
    resident = dev.type != "cuda"
    if dev.type == "cuda" and offload == "none":
        need = int((enc_info.num_parameters + info["connectors"].num_parameters) * DTYPE_BYTES[dtype] + 2 * GiB)
        resident = need <= cuda_memory(dev)[0]
    # Resident: read straight onto the device; otherwise onto the host, to be streamed in.
    where = {"device_map": str(dev)} if resident and dev.type == "cuda" else {}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(info["tokenizer"].path))
        text_encoder = cls.from_pretrained(str(enc_info.path), dtype=tdtype, **where)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(f"cannot load the text encoder from {enc_info.path}: {first}; the folder may be damaged") from None
    if info.kind == "official":
        from generators import ltx2_official as O

        connectors = O.load_from_checkpoint(
            "connectors", O.read_header(info.root), info["connectors"].config, dtype=tdtype, device=str(dev) if where else None
        )
    else:
        connectors = _quiet_from_pretrained(LTX2TextConnectors, info["connectors"].path, torch_dtype=tdtype, **where)
    text_encoder.eval()
    connectors.eval()
    if resident:
        text_encoder.to(dev)
        connectors.to(dev)
    else:
        # Too big for what is free (or memory-saving asked for): stream leaf modules in from the host.
        from diffusers.hooks import apply_group_offloading

        for module in (text_encoder, connectors):
            apply_group_offloading(module, onload_device=dev, offload_type="leaf_level", use_stream=True, non_blocking=True)
    pipe.register_modules(text_encoder=text_encoder, tokenizer=tokenizer, connectors=connectors)


def release_text_stage(pipe) -> None:
    """Drop Gemma-3 and the connectors and give their memory back."""
    import gc

    import torch

    pipe.register_modules(text_encoder=None, tokenizer=None, connectors=None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
