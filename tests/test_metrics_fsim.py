"""FSIM as DILRAN's evaluation_metrics.fsim computes it: phasepack phase congruency, OpenCV
Scharr (CV_16U) gradient magnitude, FSIM pooling. Hand cases for the pooling and the gradient,
a direct phasepack call for the PC part, an independent transcription of the authors' function,
invariants, degenerate images. (Its speed: benchmarks/bench_timing_goals.py.)"""

from __future__ import annotations

import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
from scipy import ndimage

from funfusean_tf.metrics import MetricInputError
from funfusean_tf.metrics import feature_similarity as fs
from funfusean_tf.metrics.presets import PRESETS


def _smooth(rng, shape, sigma):
    x = ndimage.gaussian_filter(rng.random(shape), sigma)
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(x * 255) / 255  # an 8-bit image / 255, as DILRAN's loader gives


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    a = _smooth(rng, (64, 72), 1.5)
    b = _smooth(rng, (64, 72), 4.0)
    f = np.round((a + b) / 2 * 255) / 255
    return f, a, b


def _phasecong():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from phasepack import phasecong
    return phasecong


def _dilran_fsim_transcribed(pred, true, t1=0.85, t2=160):
    """The authors' function restated step by step with the libraries they call (float32 in)."""
    phasecong = _phasecong()
    pred, true = pred.astype(np.float32), true.astype(np.float32)
    pc_true = np.zeros(true.shape)
    pc_pred = np.zeros(pred.shape)
    out_true = phasecong(true, nscale=4, minWaveLength=6, mult=2, sigmaOnf=0.5978)
    out_pred = phasecong(pred, nscale=4, minWaveLength=6, mult=2, sigmaOnf=0.5978)
    for k in range(6):
        pc_true += out_true[4][k]
        pc_pred += out_pred[4][k]

    def magnitude(img):
        dx = cv2.Scharr(img, cv2.CV_16U, 1, 0)
        dy = cv2.Scharr(img, cv2.CV_16U, 0, 1)
        return np.sqrt(dx**2 + dy**2)

    g_true, g_pred = magnitude(true), magnitude(pred)
    s_pc = (2 * pc_true * pc_pred + t1) / (pc_true**2 + pc_pred**2 + t1)
    s_g = (2 * g_true * g_pred + t2) / (g_true**2 + g_pred**2 + t2)
    weight = np.maximum(pc_true, pc_pred)
    return np.sum(s_pc * s_g * weight) / np.sum(weight)


# --- the pooling formula by hand -------------------------------------------------------------


def test_similarity_by_hand():
    assert fs.fsim_similarity(0.0, 0.0, 1.0) == 1.0
    assert fs.fsim_similarity(1.0, 0.0, 1.0) == pytest.approx(1 / 2)
    assert fs.fsim_similarity(3.0, 1.0, 0.0) == pytest.approx(6 / 10)
    assert fs.fsim_similarity(2.0, 2.0, 160) == 1.0


def test_pooling_by_hand_on_tiny_maps():
    pc1 = np.array([[1.0, 0.0, 0.5]])
    pc2 = np.array([[1.0, 1.0, 0.0]])
    gm1 = np.array([[0.0, 1.0, 2.0]])
    gm2 = np.array([[0.0, 1.0, 0.0]])
    # T1 = T2 = 1: S_pc = [3/3, 1/2, 1/1.25] = [1, 0.5, 0.8]; S_g = [1/1, 3/3, 1/5] = [1, 1, 0.2];
    # weights max(PC) = [1, 1, 0.5]: (1 + 0.5 + 0.8 * 0.2 * 0.5) / 2.5 = 1.58 / 2.5
    assert fs.fsim_pool(pc1, pc2, gm1, gm2, 1.0, 1.0) == pytest.approx(1.58 / 2.5, rel=1e-15)
    assert fs.fsim_pool(pc2, pc1, gm2, gm1, 1.0, 1.0) == pytest.approx(1.58 / 2.5, rel=1e-15)
    # the default constants: only pixel 2 differs from 1 in S_g, (160 / 164)
    s_pc = np.array([1.0, 0.85 / 1.85, 0.85 / 1.1])
    s_g = np.array([1.0, 1.0, 160 / 164])
    expected = np.sum(s_pc * s_g * np.array([1.0, 1.0, 0.5])) / 2.5
    assert fs.fsim_pool(pc1, pc2, gm1, gm2) == pytest.approx(expected, rel=1e-12)


def test_pooling_without_phase_congruency_is_an_error():
    zero = np.zeros((4, 4))
    with pytest.raises(MetricInputError, match="phase congruency"):
        fs.fsim_pool(zero, zero, zero + 1, zero)


# --- the two feature maps ----------------------------------------------------------------------


