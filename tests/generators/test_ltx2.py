"""LTX2Generator end to end on a tiny random LTX-2.3 (CPU): audio frozen, conditions held, shapes, seeds, chaining, caching.

The tiny model (tests/generators/tiny_ltx2.py) is saved in diffusers format and
loaded through the production path. Its VAE compresses 4× in time and space,
so 9 frames at 48×32 are 3 latent frames of 6×4 at stage 1 (24×16 px) and
12×8 at stage 2.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from generators import get_generator_class
from generators.base import GenerateRequest
from generators.ltx2 import LTX2Generator
from generators.ltx2_pipeline import DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES, LTX2VideoCondition
from orchestrator.config import LTX2Options
from orchestrator.errors import GeneratorError
from stitchers.clip_io import iter_frames, probe_video
from tests.generators.tiny_ltx2 import build_tiny_ltx2

SR = 16000
FPS = Fraction(24)
W, H, F = 48, 32, 9
NEGATIVE = "blurry distorted face"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "model")


def options(model: Path, **kw) -> LTX2Options:
    return LTX2Options(**{"model": str(model), "device": "cpu", "dtype": "float32", "stage1_steps": 2, "stg_blocks": [1], **kw})


@pytest.fixture(scope="module")
def gen(tiny_model, tmp_path_factory) -> LTX2Generator:
    g = LTX2Generator(options(tiny_model), cache_dir=tmp_path_factory.mktemp("cache"))
    g.load()
    yield g
    g.close()


def portrait(seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:] = (40, 60, 90)
    img[8:26, 16:32] = (200, 160, 130)  # a face-coloured block
    return np.clip(img.astype(int) + rng.randint(-10, 10, img.shape), 0, 255).astype(np.uint8)


def frames(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (count, H, W, 3)).astype(np.uint8)


def speech(num_frames: int = F, seed: int = 0) -> np.ndarray:
    """Tone bursts with silences, exactly num_frames / fps long, mono."""
    n = int(round(num_frames / FPS * SR))
    t = np.arange(n) / SR
    burst = (np.sin(2 * np.pi * 7 * t) > 0).astype(np.float32)
    return (0.3 * burst * np.sin(2 * np.pi * (180 + 20 * seed) * t)).astype(np.float32)[:, None]


def request(out_dir: Path, *, index: int = 0, chaining: str = "tail", context=None, seed: int = 7, prompt: str = "a person talking",
            anchor: float = 0.0, num_frames: int = F, tail: int = 5) -> GenerateRequest:  # fmt: skip
    return GenerateRequest(
        segment_index=index, num_frames=num_frames, width=W, height=H, fps=FPS, audio=speech(num_frames, index), sample_rate_hz=SR,
        prompt=prompt, negative_prompt=NEGATIVE, seed=seed, portrait=portrait(), chaining=chaining, context=context,
        identity_anchor_strength=anchor, tail_start=num_frames - tail, tail_frames=tail, out_dir=out_dir,
    )  # fmt: skip


class TransformerCalls:
    """Records what every transformer forward was given."""

    def __init__(self, transformer):
        self.calls: list[dict] = []
        self._handle = transformer.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, _args, kwargs):
        self.calls.append(
            {
                "audio": kwargs["audio_hidden_states"].detach().clone(),
                "audio_timestep": kwargs["audio_timestep"].detach().clone(),
                "audio_sigma": kwargs["audio_sigma"].detach().clone(),
                "timestep": kwargs["timestep"].detach().clone(),
                "isolate": kwargs["isolate_modalities"],
                "stg": kwargs["spatio_temporal_guidance_blocks"],
                "tokens": kwargs["hidden_states"].shape[1],
            }
        )

    def close(self):
        self._handle.remove()


@pytest.fixture
def recorder(gen):
    rec = TransformerCalls(gen.pipeline.transformer)
    yield rec
    rec.close()


# ----------------------------------------------------------------------------------- audio held clean


def test_registered_as_ltx2():
    assert get_generator_class("ltx2") is LTX2Generator


def test_audio_latents_identical_at_every_step_and_never_stepped(gen, recorder, tmp_path):
    req = request(tmp_path / "seg")
    expected = gen.pipeline.encode_audio(req.audio, SR, F, float(FPS))
    before = expected.clone()
    gen.generate(req)

    # Stage 1: 2 steps × (cond, uncond, STG, modality-isolated); stage 2: 3 distilled steps, one pass each.
    assert len(recorder.calls) == 2 * 4 + 3
    for call in recorder.calls:
        assert torch.equal(call["audio"], expected), "the transformer saw stepped or noised audio"
        assert torch.count_nonzero(call["audio_timestep"]) == 0
        assert torch.count_nonzero(call["audio_sigma"]) == 0
    assert torch.equal(expected, before)
    stage1 = recorder.calls[:8]
    assert [c["isolate"] for c in stage1].count(True) == 2
    assert [c["stg"] for c in stage1].count([1]) == 2
    assert all(not c["isolate"] and not c["stg"] for c in recorder.calls[8:])
    # Video timesteps fall step by step; held (conditioned) tokens sit at 0.
    first, last = recorder.calls[0]["timestep"], recorder.calls[-1]["timestep"]
    assert first.max() > last.max() > 0
    assert torch.count_nonzero(first[0, : 6 * 4]) == 0  # the portrait's latent frame at stage 1 (6×4 tokens)


def test_guidance_off_is_one_pass_per_step(tiny_model, tmp_path):
    g = LTX2Generator(options(tiny_model, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0), cache_dir=tmp_path / "cache")
    g.load()
    rec = TransformerCalls(g.pipeline.transformer)
    try:
        g.generate(request(tmp_path / "seg"))
    finally:
        rec.close()
    assert len(rec.calls) == 2 + 3
    assert g.stats.prompts_encoded == 1  # no negative prompt without CFG


# ----------------------------------------------------------------------------------- conditions held clean


def reference_condition_latents(pipe, frames_uint8: np.ndarray, height: int, width: int, num_frames: int) -> torch.Tensor:
    """What the VAE says the context is at a stage's size, through diffusers' own condition helpers."""
    pixels, *_ = pipe.preprocess_conditions([LTX2VideoCondition(frames=frames_uint8, index=0, crf=0)], height, width, num_frames, device="cpu")
    lat = pipe.vae.encode(pixels[0]).latent_dist.mode()
    lat = pipe._normalize_latents(lat, pipe.vae.latents_mean, pipe.vae.latents_std)
    return pipe._pack_latents(lat)[0]


def test_tail_context_is_a_clean_prefix_in_both_stages(gen, tmp_path):
    context = frames(5)  # 4·1 + 1 frames = 2 latent frames
    gen.generate(request(tmp_path / "seg", index=1, context=context))
    out = gen.last_output
    assert [(s.height, s.width) for s in out.stages] == [(16, 24), (32, 48)]
    for stage in out.stages:
        _f, h, w = stage.latent_shape
        prefix = 2 * h * w
        held = stage.conditioning_mask[0, :, 0] == 1
        assert int(held.sum()) == prefix and bool(held[:prefix].all())
        assert torch.equal(stage.latents[0, :prefix], stage.clean_latents[0, :prefix]), "the prefix moved"
        expected = reference_condition_latents(gen.pipeline, context, stage.height, stage.width, F)
        assert torch.allclose(stage.clean_latents[0, :prefix], expected, atol=1e-5)
        free = stage.latents[0, prefix:]
        assert free.abs().mean() > 0 and not torch.allclose(free, stage.clean_latents[0, prefix:])


def test_last_frame_mode_holds_one_latent_frame(gen, tmp_path):
    gen.generate(request(tmp_path / "seg", index=1, chaining="last-frame", context=frames(5)))
    for stage in gen.last_output.stages:
        _f, h, w = stage.latent_shape
        held = stage.conditioning_mask[0, :, 0] == 1
        assert int(held.sum()) == h * w and bool(held[: h * w].all())


def test_bookend_holds_the_portrait_at_frame_0_and_as_full_strength_keyframe_tokens_at_the_end(gen, tmp_path):
    # identity_anchor_strength is ignored in bookend mode: the end keyframe already is the portrait at strength 1.
    res = gen.generate(request(tmp_path / "seg", index=3, chaining="bookend", context=None, anchor=0.3))
    for stage in gen.last_output.stages:
        f, h, w = stage.latent_shape
        assert stage.latents.shape[1] == stage.num_base_tokens + h * w  # one latent frame of keyframe tokens
        mask = stage.conditioning_mask[0, :, 0]
        assert torch.equal(mask[stage.num_base_tokens :], torch.ones(h * w))
        assert torch.equal(mask[: h * w], torch.ones(h * w))
        assert int((mask[: stage.num_base_tokens] > 0).sum()) == h * w  # nothing else held
        # The appended tokens are the portrait, exactly as the frame-0 condition encodes it.
        assert torch.allclose(stage.clean_latents[0, stage.num_base_tokens :], stage.clean_latents[0, : h * w], atol=1e-5)
    assert probe_video(res.clip_path).num_frames == F


def test_identity_anchor_appends_keyframe_tokens_at_its_strength(gen, tmp_path):
    res = gen.generate(request(tmp_path / "seg", index=2, chaining="anchor", context=frames(5), anchor=0.3))
    for stage in gen.last_output.stages:
        f, h, w = stage.latent_shape
        assert stage.num_base_tokens == f * h * w
        assert stage.latents.shape[1] == stage.num_base_tokens + h * w  # one latent frame of guide tokens
        mask = stage.conditioning_mask[0, :, 0]
        assert torch.allclose(mask[stage.num_base_tokens :], torch.full((h * w,), 0.3))
        assert torch.equal(mask[: h * w], torch.ones(h * w))  # anchor mode: the portrait at frame 0
    assert gen.last_output.latents.shape == (1, 4, 3, 8, 12)  # guide tokens are gone from the result
    assert probe_video(res.clip_path).num_frames == F


def test_tail_context_off_the_grid_is_refused(gen, tmp_path):
    with pytest.raises(GeneratorError, match="needs 4j\\+1 context frames.*got 4; set segmenter.context_frames to 1 or 5"):
        gen.generate(request(tmp_path / "seg", index=1, context=frames(4)))


# ----------------------------------------------------------------------------------- shapes, files, seeds


def test_frame_counts_and_sizes_at_both_stages_and_on_disk(gen, tmp_path):
    progress = []
    res = gen.generate(request(tmp_path / "seg", num_frames=13, tail=5), progress=lambda d, t, s: progress.append((d, t, s)))
    out = gen.last_output
    assert [s.latent_shape for s in out.stages] == [(4, 4, 6), (4, 8, 12)]
    assert out.latents.shape == (1, 4, 4, 8, 12)
    assert [len(s.sigmas) for s in out.stages] == [3, 4]
    info = probe_video(res.clip_path)
    assert (info.num_frames, info.width, info.height, info.fps) == (13, W, H, FPS)
    tail = np.load(res.tail_path)
    assert tail.shape == (5, H, W, 3) and tail.dtype == np.uint8
    # The tail is the decoded frames 8…12 exactly; the clip holds every decoded frame in order (within H.264's
    # error, which is large for the tiny random VAE's noise-like frames, and far below a one-frame shift's).
    decoded = gen.pipeline.decode_to_uint8(out.latents).numpy().astype(int)
    assert np.array_equal(tail, decoded[8:13])
    clip = np.stack(list(iter_frames(res.clip_path))).astype(int)
    aligned = np.abs(clip - decoded).mean()
    shifted = np.abs(clip[1:] - decoded[:-1]).mean()
    assert aligned < 10 and aligned < shifted / 3
    assert progress[-1][0] == progress[-1][1] == 2 + 3 + 2
    assert [s for _, _, s in progress][:2] == ["stage 1", "stage 1"]
    assert set(res.timings_s) >= {"text_encode", "condition_encode", "stage1", "upsample", "stage2", "decode", "write", "total"}
    assert res.num_frames == 13


def test_same_seed_same_frames_other_seed_other_frames(gen, tmp_path):
    a = gen.generate(request(tmp_path / "a", seed=3))
    la = gen.last_output.latents.clone()
    b = gen.generate(request(tmp_path / "b", seed=3))
    assert torch.equal(la, gen.last_output.latents)
    assert np.array_equal(np.load(a.tail_path), np.load(b.tail_path))
    assert (tmp_path / "a" / "clip.mp4").read_bytes() == (tmp_path / "b" / "clip.mp4").read_bytes()
    c = gen.generate(request(tmp_path / "c", seed=4))
    assert not torch.equal(la, gen.last_output.latents)
    assert not np.array_equal(np.load(a.tail_path), np.load(c.tail_path))


def test_no_tail_requested_writes_no_tail(gen, tmp_path):
    res = gen.generate(request(tmp_path / "seg", tail=0))
    assert res.tail_path is None and not (tmp_path / "seg" / "tail.npy").exists()
    assert res.clip_path.is_file()


def test_tail_outside_the_clip_is_refused(gen, tmp_path):
    req = request(tmp_path / "seg")
    bad = GenerateRequest(**{**req.__dict__, "tail_start": 7, "tail_frames": 5})
    with pytest.raises(GeneratorError, match=r"tail frames \[7, 12\) fall outside the clip's 9 frames"):
        gen.generate(bad)


@pytest.mark.parametrize("tile,stride", [(2, 1), (3, 2), (8, 7)])
def test_streaming_decode_equals_the_vaes_own_temporal_tiling(gen, tile, stride):
    pipe = gen.pipeline
    torch.manual_seed(0)
    latents = torch.randn(1, 4, 7, 8, 12)
    vae = pipe.vae
    saved = (vae.use_tiling, vae.use_framewise_decoding, vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames)
    try:
        vae.use_tiling, vae.use_framewise_decoding = False, True
        vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = tile * 4, stride * 4
        whole = pipe.decode_to_uint8(latents)
        chunks = list(pipe.iter_decode(latents, tile_latent_frames=tile, stride_latent_frames=stride))
    finally:
        vae.use_tiling, vae.use_framewise_decoding, vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames = saved
    assert whole.shape == (25, H, W, 3)
    assert torch.equal(torch.cat(chunks), whole)
    if tile < 7:
        assert len(chunks) > 1, "the clip must arrive in pieces"


def test_a_failing_writer_leaves_no_clip(gen, tmp_path, monkeypatch):
    from stitchers import clip_io

    def broken(self, planes):
        raise OSError("disk full")

    monkeypatch.setattr(clip_io.ClipWriter, "write_ycbcr", broken)
    with pytest.raises(OSError, match="disk full"):
        gen.generate(request(tmp_path / "seg"))
    assert not (tmp_path / "seg" / "clip.mp4").exists()
    assert not list((tmp_path / "seg").glob(".clip.mp4.*"))


# ----------------------------------------------------------------------------------- a multi-segment run


def test_model_loaded_once_and_each_prompt_encoded_once_over_a_run(tiny_model, tmp_path, monkeypatch):
    from generators import ltx2_loading

    g = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "cache")
    prompts = ["a person talking", "a woman smiles and nods", "a person talking"]
    g.load()
    g.load()
    g.encode_prompts([*prompts, NEGATIVE])
    context = None
    for i, prompt in enumerate(prompts):
        res = g.generate(request(tmp_path / f"seg{i}", index=i, context=context, seed=100 + i, prompt=prompt))
        context = np.load(res.tail_path)
    assert (g.stats.model_loads, g.stats.text_stage_loads, g.stats.prompts_encoded, g.stats.segments) == (1, 1, 3, 3)
    g.encode_prompts([*prompts, NEGATIVE])
    assert g.stats.prompts_encoded == 3
    g.close()

    # A resumed run (new process, same cache) never loads the text encoder for the same prompts...
    def no_text_encoder(*_a, **_k):
        raise AssertionError("the text encoder was loaded although every prompt is cached")

    monkeypatch.setattr(ltx2_loading, "load_text_stage", no_text_encoder)
    resumed = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "cache")
    resumed.encode_prompts([*prompts, NEGATIVE])
    resumed.generate(request(tmp_path / "again", index=1, context=frames(5), seed=101, prompt=prompts[1]))
    assert (resumed.stats.text_stage_loads, resumed.stats.prompts_encoded) == (0, 0)
    monkeypatch.undo()

    # ... and encodes only what changed.
    resumed.encode_prompts(["a man speaks calmly", *prompts, NEGATIVE])
    assert (resumed.stats.text_stage_loads, resumed.stats.prompts_encoded) == (1, 1)


def test_resumed_segment_matches_the_original(tiny_model, tmp_path, gen):
    # Prompt embeddings read back from disk give the very same frames as freshly encoded ones.
    first = gen.generate(request(tmp_path / "a", seed=21))
    fresh = LTX2Generator(options(tiny_model), cache_dir=gen.cache_dir)
    second = fresh.generate(request(tmp_path / "b", seed=21))
    assert fresh.stats.prompts_encoded == 0
    assert np.array_equal(np.load(first.tail_path), np.load(second.tail_path))


def test_a_corrupt_prompt_cache_entry_is_re_encoded(tiny_model, tmp_path, caplog):
    g = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "cache")
    g.encode_prompts(["a person talking"])
    entry = g._cache().path("a person talking")
    entry.write_bytes(b"not a safetensors file")
    again = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "cache")
    again.encode_prompts(["a person talking"])
    assert again.stats.prompts_encoded == 1
    assert "ignoring unreadable prompt-embedding cache entry" in caplog.text


# ----------------------------------------------------------------------------------- modes and variants


def test_one_stage_mode_needs_no_upsampler(tmp_path):
    model = build_tiny_ltx2(tmp_path / "model", with_upsampler=False)
    g = LTX2Generator(options(model, stage2="none"), cache_dir=tmp_path / "cache")
    rec = None
    g.load()
    rec = TransformerCalls(g.pipeline.transformer)
    try:
        req = request(tmp_path / "seg")
        res = g.generate(GenerateRequest(**{**req.__dict__, "width": 44, "height": 28, "portrait": portrait()[:28, :44]}))
    finally:
        rec.close()
    assert [s.latent_shape for s in g.last_output.stages] == [(3, 7, 11)]
    assert len(rec.calls) == 2 * 4
    info = probe_video(res.clip_path)
    assert (info.width, info.height, info.num_frames) == (44, 28, 9)


def test_distilled_variant_runs_the_fixed_schedules_unguided(tiny_model, tmp_path):
    g = LTX2Generator(options(tiny_model, model_variant="distilled"), cache_dir=tmp_path / "cache")
    g.load()
    rec = TransformerCalls(g.pipeline.transformer)
    try:
        g.generate(request(tmp_path / "seg"))
    finally:
        rec.close()
    s1, s2 = g.last_output.stages
    assert s1.sigmas.tolist() == pytest.approx([*DISTILLED_SIGMA_VALUES, 0.0])
    assert s2.sigmas.tolist() == pytest.approx([0.909375, 0.725, 0.421875, 0.0])
    assert STAGE_2_DISTILLED_SIGMA_VALUES == [0.909375, 0.725, 0.421875]
    assert len(rec.calls) == 8 + 3
    assert g.stats.prompts_encoded == 1  # no negative prompt without guidance


def test_dev_stage1_schedule_is_ltx2s(gen, tmp_path):
    from generators.ltx2_pipeline import ltx2_stage1_sigmas

    gen.generate(request(tmp_path / "seg"))
    s1 = gen.last_output.stages[0]
    # LTX2Scheduler's, whatever the token count (checked against ltx-core in test_ltx2_parity); 1 - 5e-7 first, as there.
    assert torch.equal(s1.sigmas, ltx2_stage1_sigmas(2)) and len(s1.sigmas) == 3
    assert abs(float(s1.sigmas[0]) - 1.0) < 1e-6 and s1.sigmas[-1] == 0.0 and abs(float(s1.sigmas[-2]) - 0.1) < 1e-6


def test_stage2_lora_is_on_in_stage2_only(tiny_model, tmp_path):
    pytest.importorskip("peft")
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    transformer = LTX2VideoTransformer3DModel.from_pretrained(tiny_model / "transformer")
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    LTX2ConditionPipeline.save_lora_weights(tmp_path / "lora", transformer_lora_layers=get_peft_model_state_dict(transformer))
    lora_file = next((tmp_path / "lora").glob("*.safetensors"))

    plain = LTX2Generator(options(tiny_model), cache_dir=tmp_path / "cache")
    plain.generate(request(tmp_path / "a", seed=5))
    with_lora = LTX2Generator(options(tiny_model, stage2_lora=str(lora_file)), cache_dir=tmp_path / "cache")
    assert with_lora.model_identity() != plain.model_identity()
    with_lora.generate(request(tmp_path / "b", seed=5))
    (p1, p2), (l1, l2) = plain.last_output.stages, with_lora.last_output.stages
    assert torch.equal(p1.latents, l1.latents), "the LoRA leaked into stage 1"
    assert not torch.allclose(p2.latents, l2.latents), "the LoRA did nothing in stage 2"


def test_stage2_lora_missing_file(tiny_model, tmp_path):
    g = LTX2Generator(options(tiny_model, stage2_lora=str(tmp_path / "missing.safetensors")))
    with pytest.raises(GeneratorError, match="stage2_lora: file not found"):
        g.load()


# ----------------------------------------------------------------------------------- GPU


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("offload,fp8", [("none", False), ("model", False), ("sequential", False), ("sequential", True)])
def test_gpu_offload_modes_agree_on_shapes(tiny_model, tmp_path, offload, fp8):
    g = LTX2Generator(
        LTX2Options(model=str(tiny_model), device="cuda", dtype="bfloat16", stage1_steps=2, stg_blocks=[1], offload=offload, fp8_storage=fp8),
        cache_dir=tmp_path / "cache",
    )
    res = g.generate(request(tmp_path / "seg"))
    assert probe_video(res.clip_path).num_frames == F
    assert np.load(res.tail_path).shape == (5, H, W, 3)
    assert g.last_output.latents.shape == (1, 4, 3, 8, 12)
    g.close()


@pytest.mark.gpu
@gpu
def test_gpu_matches_cpu_closely(tiny_model, tmp_path, gen):
    gen.generate(request(tmp_path / "cpu", seed=9))
    cpu = gen.last_output.latents.clone()
    g = LTX2Generator(options(tiny_model, device="cuda"), cache_dir=tmp_path / "cache")
    g.generate(request(tmp_path / "gpu", seed=9))
    assert torch.allclose(g.last_output.latents.cpu(), cpu, atol=1e-3)


@pytest.mark.gpu
@gpu
def test_gpu_host_copy_on_another_thread_gets_the_tensor_as_it_was_handed_over():
    import threading

    from generators.ltx2 import _HostCopier

    copier = _HostCopier("cuda")
    x = torch.arange(1 << 22, device="cuda", dtype=torch.float32)
    chunk = (torch.arange(1 << 22, device="cuda", dtype=torch.int32) * 7 % 256).to(torch.uint8)
    expected = (np.arange(1 << 22, dtype=np.int64) * 7 % 256).astype(np.uint8)
    fetch = copier(chunk)
    del chunk  # only the fetch holds it now, as in the generator
    y = torch.empty_like(x)
    for _ in range(50):  # keep the default stream busy and allocating after the hand-over
        y.copy_(x.sqrt().exp().log())
        scratch = torch.empty(1 << 22, dtype=torch.uint8, device="cuda").fill_(7)
    got: list[np.ndarray] = []
    t = threading.Thread(target=lambda: got.append(fetch()))
    t.start()
    t.join()
    assert np.array_equal(got[0], expected)
    assert int(scratch[0]) == 7


def test_cpu_host_copy_is_the_tensor_itself():
    from generators.ltx2 import _HostCopier

    t = torch.arange(12, dtype=torch.uint8).view(3, 4)
    assert np.array_equal(_HostCopier("cpu")(t)(), t.numpy())
