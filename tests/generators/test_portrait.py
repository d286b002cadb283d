"""Portrait ingest: reading any image, framing on the face without stretching, warnings and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import generators.portrait as portrait_mod
from generators.portrait import (
    FACE_CENTER_Y_FRAC,
    FACE_CENTER_Y_TOLERANCE,
    MIN_JPEG_QUALITY,
    detect_face,
    estimate_jpeg_quality,
    face_detector_unavailable_reason,
    prepare_portrait,
)
from orchestrator.errors import MediaError
from tests.media_image import astronaut_or_skip, disc_extent, draw_circle_image, draw_face_portrait, save_image

needs_detector = pytest.mark.skipif(
    face_detector_unavailable_reason() is not None,
    reason=f"no Haar face detector here: {face_detector_unavailable_reason()}",
)


def _fixed_face(monkeypatch: pytest.MonkeyPatch, box: tuple[int, int, int, int] | None) -> None:
    """Make the detector report ``box`` (source pixels), so framing is tested on any OpenCV."""
    monkeypatch.setattr(portrait_mod, "detect_face", lambda rgb: box)


# -- reading -------------------------------------------------------------------------

def test_output_shape_and_source_size(tmp_path: Path) -> None:
    drawn = draw_face_portrait(640, 800)
    path = save_image(drawn.image, tmp_path / "p.png")
    prepared = prepare_portrait(path, 96, 160)
    assert prepared.image.shape == (160, 96, 3)
    assert prepared.image.dtype == np.uint8
    assert prepared.source_size == (640, 800)
    assert not any("small" in w for w in prepared.warnings)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_reads_common_formats(tmp_path: Path, suffix: str) -> None:
    drawn = draw_face_portrait(600, 700)
    path = save_image(drawn.image, tmp_path / f"p{suffix}", quality=95 if suffix != ".png" else None)
    prepared = prepare_portrait(path, 120, 160)
    # Same framing whatever the container: compare with the PNG.
    reference = prepare_portrait(save_image(drawn.image, tmp_path / "ref.png"), 120, 160)
    assert np.abs(prepared.image.astype(int) - reference.image.astype(int)).mean() < 3.0


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    upright = draw_face_portrait(520, 760).image
    # Store the pixels turned a quarter left, tagged "rotate 90° clockwise to display" (orientation 6).
    stored = np.ascontiguousarray(np.rot90(upright, 1))
    path = save_image(stored, tmp_path / "rotated.jpg", quality=95, exif_orientation=6)
    with Image.open(path) as im:
        assert np.asarray(ImageOps.exif_transpose(im)).shape == upright.shape  # the fixture means what it says
    prepared = prepare_portrait(path, 96, 160)
    reference = prepare_portrait(save_image(upright, tmp_path / "upright.png"), 96, 160)
    assert prepared.source_size == (520, 760)
    assert np.abs(prepared.image.astype(int) - reference.image.astype(int)).mean() < 3.0


def test_rgba_is_composited_not_black(tmp_path: Path) -> None:
    drawn = draw_face_portrait(600, 800)
    alpha = np.full(drawn.image.shape[:2], 255, np.uint8)
    alpha[:, :150] = 0  # a transparent strip on the left
    path = save_image(drawn.image, tmp_path / "cutout.png", alpha=alpha)
    with Image.open(path) as im:
        assert im.mode == "RGBA"
    prepared = prepare_portrait(path, 600, 800)
    assert prepared.image.shape == (800, 600, 3)
    left = prepared.image[:, :140].reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(left - np.array(portrait_mod.TRANSPARENT_BACKGROUND)) < 3)
    assert any("transparent" in w for w in prepared.warnings)


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "CMYK"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    drawn = draw_face_portrait(520, 700)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = save_image(drawn.image, tmp_path / f"m{suffix}", mode=mode if mode != "I;16" else "L", quality=95 if suffix == ".jpg" else None)
    if mode == "I;16":
        grey16 = (np.asarray(Image.open(path)).astype(np.uint16) * 257)
        Image.fromarray(grey16).save(path)  # uint16 → mode I;16
    with Image.open(path) as im:
        assert im.mode == mode
    prepared = prepare_portrait(path, 96, 128)
    assert prepared.image.shape == (128, 96, 3) and prepared.image.dtype == np.uint8
    assert 40 < prepared.image.mean() < 220  # not black, not blown out


# -- failures ------------------------------------------------------------------------

def test_missing_file_is_a_media_error(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.png"
    with pytest.raises(MediaError) as err:
        prepare_portrait(missing, 96, 160)
    assert err.value.exit_code == 3
    assert str(missing) in str(err.value)
    assert "portrait:" in str(err.value)  # says where to fix it


@pytest.mark.parametrize("content", [b"", b"this is not an image at all" * 10, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4])
def test_corrupt_file_is_a_media_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        prepare_portrait(path, 96, 160)
    assert err.value.exit_code == 3 and str(path) in str(err.value)


def test_truncated_jpeg_is_a_media_error(tmp_path: Path) -> None:
    path = save_image(draw_face_portrait(600, 800, noise=4).image, tmp_path / "full.jpg", quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MediaError, match="damaged or truncated"):
        prepare_portrait(cut, 96, 160)


def test_folder_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="folder"):
        prepare_portrait(tmp_path, 96, 160)


# -- warnings ------------------------------------------------------------------------

def test_small_image_warns(tmp_path: Path) -> None:
    path = save_image(draw_face_portrait(300, 420).image, tmp_path / "small.png")
    prepared = prepare_portrait(path, 96, 160)
    assert any("under 512 px" in w and "300×420" in w for w in prepared.warnings)


def test_no_face_warns(tmp_path: Path) -> None:
    path = save_image(draw_circle_image(700, 900, (350, 450), 120), tmp_path / "disc.png")
    prepared = prepare_portrait(path, 96, 160)
    assert prepared.face_box is None
    assert any("face" in w and "centre" in w for w in prepared.warnings)


@pytest.mark.parametrize("quality", [15, 30, 50, 75, 90, 97])
def test_jpeg_quality_estimate(tmp_path: Path, quality: int) -> None:
    path = save_image(draw_face_portrait(256, 256, noise=3).image, tmp_path / "q.jpg", quality=quality)
    with Image.open(path) as im:
        assert abs(estimate_jpeg_quality(im) - quality) <= 2
    with Image.open(save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "q.png")) as im:
        assert estimate_jpeg_quality(im) is None


def test_heavy_jpeg_compression_warns(tmp_path: Path) -> None:
    image = draw_face_portrait(600, 800, noise=3).image
    low = prepare_portrait(save_image(image, tmp_path / "low.jpg", quality=35), 96, 160)
    high = prepare_portrait(save_image(image, tmp_path / "high.jpg", quality=92), 96, 160)
    assert any("JPEG-compressed" in w and "quality 35" in w for w in low.warnings)
    assert not any("JPEG" in w for w in high.warnings)
    assert MIN_JPEG_QUALITY == 60


# -- framing -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "src_size, out_size",
    [((900, 500), (96, 160)), ((400, 1200), (96, 160)), ((700, 700), (160, 96)), ((500, 900), (128, 128))],
)
def test_framing_never_stretches(tmp_path: Path, src_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    w, h = src_size
    radius = 0.3 * min(w, h)
    path = save_image(draw_circle_image(w, h, (w / 2, h / 2), radius), tmp_path / "disc.png")
    prepared = prepare_portrait(path, *out_size)
    assert prepared.image.shape == (out_size[1], out_size[0], 3)
    _, _, disc_w, disc_h = disc_extent(prepared.image)
    assert abs(disc_w - disc_h) <= 2, f"the disc came out {disc_w}×{disc_h}"


def test_framing_never_stretches_when_padding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A "face" hugging the top-left corner forces the window past two edges.
    path = save_image(draw_circle_image(800, 600, (90, 80), 60), tmp_path / "corner.png")
    _fixed_face(monkeypatch, (30, 20, 120, 120))
    prepared = prepare_portrait(path, 96, 160)
    _, _, disc_w, disc_h = disc_extent(prepared.image)
    assert abs(disc_w - disc_h) <= 2


def test_face_is_centred_with_headroom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A wide photo with the face well right of centre and small in the frame.
    drawn = draw_face_portrait(1600, 1000, face_center=(1150, 430), face_width=150)
    path = save_image(drawn.image, tmp_path / "wide.png")
    box = (1075, 355, 150, 150)
    _fixed_face(monkeypatch, box)
    prepared = prepare_portrait(path, 270, 480)
    fx, fy, fw, fh = prepared.face_box
    assert abs(fx + fw / 2 - 135) <= 2
    assert abs(fy + fh / 2 - FACE_CENTER_Y_FRAC * 480) <= 2
    assert abs(fw - fh) <= 1  # square in, square out
    assert 0.18 <= fh / 480 <= 0.5  # a talking-head size, not a speck
    assert not any("blurred extension" in w for w in prepared.warnings)


def test_padding_uses_a_blurred_edge_not_black(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = draw_face_portrait(700, 700, face_center=(350, 130), face_width=200)
    path = save_image(drawn.image, tmp_path / "high.png")
    _fixed_face(monkeypatch, (250, 30, 200, 200))
    prepared = prepare_portrait(path, 96, 160)
    assert any("blurred extension" in w for w in prepared.warnings)
    top_rows = prepared.image[:6].reshape(-1, 3)
    assert top_rows.mean() > 40 and (top_rows.max(axis=1) > 20).all()  # never black bars
    # and the face is still lower than the very top: headroom was made
    fx, fy, fw, fh = prepared.face_box
    assert fy > 0


def test_no_face_frames_the_centre(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_image(draw_circle_image(1000, 600, (500, 300), 100), tmp_path / "disc.png")
    _fixed_face(monkeypatch, None)
    prepared = prepare_portrait(path, 96, 160)
    cx, cy, _, _ = disc_extent(prepared.image)
    assert abs(cx - 48) <= 1.5 and abs(cy - 80) <= 1.5


@needs_detector
def test_haar_finds_the_drawn_face(tmp_path: Path) -> None:
    drawn = draw_face_portrait(1200, 900, face_center=(820, 380), face_width=220)
    box = detect_face(drawn.image)
    assert box is not None
    x, y, w, h = box
    assert abs(x + w / 2 - 820) < 25 and abs(y + h / 2 - drawn.face_center[1]) < 30
    prepared = prepare_portrait(save_image(drawn.image, tmp_path / "face.png"), 180, 320)
    fx, fy, fw, fh = prepared.face_box
    assert abs(fx + fw / 2 - 90) <= 3
    # Full height is used, so the face sits inside the headroom band rather than being padded to the exact spot.
    assert abs(fy + fh / 2 - FACE_CENTER_Y_FRAC * 320) <= FACE_CENTER_Y_TOLERANCE * 320 + 1
    assert prepared.warnings == ()


@needs_detector
def test_real_photo_is_framed_on_the_face(tmp_path: Path) -> None:
    photo = astronaut_or_skip()
    box = detect_face(photo)
    assert box is not None
    x, y, w, h = box
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 180  # her face, not the flag or the helmet
    prepared = prepare_portrait(save_image(photo, tmp_path / "astronaut.png"), 270, 480)
    fx, fy, fw, fh = prepared.face_box
    assert abs(fx + fw / 2 - 135) <= 8
    assert fy + fh / 2 < 0.5 * 480  # face in the upper half, with headroom above
