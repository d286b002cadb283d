"""Speed options of the ltx2 generator, applied to a loaded pipeline, and the quality guard that judges them.

Every option is off (or today's behaviour) by default; those that lose
precision stay off until real-weight checks exist. ``SPEED_OPTIONS`` says
which are exact and which approximate (the README's table is built from it).

- ``fp8_linears``: the transformer's large video-token linears (self-attention
  q/k/v/out, the text cross-attention's query and output, the audio→video
  attention's query and output, the feed-forward) run as fp8 matmuls with
  per-row scales (torchao ``Float8DynamicActivationFloat8WeightConfig``,
  ``PerRow``), which needs a CUDA GPU of compute capability ≥ 8.9. Everything
  else stays in the compute dtype: embeddings, ``proj_in``/``proj_out``, the
  audio stream (≈500 tokens: quantising costs more than it saves), gates, the
  text keys/values, and the first and last ``fp8_edge_blocks_bf16`` blocks.
  ``emulated`` rounds the same tensors to fp8 the same way and multiplies in
  fp32: slow, but it shows on a CPU what the rounding does to the output.
- ``compile: blocks``: diffusers' regional compilation
  (``compile_repeated_blocks``: each transformer block is compiled once and
  reused); it is what fuses fp8's activation quantisation into the matmuls.
  Its compiled graphs persist in one per-user folder (``compile_cache_dir``:
  ``$TORCHINDUCTOR_CACHE_DIR`` when set, else ``~/.cache/longtake/inductor``),
  so the 2–3 minute warm-up of a full-size model is paid once per machine and
  torch version, not once per ``longtake run`` or per project.
- ``attention``: ``auto`` asks PyTorch's SDPA for cuDNN first (then flash,
  efficient, math: a kernel that cannot take an input falls through), or notes
  in one line where the build or device has no cuDNN attention; ``native``
  leaves PyTorch's choice; ``sage``/``sage-hub`` are SageAttention's 8-bit
  kernels through diffusers (the ``sageattention`` package, or the ``kernels``
  package fetching SageAttention's prebuilt kernel from the Hugging Face Hub).
  Sage refuses masks: the text mask, all ones after LTX-2.3's connectors, is
  dropped (refused if a prompt's mask is not all ones).
- ``stage2_lora_mode: fused``: the stage-2 LoRA folded into the weights. A
  second copy of each LoRA'd weight is kept on the device and swapped in for
  stage 2 only (a pointer swap, no copy), so stage 1 still sees the exact base
  weights; unfused, PEFT adds two rank-384 matmuls to every linear.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from orchestrator.errors import GeneratorError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from generators.ltx2_text import PromptEmbeddings

log = logging.getLogger(__name__)

# option: {value: "exact" | "approximate"}; the first value is the default.
SPEED_OPTIONS: dict[str, dict[str, str]] = {
    "fp8_linears": {"off": "exact", "on": "approximate", "emulated": "approximate"},
    "compile": {"off": "exact", "blocks": "exact"},
    "attention": {"auto": "exact", "native": "exact", "sage": "approximate", "sage-hub": "approximate"},
    "stage2_lora_mode": {"unfused": "exact", "fused": "exact"},
}
# Every speed option's default: today's bf16 path.
SPEED_DEFAULTS: dict[str, Any] = {**{name: next(iter(values)) for name, values in SPEED_OPTIONS.items()}, "fp8_edge_blocks_bf16": 1, "fp8_keep_bf16": []}
# Linears whose input is the video tokens (13k–124k rows): where fp8 pays. Names inside a transformer block.
FP8_TARGETS = (
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0",
    "audio_to_video_attn.to_q", "audio_to_video_attn.to_out.0", "ff.net.0.proj", "ff.net.2",
)  # fmt: skip
FP8_E4M3_MAX = 448.0
COMPILE_RECOMPILE_LIMIT = 32
SAGE_BACKENDS = {"sage": "sage", "sage-hub": "sage_hub"}
_BLOCK = re.compile(r"^transformer_blocks\.(\d+)\.(.+)$")


def is_exact(option: str, value: Any) -> bool:
    return SPEED_OPTIONS[option].get(str(value), "approximate") == "exact"


def check_speed_options(options) -> None:
    """Refuse combinations that cannot work, before anything loads."""
    fp8 = getattr(options, "fp8_linears", "off")
    fused = getattr(options, "stage2_lora_mode", "unfused") == "fused"
    if int(getattr(options, "context_parallel", 1) or 1) > 1 and getattr(options, "compile", "off") != "off":
        # Each rank compiles its own block graphs around the per-call attention hooks and all-gathers of
        # ltx2_parallel; on the tiny model two gloo ranks then issued mismatched collectives and the run aborted.
        raise GeneratorError(
            f"generator.compile: {options.compile} does not work with context_parallel: {options.context_parallel} yet (the ranks' "
            "compiled blocks issue mismatched collectives); use compile: off with context parallelism"
        )
    if fp8 != "off" and getattr(options, "fp8_storage", False):
        raise GeneratorError("generator.fp8_linears and generator.fp8_storage both change how the weights are stored; use one of them")
    if fp8 != "off" and options.offload != "none":
        raise GeneratorError(f"generator.fp8_linears needs the transformer resident (offload: none), got offload: {options.offload}")
    if fused and options.offload != "none":
        raise GeneratorError(
            f"generator.stage2_lora_mode: fused keeps fused copies of the LoRA'd weights on the device, which offload: "
            f"{options.offload} cannot stream; use stage2_lora_mode: unfused or offload: none"
        )
    if fused and fp8 != "off":
        raise GeneratorError("generator.stage2_lora_mode: fused cannot swap weights that fp8_linears quantised; use stage2_lora_mode: unfused")


# ------------------------------------------------------------------------------------------ fp8 linears
def fp8_linear_names(transformer, *, edge_blocks_bf16: int = 1, keep_bf16: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Qualified names of the linears ``fp8_linears`` quantises (PEFT's ``.base_layer`` wrappers looked through)."""
    import torch

    layers = int(getattr(transformer.config, "num_layers", 0))
    edge = set(range(min(edge_blocks_bf16, layers))) | set(range(max(layers - edge_blocks_bf16, 0), layers))
    names = []
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or type(module).__module__.startswith("peft"):
            continue
        short = name[: -len(".base_layer")] if name.endswith(".base_layer") else name
        match = _BLOCK.match(short)
        if match is None or int(match.group(1)) in edge or match.group(2) not in FP8_TARGETS:
            continue
        if any(fnmatch.fnmatchcase(short, pattern) for pattern in keep_bf16):
            continue
        names.append(name)
    return names


