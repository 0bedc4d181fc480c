"""FunFuseAn (Kumar, Uhlmann, Hertel, Fuchs, Kurz, Vogel, Bauer 2019) as a Keras functional model.

Layer for layer as the authors' TensorFlow 1 code (nish03/FunFuseAn, FunFuseAn/network.py):

- every block is Conv2D (stride 1, SAME, bias; truncated-normal init, stddev 0.01; zero bias)
  -> BatchNorm (momentum 0.9, epsilon 1e-5, scale and centre) -> LeakyReLU(0.2);
- branch A (the paper's anatomical branch): low frequency 9x9 1->16; high frequency
  3x3 1->16, 3x3 16->32, 3x3 32->64;
- branch B (the paper's functional branch): low frequency 7x7 1->16; high frequency
  5x5 1->16, 5x5 16->32, 3x3 32->64;
- fusion rule 1: H = max(HA, HB) / (HA + HB) on the 64 high-frequency channels, no epsilon;
- reconstruction blocks 5x5 64->32 and 5x5 32->16;
- fusion rule 2: (LA + LB + R2) / 3;
- reconstruction 3: Conv2D 5x5 16->1 with bias, no BN, tanh.

122,209 trainable parameters. Every layer keeps the spatial size, so any H x W works.

Fidelity options (FIDELITY.md): ``wiring`` (which input feeds which branch), ``bn_statistics``
(per-batch statistics always, as the original, or moving averages), ``hf_rule`` (the exact
rule, or a guarded denominator).
"""

from __future__ import annotations

import keras
import numpy as np

from .layers import BN_MODES, HF_RULES, BatchStatNormalization, MaxOverSumFusion

__all__ = ["WIRINGS", "build_funfusean", "TRAINABLE_PARAMETERS", "high_frequency_report"]

#: "paper": MRI -> branch A (9x9 / 3-3-3), PET -> branch B (7x7 / 5-5-3), as in the paper and the
#: first version of network.py. "shipped": the released train.py calls network(mri, pet) on
#: ``def network(images_pet, images_mri)``, so MRI runs through branch B (FIDELITY.md, "Wiring").
WIRINGS = ("paper", "shipped")

#: The count the paper's architecture implies: conv weights 121,296 + biases 305 + BN 608.
TRAINABLE_PARAMETERS = 122_209

_BRANCHES = {
    # name: (low-frequency kernel, [(kernel, filters) of the three high-frequency blocks])
    "branch_a": (9, [(3, 16), (3, 32), (3, 64)]),
    "branch_b": (7, [(5, 16), (5, 32), (3, 64)]),
}


def _conv(filters: int, kernel: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=True,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        bias_initializer="zeros",
        name=name,
    )


def _block(x, filters: int, kernel: int, name: str, bn_statistics: str):
    x = _conv(filters, kernel, f"{name}_conv")(x)
    x = BatchStatNormalization(
        statistics=bn_statistics, momentum=0.9, epsilon=1e-5, center=True, scale=True, name=f"{name}_bn"
    )(x)
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)


def _branch(image, branch: str, bn_statistics: str):
    low_kernel, high_blocks = _BRANCHES[branch]
    low = _block(image, 16, low_kernel, f"{branch}_lf", bn_statistics)
    high = image
    for i, (kernel, filters) in enumerate(high_blocks, start=1):
        high = _block(high, filters, kernel, f"{branch}_hf{i}", bn_statistics)
    return low, high


def build_funfusean(
    wiring: str = "paper",
    bn_statistics: str = "batch",
    hf_rule: str = "exact",
    hf_eps: float = 1e-3,
    input_shape: tuple = (None, None, 1),
    name: str = "funfusean",
) -> keras.Model:
    """The FunFuseAn network: inputs ``mri`` and ``pet`` (H, W, 1) in [0, 1], output (H, W, 1)."""
    if wiring not in WIRINGS:
        raise ValueError(f"wiring must be one of {WIRINGS}, got {wiring!r}")
    if bn_statistics not in BN_MODES:
        raise ValueError(f"bn_statistics must be one of {BN_MODES}, got {bn_statistics!r}")
    if hf_rule not in HF_RULES:
        raise ValueError(f"hf_rule must be one of {HF_RULES}, got {hf_rule!r}")
    mri = keras.Input(shape=input_shape, name="mri")
    pet = keras.Input(shape=input_shape, name="pet")
    # FIDELITY.md "Wiring": the shipped code feeds MRI to the functional (7x7 / 5-5-3) branch.
    into_a, into_b = (mri, pet) if wiring == "paper" else (pet, mri)
    low_a, high_a = _branch(into_a, "branch_a", bn_statistics)
    low_b, high_b = _branch(into_b, "branch_b", bn_statistics)

    fused_high = MaxOverSumFusion(rule=hf_rule, eps=hf_eps, name="hf_fusion")([high_a, high_b])
    recon = _block(fused_high, 32, 5, "recon1", bn_statistics)
    recon = _block(recon, 16, 5, "recon2", bn_statistics)
    fused_low = keras.layers.Average(name="lf_fusion")([low_a, low_b, recon])
    out = _conv(1, 5, "recon3_conv")(fused_low)
    out = keras.layers.Activation("tanh", name="fused")(out)
    return keras.Model(inputs=[mri, pet], outputs=out, name=name)


def high_frequency_report(model: keras.Model, mri: np.ndarray, pet: np.ndarray, near: float = 1e-3) -> dict:
    """How fragile the exact max/sum rule is on a batch: counts over the 64 fused channels.

    Returns the number of elements, of non-finite outputs of the rule, and of denominators with
    |a + b| < ``near`` (where the guarded rule would step in).
    """
    layer = model.get_layer("hf_fusion")
    probe = keras.Model(model.inputs, layer.input)
    high_a, high_b = probe([mri, pet])
    high_a, high_b = np.asarray(high_a, np.float64), np.asarray(high_b, np.float64)
    denominator = high_a + high_b
    with np.errstate(divide="ignore", invalid="ignore"):
        fused = np.maximum(high_a, high_b).astype(np.float32) / denominator.astype(np.float32)
    return {
        "elements": int(denominator.size),
        "nonfinite": int(np.count_nonzero(~np.isfinite(fused))),
        "near_zero_denominator": int(np.count_nonzero(np.abs(denominator) < near)),
        "min_abs_denominator": float(np.min(np.abs(denominator))),
    }
