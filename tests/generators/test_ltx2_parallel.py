"""Context parallelism over 2 CPU processes (gloo) equals one process, on the tiny LTX-2.3 transformer.

Rank 0 also runs the unsplit transformer on the same inputs; the parent compares. The video grid is 3×5×7 = 105
tokens (an odd count, so the ranks' chunks differ in length) with the first latent frame held clean, as in tail
mode, so the per-token timestep differs along the split axis. Tolerance: float32, 5e-6 of the output's largest value.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tests.generators.tiny_ltx2 import build_tiny_ltx2  # noqa: E402

_GRID = (3, 5, 7)  # latent frames, height, width
_AUDIO_TOKENS = 9
_WORLD = 2


def _inputs(model):
    from generators.ltx2_guidance import DenoiseInputs
    from generators.ltx2_text import PromptEmbeddings

    gen = torch.Generator().manual_seed(7)
    frames, height, width = _GRID
    tokens = frames * height * width
    held = torch.zeros(1, tokens, 1)
    held[:, : height * width] = 1.0  # the first latent frame is the previous segment's tail: clean
    clean = torch.randn(1, tokens, 4, generator=gen)
    noise = torch.randn(1, tokens, 4, generator=gen)
    mask = torch.ones(1, 6)
    mask[:, :2] = 0  # left padding, as the tokenizer pads
    embeds = lambda: PromptEmbeddings(torch.randn(1, 6, 16, generator=gen), torch.randn(1, 6, 8, generator=gen), mask)  # noqa: E731
    return DenoiseInputs(
        latents=noise * (1 - held) + clean * held,
        conditioning_mask=held,
        clean_latents=clean,
        video_coords=model.rope.prepare_video_coords(1, frames, height, width, torch.device("cpu"), fps=24.0),
        audio_latents=torch.randn(1, _AUDIO_TOKENS, 4, generator=gen),
        audio_coords=model.audio_rope.prepare_audio_coords(1, _AUDIO_TOKENS, torch.device("cpu")),
        positive=embeds(),
        negative=embeds(),
        sigmas=torch.tensor([1.0, 0.55, 0.0]),
        fps=24.0,
    )


def _run(model, inputs) -> dict[str, "torch.Tensor"]:
    """One raw forward at a per-token timestep, and a two-step denoise with CFG, STG and modality guidance."""
    from generators.ltx2_guidance import VideoGuidance, denoise_video_frozen_audio

    t = torch.full((1,), 550.0)
    timestep = t[:, None] * (1 - inputs.conditioning_mask.squeeze(-1))
    with torch.no_grad():
        video, audio = model(
            hidden_states=inputs.latents,
            audio_hidden_states=inputs.audio_latents,
            encoder_hidden_states=inputs.positive.video,
            audio_encoder_hidden_states=inputs.positive.audio,
            timestep=timestep,
            audio_timestep=torch.zeros(1),
            sigma=t,
            encoder_attention_mask=inputs.positive.mask,
            audio_encoder_attention_mask=inputs.positive.mask,
            audio_num_frames=_AUDIO_TOKENS,
            video_coords=inputs.video_coords,
            audio_coords=inputs.audio_coords,
            use_cross_timestep=True,
            return_dict=False,
        )
        guidance = VideoGuidance(guidance_scale=3.0, stg_scale=1.0, modality_scale=3.0, stg_blocks=(1,))
        latents = denoise_video_frozen_audio(model, inputs, guidance, compute_dtype=torch.float32)
    return {"video": video, "audio": audio, "latents": latents}


def _worker(rank: int, folder: str, out: str) -> None:
    import torch.distributed as dist
    from diffusers import LTX2VideoTransformer3DModel

    from generators.ltx2_parallel import ContextParallelTransformer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=_WORLD)
    try:
        model = LTX2VideoTransformer3DModel.from_pretrained(Path(folder) / "transformer").eval()
        inputs = _inputs(model)
        results = _run(ContextParallelTransformer(model), inputs)
        torch.save(results, f"{out}/cp{rank}.pt")
        if rank == 0:
            torch.save(_run(model, inputs), f"{out}/single.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch.multiprocessing as mp

    folder = build_tiny_ltx2(tmp_path_factory.mktemp("tiny") / "model", with_upsampler=False)
    out = tmp_path_factory.mktemp("cp")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(folder), str(out)), nprocs=_WORLD, join=True)
    return {name: torch.load(out / f"{name}.pt") for name in ("single", "cp0", "cp1")}


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=5e-6, atol=5e-6 * float(expected.abs().max()))


@pytest.mark.parametrize("output", ["video", "audio", "latents"])
def test_context_parallel_equals_one_process(runs, output):
    single = runs["single"][output]
    for rank in range(_WORLD):
        assert runs[f"cp{rank}"][output].shape == single.shape
        _close(runs[f"cp{rank}"][output], single)


def test_the_inputs_make_the_split_matter(runs):
    # Guard against a vacuous comparison: the held first frame must change the prediction, and guidance must move it.
    video = runs["single"]["video"]
    frame = _GRID[1] * _GRID[2]
    assert not torch.allclose(video[:, :frame], video[:, frame : 2 * frame], atol=1e-3)
    assert runs["single"]["latents"].abs().max() > 0


def test_token_split_covers_every_token_once():
    from generators.ltx2_parallel import TokenSplit

    spans = [(s.start, s.stop) for s in (TokenSplit(total=105, world=4, rank=r) for r in range(4))]
    assert spans == [(0, 27), (27, 53), (53, 79), (79, 105)]
    with pytest.raises(ValueError, match="cannot be split"):
        TokenSplit(total=3, world=4, rank=0)
