"""The metric suite against the authors' own numbers (MdAFuse's per-image files, FunFuseAn's
MATLAB / Octave toolbox values for pairs 0 and 1). Needs ../shared/data (skipped with a reason
without it; an error under CI=true).

Inputs scored, as the authors scored them: the saved sources ``sources/mri_i.png`` and
``sources/pet_i.png`` through MATLAB ``rgb2gray`` (0-255), and the 8-bit fused PNG
``fused/i.png`` (0-255, or im2double / 255 where the script used [0, 1]).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from funfusean_tf.evaluation import read_grey_as
from funfusean_tf.metrics import (
    correlation_coefficient,
    entropy,
    fusion_mi,
    fusion_ssim_skimage,
    fusion_vif,
    mse,
    ncie,
    piella,
    q_g_liu,
    q_viff,
    rsfe,
    scd,
    standard_deviation,
)

pytestmark = pytest.mark.shared_data

REF = "reference/mdafuse_mr_pet"


@pytest.fixture(scope="module")
def reference(shared_data):
    root = shared_data / REF
    rows = list(csv.DictReader(open(root / "metrics_en_mi_sd_scd_rsfe.csv")))
    csv_ref = {int(r["index"]): {k: float(v) for k, v in r.items() if k != "index"} for r in rows}
    txt_ref = {}
    for line in open(root / "metrics_viff_ssim_cc_mse.txt"):
        parts = line.split()
        if len(parts) == 5 and parts[0].isdigit():
            txt_ref[int(parts[0])] = dict(zip(("VIFF", "SSIM", "CC", "MSE"), map(float, parts[1:])))
    images = {}
    for i in range(42):
        images[i] = (
            read_grey_as(root / "fused" / f"{i}.png", "matlab"),
            read_grey_as(root / "sources" / f"mri_{i}.png", "matlab"),
            read_grey_as(root / "sources" / f"pet_{i}.png", "matlab"),
        )
    return csv_ref, txt_ref, images


def _rel(value, expected):
    return abs(value - expected) / abs(expected)


def test_the_reference_files_hold_42_pairs(reference):
    csv_ref, txt_ref, images = reference
    assert sorted(csv_ref) == list(range(42))
    assert sorted(txt_ref) == list(range(42))


MATLAB_METRICS = {
    "EN": lambda f, a, b: entropy(f),
    "MI": lambda f, a, b: fusion_mi(f, a, b),
    "SD": lambda f, a, b: standard_deviation(f / 255.0, "sum"),
    "SCD": scd,
    "rSFe": rsfe,
}


@pytest.mark.parametrize("name", list(MATLAB_METRICS))
def test_mdafuse_matlab_metrics_match_the_authors_csv_for_all_42_pairs(reference, name):
    csv_ref, _, images = reference
    errors = [_rel(MATLAB_METRICS[name](*images[i]), csv_ref[i][name]) for i in range(42)]
    # the issue asks for 1e-3; the port is exact up to round-off
    assert max(errors) < 1e-9, f"{name}: worst relative error {max(errors):.3g} at pair {int(np.argmax(errors))}"


def test_mdafuse_cc_matches_the_authors_txt_for_all_42_pairs(reference):
    # CC is invariant to the min-max rescaling that turned the float output into the PNG; what
    # is left is the 8-bit quantisation (about 3e-5 relative here).
    _, txt_ref, images = reference
    errors = [_rel(correlation_coefficient(*images[i]), txt_ref[i]["CC"]) for i in range(42)]
    assert max(errors) < 1e-3, f"worst relative error {max(errors):.3g}"


@pytest.mark.slow
def test_mdafuse_vif_ssim_mse_were_scored_on_the_raw_float_output(reference, shared_data):
    """Diagnostic, NOT an acceptance test: why VIF, SSIM and MSE cannot be reproduced from the PNG.

    MdAFuse's test.py scored the network's float output ``fi`` (range about [-0.2, 0.85]),
    then imageio min-max scaled it into the 8-bit PNG, so fi = s * png / 255 + t with unknown
    s, t per image. Fitting s, t to the authors' MSE and SSIM (on the exact [0, 1] float sources
    their script used: PIL convert('L') of the originals, min-max scaled) makes the held-out VIF
    agree within a few percent, and t < 0: the scored image had negative values, which no
    8-bit PNG has. (The system is ill-conditioned, so a few percent is all it can show.)
    """
    from PIL import Image
    from scipy.optimize import least_squares

    from funfusean_tf.data.datasets import named_pairs

    _, txt_ref, images = reference
    pairs = named_pairs("mdafuse_mr_pet", root=shared_data)

    def src(path):
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        return (grey - grey.min()) / (grey.max() - grey.min())

    for i in (0, 20):
        a, b = src(pairs[i].mri), src(pairs[i].pet)
        png = images[i][0] / 255.0
        ref = txt_ref[i]

        def residual(x):
            f = x[0] * png + x[1]
            return [mse(f, a, b) / ref["MSE"] - 1, fusion_ssim_skimage(f, a, b, 2.0) / ref["SSIM"] - 1]

        fit = least_squares(residual, [1.0, -0.18], x_scale=[0.01, 0.01])
        assert np.max(np.abs(fit.fun)) < 1e-6
        scale, offset = fit.x
        assert offset < -0.1 and 0.8 < scale < 1.2
        f = scale * png + offset
        assert _rel(fusion_vif(f, a, b), ref["VIFF"]) < 0.03
        # scored on the PNG itself, MSE and SSIM are far from the authors' values
        f8, a8, b8 = images[i]
        assert _rel(mse(f8 / 255, a8 / 255, b8 / 255), ref["MSE"]) > 0.5


# FunFuseAn Table 1 metrics, pair 0 (sources rgb2gray'ed, fused 8-bit, 0-255 doubles), values
# the authors' MATLAB toolbox gives (from issue 3).
MATLAB_PAIR0 = {"Q_NCIE": 0.8047573768, "Q_VIFF": 0.546520834}

# Q_G and Q_S on pairs 0 and 1 (same inputs), from issue 11: the FunFuseAn repository's own
# `Fusion Metrics/metricXydeas.m` (filter2) and `metricPeilla.m` (sw = 1) with Z. Wang's original
# `ssim_index.m` (filter2 'valid', L = 255), run under GNU Octave. (The pair-0 values of issue 3,
# Q_G 0.8116 and Q_S 0.8181, came from a later copy of Liu's helpers whose
# imfilter(kernel, image, 'conv') calls swap image and kernel; see docs/metrics.md.)
OCTAVE_Q_G_Q_S = {0: (0.5917604819, 0.4212548309), 1: (0.6642678438, 0.4121680510)}


def test_table1_ncie_pair0_matches_matlab(reference):
    f, a, b = reference[2][0]
    assert abs(ncie(f, a, b) - MATLAB_PAIR0["Q_NCIE"]) < 1e-9


def test_table1_viff_pair0_matches_matlab(reference):
    f, a, b = reference[2][0]
    assert abs(q_viff(f, a, b) - MATLAB_PAIR0["Q_VIFF"]) < 1e-8


@pytest.mark.parametrize("pair", sorted(OCTAVE_Q_G_Q_S))
def test_table1_q_g_matches_the_authors_metricxydeas_m(reference, pair):
    f, a, b = reference[2][pair]
    assert abs(q_g_liu(f, a, b) - OCTAVE_Q_G_Q_S[pair][0]) < 1e-6


@pytest.mark.parametrize("pair", sorted(OCTAVE_Q_G_Q_S))
def test_table1_q_s_matches_the_authors_metricpeilla_m(reference, pair):
    # our SSIM maps use float32 Gaussian taps: about 1e-8 from Octave's double precision
    f, a, b = reference[2][pair]
    assert abs(piella(f, a, b, 1) - OCTAVE_Q_G_Q_S[pair][1]) < 1e-6


def test_table1_q_s_pair0_matches_a_numpy_transcription(reference):
    """Q_S on pair 0 cross-checked against an independent direct numpy transcription of
    ssim_index.m / metricPeilla.m (written here, no TF)."""
    from scipy.signal import correlate2d

    f, a, b = reference[2][0]
    h = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    w = np.outer(h, h) / np.outer(h, h).sum()

    def stats(x, y):
        fx = lambda z: correlate2d(z, w, mode="valid")  # noqa: E731
        mx, my = fx(x), fx(y)
        sx, sy, sxy = fx(x * x) - mx**2, fx(y * y) - my**2, fx(x * y) - mx * my
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sx + sy + c2)), sx, sy

    _, sa, sb = stats(a, b)
    zero = (sa + sb) == 0
    sa, sb = sa + 0.5 * zero, sb + 0.5 * zero
    lam = sa / (sa + sb)
    expected = np.mean(lam * stats(f, a)[0] + (1 - lam) * stats(f, b)[0])
    assert piella(f, a, b, 1) == pytest.approx(expected, abs=1e-7)
