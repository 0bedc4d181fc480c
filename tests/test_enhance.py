"""Energy-based colour enhancement (an interpretation of MdAFuse's): invariants, not stored outputs."""

from __future__ import annotations

import numpy as np
import pytest

from funfusean_tf.enhance import enhance_colour, load_rgb, local_energy, rgb_to_ycbcr, ycbcr_to_rgb

# ITU-R BT.601 luma weights, written here independently of the module under test.
_LUMA = np.array([0.299, 0.587, 0.114])


def _luma(rgb):
    return rgb @ _LUMA


def _pseudo_colour(rng, shape=(40, 48)):
    """A 'hot'-like pseudo-colour PET: a bright blob on a dim background, R rising first, then G, then B."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-((yy - 14.0) ** 2 + (xx - 30.0) ** 2) / (2 * 5.0**2))
    level = np.clip(0.1 + 0.9 * blob + 0.02 * rng.standard_normal(shape), 0, 1)
    rgb = np.stack([np.clip(3 * level, 0, 1), np.clip(3 * level - 1, 0, 1), np.clip(3 * level - 2, 0, 1)], -1)
    return rgb, level


def test_gain_zero_gives_the_grey_fused_image(rng):
    fused = rng.random((40, 48))
    colour, _ = _pseudo_colour(rng)
    out = enhance_colour(fused, colour, gain=0.0)
    assert out.shape == (40, 48, 3)
    for k in range(3):
        np.testing.assert_allclose(out[..., k], fused, atol=1e-12)


@pytest.mark.parametrize("gain, exponent, sigma", [(1.0, 1.0, 3.0), (4.0, 0.5, 0.0), (25.0, 2.0, 1.5)])
def test_output_luma_is_the_fused_image_and_rgb_stays_in_range(rng, gain, exponent, sigma):
    fused = rng.random((40, 48))
    fused[0, :5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # the cube's black and white ends leave no room for colour
    colour, _ = _pseudo_colour(rng)
    out = enhance_colour(fused, colour, sigma=sigma, gain=gain, exponent=exponent)
    np.testing.assert_allclose(_luma(out), fused, atol=1e-9)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # a large gain pushes many pixels to the cube's surface, and colour is really there
    _, cb, cr = rgb_to_ycbcr(out)
    assert np.hypot(cb, cr).max() > 0.05


def test_chroma_is_larger_where_the_functional_energy_is_larger():
    # Two halves with the SAME functional colour direction and chroma but different intensity:
    # the chroma of the input is identical, so any difference comes from the energy weighting.
    h, w = 32, 64
    y = np.where(np.arange(w)[None, :] < w // 2, 0.25, 0.6) * np.ones((h, 1))
    cb, cr = -0.08 * np.ones((h, w)), 0.12 * np.ones((h, w))
    functional = ycbcr_to_rgb(y, cb, cr)
    assert functional.min() >= 0 and functional.max() <= 1
    fused = np.full((h, w), 0.5)  # mid-grey luma: no gamut limit for these chroma values
    out = enhance_colour(fused, functional, sigma=2.0, gain=1.0, exponent=1.0)
    _, out_cb, out_cr = rgb_to_ycbcr(out)
    chroma = np.hypot(out_cb, out_cr)
    dim, bright = chroma[:, 4 : w // 2 - 8].mean(), chroma[:, w // 2 + 8 : -4].mean()
    assert bright > 2.0 * dim  # energy ~ I**2: (0.6 / 0.25)**2 = 5.8 away from the boundary
    np.testing.assert_allclose(bright, np.hypot(0.08, 0.12), rtol=0.02)  # normalised energy ~ 1 there
    # the hue is the functional image's: Cb : Cr kept wherever there is colour
    np.testing.assert_allclose(out_cb / out_cr, -0.08 / 0.12, rtol=1e-6)
    # larger exponent: colour concentrates further on the energetic half
    sharper = enhance_colour(fused, functional, sigma=2.0, gain=1.0, exponent=3.0)
    _, s_cb, s_cr = rgb_to_ycbcr(sharper)
    s_chroma = np.hypot(s_cb, s_cr)
    assert s_chroma[:, 4 : w // 2 - 8].mean() < dim


def test_local_energy_smoothing_and_normalisation():
    image = np.zeros((21, 21))
    image[10, 10] = 2.0
    sharp = local_energy(image, sigma=0.0)
    assert sharp.max() == 1.0 and np.count_nonzero(sharp) == 1
    smooth = local_energy(image, sigma=2.0)
    assert smooth.max() == pytest.approx(1.0) and smooth[10, 10] == smooth.max()
    assert smooth[10, 14] < smooth[10, 12] < smooth[10, 10]  # a Gaussian falling off from the peak
    assert np.count_nonzero(local_energy(np.zeros((5, 5)))) == 0


def test_ycbcr_round_trip_and_grey_has_no_chroma(rng):
    rgb = rng.random((6, 7, 3))
    y, cb, cr = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(y, _luma(rgb), atol=1e-12)
    np.testing.assert_allclose(ycbcr_to_rgb(y, cb, cr), rgb, atol=1e-12)
    grey = np.repeat(rng.random((6, 7, 1)), 3, axis=-1)
    _, cb, cr = rgb_to_ycbcr(grey)
    assert np.abs(cb).max() < 1e-12 and np.abs(cr).max() < 1e-12


def test_scale_modes_uint8_input_and_errors(rng, tmp_path):
    colour, level = _pseudo_colour(rng)
    raw = rng.random((40, 48)) * 1.4 - 0.2  # a network's raw range, about [-0.2, 1.2]
    clipped = enhance_colour(raw, colour)
    np.testing.assert_allclose(_luma(clipped), np.clip(raw, 0, 1), atol=1e-9)
    scaled = enhance_colour(raw, colour, scale="minmax")
    np.testing.assert_allclose(_luma(scaled), (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-9)
    as_bytes = (colour * 255).round().astype(np.uint8)
    np.testing.assert_allclose(enhance_colour(level, as_bytes), enhance_colour(level, as_bytes / 255.0), atol=1e-12)
    with_intensity = enhance_colour(level, colour, intensity=level)
    np.testing.assert_allclose(_luma(with_intensity), level, atol=1e-9)

    from PIL import Image

    Image.fromarray(as_bytes).save(tmp_path / "pet.png")
    np.testing.assert_allclose(load_rgb(tmp_path / "pet.png"), as_bytes / 255.0)
    with pytest.raises(FileNotFoundError):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="RGB"):
        enhance_colour(level, level)
    with pytest.raises(ValueError, match="differ in size"):
        enhance_colour(level[:-1], colour)
    with pytest.raises(ValueError, match="gain"):
        enhance_colour(level, colour, gain=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        enhance_colour(level, colour, sigma=-1.0)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        enhance_colour(level, colour * 2.0)
    with pytest.raises(ValueError, match="NaN"):
        enhance_colour(np.full((40, 48), np.nan), colour)


# --------------------------------------------------------------------------------------------
# The YCbCr colour transfer (DILRAN's paper and most MRI-PET papers; FIDELITY.md L12)

def test_ycbcr_colour_of_the_functional_luma_gives_back_the_functional_image(rng):
    """Y = the functional image's own luma: the transfer is the identity (a YCbCr round trip)."""
    from funfusean_tf.enhance import ycbcr_colour

    colour, _ = _pseudo_colour(rng)
    np.testing.assert_allclose(ycbcr_colour(_luma(colour), colour), colour, atol=1e-12)


