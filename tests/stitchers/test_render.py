"""Geometry (crop/scale without distortion) and the compositor's arithmetic: float blends rounded once."""

from __future__ import annotations

import numpy as np
import pytest

from stitchers.compose import Compositor, Layer, fit_geometry

IDENTITY = np.eye(3, 4)


@pytest.mark.parametrize(
    "src, out, crop",
    [
        ((1088, 1920), (1080, 1920), (4, 0, 1080, 1920)),  # generation size → TikTok: crop 4 px each side
        ((1080, 1920), (1080, 1920), (0, 0, 1080, 1920)),
        ((1920, 1088), (1080, 1920), (654, 0, 612, 1088)),  # landscape → portrait: centre crop, then scale up
        ((544, 960), (1080, 1920), (2, 0, 540, 960)),
        ((1024, 1024), (128, 224), (219, 0, 585, 1024)),  # odd margin: the extra pixel goes right
    ],
)
def test_fit_geometry_crops_to_the_output_aspect(src, out, crop) -> None:
    g = fit_geometry(*src, *out)
    assert (g.crop_x, g.crop_y, g.crop_width, g.crop_height) == crop
    # never distorted: the window has the output's aspect ratio to within one source pixel
    assert abs(g.crop_width / g.crop_height - out[0] / out[1]) <= 1 / g.crop_height
    assert g.scales == ((g.crop_width, g.crop_height) != out)


def _planes(h: int, w: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(16, 240, (h, w)).astype(np.uint8) for _ in range(3))


def _out(h: int, w: int) -> tuple[np.ndarray, ...]:
    return np.empty((h, w), np.uint8), np.empty((h // 2, w // 2), np.uint8), np.empty((h // 2, w // 2), np.uint8)


def _box(p: np.ndarray) -> np.ndarray:
    return p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).astype(np.float64).mean(axis=(1, 3))


def test_identity_render_is_a_crop_with_box_subsampled_chroma() -> None:
    src = _planes(40, 36, 1)
    out = _out(40, 32)
    Compositor(fit_geometry(36, 40, 32, 40)).render([Layer(src, IDENTITY, 1.0)], out)
    np.testing.assert_array_equal(out[0], src[0][:, 2:34])
    for c in (1, 2):
        assert np.abs(out[c] - _box(src[c][:, 2:34])).max() <= 0.5 + 1e-9


def test_two_layer_blend_is_computed_in_float_and_rounded_once() -> None:
    a, b = _planes(64, 64, 2), _planes(64, 64, 3)
    ka = np.array([[1.03, 0, 0, -2.2], [0, 0.97, 0.02, 3.1], [0, -0.01, 1.02, -1.7]])
    kb = np.array([[0.98, 0, 0, 1.4], [0, 1.01, 0, -0.6], [0, 0.03, 0.99, 0.9]])
    w = 0.3183
    out = _out(64, 64)
    Compositor(fit_geometry(64, 64, 64, 64)).render([Layer(a, ka, 1 - w), Layer(b, kb, w)], out)
    exact = (1 - w) * (ka[0, 0] * a[0] + ka[0, 3]) + w * (kb[0, 0] * b[0] + kb[0, 3])
    assert np.abs(out[0] - exact).max() <= 0.5 + 1e-4
    # The same blend done the uint8 way (round each corrected frame, then blend, then round) is off by one
    # in places; this is what "blend in float" protects against.
    naive = np.rint((1 - w) * np.rint(ka[0, 0] * a[0] + ka[0, 3]) + w * np.rint(kb[0, 0] * b[0] + kb[0, 3]))
    assert np.abs(naive - exact).max() > 0.5
    sub = [_box(p) for p in a], [_box(p) for p in b]
    for c in (1, 2):
        exact_c = sum(wt * (k[c, 0] * s[0] + k[c, 1] * s[1] + k[c, 2] * s[2] + k[c, 3]) for wt, k, s in ((1 - w, ka, sub[0]), (w, kb, sub[1])))
        # chroma is subsampled per source (rounded) before combining: within one level
        assert np.abs(out[c] - exact_c).max() <= 1.0 + 1e-4


def test_three_layer_and_cross_term_matrices_take_the_general_path() -> None:
    layers_src = [_planes(32, 32, s) for s in (4, 5, 6)]
    k601 = np.array([[1.0, 0.1, 0.19, -12.0], [0.0, 0.99, -0.11, 8.0], [0.0, -0.07, 0.98, 11.0]])  # luma uses chroma
    weights = (0.2, 0.5, 0.3)
    out = _out(32, 32)
    Compositor(fit_geometry(32, 32, 32, 32)).render([Layer(s, k601, w) for s, w in zip(layers_src, weights)], out)
    exact = sum(w * (k601[0, 0] * s[0] + k601[0, 1] * s[1] + k601[0, 2] * s[2] + k601[0, 3]) for s, w in zip(layers_src, weights))
    assert np.abs(out[0] - np.clip(exact, 0, 255)).max() <= 0.5 + 1e-3


def test_scaling_geometry_resizes_each_plane() -> None:
    flat = tuple(np.full((80, 60), v, np.uint8) for v in (100, 120, 140))
    out = _out(32, 16)
    g = fit_geometry(60, 80, 16, 32)
    assert g.scales
    Compositor(g).render([Layer(flat, IDENTITY, 1.0)], out)
    assert out[0].shape == (32, 16) and (out[0] == 100).all() and (out[1] == 120).all() and (out[2] == 140).all()


def test_odd_output_size_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        Compositor(fit_geometry(64, 64, 63, 64))


@pytest.mark.parametrize("gain, offset", [(1.07, 3.3), (0.93, -20.4), (1.2, -0.2), (0.8, 40.0)])
def test_single_layer_correction_rounds_once_and_saturates(gain: float, offset: float) -> None:
    y = np.arange(256, dtype=np.uint8).repeat(2).reshape(16, 32)  # every code value, including the extremes
    flat = np.full((16, 32), 128, np.uint8)
    m = np.array([[gain, 0, 0, offset], [0, 1, 0, 0], [0, 0, 1, 0]], float)
    out = _out(16, 32)
    Compositor(fit_geometry(32, 16, 32, 16)).render([Layer((y, flat, flat), m, 1.0)], out)
    np.testing.assert_array_equal(out[0], np.clip(np.rint(gain * y.astype(np.float64) + offset), 0, 255).astype(np.uint8))