def _rowwise_fp8(t: "torch.Tensor") -> "torch.Tensor":
    """``t`` rounded through float8_e4m3fn with one scale per row (last dim), back in float32."""
    import torch

    t = t.float()
    scale = t.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / FP8_E4M3_MAX
    return (t / scale).to(torch.float8_e4m3fn).float() * scale


class EmulatedFp8Linear:
    """A forward for ``nn.Linear`` with torchao's per-row fp8 rounding of weight and activation, multiplied in fp32."""

    def __init__(self, linear):
        self.weight_fp8 = _rowwise_fp8(linear.weight.detach())
        self.bias = linear.bias

    def __call__(self, x):
        import torch

        y = torch.nn.functional.linear(_rowwise_fp8(x), self.weight_fp8.to(x.device), None)
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)


def apply_fp8_linears(transformer, mode: str, *, device: str, edge_blocks_bf16: int = 1, keep_bf16=()) -> list[str]:
    """Quantise the selected linears (``on``: torchao on the GPU; ``emulated``: fp8 rounding, fp32 matmul); returns their names."""
    import torch

    names = fp8_linear_names(transformer, edge_blocks_bf16=edge_blocks_bf16, keep_bf16=tuple(keep_bf16))
    if not names:
        raise GeneratorError(
            f"generator.fp8_linears: no linear layer is left to quantise (the transformer has {transformer.config.num_layers} blocks and "
            f"fp8_edge_blocks_bf16 keeps {edge_blocks_bf16} at each end in bf16); lower fp8_edge_blocks_bf16"
        )
    modules = dict(transformer.named_modules())
    if mode == "emulated":
        for name in names:
            modules[name].forward = EmulatedFp8Linear(modules[name])
        return names
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise GeneratorError(f"generator.fp8_linears: on needs a CUDA GPU of compute capability ≥ 8.9 (H100, H200, L40S, RTX 4090); device is {device}")
    capability = torch.cuda.get_device_capability(dev)
    if capability < (8, 9):
        raise GeneratorError(
            f"generator.fp8_linears: on needs compute capability ≥ 8.9 for fp8 matmuls; {torch.cuda.get_device_name(dev)} is "
            f"{capability[0]}.{capability[1]}; set fp8_linears: off"
        )
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError:
        raise GeneratorError(
            "generator.fp8_linears: on needs the `torchao` package; install it with `pip install --no-deps torchao` "
            "(0.18.0 imports with torch 2.13; --no-deps keeps pip from replacing torch)"
        ) from None
    selected = set(names)
    # set_inductor_config=False: torchao's default switches on Inductor's exhaustive coordinate-descent tuning for the
    # whole process, which at stage 2's 63k-token shapes kept compile: blocks' first segment busy for over 6 minutes
    # on an H200 (benchmarks/results/ltx2_gpu_h200_fp8_try_2026-11-30.log).
    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)
    quantize_(transformer, config, filter_fn=lambda _m, fqn: fqn in selected)
    return names


