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


def build_model(model_config) -> keras.Model:
    return get_network(model_config.name).build(model_config)


def shipped_weights(name: str) -> Path:
    """Path of the weights shipped for a network, or FileNotFoundError saying none ship."""
    spec = get_network(name)
    if spec.weights_file is None:
        raise FileNotFoundError(f"no weights ship for {name!r}; train some with `funfusean train`")
    path = Path(str(resources.files("funfusean_tf") / "weights" / spec.weights_file))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped weights for {name!r} are missing from this install")
    return path
