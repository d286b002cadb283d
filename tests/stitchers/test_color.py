"""Colour statistics in Lab, the fitted colour-hold transform, and its two appliers (RGB and YCbCr planes)."""

from __future__ import annotations

import numpy as np
import pytest

from stitchers.color import (
    BT709_LIMITED,
    ColorStats,
    ColorTransform,
    YCbCrSpace,
    apply_color_hold,
    color_stats,
    color_transform,
    lab_to_rgb,
    lab_transfer,
    rgb_to_lab,
    ycbcr_space_for,
)
from stitchers.compose import Compositor, Layer, fit_geometry
from tests.media_video import scene


def natural_image(seed: int = 0, h: int = 120, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = scene(w, h) + rng.normal(0, 5, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def drift(img: np.ndarray, gain=(1.0, 1.0, 1.0), offset: float = 0.0, saturation: float = 1.0) -> np.ndarray:
    f = img.astype(np.float64) * np.asarray(gain) + offset
    grey = f.mean(axis=-1, keepdims=True)
    f = grey + (f - grey) * saturation
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


DRIFTS = [
    pytest.param(dict(gain=(1.08, 1.0, 0.92)), id="warmer"),
    pytest.param(dict(offset=12.0), id="brighter"),
    pytest.param(dict(gain=(0.9, 1.0, 1.1), offset=5.0, saturation=0.85), id="cool-flat"),
    pytest.param(dict(gain=(1.05, 1.02, 0.95), offset=-8.0, saturation=1.15), id="dark-saturated"),
]


def test_lab_of_known_colours() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8))
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert lab[1] == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert lab[3] == pytest.approx([32.30, 79.19, -107.86], abs=0.05)
    rgb = np.random.default_rng(1).integers(0, 256, (500, 3)).astype(np.uint8)
    assert lab_to_rgb(rgb_to_lab(rgb)) == pytest.approx(rgb.astype(np.float64), abs=1e-6)
    assert rgb_to_lab(rgb.astype(np.float64)) == pytest.approx(rgb_to_lab(rgb), abs=1e-9)


def test_color_stats_of_flat_and_mixed_frames() -> None:
    flat = np.full((40, 30, 3), (200, 150, 120), np.uint8)
    s = color_stats(flat)
    assert s.mean == pytest.approx(rgb_to_lab(np.array([200, 150, 120], np.uint8)))
    assert s.std == pytest.approx([0, 0, 0], abs=1e-6)
    half = flat.copy()
    half[:, 15:] = (20, 40, 60)
    s2 = color_stats(half)
    a, b = rgb_to_lab(np.array([[200, 150, 120], [20, 40, 60]], np.uint8))
    assert s2.mean == pytest.approx((a + b) / 2)
    assert s2.std == pytest.approx(np.abs(a - b) / 2)
    # region restricts; stacks and iterables agree
    assert color_stats(half, region=(slice(None), slice(0, 15))).mean == pytest.approx(a)
    frames = np.stack([flat, half])
    assert color_stats(frames).mean == pytest.approx(color_stats(iter(frames)).mean)
    with pytest.raises(ValueError):
        color_stats(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        color_stats([])
    assert ColorStats.from_dict(s2.to_dict()).mean == pytest.approx(s2.mean)


def test_equal_stats_or_zero_strength_is_no_correction() -> None:
    img = natural_image()
    s = color_stats(img)
    assert color_transform(s, s, 1.0).is_identity
    other = color_stats(drift(img, offset=20))
    assert color_transform(other, s, 0.0).is_identity
    assert not color_transform(other, s, 0.5).is_identity
    np.testing.assert_array_equal(apply_color_hold(img, other, s, 0.0), img)


@pytest.mark.parametrize("kind", DRIFTS)
def test_colour_hold_pulls_a_drifted_image_back_to_the_reference(kind) -> None:
    ref = natural_image()
    drifted = drift(ref, **kind)
    r, d = color_stats(ref), color_stats(drifted)
    before = d.delta_e(r)
    assert before > 4.0  # the drift is visible
    full = color_stats(apply_color_hold(drifted, d, r, 1.0))
    assert full.delta_e(r) < 0.6
    assert full.std == pytest.approx(r.std, rel=0.2, abs=0.8)
    half = color_stats(apply_color_hold(drifted, d, r, 0.5))
    assert 0.35 * before < half.delta_e(r) < 0.65 * before
    # The fitted transform tracks the exact per-pixel Lab transfer closely.
    exact = lab_transfer(rgb_to_lab(drifted), d, r, 1.0)
    err = np.linalg.norm(rgb_to_lab(apply_color_hold(drifted, d, r, 1.0)) - exact, axis=-1)
    assert err.mean() < 1.5


def test_apply_color_hold_shapes_and_types() -> None:
    img = natural_image()
    r, d = color_stats(img), color_stats(drift(img, offset=10))
    stack = np.stack([img, img[::-1]])
    out = apply_color_hold(stack, d, r, 0.8)
    assert out.shape == stack.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], apply_color_hold(img[::-1], d, r, 0.8))
    with pytest.raises(ValueError, match="uint8"):
        apply_color_hold(img.astype(np.float32), d, r, 0.8)
    with pytest.raises(ValueError, match="strength"):
        apply_color_hold(img, d, r, 1.5)


