"""The segment intermediate: ClipWriter's two inputs, and the threaded writer's error and abort paths."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stitchers.clip_io import BackgroundClipWriter, ClipWriter, iter_frames, probe_video
from stitchers.color import BT709_LIMITED

W, H, FPS = 64, 48, Fraction(24)


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth gradients that move, with a little texture: what x264 keeps nearly exactly at CRF 12."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        r = 40 + 150 * xx / W + 10 * np.sin(i / 3)
        g = 60 + 120 * yy / H
        b = 200 - 100 * (xx + yy) / (W + H) + 4 * i
        frame = np.stack([r, g, b], -1) + rng.normal(0, 1.5, (H, W, 3))
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    m = BT709_LIMITED.rgb_to_code()
    planes = np.einsum("hwc,kc->khw", rgb.astype(np.float64), m[:3, :3]) + m[:3, 3][:, None, None]
    return np.clip(np.round(planes), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_the_ycbcr_matrix_is_libswscales_to_one_code_value() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p", dst_colorspace=1, dst_color_range=1).to_ndarray()
    assert np.abs(_ycbcr(rgb).astype(int) - ref).max() <= 1


def test_rgb_and_ycbcr_inputs_give_the_same_clip(tmp_path: Path) -> None:
    frames = _frames(10)
    with ClipWriter(tmp_path / "rgb.mp4", W, H, FPS) as w:
        w.write_all(frames)
    with ClipWriter(tmp_path / "ycbcr.mp4", W, H, FPS) as w:
        for f in frames:
            w.write_ycbcr(_ycbcr(f))
    a, b = list(iter_frames(tmp_path / "rgb.mp4")), list(iter_frames(tmp_path / "ycbcr.mp4"))
    assert len(a) == len(b) == 10
    for src, x, y in zip(frames, a, b):
        assert abs(_psnr(src, x) - _psnr(src, y)) < 1.5  # the same fidelity either way
        assert _psnr(src, y) > 40  # and the Y'CbCr path decodes back to the source colours
        assert np.abs(x.astype(int).mean((0, 1)) - y.astype(int).mean((0, 1))).max() < 0.5  # with no colour shift
    info = probe_video(tmp_path / "ycbcr.mp4")
    assert (info.width, info.height, info.num_frames, info.pix_fmt) == (W, H, 10, "yuv444p")
    with av.open(str(tmp_path / "ycbcr.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (int(cc.colorspace), int(cc.color_range)) == (1, 1)  # tagged BT.709, limited range


def test_ycbcr_input_is_checked(tmp_path: Path) -> None:
    with ClipWriter(tmp_path / "x.mp4", W, H, FPS) as w:
        with pytest.raises(ValueError, match=r"uint8 \[3, 48, 64\]"):
            w.write_ycbcr(np.zeros((H, W, 3), np.uint8))
        w.write_ycbcr(np.zeros((3, H, W), np.uint8) + 128)


def test_background_writer_writes_frames_and_chunks_in_order(tmp_path: Path) -> None:
    frames = _frames(12, seed=1)
    path = tmp_path / "bg.mp4"
    with BackgroundClipWriter(path, W, H, FPS, max_items=2) as sink:
        for f in frames[:4]:
            sink.put(f)
        sink.put_ycbcr(np.stack([_ycbcr(f) for f in frames[4:9]]))
        sink.put_ycbcr(np.stack([_ycbcr(f) for f in frames[9:]]))
    assert sink.frames_written == 12
    back = list(iter_frames(path))
    assert len(back) == 12
    # order: each decoded frame is closest to its own source
    for i, got in enumerate(back):
        scores = [_psnr(got, f) for f in frames]
        assert int(np.argmax(scores)) == i


def test_background_writer_error_reaches_the_producer_and_leaves_no_clip(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="frame must be uint8"):
        with BackgroundClipWriter(path, W, H, FPS, max_items=1) as sink:
            sink.put(_frames(1)[0])
            for _ in range(50):  # the bad frame fails on the worker; a later put (or the exit) raises it here
                sink.put(np.zeros((H + 2, W, 3), np.uint8))
    assert not path.exists()
    assert not list(tmp_path.iterdir())  # no temp file either


def test_background_writer_error_on_the_last_item_is_raised_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="frame must be uint8"):
        with BackgroundClipWriter(path, W, H, FPS) as sink:
            sink.put(np.zeros((H, W), np.uint8))
    assert not path.exists()


def test_background_writer_discards_the_clip_when_the_producer_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    with pytest.raises(KeyboardInterrupt):
        with BackgroundClipWriter(path, W, H, FPS) as sink:
            for f in _frames(5):
                sink.put(f)
            raise KeyboardInterrupt
    assert not path.exists() and not list(tmp_path.iterdir())


def test_background_writer_checks_chunk_shape_in_the_producer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[f, 3, 48, 64\]"):
        with BackgroundClipWriter(tmp_path / "x.mp4", W, H, FPS) as sink:
            sink.put_ycbcr(np.zeros((2, H, W, 3), np.uint8))


def test_a_chunk_given_as_a_function_is_fetched_on_the_worker_at_lower_priority(tmp_path: Path) -> None:
    import os
    import threading

    frames = _frames(6, seed=2)
    seen: list[tuple[str, int]] = []

    def fetch() -> np.ndarray:
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, 0)))
        return np.stack([_ycbcr(f) for f in frames])

    base = os.getpriority(os.PRIO_PROCESS, 0)
    with BackgroundClipWriter(tmp_path / "lazy.mp4", W, H, FPS, encoder_nice=3) as sink:
        sink.put_ycbcr(fetch)
    assert seen == [("clip-writer", min(base + 3, 19))]  # the producer never ran it; the worker yields the CPU
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the producer's own priority is untouched
    assert len(list(iter_frames(tmp_path / "lazy.mp4"))) == 6


def test_a_fetched_chunk_of_the_wrong_shape_is_an_error_in_the_producer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[f, 3, 48, 64\]"):
        with BackgroundClipWriter(tmp_path / "x.mp4", W, H, FPS) as sink:
            sink.put_ycbcr(lambda: np.zeros((2, H, W, 3), np.uint8))
    assert not (tmp_path / "x.mp4").exists()


def test_the_clip_is_written_back_while_it_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    calls: list[int] = []
    writeback = ClipWriter.start_writeback

    def spy(self: ClipWriter) -> None:
        calls.append(self._tmp.stat().st_size)
        writeback(self)

    monkeypatch.setattr(ClipWriter, "start_writeback", spy)
    with BackgroundClipWriter(tmp_path / "x.mp4", W, H, FPS, flush_interval_s=0.02) as sink:
        for f in _frames(8):
            sink.put(f)
            time.sleep(0.02)
    assert len(calls) >= 3
    assert calls == sorted(calls) and (tmp_path / "x.mp4").stat().st_size >= calls[-1]
