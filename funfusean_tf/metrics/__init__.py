"""Objective fusion metrics that reproduce the published evaluations.

One function per metric, each naming its paper, the reference implementation it reproduces and
its conventions (scale, log base, how the two sources combine); :mod:`.presets` bundles them
into the tables of FunFuseAn (``table1``), MdAFuse (``mdafuse``), DILRAN (``dilran``) and
CDDFuse (``cddfuse``). docs/metrics.md has the conventions table. FSIM
(:mod:`.feature_similarity`) imports its ``phasepack`` dependency only when first called.

All functions take (fused, source A, source B) 2-D arrays (or (x, y) for two-image measures),
score them in float64, and raise :class:`MetricInputError` / ``ValueError`` rather than return
NaN for inputs on which a metric is undefined.
"""

from ._util import MetricInputError, matlab_edge_sobel, matlab_rgb2gray
from .feature_similarity import fsim, fusion_fsim
from .gradient import average_gradient, q_g_liu, qabf, rsfe, spatial_frequency
from .information import (
    entropy,
    fmi,
    fmi_map,
    fusion_mi,
    mutual_information_histcounts,
    mutual_information_dwinnell_matlab,
    mutual_information_levels,
    mutual_information_uint8,
    ncie,
    shannon_entropy_distinct,
)
from .perceptual import chen_blum
from .presets import PRESETS, MetricSpec, Preset, get_preset, preset_names, score
from .statistical import correlation_coefficient, mse, pearson, psnr, scd, standard_deviation
from .structural import (
    fusion_ssim_gaussian,
    fusion_ssim_skimage,
    piella,
    ssim_gaussian,
    ssim_index_map,
    ssim_skimage,
    yang,
)
from .vif import fusion_vif, q_viff, vif_p

__all__ = [
    "MetricInputError",
    "matlab_edge_sobel",
    "matlab_rgb2gray",
    "fsim",
    "fusion_fsim",
    "average_gradient",
    "q_g_liu",
    "qabf",
    "rsfe",
    "spatial_frequency",
    "entropy",
    "fmi",
    "fmi_map",
    "fusion_mi",
    "mutual_information_histcounts",
    "mutual_information_dwinnell_matlab",
    "mutual_information_levels",
    "mutual_information_uint8",
    "ncie",
    "shannon_entropy_distinct",
    "chen_blum",
    "PRESETS",
    "MetricSpec",
    "Preset",
    "get_preset",
    "preset_names",
    "score",
    "correlation_coefficient",
    "mse",
    "pearson",
    "psnr",
    "scd",
    "standard_deviation",
    "fusion_ssim_gaussian",
    "fusion_ssim_skimage",
    "piella",
    "ssim_gaussian",
    "ssim_index_map",
    "ssim_skimage",
    "yang",
    "fusion_vif",
    "q_viff",
    "vif_p",
]
