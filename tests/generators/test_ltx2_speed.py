"""Speed options of the ltx2 generator on the tiny model (CPU): plumbing, clear errors, and the quality guard.

The quality guard runs each option against today's path at identical noise and
reports the relative error of the final latents and the PSNR of the decoded
frames (printed with ``pytest -s``); exact options must match to float32
rounding, approximate ones must stay within a bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from generators.ltx2 import LTX2Generator
from generators.ltx2_speed import (
    FP8_TARGETS,
    SPEED_OPTIONS,
    apply_compile,
    apply_fp8_linears,
    compile_cache_dir,
    drop_all_ones_mask,
    fp8_linear_names,
    is_exact,
    latent_rel_error,
    psnr_db,
)
from generators.ltx2_text import PromptEmbeddings
from orchestrator.errors import GeneratorError
from tests.generators.test_ltx2 import options, request
from tests.generators.isolated import GPU_BF16 as GPU, UNGUIDED, ChildFailed, baseline_for, compare_isolated, skip_unless_fp8_runs_here
from tests.generators.tiny_ltx2 import build_tiny_ltx2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2-speed") / "model")


@pytest.fixture(scope="module")
def transformer(tiny_model):
    from diffusers import LTX2VideoTransformer3DModel

    return LTX2VideoTransformer3DModel.from_pretrained(tiny_model / "transformer")


@pytest.fixture(scope="module")
def lora_file(tiny_model, tmp_path_factory) -> Path:
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    model = LTX2VideoTransformer3DModel.from_pretrained(tiny_model / "transformer")
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0", "ff.net.2"]))
    folder = tmp_path_factory.mktemp("lora")
    LTX2ConditionPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(model))
    return next(folder.glob("*.safetensors"))


def run(tiny_model, tmp_path, name, segments=1, **kw):
    """Generate with these options; final latents and decoded uint8 frames of the last segment."""
    g = LTX2Generator(options(tiny_model, **kw), cache_dir=tmp_path / "cache")
    for index in range(segments):
        g.generate(request(tmp_path / f"{name}-{index}", seed=11))
    latents = g.last_output.latents
    frames = g.pipeline.decode_to_uint8(latents).cpu()
    return g, latents, frames


# ------------------------------------------------------------------------------------------ fp8 linears
def test_fp8_picks_the_video_token_linears_and_keeps_the_rest(transformer):
    names = fp8_linear_names(transformer, edge_blocks_bf16=0)
    assert len(names) == 2 * len(FP8_TARGETS)
    assert all(n.startswith("transformer_blocks.") and "audio_attn" not in n and "audio_ff" not in n for n in names)
    assert not any(n.endswith(("attn2.to_k", "attn2.to_v", "to_gate_logits")) for n in names)  # text keys/values, gates stay
    assert fp8_linear_names(transformer, edge_blocks_bf16=1) == []  # 2 blocks: both are edge blocks
    kept = fp8_linear_names(transformer, edge_blocks_bf16=0, keep_bf16=["transformer_blocks.*.ff.*"])
    assert len(kept) == len(names) - 4 and not any(".ff." in n for n in kept)
    with pytest.raises(GeneratorError, match="no linear layer is left to quantise.*lower fp8_edge_blocks_bf16"):
        apply_fp8_linears(transformer, "emulated", device="cpu", edge_blocks_bf16=1)


def test_fp8_on_needs_a_recent_gpu_and_names_torchao(transformer, tiny_model, monkeypatch):
    with pytest.raises(GeneratorError, match="needs a CUDA GPU of compute capability ≥ 8.9"):
        LTX2Generator(options(tiny_model, fp8_linears="on", fp8_edge_blocks_bf16=0)).load()
    # On an sm90 GPU without torchao, the error names the package and how to install it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(GeneratorError, match=r"needs the `torchao` package; install it with `pip install --no-deps torchao`"):
        apply_fp8_linears(transformer, "on", device="cuda:0", edge_blocks_bf16=0)


def test_speed_options_refuse_combinations_that_cannot_work(tiny_model, lora_file):
    cases = [
        (dict(fp8_linears="emulated", fp8_storage=True), "fp8_linears and generator.fp8_storage"),
        (dict(fp8_linears="emulated", offload="model"), "needs the transformer resident"),
        (dict(stage2_lora_mode="fused", stage2_lora=str(lora_file), offload="sequential"), "cannot stream"),
        (dict(stage2_lora_mode="fused", stage2_lora=str(lora_file), fp8_linears="emulated"), "cannot swap weights"),
        (dict(compile="blocks", context_parallel=2), "does not work with context_parallel: 2"),
    ]
    for kw, message in cases:
        with pytest.raises(GeneratorError, match=message):
            LTX2Generator(options(tiny_model, **kw)).load()


# ------------------------------------------------------------------------------------------ attention
@pytest.mark.parametrize("mode, package", [("sage", "sageattention>=2.1.1"), ("sage-hub", "kernels>=0.12")])
def test_8bit_attention_unavailable_names_the_package(tiny_model, mode, package):
    with pytest.raises(GeneratorError, match=rf"generator.attention: {mode} is unavailable here .*install `{package}`"):
        LTX2Generator(options(tiny_model, attention=mode)).load()


def test_auto_attention_notes_the_fallback_on_cpu(tiny_model):
    g = LTX2Generator(options(tiny_model))
    g.load()
    assert g.speed.notes == ["attention: auto uses PyTorch's default SDPA kernel on cpu (cuDNN attention needs a CUDA GPU)"]


def test_mask_free_attention_drops_only_an_all_ones_mask(tiny_model, tmp_path, monkeypatch):
    ones = PromptEmbeddings(torch.zeros(1, 4, 16), torch.zeros(1, 4, 8), torch.ones(1, 4))
    assert drop_all_ones_mask(ones, "x").mask is None
    with pytest.raises(GeneratorError, match="this prompt's text mask has 1 padding tokens"):
        drop_all_ones_mask(PromptEmbeddings(ones.video, ones.audio, torch.tensor([[0, 1, 1, 1]])), "generator.attention: sage")

    # With every prompt's mask all ones, generating without the mask gives the same latents as with it.
    def all_ones(g):
        cache = g._cache()
        for prompt in ("a person talking", "blurry distorted face"):
            emb = g._embeddings(prompt)
            cache.put(prompt, PromptEmbeddings(emb.video, emb.audio, torch.ones_like(emb.mask)))

    masked = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "a")
    all_ones(masked)
    masked.generate(request(tmp_path / "masked", seed=3))
    monkeypatch.setattr("generators.ltx2_speed.needs_mask_free", lambda mode: True)
    free = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "b")
    all_ones(free)
    free.generate(request(tmp_path / "free", seed=3))
    assert latent_rel_error(masked.last_output.latents, free.last_output.latents) < 1e-6


# ------------------------------------------------------------------------------------------ compile, LoRA
def test_compile_blocks_wraps_every_repeated_block(tiny_model):
    from diffusers import LTX2VideoTransformer3DModel

    model = LTX2VideoTransformer3DModel.from_pretrained(tiny_model / "transformer")
    assert apply_compile(model, "off") == 0
    assert apply_compile(model, "blocks") == model.config.num_layers == 2


def test_compile_cache_dir_is_per_user_unless_the_user_names_one(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing torch._dynamo leaves there
    assert compile_cache_dir() == (tmp_path / "xdg" / "longtake" / "inductor").resolve()
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert compile_cache_dir() == (tmp_path / "xdg" / "longtake" / "inductor").resolve()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == (tmp_path / "mine").resolve()


def test_an_unwritable_compile_cache_is_a_clear_error(monkeypatch, tmp_path):
    from generators.ltx2_speed import use_persistent_compile_cache

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "file" / "inductor"))
    with pytest.raises(GeneratorError, match="TORCHINDUCTOR_CACHE_DIR to a writable folder"):
        use_persistent_compile_cache()


# One segment with compile: blocks in a fresh process; prints Inductor's cache counters and where the cache went.
_COMPILE_CHILD = """
import json, logging, os, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from torch._dynamo.utils import counters
from generators.ltx2 import LTX2Generator
from tests.generators.test_ltx2 import options, request
model, work = Path(sys.argv[1]), Path(sys.argv[2])
single_pass = dict(stage2="none", stage1_steps=1, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0)
LTX2Generator(options(model, compile="blocks", **single_pass), cache_dir=work / "cache").generate(request(work / "seg", seed=3))
print(json.dumps({"counters": {k: dict(counters[k]) for k in ("inductor", "aot_autograd")}, "dir": os.environ["TORCHINDUCTOR_CACHE_DIR"]}))
"""


@pytest.mark.slow
def test_compiled_blocks_are_reused_by_the_next_process(tiny_model, tmp_path):
    """The warm-up is paid once per machine: a second process loads the first one's graphs from the per-user cache."""
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} | {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    folder = (tmp_path / "xdg" / "longtake" / "inductor").resolve()
    runs = []
    for index in range(2):
        done = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(tiny_model), str(tmp_path / f"run{index}")], env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"compile: blocks caches compiled graphs in {folder}" in done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = (r["counters"] for r in runs)
    assert all(r["dir"] == str(folder) for r in runs)
    assert first["inductor"].get("fxgraph_cache_miss", 0) > 0 and first["inductor"].get("fxgraph_cache_hit", 0) == 0
    assert second["inductor"].get("fxgraph_cache_hit", 0) > 0 and second["inductor"].get("fxgraph_cache_miss", 0) == 0
    assert second["aot_autograd"].get("autograd_cache_hit", 0) > 0
    assert any((folder / "fxgraph").rglob("*")) and any((folder / "aotautograd").rglob("*"))


