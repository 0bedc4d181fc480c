"""Metric presets: each reproduces one paper's evaluation table, conventions included.

A preset says how an RGB source file becomes grey (``grey``: the conversion the paper's
evaluation script used) and, for each column, which function scores (fused, source A,
source B) on which scale. Every metric function receives the images as read (grey values,
0-255 for 8-bit files) and rescales them itself where the paper did (``/ 255``).

=========  =====================================================================================
preset     reproduces
=========  =====================================================================================
table1     FunFuseAn (Kumar et al. 2019) Table 1: Z. Liu's MATLAB toolbox via the authors'
           ``fusionAssess.m`` on 0-255 doubles, sources through MATLAB ``rgb2gray``
mdafuse    MdAFuse (Wen et al., IEEE TIP 2024) tables: EN, MI, SD, SCD, rSFe from the authors'
           MATLAB script on the 8-bit fused PNG and ``rgb2gray``'ed saved sources; VIF, SSIM,
           CC, MSE from their Python ``Evaluator`` on [0, 1] images
dilran     DILRAN (Zhou et al. 2022) poster: the ``inference.py`` metrics on [0, 1] images,
           each averaged over the two sources (PSNR, SSIM, MI, FSIM) plus EN of the fused
           image, and the MATLAB ``MI&FMI/main.m`` metrics on 0-255 images (MI_matlab,
           FMI_edge)
cddfuse    CDDFuse (Zhao et al., CVPR 2023) ``test_MIF.py`` + ``utils/Evaluator.py``: images read
           with OpenCV as rounded grey 0-255
extras     common alternatives, 0-255: canonical Q_AB/F, SF, AG, Q_Y, Q_CB, Piella variant 2
=========  =====================================================================================

Known limits (see docs/metrics.md): MdAFuse's VIF, SSIM and MSE were computed on the network's
raw float output, which the released 8-bit PNGs only keep up to an unknown min-max rescaling;
scored on the PNG / 255 they are NOT the authors' numbers (CC is, being affine-invariant).
DILRAN's poster does not say which of its two MI codes gave its MI column: the preset reports
both (``MI``: Python, nats; ``MI_matlab``: the MATLAB script, which by a quirk of the code it
uses equals the fused image's entropy in bits). Its MATLAB FMI used ``analysis_fmi``'s default
edge features (``FMI_edge``); ``FMI_pixel`` is the pixel-feature variant its README names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import feature_similarity, gradient, information, perceptual, statistical, structural, vif

__all__ = ["MetricSpec", "Preset", "PRESETS", "get_preset", "preset_names", "score"]


@dataclass(frozen=True)
class MetricSpec:
    """One column: ``func(fused, a, b) -> float`` on images as read, and what it is."""

    name: str
    func: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    reference: str
    higher_is_better: bool | None = True


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    grey: str  # 'matlab' (rgb2gray, rounded), 'opencv' (cvtColor BGR2GRAY, rounded) or 'pil' (convert('L'))
    metrics: tuple[MetricSpec, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [m.name for m in self.metrics]


def _u(x):
    """0-255 -> [0, 1] (MATLAB im2double of 8-bit data; the Python scripts' / 255)."""
    return np.asarray(x, dtype=np.float64) / 255.0


def _mean_over_sources(fn):
    return lambda f, a, b: (fn(f, a) + fn(f, b)) / 2.0


TABLE1 = Preset(
    "table1",
    "FunFuseAn Table 1 (Z. Liu's fusion-metrics toolbox run by the authors' fusionAssess.m, 0-255)",
    "matlab",
    (
        MetricSpec("Q_NCIE", information.ncie, "Wang & Shen 2004; Liu metricWang.m"),
        MetricSpec("Q_G", gradient.q_g_liu, "Xydeas & Petrovic 2000; Liu metricXydeas.m (2003)"),
        MetricSpec("Q_FMI", lambda f, a, b: information.fmi(f, a, b, 3, "none"),
                   "Haghighat et al. 2011; authors' fmi.m, pixels, 3x3, mean of the map"),
        MetricSpec("Q_S", lambda f, a, b: structural.piella(f, a, b, 1),
                   "Piella & Heijmans 2003 variant 1; Liu metricPeilla.m (column 'Q_SSIM')"),
        MetricSpec("Q_VIFF", vif.q_viff, "Han et al. 2013; VIFF_Public.m"),
    ),
)

MDAFUSE = Preset(
    "mdafuse",
    "MdAFuse (IEEE TIP 2024) tables: MATLAB metrics on 8-bit images, Python Evaluator on [0, 1]",
    "matlab",
    (
        MetricSpec("EN", lambda f, a, b: information.entropy(f), "MATLAB entropy(im2double(F)), 256 bins, bits"),
        MetricSpec("MI", lambda f, a, b: information.fusion_mi(f, a, b, information.mutual_information_histcounts, "sum"),
                   "MdAFuse MI.m: histcounts2 256 bins, eps 1e-10, bits, MI(F,A)+MI(F,B)"),
        MetricSpec("SD", lambda f, a, b: statistical.standard_deviation(_u(f), "sum"),
                   "MdAFuse analysis_sd.m: sqrt(sum of squared deviations) of im2double(F)"),
        MetricSpec("VIF", lambda f, a, b: vif.fusion_vif(_u(f), _u(a), _u(b)),
                   "Sheikh & Bovik VIFp (sigma_nsq 2) on [0,1], summed over sources; Evaluator.VIFF"),
        MetricSpec("SSIM", lambda f, a, b: structural.fusion_ssim_skimage(_u(f), _u(a), _u(b), 2.0, "sum"),
                   "skimage structural_similarity defaults (float data_range 2), summed; Evaluator.SSIM"),
        MetricSpec("SCD", statistical.scd, "Aslantas & Bendes 2015; MdAFuse SCD.m"),
        MetricSpec("CC", statistical.correlation_coefficient, "mean Pearson r(A,F), r(B,F); Evaluator.CC"),
        MetricSpec("MSE", lambda f, a, b: statistical.mse(_u(f), _u(a), _u(b)),
                   "mean of MSE(A,F), MSE(B,F) on [0,1]; Evaluator.MSE", higher_is_better=False),
        MetricSpec("rSFe", gradient.rsfe, "Zheng et al. 2007; Liu metricZheng.m (ideal 0)", higher_is_better=None),
    ),
)

DILRAN = Preset(
    "dilran",
    "DILRAN (arXiv 2212.04661) poster metrics: inference.py on [0, 1] images and the MATLAB "
    "MI&FMI/main.m on 0-255 images, averaged over the sources; MI and MI_matlab are the two "
    "candidate sources of the poster's MI column",
    "pil",
    (
        MetricSpec("PSNR", _mean_over_sources(lambda f, s: statistical.psnr(_u(f), _u(s), None)),
                   "torchmetrics PeakSignalNoiseRatio() (range of the source), dB, mean over sources"),
        MetricSpec("SSIM", lambda f, a, b: structural.fusion_ssim_gaussian(_u(f), _u(a), _u(b), "mean"),
                   "torchmetrics SSIM(data_range=1): 11x11 Gaussian, valid; mean over sources"),
        MetricSpec("MI", _mean_over_sources(lambda f, s: information.mutual_information_uint8(_u(f), _u(s))),
                   "DILRAN eval.mutual_information: uint8 truncation, 256 bins, nats; mean over sources"),
        MetricSpec("MI_matlab", _mean_over_sources(lambda f, s: information.mutual_information_dwinnell_matlab(s, f)),
                   "DILRAN analysis_MI.m (Dwinnell MutualInformation), bits; = MATLAB entropy(F) by its quirk"),
        MetricSpec("FSIM", lambda f, a, b: feature_similarity.fusion_fsim(_u(f), _u(a), _u(b)),
                   "Zhang et al. 2011; DILRAN evaluation_metrics.fsim (phasepack PC, Scharr CV_16U GM); mean"),
        # main.m calls analysis_fmi(ct, mri, fused): the non-MRI source first. The order matters
        # (fmi.m normalises the fused window in place in the first source's branch), strongly
        # so for binary edge maps, hence (f, b, a) here, a being the MRI.
        MetricSpec("FMI_edge", lambda f, a, b: information.fmi(f, b, a, 3, "edge"),
                   "Haghighat FMI, DILRAN analysis_fmi.m default: MATLAB edge(I) features, 3x3, mean2"),
        MetricSpec("FMI_pixel", lambda f, a, b: information.fmi(f, b, a, 3, "none"),
                   "pixel FMI (feature 'none'): the variant DILRAN's MI&FMI README names"),
        MetricSpec("EN", lambda f, a, b: information.shannon_entropy_distinct(_u(f)),
                   "skimage.measure.shannon_entropy on the float image (distinct values), bits"),
    ),
)

CDDFUSE = Preset(
    "cddfuse",
    "CDDFuse (CVPR 2023) test_MIF.py with utils/Evaluator.py, OpenCV grey 0-255",
    "opencv",
    (
        MetricSpec("EN", lambda f, a, b: information.entropy(f), "Evaluator.EN: 256 bins of round(F), bits"),
        MetricSpec("SD", lambda f, a, b: statistical.standard_deviation(f, "population"), "Evaluator.SD: np.std, 0-255"),
        MetricSpec("SF", lambda f, a, b: gradient.spatial_frequency(f), "Evaluator.SF, 0-255"),
        MetricSpec("MI", lambda f, a, b: information.fusion_mi(f, a, b, information.mutual_information_levels, "sum"),
                   "Evaluator.MI: sklearn mutual_info_score on raw grey values, nats, summed"),
        MetricSpec("SCD", statistical.scd, "Evaluator.SCD"),
        MetricSpec("VIF", lambda f, a, b: vif.fusion_vif(f, a, b), "Evaluator.VIFF: VIFp (sigma_nsq 2) on 0-255, summed"),
        MetricSpec("Qabf", gradient.qabf, "Evaluator.Qabf = Hong's analysis_Qabf (canonical constants)"),
        MetricSpec("SSIM", lambda f, a, b: structural.fusion_ssim_skimage(f, a, b, 2.0, "sum", np.float32),
                   "skimage 0.19 structural_similarity on float32 0-255 (data_range 2), summed"),
    ),
)

EXTRAS = Preset(
    "extras",
    "common alternatives on 0-255 (MATLAB rgb2gray sources)",
    "matlab",
    (
        MetricSpec("Q_ABF", gradient.qabf, "Xydeas & Petrovic 2000, canonical (Hong analysis_Qabf)"),
        MetricSpec("SF", lambda f, a, b: gradient.spatial_frequency(f), "spatial frequency (first differences)"),
        MetricSpec("AG", lambda f, a, b: gradient.average_gradient(f), "average gradient"),
        MetricSpec("Q_Y", structural.yang, "Yang et al. 2008; Liu metricYang.m"),
        MetricSpec("Q_CB", perceptual.chen_blum, "Chen & Blum 2009; Liu metricChenBlum.m"),
        MetricSpec("Q_W", lambda f, a, b: structural.piella(f, a, b, 2), "Piella & Heijmans 2003 variant 2 (weighted)"),
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (TABLE1, MDAFUSE, DILRAN, CDDFUSE, EXTRAS)}


def preset_names() -> list[str]:
    """The names the CLI accepts: every preset and 'all'."""
    return [*PRESETS, "all"]


def get_preset(name: str) -> list[Preset]:
    """The preset(s) a name stands for ('all' = every preset, columns prefixed 'preset.')."""
    if name == "all":
        return list(PRESETS.values())
    if name not in PRESETS:
        raise KeyError(f"unknown metric preset {name!r}; known: {', '.join(preset_names())}")
    return [PRESETS[name]]


def score(preset: Preset, fused, a, b) -> dict[str, float]:
    """Every metric of ``preset`` on one (fused, A, B) triple of grey arrays (as read)."""
    return {m.name: float(m.func(fused, a, b)) for m in preset.metrics}