def test_transform_is_separable_so_the_stitcher_can_use_luts() -> None:
    img = natural_image()
    t = color_transform(color_stats(drift(img, gain=(1.1, 0.95, 0.9), offset=6)), color_stats(img), 1.0)
    m = t.in_space(BT709_LIMITED)
    assert abs(m[0, 1]) < 1e-9 and abs(m[0, 2]) < 1e-9  # luma from luma only
    assert abs(m[1, 0]) < 1e-9 and abs(m[2, 0]) < 1e-9  # chroma from chroma only
    with pytest.raises(ValueError):
        ColorTransform(np.array([[1, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], float))


def _to_planes(rgb: np.ndarray, space: YCbCrSpace) -> tuple[np.ndarray, ...]:
    m = space.rgb_to_code()
    codes = rgb.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    return tuple(np.clip(np.rint(codes[..., c]), 0, 255).astype(np.uint8) for c in range(3))


def _from_420(planes: tuple[np.ndarray, ...]) -> np.ndarray:
    y = planes[0].astype(np.float64)
    u = planes[1].repeat(2, 0).repeat(2, 1).astype(np.float64)
    v = planes[2].repeat(2, 0).repeat(2, 1).astype(np.float64)
    m = BT709_LIMITED.code_to_rgb()
    return np.stack([y, u, v], axis=-1) @ m[:3, :3].T + m[:3, 3]


@pytest.mark.parametrize("space", [BT709_LIMITED, ycbcr_space_for(5, 1), ycbcr_space_for(1, 2)], ids=["bt709-tv", "bt601-tv", "bt709-pc"])
def test_stitcher_planes_path_gives_the_same_colours_as_the_rgb_function(space: YCbCrSpace) -> None:
    """What the generator does to a tail (RGB) and what the stitcher does to frames (YCbCr planes) must agree."""
    img = natural_image(h=64, w=64)
    img = np.repeat(np.repeat(img[::2, ::2], 2, 0), 2, 1)  # 2×2-flat so 4:2:0 subsampling loses nothing
    d, r = color_stats(drift(img, gain=(1.06, 1.0, 0.93), offset=-6)), color_stats(img)
    t = color_transform(d, r, 0.8)
    want = apply_color_hold(img, d, r, 0.8).astype(np.float64)
    out = (np.empty((64, 64), np.uint8), np.empty((32, 32), np.uint8), np.empty((32, 32), np.uint8))
    Compositor(fit_geometry(64, 64, 64, 64)).render([Layer(_to_planes(img, space), t.in_space(space), 1.0)], out)
    got = _from_420(out)
    assert np.abs(got - want).mean() < 1.0
    assert np.abs(got - want).max() < 4.5  # 8-bit YCbCr round trips cost a couple of levels at most


def test_untagged_video_is_read_as_bt601_like_libswscale() -> None:
    assert ycbcr_space_for(2, 0).kr == pytest.approx(0.299)
    assert ycbcr_space_for(1, 0).kr == pytest.approx(0.2126)
    assert not ycbcr_space_for(1, 0).full_range and ycbcr_space_for(1, 2).full_range
    assert ycbcr_space_for(1, 0, "yuvj444p").full_range
    # BT.709 limited codes of pure white / black / red
    m = BT709_LIMITED.rgb_to_code()
    assert (m @ [255, 255, 255, 1])[:3] == pytest.approx([235, 128, 128])
    assert (m @ [0, 0, 0, 1])[:3] == pytest.approx([16, 128, 128])
    assert (m @ [255, 0, 0, 1])[:3] == pytest.approx([16 + 219 * 0.2126, 128 - 112 * 0.2126 / 0.9278, 240.0])