def test_fused_lora_matches_unfused_and_restores_the_base_weights(tiny_model, lora_file, tmp_path):
    unfused, u_lat, u_frames = run(tiny_model, tmp_path, "unfused", stage2_lora=str(lora_file))
    fused, f_lat, f_frames = run(tiny_model, tmp_path, "fused", segments=2, stage2_lora=str(lora_file), stage2_lora_mode="fused")
    assert fused.model_identity() != unfused.model_identity()
    assert torch.equal(unfused.last_output.stages[0].latents, fused.last_output.stages[0].latents), "stage 1 saw fused weights"
    assert latent_rel_error(u_lat, f_lat) < 1e-5
    assert psnr_db(u_frames, f_frames) > 60
    base = {k: v for k, v in unfused.pipeline.transformer.state_dict().items() if "lora" not in k}
    after = {k: v for k, v in fused.pipeline.transformer.state_dict().items() if "lora" not in k}
    assert all(torch.equal(base[k], after[k]) for k in base), "the fused weights stayed in after stage 2"


# ------------------------------------------------------------------------------------------ the quality guard
def test_quality_guard_each_option_against_todays_path(tiny_model, lora_file, tmp_path):
    assert set(SPEED_OPTIONS) == {"fp8_linears", "compile", "attention", "stage2_lora_mode"}
    _, ref_lat, ref_frames = run(tiny_model, tmp_path, "ref")
    rows = {}
    for name, kw in {
        "attention: native": dict(attention="native"),
        "fp8_linears: emulated": dict(fp8_linears="emulated", fp8_edge_blocks_bf16=0),
    }.items():
        _, lat, frames = run(tiny_model, tmp_path, name.replace(": ", "-"), **kw)
        rows[name] = (latent_rel_error(ref_lat, lat), psnr_db(ref_frames, frames))
        print(f"tiny CPU quality guard, {name}: latent relative error {rows[name][0]:.2e}, PSNR {rows[name][1]:.1f} dB")
    assert rows["attention: native"][0] < 1e-6 and is_exact("attention", "native")
    err, psnr = rows["fp8_linears: emulated"]
    assert 1e-4 < err < 0.25 and psnr > 20 and not is_exact("fp8_linears", "emulated")  # fp8 rounding is visible, and bounded


