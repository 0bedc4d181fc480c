"""FMI (the FunFuseAn authors' fmi.m): the vectorised port against a line-by-line loop
transcription of fmi.m, hand-derived cases, invariants and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from funfusean_tf.metrics import MetricInputError, fmi, fmi_map


def _window_score(src, fus, r):
    """fmi.m's body for one source window against one fused window, literally (loops and all).
    Returns (score, the fused window as fmi.m leaves it)."""
    side = 2 * r + 1
    l = side * side
    if np.all(src == fus):
        return 1.0, fus

    def normalise(s):
        hi, lo = s.max(), s.min()
        return np.ones((side, side)) if hi == lo else (s - lo) / (hi - lo)

    src, fus = normalise(src), normalise(fus)
    a_pdf = src.flatten(order="F") / src.sum()
    f_pdf = fus.flatten(order="F") / fus.sum()
    a_cdf, f_cdf = np.zeros(l), np.zeros(l)
    a_cdf[0], f_cdf[0] = a_pdf[0], f_pdf[0]
    for i in range(1, l):
        a_cdf[i] = a_pdf[i] + a_cdf[i - 1]
        f_cdf[i] = f_pdf[i] + f_cdf[i - 1]
    a_t, f_t = a_pdf - a_pdf.mean(), f_pdf - f_pdf.mean()
    c = 0.0 if np.sum(a_t * f_t) == 0 else np.sum(a_t * f_t) / np.sqrt(np.sum(a_t * a_t) * np.sum(f_t * f_t))
    e_a = e2_a = e_f = e2_f = 0.0
    for i in range(1, l + 1):
        e_a += i * a_pdf[i - 1]
        e2_a += i * i * a_pdf[i - 1]
        e_f += i * f_pdf[i - 1]
        e2_f += i * i * f_pdf[i - 1]
    a_sd, f_sd = np.sqrt(max(e2_a - e_a**2, 0.0)), np.sqrt(max(e2_f - e_f**2, 0.0))
    up = lambda x, y: 0.5 * (x + y - abs(x - y))  # noqa: E731
    lo = lambda x, y: 0.5 * (x + y - 1 + abs(x + y - 1))  # noqa: E731
    bound = up if c >= 0 else lo
    if (c >= 0 and (c == 0 or a_sd == 0 or f_sd == 0)) or (c < 0 and (a_sd == 0 or f_sd == 0)):
        weight = 0.0
    else:
        cov = sum(bound(f_cdf[i], a_cdf[j]) - f_cdf[i] * a_cdf[j] for i in range(l) for j in range(l))
        weight = c / (cov / (f_sd * a_sd))
    joint = 0.0
    for i in range(l):
        for j in range(l):
            v = bound(f_cdf[i], a_cdf[j])
            if i > 0:
                v -= bound(f_cdf[i - 1], a_cdf[j])
            if j > 0:
                v -= bound(f_cdf[i], a_cdf[j - 1])
            if i > 0 and j > 0:
                v += bound(f_cdf[i - 1], a_cdf[j - 1])
            p = weight * v + (1 - weight) * f_pdf[i] * a_pdf[j]
            if p != 0:
                joint += -p * np.log2(abs(p))
    ent = lambda q: -sum(x * np.log2(x) for x in q if x != 0)  # noqa: E731
    mi = ent(a_pdf) + ent(f_pdf) - joint
    return (0.0 if mi == 0 else 2 * mi / (ent(a_pdf) + ent(f_pdf))), fus


def _fmi_loop(fused, a, b, w=3):
    r = w // 2
    m, n = a.shape
    out = np.ones((m - 2 * r, n - 2 * r))
    for p in range(r, m - r):
        for q in range(r, n - r):
            win = (slice(p - r, p + r + 1), slice(q - r, q + r + 1))
            score_a, fus_seen = _window_score(a[win], fused[win], r)
            score_b, _ = _window_score(b[win], fus_seen, r)
            out[p - r, q - r] = (score_a + score_b) / 2
    return out


CASES = {
    "random integers": lambda rng: [rng.integers(0, 6, (7, 8)).astype(float) for _ in range(3)],
    "random floats": lambda rng: [rng.random((6, 7)) for _ in range(3)],
    "one pixel changed": lambda rng: (lambda a: [a + (np.arange(56).reshape(7, 8) == 27), a,
                                                 rng.integers(0, 9, (7, 8)).astype(float)])(
        rng.integers(0, 9, (7, 8)).astype(float)),
    "constant source": lambda rng: [rng.integers(0, 6, (7, 8)).astype(float), np.full((7, 8), 3.0),
                                    rng.integers(0, 6, (7, 8)).astype(float)],
    "source B equals fused": lambda rng: (lambda f: [f, rng.integers(0, 6, (7, 8)).astype(float), f.copy()])(
        rng.integers(0, 6, (7, 8)).astype(float)),
    "negatively correlated": lambda rng: (lambda a: [a.max() - a, a, rng.random((7, 8))])(rng.random((7, 8))),
    "sparse windows": lambda rng: [(rng.random((7, 8)) > 0.8).astype(float) * 200 for _ in range(3)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_vectorised_fmi_matches_a_literal_transcription_of_fmi_m(case):
    rng = np.random.default_rng(7)
    fused, a, b = CASES[case](rng)
    expected = _fmi_loop(fused, a, b)
    got = fmi_map(fused, a, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_fmi_5x5_window_matches_the_transcription():
    rng = np.random.default_rng(3)
    fused, a, b = (rng.integers(0, 20, (8, 9)).astype(float) for _ in range(3))
    np.testing.assert_allclose(fmi_map(fused, a, b, window=5), _fmi_loop(fused, a, b, w=5), atol=1e-12)


def test_hand_cases_on_one_window():
    f = np.array([[1.0, 5, 2], [7, 3, 9], [4, 8, 6]])
    # identical windows score 1 (fmi.m's shortcut)
    assert fmi(f, f, f) == 1.0
    # a positive affine copy normalises to the same pdf: Pearson c = 1, the Frechet upper bound
    # has correlation 1 too, so phi = 1, the joint pdf is diag(p) and 2 I / (H + H) = 1
    assert fmi(f, 2 * f + 3, f) == pytest.approx(1.0, abs=1e-12)
    # a constant source window becomes a uniform pdf, uncorrelated with anything (c = 0), so
    # the joint pdf is the product, I = 0 and the source's score is 0; B = F scores 1
    assert fmi(f, np.full((3, 3), 4.0), f) == pytest.approx(0.5, abs=1e-12)
    # a window with a single non-zero pixel is a one-point pdf (sd 0): independence, score 0
    spike = np.zeros((3, 3))
    spike[1, 2] = 9.0
    assert fmi(f, spike, spike * 2) == pytest.approx(0.0, abs=1e-12)


def test_fmi_invariants_identity_symmetry_bounds():
    rng = np.random.default_rng(11)
    a = rng.random((20, 24)) * 255
    b = rng.random((20, 24)) * 255
    f = (a + b) / 2 + rng.normal(0, 5, a.shape)
    assert fmi(a, a, a) == 1.0
    assert fmi(f, a, b) == pytest.approx(fmi(f, b, a), abs=1e-12)
    values = fmi_map(f, a, b)
    assert np.all(values >= -1e-12) and np.all(values <= 1 + 1e-12)
    assert np.isfinite(values).all()


def test_fmi_constant_and_zero_images_are_defined():
    zeros = np.zeros((8, 8))
    assert fmi(zeros, zeros, zeros) == 1.0
    # two different constants: not identical, both normalise to ones, uniform pdfs with zero
    # variance, so c = 0, the joint pdf is the product and I = 0 (up to round-off)
    assert fmi(np.full((8, 8), 7.0), zeros, zeros) == pytest.approx(0.0, abs=1e-12)
    assert fmi(np.full((8, 8), 7.0), zeros + np.eye(8), zeros) == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(fmi_map(np.full((8, 8), 7.0), zeros + np.eye(8), zeros)).all()


def test_fmi_rejects_bad_input():
    with pytest.raises(MetricInputError):
        fmi(np.zeros((8, 8)), np.zeros((8, 9)), np.zeros((8, 8)))
    with pytest.raises(MetricInputError):
        fmi(np.full((8, 8), np.nan), np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), window=4)
    with pytest.raises(NotImplementedError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), feature="wavelet")
    with pytest.raises(ValueError):
        fmi(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), feature="canny")


def test_fmi_takes_well_under_a_second_per_256_image():
    rng = np.random.default_rng(0)
    a, b = rng.random((256, 256)) * 255, rng.random((256, 256)) * 255
    f = np.round((a + b) / 2)
    fmi(f[:32, :32], a[:32, :32], b[:32, :32])  # warm-up
    # CPU time of this process: other jobs on a shared machine do not count against it
    start = time.process_time()
    fmi(f, a, b)
    elapsed = time.process_time() - start
    assert elapsed < 1.0, f"FMI took {elapsed:.2f} s of CPU on a 256x256 image"