def test_phase_congruency_is_phasepack_with_dilran_parameters(images, monkeypatch):
    f, a, _ = images
    direct = _phasecong()(a.astype(np.float32), nscale=4, minWaveLength=6, mult=2, sigmaOnf=0.5978)[4]
    assert len(direct) == 6
    np.testing.assert_array_equal(fs.phase_congruency_dilran(a), np.sum(direct, axis=0))
    # and the call itself: the arguments and the float32 input DILRAN's loader produced
    import phasepack

    seen = {}
    original = phasepack.phasecong

    def spy(img, **kwargs):
        seen.update(kwargs, dtype=img.dtype)
        return original(img, **kwargs)

    monkeypatch.setattr(phasepack, "phasecong", spy)
    fs.phase_congruency_dilran(f)
    assert seen == {"nscale": 4, "minWaveLength": 6, "mult": 2, "sigmaOnf": 0.5978, "dtype": np.float32}


def test_scharr_16u_gradient_by_hand():
    # a bright band in columns 3-5 of a [0, 1] image: the rising step gives a derivative of
    # (3 + 10 + 3) * 1 = 16 on both sides of it, the falling step -16, which CV_16U saturates to 0
    img = np.zeros((5, 9))
    img[:, 3:6] = 1.0
    gm = fs.gradient_magnitude_scharr_16u(img)
    assert gm.dtype == np.float32
    np.testing.assert_array_equal(gm, np.tile([0, 0, 16, 16, 0, 0, 0, 0, 0], (5, 1)))
    # the transposed band: the y derivative, same values
    np.testing.assert_array_equal(fs.gradient_magnitude_scharr_16u(img.T), gm.T)


def test_scharr_16u_is_rounded_and_saturated_float32_scharr(images):
    f, a, b = images
    for img in (f, a, b):
        img32 = img.astype(np.float32)
        gx = np.clip(np.rint(cv2.Scharr(img32, cv2.CV_32F, 1, 0)), 0, 65535)
        gy = np.clip(np.rint(cv2.Scharr(img32, cv2.CV_32F, 0, 1)), 0, 65535)
        np.testing.assert_array_equal(fs.gradient_magnitude_scharr_16u(img), np.sqrt(gx**2 + gy**2).astype(np.float32))


# --- FSIM ---------------------------------------------------------------------------------------


def test_fsim_matches_a_transcription_of_dilrans_function(images):
    f, a, b = images
    for source in (a, b):
        assert fs.fsim(f, source) == pytest.approx(_dilran_fsim_transcribed(f, source), rel=1e-12)
    expected = (_dilran_fsim_transcribed(f, a) + _dilran_fsim_transcribed(f, b)) / 2
    assert fs.fusion_fsim(f, a, b) == pytest.approx(expected, rel=1e-12)
    dilran = {m.name: m for m in PRESETS["dilran"].metrics}
    assert dilran["FSIM"].func(f * 255, a * 255, b * 255) == pytest.approx(expected, rel=1e-12)


def test_fsim_identity_symmetry_and_range(images):
    f, a, b = images
    for x in (f, a, b):
        assert fs.fsim(x, x) == pytest.approx(1.0, abs=1e-15)
    for x, y in ((f, a), (f, b), (a, b)):
        value = fs.fsim(x, y)
        assert value == fs.fsim(y, x)
        assert 0.0 < value < 1.0
    assert fs.fusion_fsim(a, a, a) == pytest.approx(1.0, abs=1e-15)
    assert fs.fusion_fsim(f, a, b) == pytest.approx(fs.fusion_fsim(f, b, a), abs=1e-15)


def test_fsim_drops_as_the_image_degrades(images):
    _, a, _ = images
    rng = np.random.default_rng(3)
    mild = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
    strong = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert 1.0 > fs.fsim(a, mild) > fs.fsim(a, strong) > 0.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_images_are_a_clear_error_not_nan(images, value):
    f, a, b = images
    flat = np.full(a.shape, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning from phasepack either
        with pytest.raises(MetricInputError, match="constant"):
            fs.fsim(flat, a)
        with pytest.raises(MetricInputError, match="constant"):
            fs.fsim(a, flat)
        with pytest.raises(MetricInputError, match="constant"):
            fs.fusion_fsim(flat, a, b)
        with pytest.raises(MetricInputError, match="constant"):
            fs.fusion_fsim(f, a, flat)


def test_bad_input_is_rejected(images):
    f, a, _ = images
    with pytest.raises(MetricInputError):
        fs.fsim(f, a[:, :-1])
    with pytest.raises(MetricInputError):
        fs.fsim(np.full(a.shape, np.nan), a)


def test_import_is_lazy_and_the_pyfftw_warning_is_silenced():
    code = (
        "import sys, warnings\n"
        "import numpy as np\n"
        "import funfusean_tf.metrics as M\n"
        "assert 'phasepack' not in sys.modules, 'phasepack imported with the package'\n"
        "x = np.linspace(0, 1, 32 * 32).reshape(32, 32)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    M.fsim(x, x ** 2)\n"
        "assert 'phasepack' in sys.modules\n"
        "assert not [w for w in caught if 'pyfftw' in str(w.message)], [str(w.message) for w in caught]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