def test_ycbcr_colour_keeps_the_fused_luma_and_the_functional_chroma_where_nothing_clips(rng):
    from funfusean_tf.enhance import ycbcr_colour

    colour, _ = _pseudo_colour(rng)
    fused = rng.random((40, 48))
    out = ycbcr_colour(fused, colour)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Chroma by hand (full-range BT.601: Cb = (B - Y) / 1.772, Cr = (R - Y) / 1.402), then the
    # RGB the transfer should give before clipping.
    y_f = _luma(colour)
    cb, cr = (colour[..., 2] - y_f) / 1.772, (colour[..., 0] - y_f) / 1.402
    red, blue = fused + 1.402 * cr, fused + 1.772 * cb
    green = (fused - 0.299 * red - 0.114 * blue) / 0.587
    unclipped = np.stack([red, green, blue], -1)
    inside = np.all((unclipped >= 0) & (unclipped <= 1), axis=-1)
    assert inside.mean() > 0.3  # the check below covers a good share of the image
    np.testing.assert_allclose(out[inside], unclipped[inside], atol=1e-12)
    np.testing.assert_allclose(_luma(out)[inside], fused[inside], atol=1e-12)
    np.testing.assert_allclose(out[~inside], np.clip(unclipped[~inside], 0, 1), atol=1e-12)


def test_ycbcr_colour_of_a_grey_functional_image_is_grey(rng):
    from funfusean_tf.enhance import ycbcr_colour

    fused = rng.random((16, 20))
    grey = np.repeat(rng.random((16, 20))[..., None], 3, axis=-1)
    out = ycbcr_colour(fused, grey)
    for k in range(3):
        np.testing.assert_allclose(out[..., k], fused, atol=1e-12)


def test_colourise_modes_and_errors(rng):
    from funfusean_tf.enhance import colourise

    colour, _ = _pseudo_colour(rng)
    grey = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    for mode in ("ycbcr", "energy"):
        out = colourise(grey, colour, mode)
        assert out.dtype == np.uint8 and out.shape == (40, 48, 3)
    with pytest.raises(ValueError, match="colour mode"):
        colourise(grey, colour, "jet")
    with pytest.raises(ValueError, match="differ in size"):
        colourise(grey[:10], colour, "ycbcr")