# ------------------------------------------------------------------------------------------ compilation
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_cache_dir() -> Path:
    """Where Inductor keeps compiled graphs: the user's ``$TORCHINDUCTOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/longtake/inductor``
    (``~/.cache/longtake/inductor``).

    Per user, not per project: the block graphs depend on the model's shapes, the options and the torch build, never
    on a project, and PyTorch's own default (``/tmp/torchinductor_<user>``) is emptied on reboot on many machines.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # Importing torch._dynamo writes PyTorch's default into the variable, so only another value is the user's.
    given = os.environ.get(INDUCTOR_CACHE_ENV)
    if given and os.path.abspath(given) != os.path.abspath(default_cache_dir()):
        return Path(given).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "longtake" / "inductor"


def use_persistent_compile_cache() -> Path:
    """Point Inductor's on-disk caches (FX graphs, AOTAutograd, Triton kernels) at ``compile_cache_dir()``; before the first compile."""
    import torch._functorch.config
    import torch._inductor.config

    folder = compile_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GeneratorError(
            f"generator.compile: blocks keeps compiled graphs in {folder}, which cannot be created ({exc.strerror}); "
            f"set {INDUCTOR_CACHE_ENV} to a writable folder"
        ) from None
    # Inductor reads the variable on every cache access, so setting it here (not at import) is enough.
    os.environ[INDUCTOR_CACHE_ENV] = str(folder)
    # Both are on in stock PyTorch; a process that switched them off (another library, a test) would pay the warm-up again.
    torch._inductor.config.fx_graph_cache = True
    torch._functorch.config.enable_autograd_cache = True
    log.info("compile: blocks caches compiled graphs in %s (%s to move it)", folder, INDUCTOR_CACHE_ENV)
    return folder


def apply_compile(transformer, mode: str) -> int:
    """Regional compilation of the repeated transformer blocks; returns how many blocks were wrapped."""
    if mode == "off":
        return 0
    import torch._dynamo

    use_persistent_compile_cache()

    # One block graph serves every segment length and both stages: with dynamic=None each new token count first
    # compiles a static graph, then recompiles (a plan holds a dozen lengths at two stage sizes). The guided passes
    # (CFG, STG's all-perturbed flag, modality guidance switching the audio/video cross-attention off) are separate
    # graphs that dynamic shapes cannot merge; the raised limit keeps them compiled instead of falling back to eager
    # after PyTorch's default 8.
    torch._dynamo.config.recompile_limit = max(int(torch._dynamo.config.recompile_limit), COMPILE_RECOMPILE_LIMIT)
    transformer.compile_repeated_blocks(fullgraph=False, dynamic=True)
    return sum(1 for m in transformer.modules() if getattr(m, "_compiled_call_impl", None) is not None)


# ------------------------------------------------------------------------------------------ attention
def cudnn_attention_note(device: str) -> str | None:
    """None when cuDNN SDPA can be asked for on ``device``; otherwise the one-line reason it cannot."""
    import torch

    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return f"attention: auto uses PyTorch's default SDPA kernel on {device} (cuDNN attention needs a CUDA GPU)"
    if not torch.backends.cudnn.is_available():
        return f"attention: auto uses PyTorch's default SDPA kernel: this torch build ({torch.__version__}) has no cuDNN"
    if not torch.backends.cuda.cudnn_sdp_enabled():
        return "attention: auto uses PyTorch's default SDPA kernel: cuDNN SDPA is disabled in this process (torch.backends.cuda.enable_cudnn_sdp)"
    return None


