"""Information-theoretic fusion metrics: entropy, mutual information, NCIE, FMI.

Every function names the paper, the reference implementation it reproduces and its conventions
(histogram, log base, how the two sources are combined). Where papers disagree, each convention
has its own function or parameter; the presets in :mod:`funfusean_tf.metrics.presets` say which
paper's table uses which.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._util import MetricInputError, as_image, check_pair, check_triplet, matlab_edge_sobel, matlab_round, xlogx

__all__ = [
    "entropy",
    "shannon_entropy_distinct",
    "matlab_histcounts_edges",
    "mutual_information_histcounts",
    "mutual_information_levels",
    "mutual_information_uint8",
    "mutual_information_dwinnell_matlab",
    "fusion_mi",
    "ncie",
    "fmi",
    "fmi_map",
]


# --------------------------------------------------------------------------------------------
# Entropy


def entropy(image, data_range: float = 255.0, base: float = 2.0) -> float:
    """EN: Shannon entropy of the 256-bin grey-level histogram of one image.

    Reproduces MATLAB's ``entropy(I)`` (which MdAFuse applies to ``im2double`` of the 8-bit fused
    image: ``im2uint8`` rounds ``I * 255`` half away from zero, then ``imhist`` with 256 bins) and
    CDDFuse's ``Evaluator.EN`` (``np.uint8(np.round(img))`` then ``np.bincount``); the two agree on
    integer-valued images. ``data_range`` is the value mapped to level 255 (255 for 0-255
    images, 1 for [0, 1] images); values are saturated to [0, 255]. Log base 2 (bits) by default.
    A constant image has entropy 0.
    """
    image = as_image(image)
    levels = np.clip(matlab_round(image * (255.0 / data_range)), 0, 255).astype(np.int64)
    p = np.bincount(levels.ravel(), minlength=256) / levels.size
    return float(-np.sum(xlogx(p)) / np.log2(base))


def shannon_entropy_distinct(image, base: float = 2.0) -> float:
    """EN as DILRAN computes it: ``skimage.measure.shannon_entropy`` on the float image.

    Every distinct floating-point value is its own bin (no 256-level histogram), so a float
    image of 65536 distinct values reaches 16 bits: this is why DILRAN's poster reports EN
    values above 8. Base 2 (skimage's default). Calls scikit-image directly: that call is the
    authors' convention.
    """
    from skimage.measure import shannon_entropy

    return float(shannon_entropy(as_image(image), base=base))


# --------------------------------------------------------------------------------------------
# Mutual information


def matlab_histcounts_edges(values: np.ndarray, nbins: int) -> np.ndarray:
    """The bin edges MATLAB's ``histcounts``/``histcounts2`` choose for a requested bin count.

    Re-derived from MATLAB's documented binning rule (``matlab.internal.math.binpicker``): the
    left edge sits at a multiple of a 'nice' width at or below the minimum, and the common bin
    width is the smallest power-of-ten multiple that puts the maximum inside the last bin. For
    an image spanning [0, 1] with 256 bins every grey level k/255 gets its own bin. The last bin
    is closed on the right.
    """
    xmin, xmax = float(np.min(values)), float(np.max(values))
    xscale = max(abs(xmin), abs(xmax))
    xrange = xmax - xmin
    raw_width = max(xrange / nbins, np.spacing(xscale))
    if xrange > max(np.sqrt(np.spacing(xscale)), np.finfo(np.float64).tiny):
        pow10 = 10.0 ** np.floor(np.log10(raw_width))
        rel = raw_width / pow10
        width = pow10 * np.floor(rel)
        left = max(min(width * np.floor(xmin / width), xmin), -np.finfo(np.float64).max)
        if nbins > 1:
            lower = (xmax - left) / nbins
            upper = (xmax - left) / (nbins - 1)
            p10 = 10.0 ** np.floor(np.log10(upper - lower))
            width = p10 * np.ceil(lower / p10)
        right = min(max(left + nbins * width, xmax), np.finfo(np.float64).max)
    else:  # (nearly) constant data: bins of unit-ish width around the value
        bin_range = max(1.0, np.ceil(nbins * np.spacing(xscale)))
        left = np.floor(2 * (xmin - bin_range / 4)) / 2
        right = np.ceil(2 * (xmax + bin_range / 4)) / 2
        width = (right - left) / nbins
    if not np.isfinite(width):
        return np.linspace(left, right, nbins + 1)
    return np.concatenate([[left], left + np.arange(1, nbins) * width, [right]])


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the left-closed bin of each value (the last bin closed on both sides)."""
    index = np.searchsorted(edges, values, side="right") - 1
    return np.clip(index, 0, len(edges) - 2)


def mutual_information_histcounts(x, y, nbins: int = 256, eps: float = 1e-10) -> float:
    """MI of two images as MdAFuse's ``MI.m`` computes it (bits).

    MdAFuse (utils/compute5Metrics/.../MI.m): ``histcounts2(x(:), y(:), 256, 'Normalization',
    'probability')`` on the images divided by 255, marginals from the joint histogram, every
    probability below ``eps`` = 1e-10 (the empty cells included) raised to ``eps``, then
    ``sum(p_xy .* log2(p_xy ./ (p_x * p_y)))`` over all 256 x 256 cells. The bins are MATLAB's
    automatic ones for 256 bins (:func:`matlab_histcounts_edges`), per image. Pass the images as
    the authors did (0-255); the division by 255 does not change the bins' contents.
    """
    x, y = check_pair(x, y)
    x = x.ravel() / 255.0
    y = y.ravel() / 255.0
    ix = _bin_index(x, matlab_histcounts_edges(x, nbins))
    iy = _bin_index(y, matlab_histcounts_edges(y, nbins))
    joint = np.bincount(ix * nbins + iy, minlength=nbins * nbins).reshape(nbins, nbins).astype(np.float64)
    joint /= x.size  # 'probability' normalisation
    joint /= joint.sum()
    px = joint.sum(axis=1, keepdims=True)
    py = joint.sum(axis=0, keepdims=True)
    px = px / px.sum()
    py = py / py.sum()
    joint = np.where(joint < eps, eps, joint)
    px = np.where(px < eps, eps, px)
    py = np.where(py < eps, eps, py)
    return float(np.sum(joint * np.log2(joint / (px * py))))


def mutual_information_levels(x, y, base: float = np.e) -> float:
    """MI over the images' exact values as labels: ``sklearn.metrics.mutual_info_score`` (nats).

    CDDFuse's ``Evaluator.MI`` calls ``mutual_info_score(F.flatten(), A.flatten())``: every
    distinct raw grey value is a label (no binning), natural log. Vectorised with
    ``np.unique``; ``base`` = 2 gives bits. Identical images give their own entropy; a constant
    image gives 0.
    """
    x, y = check_pair(x, y)
    _, ix = np.unique(x.ravel(), return_inverse=True)
    _, iy = np.unique(y.ravel(), return_inverse=True)
    nx, ny = ix.max() + 1, iy.max() + 1
    joint = np.bincount(ix * ny + iy, minlength=nx * ny).astype(np.float64)
    joint = joint.reshape(nx, ny) / ix.size
    px = joint.sum(axis=1, keepdims=True)
    py = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    mi = np.sum(joint[nz] * (np.log(joint[nz]) - np.log((px * py)[nz])))
    return float(max(mi, 0.0) / np.log(base))


def mutual_information_uint8(x, y, base: float = np.e) -> float:
    """MI as DILRAN's ``eval.mutual_information`` computes it (nats), on [0, 1] images.

    Each image is truncated to 8 bits (``(x * 255).astype(uint8)``), histogrammed with
    ``np.histogram(v, 256, (0, 255))`` (and ``histogram2d`` for the joint), and
    MI = H(x) + H(y) - H(x, y) with ``-sum(p log(p + 1e-20))``.
    """
    x, y = check_pair(x, y)
    xu = (x * 255.0).astype(np.uint8).ravel().astype(np.float64)
    yu = (y * 255.0).astype(np.uint8).ravel().astype(np.float64)
    size = xu.size
    pa = np.histogram(xu, 256, (0, 255))[0] / size
    pb = np.histogram(yu, 256, (0, 255))[0] / size
    pab = np.histogram2d(xu, yu, 256, [[0, 255], [0, 255]])[0] / size
    h = lambda p: -np.sum(p * np.log(p + 1e-20))  # noqa: E731 - the authors' formula
    return float((h(pa) + h(pb) - h(pab)) / np.log(base))


def _dwinnell_joint_entropy(records: np.ndarray) -> float:
    """Will Dwinnell's ``JointEntropy(X)`` as MATLAB evaluates it (bits).

    Each row of X is one record; identical rows get one symbol index (``sortrows``, row
    differences, ``cumsum``: the indices 1..k as doubles), and MATLAB's ``entropy`` is applied
    to that double vector. ``entropy`` passes non-logical input through ``im2uint8``, which for
    doubles computes round(255 v) saturated to [0, 255]: every index >= 1 becomes 255, so the
    histogram has a single bin and the result is 0 for any X. Computed literally (not
    short-cut) so that the quirk is visible: :func:`entropy` with ``data_range=1`` is MATLAB's
    ``entropy`` of a double array.
    """
    _, symbols = np.unique(records, axis=0, return_inverse=True)
    vector_x = symbols.reshape(-1).astype(np.float64) + 1.0  # cumsum(Delta): 1, 2, ..., k
    return entropy(vector_x[:, None], data_range=1.0) + 0.0  # (+ 0.0: -0.0 -> 0.0)


def mutual_information_dwinnell_matlab(source, fused) -> float:
    """MI as DILRAN's ``MI&FMI/analysis_MI.m`` computes it in MATLAB (bits), with its quirk.

    ``analysis_MI.m`` (called by ``main.m`` on the ``imread`` 8-bit images) uses Will
    Dwinnell's ``MutualInformation(X, Y)`` (2006) with X = the source, Y = the fused image.
    That function treats the columns of X as separate variables: when X has more than one
    column (every image does) it returns ``JointEntropy(X) + entropy(Y) - JointEntropy([X Y])``,
    and only for a column vector ``entropy(X) + entropy(Y) - JointEntropy([X Y])``.
    ``JointEntropy`` calls MATLAB's ``entropy`` on a double vector of symbol indices >= 1,
    which ``im2uint8`` saturates to 255: it is always 0 (:func:`_dwinnell_joint_entropy`).
    Hence, on images, the function returns ``entropy(F)``, MATLAB's 256-bin entropy of the
    fused image, whatever the source; for a one-column source it would return H(A) + H(F).
    ``analysis_MI`` averages over the two sources, so DILRAN's MATLAB MI of a pair is EN(F).
    Pass 8-bit grey values (0-255, as ``imread`` gives uint8; non-integers are rounded and
    saturated as a conversion to uint8 would).
    """
    source, fused = check_pair(source, fused)
    a = np.clip(matlab_round(source), 0, 255)
    f = np.clip(matlab_round(fused), 0, 255)
    if a.shape[1] > 1:  # more than one predictor column
        first = _dwinnell_joint_entropy(a)
    else:
        first = entropy(a)
    return float(first + entropy(f) - _dwinnell_joint_entropy(np.hstack([a, f])))


def fusion_mi(fused, a, b, mi=mutual_information_histcounts, combine: str = "sum") -> float:
    """MI(F, A) combined with MI(F, B): 'sum' (MdAFuse, CDDFuse) or 'mean' (DILRAN)."""
    fused, a, b = check_triplet(fused, a, b)
    total = mi(fused, a) + mi(fused, b)
    if combine == "sum":
        return float(total)
    if combine == "mean":
        return float(total / 2.0)
    raise ValueError(f"combine must be 'sum' or 'mean', got {combine!r}")


# --------------------------------------------------------------------------------------------
# NCIE (Wang & Shen 2004)


def _normalize1(image: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1``: min-max to 0-255 and rounded; an all-zero image stays zero.

    MATLAB divides by zero on a constant non-zero image (a NaN image); here such an image maps
    to zeros instead, so that the metric stays defined (documented deviation).
    """
    high, low = image.max(), image.min()
    if high == low:
        return np.zeros_like(image)
    return matlab_round((image - low) / (high - low) * 255.0)


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    """Z. Liu's ``NCC.m``: nonlinear correlation coefficient of two 0-255 integer images."""
    joint = np.bincount((x.ravel().astype(np.int64) * 256 + y.ravel().astype(np.int64)), minlength=65536)
    joint = joint.reshape(256, 256) / x.size
    hx = -np.sum(xlogx(joint.sum(axis=0)))
    hy = -np.sum(xlogx(joint.sum(axis=1)))
    hxy = -np.sum(xlogx(joint))
    return float((hx + hy - hxy) / np.log2(256))


def ncie(fused, a, b) -> float:
    """Q_NCIE: nonlinear correlation information entropy (Wang & Shen 2004; Wang, Shen, Zhang 2005).

    Reproduces Z. Liu's toolbox ``metricWang.m`` (+ ``NCC.m``, ``normalize1.m``), which the
    FunFuseAn authors ran: each image min-max scaled to integers 0-255, nonlinear correlation
    coefficients NCC = (H(x) + H(y) - H(x, y)) / log2(256) from 256 x 256 joint histograms,
    R = [[1, NCC_ab, NCC_af], [NCC_ab, 1, NCC_bf], [NCC_af, NCC_bf, 1]], eigenvalues r, and
    NCIE = 1 + sum(r/3 log_256(r/3)). Range [0, 1], higher is better; symmetric in all three
    images. Eigenvalues that round-off makes non-positive contribute 0 (MATLAB would give NaN).
    """
    fused, a, b = check_triplet(fused, a, b)
    a, b, fused = _normalize1(a), _normalize1(b), _normalize1(fused)
    nab, naf, nbf = _ncc(a, b), _ncc(a, fused), _ncc(b, fused)
    corr = np.array([[1.0, nab, naf], [nab, 1.0, nbf], [naf, nbf, 1.0]])
    r = np.linalg.eigvalsh(corr)
    k = 3.0
    terms = np.where(r > 0, r * np.log2(np.where(r > 0, r, 1.0) / k) / k, 0.0)
    hr = -np.sum(terms) / np.log2(256)
    return float(1.0 - hr)


# --------------------------------------------------------------------------------------------
# FMI (Haghighat, Aghagolzadeh, Seyedarabi 2011; fast version Haghighat & Razian 2014)

_FMI_CHUNK = 1024


def _fmi_features(image: np.ndarray, feature: str) -> np.ndarray:
    if feature == "none":
        return image
    if feature == "gradient":
        # MATLAB gradient(I) with one output: the x (column) derivative, central differences
        # inside and one-sided differences at the borders, as numpy.gradient.
        return np.gradient(image, axis=1)
    if feature == "edge":
        # MATLAB edge(I): Sobel, automatic threshold, thinning (fmi.m's default feature); the
        # logical map becomes 0/1 doubles in the windows.
        return matlab_edge_sobel(image).astype(np.float64)
    if feature == "dct":
        from scipy.fft import dctn

        return dctn(image, norm="ortho")  # MATLAB dct2
    if feature == "wavelet":
        raise NotImplementedError(
            "FMI feature 'wavelet' is not reproduced: MATLAB's dwt2(..., 'dmey') (its 102-tap "
            "discrete Meyer filter, periodisation mode and rerange) has no bit-faithful numpy "
            "equivalent here; use 'none' (pixels, the FunFuseAn convention), 'edge' (MATLAB "
            "edge(I), fmi.m's default), 'gradient' or 'dct'"
        )
    raise ValueError(f"unknown FMI feature {feature!r}; use 'none', 'edge', 'gradient' or 'dct'")


def _windows(image: np.ndarray, w: int) -> np.ndarray:
    """All w x w windows, each flattened in MATLAB's column-major order: (N, w*w)."""
    view = sliding_window_view(image, (w, w))  # (H-w+1, W-w+1, w, w) [row, col]
    return np.ascontiguousarray(view.transpose(0, 1, 3, 2)).reshape(-1, w * w)


def _minmax_rows(x: np.ndarray) -> np.ndarray:
    low = x.min(axis=1, keepdims=True)
    high = x.max(axis=1, keepdims=True)
    span = high - low
    constant = span == 0
    out = (x - low) / np.where(constant, 1.0, span)
    return np.where(constant, 1.0, out)


def _fmi_pair(src: np.ndarray, fused_norm: np.ndarray, check_against: np.ndarray):
    """Per-window normalised feature MI between one source and the fused windows.

    ``check_against`` is what fmi.m compares the source window with for the 'identical
    windows give 1' shortcut (the raw fused window, or, for the second source, the fused window
    already normalised by the first source's branch).
    """
    identical = np.all(src == check_against, axis=1)
    result = np.ones(src.shape[0])
    todo = ~identical
    if todo.any():
        result[todo] = _fmi_windows(src[todo], fused_norm[todo])
    return result, identical


def _matlab_sum(x: np.ndarray) -> np.ndarray:
    """Row sums added left to right, one term at a time, as MATLAB / Octave ``sum`` adds a short
    vector (numpy's pairwise summation rounds differently, and fmi.m's Pearson test depends on
    that round-off: see :func:`_fmi_windows`)."""
    acc = x[:, 0].copy()
    for k in range(1, x.shape[1]):
        acc += x[:, k]
    return acc


def _matlab_sum_sum(windows: np.ndarray, side: int) -> np.ndarray:
    """MATLAB ``sum(sum(W))`` of each column-major flattened side x side window: the column sums
    (consecutive runs of ``side``), then their sum, each a running sum."""
    columns = [_matlab_sum(windows[:, k : k + side]) for k in range(0, windows.shape[1], side)]
    return _matlab_sum(np.stack(columns, axis=1))


def _fmi_windows(src: np.ndarray, fused_norm: np.ndarray) -> np.ndarray:
    """fmi.m's score for windows whose source and fused values differ.

    The marginal pdfs, their means, the Pearson sums and the moments are summed in fmi.m's
    order (MATLAB ``sum`` / ``mean`` = running sum, then ``/ n``). This matters where source
    and fused windows are both constant (different values): both pdfs are then w*w copies of
    fl(1 / w^2), whose running sum is not exactly 1 (1 + 2^-52 for w = 3; off 1 for every odd
    w from 3 to 15), so ``mean(pdf)`` is an ulp off each entry, fmi.m's ``aPdf - mean(aPdf)``
    and ``fPdf - mean(fPdf)`` are the same non-zero constant, and its Pearson c is 1, not 0:
    the Frechet upper bound (here the diagonal) is taken in full and the window scores 1.
    numpy's pairwise mean is exactly fl(1 / w^2) there, which gave c = 0 and a score of 0.
    Against a non-constant window a uniform pdf's c is round-off (~1e-17) either way.
    """
    n, l = src.shape
    side = int(round(np.sqrt(l)))
    sn = _minmax_rows(src)
    s_pdf = sn / _matlab_sum_sum(sn, side)[:, None]
    f_pdf = fused_norm / _matlab_sum_sum(fused_norm, side)[:, None]
    s_cdf = np.cumsum(s_pdf, axis=1)
    f_cdf = np.cumsum(f_pdf, axis=1)

    s_t = s_pdf - (_matlab_sum(s_pdf) / l)[:, None]
    f_t = f_pdf - (_matlab_sum(f_pdf) / l)[:, None]
    num = _matlab_sum(s_t * f_t)
    den = np.sqrt(_matlab_sum(s_t * s_t) * _matlab_sum(f_t * f_t))
    c = np.where(num == 0, 0.0, num / np.where(den == 0, 1.0, den))

    # population moments of the pixel index under each pdf, accumulated as fmi.m's loop does
    idx = np.arange(1, l + 1, dtype=np.float64)
    s_e, s_e2 = _matlab_sum(idx * s_pdf), _matlab_sum((idx * idx) * s_pdf)
    f_e, f_e2 = _matlab_sum(idx * f_pdf), _matlab_sum((idx * idx) * f_pdf)
    s_sd = np.sqrt(np.maximum(s_e2 - s_e * s_e, 0.0))
    f_sd = np.sqrt(np.maximum(f_e2 - f_e * f_e, 0.0))

    # Frechet bound copula H(i, j) of the two CDFs (i over the fused pdf, j over the source's),
    # the upper bound min(F, S) where c >= 0 and the lower bound max(F + S - 1, 0) where c < 0,
    # both written as fmi.m writes them. Stored with a zero row and column in front so that
    # the joint pdf is a 2-D difference.
    positive = c >= 0
    bound = np.zeros((n, l + 1, l + 1))
    inner = bound[:, 1:, 1:]
    np.add(f_cdf[:, :, None], s_cdf[:, None, :], out=inner)
    for rows, upper in ((positive, True), (~positive, False)):
        if not rows.any():
            continue
        total = inner[rows]
        if upper:
            diff = np.abs(f_cdf[rows][:, :, None] - s_cdf[rows][:, None, :])
            total -= diff
        else:
            total -= 1.0
            total += np.abs(total)
        total *= 0.5
        inner[rows] = total
    cov_bound = inner.sum(axis=(1, 2)) - f_cdf.sum(axis=1) * s_cdf.sum(axis=1)
    sd_prod = f_sd * s_sd
    degenerate = (s_sd == 0) | (f_sd == 0) | (positive & (c == 0))
    corr_bound = cov_bound / np.where(sd_prod == 0, 1.0, sd_prod)
    weight = np.where(degenerate, 0.0, c / np.where(corr_bound == 0, 1.0, corr_bound))

    jpdf = bound[:, 1:, 1:] - bound[:, :-1, 1:]
    jpdf -= bound[:, 1:, :-1]
    jpdf += bound[:, :-1, :-1]
    w = weight[:, None, None]
    jpdf *= w
    jpdf += (1.0 - w) * (f_pdf[:, :, None] * s_pdf[:, None, :])
    # real(-p log2 p) as MATLAB evaluates it: a negative p contributes -p log2|p|
    logs = np.abs(jpdf)
    logs[logs == 0] = 1.0
    np.log2(logs, out=logs)
    logs *= jpdf
    joint_entropy = -logs.sum(axis=(1, 2))

    h_s = -np.sum(xlogx(s_pdf), axis=1)
    h_f = -np.sum(xlogx(f_pdf), axis=1)
    mi = h_s + h_f - joint_entropy
    total = h_s + h_f
    return np.where(mi == 0, 0.0, 2.0 * mi / np.where(total == 0, 1.0, total))


def fmi_map(fused, a, b, window: int = 3, feature: str = "none") -> np.ndarray:
    """The per-window FMI map of Haghighat's ``fmi.m`` (Fast-FMI), shape (H-w+1, W-w+1).

    Faithful, vectorised port of the FunFuseAn authors' ``Fusion Metrics/fmi.m`` (M. Haghighat's
    Fast-FMI, Haghighat & Razian 2014, for the metric of Haghighat et al. 2011): in every w x w
    window (w = 3) each window is min-max normalised (a constant window becomes ones) and
    turned into a pdf over its w*w pixels (MATLAB column order), the joint pdf of source and
    fused is built with Nelsen's simplified method (a mixture of the Frechet upper / lower
    bound copula and independence, weighted so that the Pearson correlation of the two pdfs
    is reproduced), and the window score is 2 I / (H_s + H_f). Windows where source and fused
    are equal score 1, and so (by fmi.m's round-off, see :func:`_fmi_windows`) do windows where
    both are constant with different values. Each window's value is the mean of the two
    sources' scores.
    """
    fused, a, b = check_triplet(fused, a, b)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"FMI window must be a positive odd integer, got {window}")
    if min(fused.shape) < window:
        raise MetricInputError(f"FMI needs images of at least {window}x{window} pixels, got {fused.shape}")
    fa, fb, ff = (_fmi_features(x, feature) for x in (a, b, fused))
    out_shape = (ff.shape[0] - window + 1, ff.shape[1] - window + 1)
    wa, wb, wf = _windows(fa, window), _windows(fb, window), _windows(ff, window)
    result = np.empty(wa.shape[0])
    for start in range(0, wa.shape[0], _FMI_CHUNK):
        sl = slice(start, start + _FMI_CHUNK)
        f_raw = wf[sl]
        f_norm = _minmax_rows(f_raw)
        q_af, identical_a = _fmi_pair(wa[sl], f_norm, f_raw)
        # fmi.m normalises fSub in place inside the first branch, so the second branch's
        # 'identical' test sees the normalised window whenever that branch ran.
        f_seen = np.where(identical_a[:, None], f_raw, f_norm)
        q_bf, _ = _fmi_pair(wb[sl], f_norm, f_seen)
        result[sl] = (q_af + q_bf) / 2.0
    return result.reshape(out_shape)


def fmi(fused, a, b, window: int = 3, feature: str = "none") -> float:
    """Q_FMI: the mean of :func:`fmi_map` over all windows (pixel features, 3 x 3 by default).

    FunFuseAn's Table 1 column (the authors' fmi.m returns the map; its mean is the score).
    DILRAN's ``MI&FMI/analysis_fmi.m`` is the same Haghighat code returning ``mean2`` of the map;
    its ``main.m`` passes no feature argument, so the feature is that function's default,
    ``'edge'`` (MATLAB ``edge(I)``, :func:`~funfusean_tf.metrics._util.matlab_edge_sobel`), on
    ``double`` 0-255 images: ``fmi(f, a, b, 3, "edge")``.
    Features: 'none' (pixels), 'edge' (binary MATLAB Sobel edge maps), 'gradient' (MATLAB
    ``gradient``, x part), 'dct' (``dct2``); 'wavelet' is not reproduced.
    Range [0, 1] up to round-off, higher is better; fmi(x, x, x) = 1. Symmetric in the sources
    to ~1e-14 except where fmi.m's in-place normalisation of the fused window bites: where the
    fused window is one pixel above an otherwise flat level and a source equals it, that source
    scores 1 when it comes first (identical windows) and 0 when it comes second (it then meets
    the normalised window: a one-point pdf). Pass the sources in the reference's order.

    Checked against fmi.m itself, run under GNU Octave 7.3.0 (feature 'none', w = 3, mean2 of
    the map): equal to 1e-13 per window on 18 crops of the MdAFuse MR-PET reference triples
    (pair 0 rows = cols 1:30, 41:70, 61:90, 101:140; 14 random 24 x 24 crops of 12 pairs), on
    the whole 256 x 256 pairs 0 and 1, and on synthetic triples with constant sources, constant
    fused images and both (w = 3, 5, 7). Until issue 11 a source window and a fused window that
    were both constant (e.g. background: sources 0, fused 51) scored 0 here and 1 in fmi.m,
    because numpy's pairwise mean hid the round-off that makes fmi.m's Pearson c of two uniform
    pdfs 1; the sums are now taken in fmi.m's order (pair 0: 0.1901 before, 0.4795 now).
    """
    return float(np.mean(fmi_map(fused, a, b, window=window, feature=feature)))