# ------------------------------------------------------------------------------------------ on a GPU (pytest -m gpu)
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(
    "name, kw, exact",
    [
        ("compile", dict(compile="blocks"), True),
        ("compile-unguided", dict(compile="blocks", **UNGUIDED), True),
        ("attention-native", dict(attention="native"), True),
        ("fp8", dict(fp8_linears="on", fp8_edge_blocks_bf16=0), False),
        ("fp8-compile-unguided", dict(fp8_linears="on", fp8_edge_blocks_bf16=0, compile="blocks", **UNGUIDED), False),
        ("sage", dict(attention="sage"), False),
        ("sage-hub", dict(attention="sage-hub"), False),
    ],
)
def test_gpu_option_against_bf16(tiny_model, tmp_path, name, kw, exact):
    skip_unless_fp8_runs_here(kw)
    if kw.get("attention") == "sage":
        pytest.importorskip("sageattention")
    if kw.get("attention") == "sage-hub":
        pytest.importorskip("kernels")
    got = compare_isolated("tests.generators.test_ltx2_speed", tiny_model, tmp_path, baseline_for(kw), {**GPU, **kw})
    assert any("cuDNN SDPA first" in n or "default SDPA" in n for n in got["ref_notes"])
    err, psnr = got["latent_rel_error"], got["psnr_db"]
    print(f"GPU quality guard, {name}: latent relative error {err:.2e}, PSNR {psnr:.1f} dB")
    if kw.get("fp8_linears") == "on":
        assert got["fp8_layers"] == 2 * len(FP8_TARGETS)
    # bf16 kernels differ in rounding only; 8-bit ones are bounded, not exact.
    assert err < (0.05 if exact else 0.3) and psnr > (30 if exact else 18)


