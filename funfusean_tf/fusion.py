"""One call for every fusion method: ``fuse(mri, pet, method=...) -> fused``.

A *method* is anything with ``name`` and ``__call__(mri, pet) -> fused`` on float arrays: the
networks of funfusean_tf.models (with trained weights) and the classical baselines alike.
Inputs are [0, 1] grey images, (H, W) or stacks (N, H, W); the output has the same shape, as
float32 (a network's raw output: FunFuseAn's is in tanh's range). ``to_uint8`` in
funfusean_tf.data.io makes the 8-bit file.

:func:`fuse_pairs` fuses files and writes them all-or-nothing: every input is read and every
pair fused before the first file is written, so a bad input leaves no partial output behind.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .data.io import check_pair, load_pair, to_uint8, write_npy, write_png
from .data.pairs import ImagePair

__all__ = ["NetworkMethod", "load_method", "shared_method", "clear_shared_methods", "available_methods", "fuse",
           "fuse_pairs", "FusedPair"]


class NetworkMethod:
    """A Keras fusion network with its weights, callable on arrays."""

    def __init__(self, model, name: str, weights: str | None = None, batch_size: int | None = None):
        import tensorflow as tf

        from .models.layers import uses_batch_statistics

        self.model = model
        self.name = name
        self.weights = weights
        # With batch-statistics BatchNorm an image's output depends on its batch companions: fuse
        # one image per batch, as the originals did (FIDELITY.md F2). Otherwise batches of 8.
        self.batch_size = batch_size or (1 if uses_batch_statistics(model) else 8)
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)
        self._forward = tf.function(lambda a, b: model([a, b], training=False), input_signature=[spec, spec],
                                    reduce_retracing=True)

    def __call__(self, mri, pet) -> np.ndarray:
        mri, pet, single = check_pair(mri, pet)
        outputs = []
        for start in range(0, len(mri), self.batch_size):
            a = mri[start : start + self.batch_size, ..., None]
            b = pet[start : start + self.batch_size, ..., None]
            outputs.append(np.asarray(self._forward(a, b))[..., 0])
        fused = np.concatenate(outputs)
        bad = ~np.isfinite(fused)
        if bad.any():
            raise FloatingPointError(
                f"{self.name}: {int(bad.sum())} fused pixel(s) are NaN or infinite (the exact max/sum rule divided "
                "by a vanishing sum; load the model with hf_rule='guarded', see FIDELITY.md)"
            )
        return fused[0] if single else fused

    def __repr__(self):
        return f"NetworkMethod({self.name!r}, weights={self.weights!r})"


@dataclass
class _BaselineMethod:
    name: str
    params: dict

    def __call__(self, mri, pet) -> np.ndarray:
        from .baselines import fuse_baseline

        mri, pet, single = check_pair(mri, pet)
        fused = np.stack([fuse_baseline(self.name, m, p, **self.params) for m, p in zip(mri, pet)]).astype(np.float32)
        return fused[0] if single else fused


def _registry():
    """funfusean_tf.models.registry, TensorFlow started quietly first (the registry imports Keras)."""
    from . import _start_tensorflow_quietly

    _start_tensorflow_quietly()
    from .models import registry

    return registry


def available_methods() -> dict[str, str]:
    """Every method name with a one-line description, networks first."""
    NETWORKS = _registry().NETWORKS
    methods = {name: spec.description for name, spec in NETWORKS.items()}
    try:
        from .baselines import BASELINES
    except ImportError:  # baselines not installed in this build
        BASELINES = {}
    for name, spec in BASELINES.items():
        methods[name] = getattr(spec, "description", "classical baseline")
    return methods


def load_method(name: str = "funfusean", weights=None, model_config: ModelConfig | None = None,
                lam: float | None = None, **params):
    """A fusion method by name, networks with their weights (the shipped ones by default).

    ``model_config`` sets a network's fidelity options (its ``name`` is replaced by ``name``).
    ``lam`` asks for the shipped weights trained with that lambda. ``params`` go to a baseline.
    Each call builds a new model (yours to change); :func:`fuse` with a method name reuses one
    per process instead.
    """
    if name not in _registry().NETWORKS:
        return _baseline_method(name, weights, params)
    return _build_network_method(*_resolve_network(name, weights, model_config, lam, params))


def _baseline_method(name: str, weights, params: dict):
    from .baselines import BASELINES

    if name not in BASELINES:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(available_methods())}")
    if weights is not None:
        raise ValueError(f"{name} is a classical method and takes no weights")
    return _BaselineMethod(name, params)


def _resolve_network(name: str, weights, model_config: ModelConfig | None, lam: float | None, params: dict):
    """(spec, weights path, model config) of a network, every argument checked; nothing built."""
    from .models.registry import get_network, shipped_weights

    if params:
        raise ValueError(f"network {name!r} takes no extra parameters, got {sorted(params)}")
    spec = get_network(name)
    if weights is None:
        if lam is not None and abs(lam - spec.default_lambda) > 1e-9:
            raise FileNotFoundError(
                f"no shipped {name} weights for lambda {lam:g} (only {spec.default_lambda:g}); train them with "
                f"`funfusean train --config ... --lambda {lam:g}` and pass --weights"
            )
        weights = shipped_weights(name)
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weights file")
    config = dataclasses.replace(model_config or trained_model_config(weights) or ModelConfig(), name=name)
    return spec, weights, config


def _build_network_method(spec, weights: Path, config: ModelConfig):
    from .models.registry import build_model

    model = build_model(config)
    try:
        model.load_weights(weights)
    except Exception as exc:  # h5py / Keras raise several types for a mismatched file
        raise ValueError(f"{weights}: cannot load these weights into {config.name} ({exc})") from exc
    if spec.make_method is not None:
        return spec.make_method(model, str(weights))
    return NetworkMethod(model, config.name, str(weights))


#: How many loaded networks :func:`fuse` keeps (least recently used dropped first).
SHARED_METHODS_MAX = 8
_shared_methods: OrderedDict = OrderedDict()
_shared_lock = threading.Lock()


def shared_method(name: str = "funfusean", weights=None, model_config: ModelConfig | None = None,
                  lam: float | None = None, **params):
    """:func:`load_method`, but a network is built and its weights loaded once per process.

    One method object per (network, model config, weights file) is kept and returned again, so
    its traced forward function (one per method: any image size, any batch) is reused, the output
    the same bit for bit. A weights file rewritten since (size, mtime or inode changed) is loaded
    anew. Treat the returned object as read-only: changing its model changes every later
    :func:`fuse`. Inference leaves the models unchanged (BatchNorm with batch statistics
    normalises without updating its moving averages, funfusean_tf.models.layers). Classical
    methods are cheap and made fresh each call. :func:`clear_shared_methods` drops them all.
    """
    if name not in _registry().NETWORKS:
        return _baseline_method(name, weights, params)
    spec, path, config = _resolve_network(name, weights, model_config, lam, params)
    stat = path.stat()
    key = (name, str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, repr(config))
    with _shared_lock:
        method = _shared_methods.get(key)
        if method is None:
            method = _build_network_method(spec, path, config)
            _shared_methods[key] = method
            while len(_shared_methods) > SHARED_METHODS_MAX:
                _shared_methods.popitem(last=False)
        _shared_methods.move_to_end(key)
    return method


def clear_shared_methods() -> None:
    """Forget the networks :func:`fuse` keeps loaded (their memory is freed once unused)."""
    with _shared_lock:
        _shared_methods.clear()


def trained_model_config(weights) -> ModelConfig | None:
    """The [model] settings a weights file was trained with, when they were saved beside it.

    ``funfusean train`` writes config.toml next to final.weights.h5; shipped weights carry a
    ``<name>.toml`` of the same stem. Fidelity options (the high-frequency rule especially) must
    match training, so fusing uses them unless told otherwise.
    """
    from .config import load_config

    weights = Path(weights)
    stem = weights.name.removesuffix(".weights.h5").removesuffix(".h5")
    for candidate in (weights.with_name(f"{stem}.toml"), weights.parent / "config.toml"):
        if candidate.is_file():
            return load_config(candidate).model
    return None


def fuse(mri, pet, method="funfusean", weights=None, **options) -> np.ndarray:
    """Fuse arrays: ``method`` is a name (loaded with ``weights``/``options``) or a loaded method.

    A network named here is built and loaded once per process (:func:`shared_method`): calling
    ``fuse`` in a loop traces its forward pass once, whatever the image sizes.
    """
    if isinstance(method, str):
        method = shared_method(method, weights=weights, **options)
    return method(mri, pet)


@dataclass
class FusedPair:
    name: str
    fused: np.ndarray
    png: Path
    npy: Path | None


def fuse_pairs(pairs: list[ImagePair], out_dir, method="funfusean", weights=None, save_npy: bool = False,
               progress: bool = True, out_names: dict[str, Path] | None = None, colour: str = "none",
               **options) -> list[FusedPair]:
    """Fuse file pairs and write ``<out_dir>/<name>.png`` (and ``.npy``), all or nothing.

    ``out_names`` maps a pair name to an explicit output path (the single-pair CLI form).
    ``colour``: "none" (grey PNGs), "ycbcr" (the fused image as Y beside the PET/SPECT file's
    own Cb, Cr: :func:`funfusean_tf.enhance.ycbcr_colour`) or "energy" (MdAFuse-style
    enhancement, an interpretation: :func:`funfusean_tf.enhance.enhance_colour`); the PNGs are
    then RGB, the .npy stays the grey float output.
    """
    from tqdm.auto import tqdm

    from .enhance import COLOUR_MODES, colourise, load_rgb

    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    if isinstance(method, str):
        method = shared_method(method, weights=weights, **options)
    loaded, colours = [], []
    for pair in tqdm(pairs, desc="reading", unit="pair", disable=not progress or len(pairs) < 2, leave=False):
        loaded.append(load_pair(pair.mri, pair.pet))
        if colour != "none":
            colours.append(load_rgb(pair.pet))
            if colours[-1].shape[:2] != loaded[-1][1].shape:
                raise ValueError(f"{pair.pet}: its colour image {colours[-1].shape[:2]} and the fused size "
                                 f"{loaded[-1][1].shape} differ")
    results = []
    for pair, (mri, pet) in tqdm(list(zip(pairs, loaded)), desc=f"fusing ({method.name})", unit="pair",
                                 disable=not progress or len(pairs) < 2, leave=False):
        try:
            fused = method(mri, pet)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{pair.mri} + {pair.pet}: {exc}") from exc
        png = Path(out_names[pair.name]) if out_names and pair.name in out_names else Path(out_dir) / f"{pair.name}.png"
        results.append(FusedPair(pair.name, fused, png, png.with_suffix(".npy") if save_npy else None))
    images = [to_uint8(r.fused, name=str(r.png)) for r in results]  # refuses NaN before any write
    if colour != "none":
        images = [colourise(image, rgb, colour) for image, rgb in zip(images, colours)]
    for result, image in zip(results, images):
        write_png(result.png, image)
        if result.npy is not None:
            write_npy(result.npy, result.fused.astype(np.float32))
    return results