def set_attention_backend(transformer, mode: str) -> None:
    """Switch the transformer to an 8-bit attention backend (``sage``, ``sage-hub``); other modes need nothing at load."""
    backend = SAGE_BACKENDS.get(mode)
    if backend is None:
        return
    package = "sageattention>=2.1.1" if mode == "sage" else "kernels>=0.12"
    try:
        transformer.set_attention_backend(backend)
    except (RuntimeError, ImportError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(f"generator.attention: {mode} is unavailable here ({first}); install `{package}` on a CUDA machine, or use attention: auto") from None


def prefer_cudnn_attention(transformer) -> None:
    """Run every forward of ``transformer`` with SDPA trying cuDNN first (then flash, efficient, math).

    A kernel that cannot take an input (a mask, a head size) falls through to the next, so nothing that ran
    before is refused; the order is PyTorch's process-wide SDPA setting, restored after each forward.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    original = transformer.forward

    def forward(*args, **kwargs):
        with sdpa_kernel(order, set_priority=True):
            return original(*args, **kwargs)

    transformer.forward = forward


def needs_mask_free(mode: str) -> bool:
    return mode in SAGE_BACKENDS


def drop_all_ones_mask(emb: "PromptEmbeddings", why: str) -> "PromptEmbeddings":
    """The same embeddings without their text mask, which must be all ones (then attending with or without it is the same)."""
    from generators.ltx2_text import PromptEmbeddings

    if emb.mask is None:
        return emb
    if not bool((emb.mask != 0).all()):
        padded = int((emb.mask == 0).sum())
        raise GeneratorError(
            f"{why} takes no attention mask, but this prompt's text mask has {padded} padding tokens after the connectors "
            "(LTX-2.3's learnable registers fill them; this model has none); use attention: auto"
        )
    return PromptEmbeddings(emb.video, emb.audio, None)


# ------------------------------------------------------------------------------------------ the fused stage-2 LoRA
@dataclass
class FusedLoRA:
    """Base and LoRA-fused weights of every LoRA'd linear; ``active()`` swaps the fused ones in for one stage."""

    params: list = field(default_factory=list)  # the base layers' weight Parameters
    fused: list = field(default_factory=list)  # their fused tensors, same order
    bytes: int = 0

    @classmethod
    def build(cls, transformer, adapter: str, scale: float) -> "FusedLoRA":
        import torch
        from peft.tuners.lora import LoraLayer

        transformer.set_adapters([adapter], [scale])
        out = cls()
        with torch.no_grad():
            for module in transformer.modules():
                if isinstance(module, LoraLayer) and adapter in module.lora_A:
                    weight = module.get_base_layer().weight
                    fused = (weight.float() + module.get_delta_weight(adapter).float()).to(weight.dtype)
                    out.params.append(weight)
                    out.fused.append(fused)
                    out.bytes += fused.numel() * fused.element_size()
        transformer.disable_lora()  # the fused weights replace PEFT's extra matmuls; stage 1 runs the base weights
        if not out.params:
            raise GeneratorError(f"generator.stage2_lora_mode: fused found no layer carrying the LoRA adapter {adapter!r}")
        return out

    def _swap(self) -> None:
        for i, param in enumerate(self.params):
            param.data, self.fused[i] = self.fused[i], param.data

    @contextmanager
    def active(self) -> Iterator[None]:
        self._swap()
        try:
            yield
        finally:
            self._swap()


# ------------------------------------------------------------------------------------------ applying them
@dataclass
class SpeedState:
    fp8_layers: list[str] = field(default_factory=list)
    compiled_blocks: int = 0
    fused_lora: FusedLoRA | None = None
    notes: list[str] = field(default_factory=list)

    def stage2_weights(self):
        return self.fused_lora.active if self.fused_lora is not None else None


def apply_speed_options(pipe, options, *, stage2_adapter: tuple[str, float] | None) -> SpeedState:
    """Apply the configured options to a placed pipeline (weights already on their device)."""
    import torch

    state = SpeedState()
    transformer = pipe.transformer
    if getattr(options, "stage2_lora_mode", "unfused") == "fused" and stage2_adapter is not None:
        state.fused_lora = FusedLoRA.build(transformer, stage2_adapter[0], stage2_adapter[1])
        if str(options.device).startswith("cuda") and torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(torch.device(options.device))
            log.info("stage2_lora_mode: fused keeps %.1f GiB of fused weights (%.1f GiB free after)", state.fused_lora.bytes / 2**30, free / 2**30)
    mode = getattr(options, "fp8_linears", "off")
    if mode != "off":
        state.fp8_layers = apply_fp8_linears(
            transformer, mode, device=options.device, edge_blocks_bf16=getattr(options, "fp8_edge_blocks_bf16", 1),
            keep_bf16=getattr(options, "fp8_keep_bf16", ()),
        )  # fmt: skip
    attention = getattr(options, "attention", "auto")
    set_attention_backend(transformer, attention)
    if attention == "auto":
        note = cudnn_attention_note(options.device)
        if note:
            state.notes.append(note)
            log.info(note)
        else:
            prefer_cudnn_attention(transformer)
            state.notes.append("attention: cuDNN SDPA first")
    state.compiled_blocks = apply_compile(transformer, getattr(options, "compile", "off"))
    return state


# ------------------------------------------------------------------------------------------ quality guard
def latent_rel_error(reference: "torch.Tensor", other: "torch.Tensor") -> float:
    """‖other − reference‖ / ‖reference‖ over the whole latent, in float64."""
    ref = reference.double()
    return float((other.double() - ref).norm() / ref.norm().clamp_min(1e-30))


def psnr_db(reference: "np.ndarray | torch.Tensor", other: "np.ndarray | torch.Tensor") -> float:
    """PSNR of uint8 frames against the reference (inf when identical)."""
    import math

    import torch

    ref = torch.as_tensor(reference).double()
    mse = float(((torch.as_tensor(other).double() - ref) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