@pytest.mark.gpu
@gpu
def test_gpu_fused_lora_matches_unfused(tiny_model, lora_file, tmp_path):
    lora = dict(GPU, stage2_lora=str(lora_file))
    got = compare_isolated("tests.generators.test_ltx2_speed", tiny_model, tmp_path, lora, {**lora, "stage2_lora_mode": "fused"})
    assert got["fused_lora_bytes"] > 0
    assert got["latent_rel_error"] < 0.05 and got["psnr_db"] > 30


def test_a_comparison_runs_in_a_child_process_and_a_crash_there_is_a_failure_here(tiny_model, tmp_path, monkeypatch):
    from tests.orchestrator.conftest import REPO

    cpu = dict(device="cpu", dtype="float32")
    got = compare_isolated("tests.generators.test_ltx2_speed", tiny_model, tmp_path / "ok", cpu, {**cpu, "attention": "native"})
    assert got["latent_rel_error"] == 0.0 and got["psnr_db"] == float("inf") and got["fp8_layers"] == 0
    with pytest.raises(ChildFailed, match=r"exit code 1:(?s:.*)no CUDA GPU"):
        compare_isolated("tests.generators.test_ltx2_speed", tiny_model, tmp_path / "bad", cpu, {**cpu, "device": "cuda:7"})
    # a C++-level abort, as torch.compile's on the H200: the child dies of SIGABRT, this process reports it and goes on
    (tmp_path / "aborts_here.py").write_text("import os\n\ndef run(*args, **kwargs):\n    print('about to abort', flush=True)\n    os.abort()\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{REPO}")
    with pytest.raises(ChildFailed, match=r"exit code -6:\s+about to abort"):
        compare_isolated("aborts_here", tiny_model, tmp_path / "abort", cpu, cpu)
