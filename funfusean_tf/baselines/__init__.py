"""Classical fusion baselines behind the package's one call: ``fuse(mri, pet, **params) -> fused``.

Inputs: two 2-D float arrays of the same shape, values in [0, 1] (as ``funfusean_tf.data.io``
loads them). Output: float32, same shape, clipped to [0, 1]. Every function checks its inputs
(2-D, same shape, finite) and raises ValueError with the reason.

    >>> from funfusean_tf.baselines import BASELINES, fuse_baseline
    >>> fused = fuse_baseline("gff", mri, pet)              # the paper's parameters
    >>> fused = fuse_baseline("dwt", mri, pet, wavelet="haar", levels=2)

GF (``gff``) and LP-SR (``lp_sr``) are the two baselines of FunFuseAn's Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from .guided_filter import gff_fuse, guided_filter
from .lpsr import lp_sr_fuse
from .pyramid import laplacian_pyramid, laplacian_pyramid_fuse, reconstruct_laplacian_pyramid
from .simple import average_fuse, maximum_fuse, pca_fuse, pca_weights
from .wavelet import dwt_fuse

__all__ = [
    "Baseline",
    "BASELINES",
    "fuse_baseline",
    "gff_fuse",
    "guided_filter",
    "laplacian_pyramid",
    "reconstruct_laplacian_pyramid",
    "laplacian_pyramid_fuse",
    "dwt_fuse",
    "pca_weights",
    "pca_fuse",
    "average_fuse",
    "maximum_fuse",
    "lp_sr_fuse",
]


@dataclass(frozen=True)
class Baseline:
    """One classical method: its function, a one-line description, its paper, its defaults."""

    name: str
    function: Callable[..., np.ndarray]
    description: str
    citation: str
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def __call__(self, mri, pet, **overrides) -> np.ndarray:
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            accepted = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"baseline {self.name!r} has no parameter(s) {', '.join(unknown)} (accepted: {accepted})")
        return self.function(mri, pet, **{**self.defaults, **overrides})


BASELINES: Mapping[str, Baseline] = MappingProxyType(
    {
        b.name: b
        for b in (
            Baseline(
                "gff",
                gff_fuse,
                "Guided-filtering fusion: two-scale decomposition, Laplacian saliency, guided-filtered weight maps",
                'S. Li, X. Kang, J. Hu, "Image Fusion With Guided Filtering", IEEE Trans. Image Process. 22(7):2864-2875, 2013',
                {"r1": 45, "eps1": 0.3, "r2": 7, "eps2": 1e-6, "mean_size": 31, "gauss_radius": 5, "gauss_sigma": 5.0, "ties": "paper"},
            ),
            Baseline(
                "laplacian_pyramid",
                laplacian_pyramid_fuse,
                "Laplacian pyramid: max-absolute on detail levels, average on the base",
                'P. J. Burt, E. H. Adelson, "The Laplacian Pyramid as a Compact Image Code", IEEE Trans. Commun. 31(4):532-540, 1983',
                {"levels": 4},
            ),
            Baseline(
                "dwt",
                dwt_fuse,
                "Discrete wavelet transform: max-absolute on detail sub-bands, average on the approximation",
                'H. Li, B. S. Manjunath, S. K. Mitra, "Multisensor Image Fusion Using the Wavelet Transform", '
                "Graph. Models Image Process. 57(3):235-245, 1995",
                {"wavelet": "db2", "levels": 3, "mode": "symmetric"},
            ),
            Baseline(
                "pca",
                pca_fuse,
                "Weighted average with weights from the principal eigenvector of the 2x2 covariance",
                'V. P. S. Naidu, J. R. Raol, "Pixel-level Image Fusion using Wavelets and Principal Component Analysis", '
                "Def. Sci. J. 58(3):338-352, 2008",
                {},
            ),
            Baseline("average", average_fuse, "Pixel-wise mean (MRI + PET) / 2", "textbook pixel-level rule", {}),
            Baseline("maximum", maximum_fuse, "Pixel-wise maximum max(MRI, PET)", "textbook pixel-level rule", {}),
            Baseline(
                "lp_sr",
                lp_sr_fuse,
                "Laplacian pyramid; low-pass band by sparse representation (OMP, max-L1), detail bands by max-absolute",
                'Y. Liu, S. Liu, Z. Wang, "A general framework for image fusion based on multi-scale transform and sparse '
                'representation", Information Fusion 24:147-164, 2015',
                {"levels": 4, "step": 1, "epsilon": 0.1, "detail_rule": "consistency", "intensity_scale": 255.0, "dictionary": None},
            ),
        )
    }
)


def fuse_baseline(name: str, mri, pet, **overrides) -> np.ndarray:
    """Fuse ``mri`` and ``pet`` with the baseline ``name``, its defaults updated by ``overrides``."""
    try:
        baseline = BASELINES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None
    return baseline(mri, pet, **overrides)
