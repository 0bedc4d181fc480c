"""Network names -> builders, losses and shipped weights.

A name in a config file or on the command line finds its network here. Each entry knows how to
build the Keras model from a ModelConfig, which loss trains it (given the paper's lambda), and
which weights file ships with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import keras

__all__ = ["NetworkSpec", "NETWORKS", "get_network", "build_model", "shipped_weights"]


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    description: str
    build: Callable  # (ModelConfig) -> keras.Model
    loss: Callable  # (paper lambda: float) -> FusionLoss
    default_lambda: float
    weights_file: str | None = None  # inside funfusean_tf/weights/
    #: (model with its weights loaded, weights path) -> method object with ``name`` and
    #: ``__call__(mri, pet) -> fused``, for networks whose fusion is not the Keras model's
    #: ``model([mri, pet])`` (None: fusion.NetworkMethod).
    make_method: Callable | None = None


def _build_funfusean(model_config) -> keras.Model:
    from .funfusean import build_funfusean

    unknown = set(model_config.options)
    if unknown:
        raise ValueError(f"funfusean takes no model.options, got {sorted(unknown)}")
    return build_funfusean(
        wiring=model_config.wiring,
        bn_statistics=model_config.bn_statistics,
        hf_rule=model_config.hf_rule,
        hf_eps=model_config.hf_eps,
    )


def _funfusean_loss(lam: float):
    from ..losses import funfusean_loss

    return funfusean_loss(funfusean_lambda=lam)


NETWORKS: dict[str, NetworkSpec] = {
    "funfusean": NetworkSpec(
        name="funfusean",
        description="FunFuseAn (Kumar et al. 2019): two-branch CNN, SSIM + l2 loss",
        build=_build_funfusean,
        loss=_funfusean_loss,
        default_lambda=0.8,
        weights_file="funfusean_lambda0.8.weights.h5",
    ),
}


def get_network(name: str) -> NetworkSpec:
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name]


#: Each network's BatchNorm statistics at inference when the config leaves them unset (""): what
#: its original code does (FIDELITY.md: FunFuseAn F2; MdAFuse and SESF call eval() before fusing).
DEFAULT_BN_STATISTICS = {"funfusean": "batch", "mdafuse": "moving", "dilran": "batch", "sesf": "moving"}


def resolve_model_config(model_config):
    """The config with bn_statistics = "" replaced by the network's own default."""
    import dataclasses

    if model_config.bn_statistics:
        return model_config
    return dataclasses.replace(model_config, bn_statistics=DEFAULT_BN_STATISTICS.get(model_config.name, "batch"))


def build_model(model_config) -> keras.Model:
    return get_network(model_config.name).build(resolve_model_config(model_config))


def shipped_weights(name: str) -> Path:
    """Path of the weights shipped for a network, or FileNotFoundError saying none ship."""
    spec = get_network(name)
    if spec.weights_file is None:
        raise FileNotFoundError(f"no weights ship for {name!r}; train some with `funfusean train`")
    path = Path(str(resources.files("funfusean_tf") / "weights" / spec.weights_file))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped weights for {name!r} are missing from this install")
    return path


def _build_mdafuse(model_config) -> keras.Model:
    from .mdafuse import build_from_config

    return build_from_config(model_config)


def _mdafuse_loss(lam: float):
    from ..losses import mdafuse_loss

    return mdafuse_loss(mdafuse_lambda=lam)


NETWORKS["mdafuse"] = NetworkSpec(
    name="mdafuse",
    description="MdAFuse (Wen et al. 2024): shared coarse/fine/multi-scale extractors, affine fusion, SSIM + l2 loss",
    build=_build_mdafuse,
    loss=_mdafuse_loss,
    default_lambda=0.7,
    weights_file="mdafuse_lambda0.7.weights.h5",
)


def _build_dilran(model_config) -> keras.Model:
    from .dilran import build_dilran, split_options

    model_kwargs, loss_options = split_options(model_config.options)
    model = build_dilran(bn_statistics=model_config.bn_statistics, **model_kwargs)
    model.dilran_loss = loss_options  # read by DilranObjective during training
    return model


def _dilran_loss(lam: float):
    # DILRAN's two loss weights are model.options.lambda1 / lambda2 (default 0.2 each): the
    # objective reads them from the model it trains; train.lambda is not used.
    from .dilran import DilranObjective

    return DilranObjective()


NETWORKS["dilran"] = NetworkSpec(
    name="dilran",
    description="DILRAN (Zhou et al. 2022): dilated residual attention auto-encoder, fused in feature space (SFNN)",
    build=_build_dilran,
    loss=_dilran_loss,
    default_lambda=0.2,
    weights_file="dilran_phantom.weights.h5",
)


def _build_sesf(model_config) -> keras.Model:
    from .sesf import build_sesf_autoencoder, split_options

    model_kwargs, loss_options, fusion_options = split_options(model_config.options)
    model = build_sesf_autoencoder(bn_statistics=model_config.bn_statistics, **model_kwargs)
    model.sesf_loss = loss_options  # read by SesfObjective during training
    model.sesf_fusion = fusion_options  # read by SesfMethod
    return model


def _sesf_loss(lam: float):
    # The SSIM weight (1000) is model.options.ssim_weight; train.lambda is not used.
    from .sesf import SesfObjective

    return SesfObjective()


def _sesf_method(model, weights):
    from .sesf import SesfMethod

    return SesfMethod(model, name="sesf", weights=str(weights) if weights is not None else None)


NETWORKS["sesf"] = NetworkSpec(
    name="sesf",
    description="SESF decision map (Ma et al. 2021; Raj et al. 2024): SE auto-encoder features, spatial-frequency map",
    build=_build_sesf,
    loss=_sesf_loss,
    default_lambda=1000.0,
    make_method=_sesf_method,
    weights_file="sesf_phantom.weights.h5",
)
