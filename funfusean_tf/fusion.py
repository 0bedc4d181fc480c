"""One call for every fusion method: ``fuse(mri, pet, method=...) -> fused``.

A *method* is anything with ``name`` and ``__call__(mri, pet) -> fused`` on float arrays: the
networks of funfusean_tf.models (with trained weights) and the classical baselines alike.
A method takes [0, 1] grey images, (H, W) or stacks (N, H, W); :func:`fuse` also takes raw
integer images and min-max scales them per image as the file loaders do (:func:`prepare_inputs`),
and refuses what the command line refuses. The output has the same shape, as
float32 (a network's raw output: FunFuseAn's is in tanh's range). ``to_uint8`` in
funfusean_tf.data.io makes the 8-bit file.

:func:`fuse_pairs` fuses files and writes them all-or-nothing: every input is read and every
pair fused before the first file is written, so a bad input leaves no partial output behind.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .data.io import as_stack, check_pair, load_pair, minmax_normalise, scalable_range, to_uint8, write_npy, write_png
from .data.pairs import ImagePair

__all__ = ["NetworkMethod", "load_method", "shared_method", "clear_shared_methods", "available_methods", "fuse",
           "fuse_pairs", "FusedPair", "OutputOverwritesInputError", "ImageTooLargeError", "check_outputs",
           "memory_needed", "available_memory", "check_memory", "prepare_inputs"]


class OutputOverwritesInputError(ValueError):
    """An output path that is one of the input files (same path, spelling aside, or a hard link)."""


class ImageTooLargeError(ValueError):
    """A pair whose fusion would need more memory than the machine has available."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:  # a symlink loop: compare what the system can tell
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def check_outputs(pairs: list[ImagePair], outputs) -> None:
    """Refuse any output path that is an input file of ``pairs`` (before anything is read or written).

    Paths are compared resolved (``in/./a.png``, ``in/../in/a.png``, symlinks) and, where both
    exist, by :func:`os.path.samefile` (hard links, case-insensitive file systems).
    """
    inputs = [(Path(path), role) for pair in pairs for path, role in ((pair.mri, "--mri"), (pair.pet, "--pet"))]
    for out in outputs:
        out = Path(out)
        for path, role in inputs:
            if _same_file(out, path):
                raise OutputOverwritesInputError(
                    f"{out}: the output would overwrite the input {path} ({role}); choose another output path"
                )


#: FunFuseAn-style networks hold this many maps of their widest layer at once per pixel (at the
#: fusion rule: both branches' 64 high-frequency channels, their max, their sum and the fused
#: map; one for the convolution's work space). 2048 x 2048 FunFuseAn measured 5.6 GB of process
#: memory, 1300 bytes per pixel; this estimate gives 1536 (6 x 64 float32).
LIVE_MAPS = 6
#: A classical method's working memory per pixel: 32 float64 maps (pyramids, guided filters).
BASELINE_BYTES_PER_PIXEL = 32 * 8
#: Images per forward call of a network (NetworkMethod.batch_for may use fewer).
DEFAULT_BATCH_SIZE = 8


def _widest_layer(model) -> int:
    """The most channels any (nested) layer of a Keras model produces (Conv2D filters, Dense units)."""
    widest, stack = 1, [model]
    while stack:
        layer = stack.pop()
        for attribute in ("filters", "units"):
            value = getattr(layer, attribute, None)
            if isinstance(value, int):
                widest = max(widest, value)
        stack.extend(getattr(layer, "layers", None) or [])
    return widest


def bytes_per_pixel(method) -> int:
    """Estimated peak memory of fusing one pixel of one image with ``method`` (bytes)."""
    model = getattr(method, "model", None)
    if model is None:
        return BASELINE_BYTES_PER_PIXEL
    return LIVE_MAPS * _widest_layer(model) * 4  # float32 maps


def memory_needed(method, shape) -> int:
    """Estimated peak bytes of fusing a pair of ``shape`` ((H, W) or (N, H, W)) with ``method``."""
    height, width = shape[-2:]
    if hasattr(method, "batch_for"):  # a network shrinks its batch to what fits; one image always runs
        images = 1
    else:  # one batch at a time
        images = shape[0] if len(shape) == 3 else 1
        images = min(images, getattr(method, "batch_size", None) or images)
    return int(images) * int(height) * int(width) * bytes_per_pixel(method)


def batch_size_for(method, shape) -> int:
    """Images per call of ``method`` for a stack of ``shape`` ((H, W) or (N, H, W)): a network's
    :meth:`NetworkMethod.batch_for`, one for any other method (it batches inside, if at all)."""
    return int(method.batch_for(shape)) if hasattr(method, "batch_for") else 1


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable (psutil or /proc/meminfo), capped by a
    cgroup v2 memory limit; None where neither can be read (then nothing is refused)."""
    available = None
    try:
        import psutil

        available = int(psutil.virtual_memory().available)
    except Exception:  # psutil not installed, or no answer on this system
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def check_memory(method, shape, name: str = "the pair") -> None:
    """Refuse (ImageTooLargeError) a pair whose fusion would need more memory than is available,
    before any of it is allocated: a clear message instead of an abort (std::bad_alloc)."""
    needed = memory_needed(method, shape)
    available = available_memory()
    if available is not None and needed > available:
        height, width = shape[-2:]
        raise ImageTooLargeError(
            f"{name}: a {height}x{width} pair needs about {_gb(needed)} of memory for {method.name} "
            f"(estimated {bytes_per_pixel(method)} bytes per pixel), but only {_gb(available)} is available; "
            "fuse a smaller (cropped or downscaled) image or free memory"
        )


class NetworkMethod:
    """A Keras fusion network with its weights, callable on arrays."""

    def __init__(self, model, name: str, weights: str | None = None, batch_size: int | None = None):
        import tensorflow as tf

        self.model = model
        self.name = name
        self.weights = weights
        # Batches of 8 for every network: at inference a batch-statistics BatchNorm normalises each
        # image with its own statistics (FIDELITY.md F2), so a batch gives each image its batch-1
        # result, and batching is the fast path. batch_for() shrinks a batch that would not fit.
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)
        self._forward = tf.function(lambda a, b: model([a, b], training=False), input_signature=[spec, spec],
                                    reduce_retracing=True)

    def batch_for(self, shape) -> int:
        """Images per forward call for a stack of ``shape`` ((H, W) or (N, H, W)): ``batch_size``,
        fewer where the stack is shorter or a full batch would need more than half the available
        memory; at least one (whether one image fits is check_memory's question)."""
        height, width = shape[-2:]
        images = shape[0] if len(shape) == 3 else 1
        per_image = int(height) * int(width) * bytes_per_pixel(self)
        available = available_memory()
        fits = self.batch_size if available is None else available // (2 * max(per_image, 1))
        return int(max(1, min(self.batch_size, images, fits)))

    def __call__(self, mri, pet) -> np.ndarray:
        mri, pet, single = check_pair(mri, pet)
        outputs = []
        batch = self.batch_for(mri.shape)
        for start in range(0, len(mri), batch):
            a = mri[start : start + batch, ..., None]
            b = pet[start : start + batch, ..., None]
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


def _unit_range(stack: np.ndarray, name: str, single: bool) -> np.ndarray:
    """A checked (N, H, W) stack as float32 in [0, 1]: see :func:`prepare_inputs`."""
    if stack.dtype == object or not (np.issubdtype(stack.dtype, np.number) or stack.dtype == bool) \
            or np.issubdtype(stack.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected an array of real numbers, got dtype {stack.dtype}")
    if stack.size == 0:
        raise ValueError(f"{name}: the image is empty (shape {stack.shape})")
    scale = not np.issubdtype(stack.dtype, np.floating)  # integers (raw 8/16-bit grey levels), bools
    out = np.empty(stack.shape, np.float32)
    for i, image in enumerate(stack):
        label = name if single else f"{name}[{i}]"
        image = np.asarray(image, dtype=np.float64)
        low, high = scalable_range(image, label)  # the loaders' checks and messages
        out[i] = minmax_normalise(image, name=label) if scale or low < 0.0 or high > 1.0 else image
    return out


def prepare_inputs(mri, pet) -> tuple[np.ndarray, np.ndarray]:
    """The arrays :func:`fuse` fuses: checked as the command line checks files, in [0, 1].

    - shapes (H, W), (N, H, W) or (N, H, W, 1), the same for both; real numbers, all finite;
    - an image that is constant (a 1 x 1 image among them) is refused with the command line's
      message ("the image is constant ...; it cannot be min-max scaled");
    - integer arrays (a raw uint8 or uint16 image) and float arrays with values outside [0, 1] are
      min-max scaled per image, as the loaders scale every file (so ``fuse(u8, ...)`` equals
      ``fuse(minmax_normalise(u8), ...)`` and equals fusing the PNG file of ``u8``);
    - float arrays already in [0, 1] are used as they are (float32), not rescaled.

    Returns float32 arrays of the input's shape (a trailing channel axis dropped).
    """
    mri_stack, single = as_stack(mri, "mri", dtype=None)
    pet_stack, pet_single = as_stack(pet, "pet", dtype=None)
    if mri_stack.shape != pet_stack.shape or single != pet_single:
        raise ValueError(f"mri {np.shape(mri)} and pet {np.shape(pet)} differ in shape: a pair must have the same size")
    mri_stack = _unit_range(mri_stack, "mri", single)
    pet_stack = _unit_range(pet_stack, "pet", single)
    return (mri_stack[0], pet_stack[0]) if single else (mri_stack, pet_stack)


def fuse(mri, pet, method="funfusean", weights=None, **options) -> np.ndarray:
    """Fuse arrays: ``method`` is a name (loaded with ``weights``/``options``) or a loaded method.

    Inputs are checked and scaled by :func:`prepare_inputs`: constant (and so 1 x 1) images are
    refused as the command line refuses them; integer arrays (raw uint8 grey levels) and float
    arrays outside [0, 1] are min-max scaled per image as the file loaders do, so a uint8 image
    and its min-max-scaled [0, 1] version fuse to the same result; float arrays within [0, 1] are
    used unchanged. A pair too large for the available memory is refused up front
    (:class:`ImageTooLargeError`, :func:`check_memory`).

    A network named here is built and loaded once per process (:func:`shared_method`): calling
    ``fuse`` in a loop traces its forward pass once, whatever the image sizes.
    """
    mri, pet = prepare_inputs(mri, pet)
    if isinstance(method, str):
        method = shared_method(method, weights=weights, **options)
    check_memory(method, np.shape(mri), "mri + pet")
    return method(mri, pet)


def _output_paths(pairs, out_dir, out_names, save_npy) -> dict[str, list[Path]]:
    """pair name -> [png] or [png, npy]: the files :func:`fuse_pairs` writes for it."""
    outputs = {}
    for pair in pairs:
        png = Path(out_names[pair.name]) if out_names and pair.name in out_names else Path(out_dir) / f"{pair.name}.png"
        outputs[pair.name] = [png, png.with_suffix(".npy")] if save_npy else [png]
    return outputs


@dataclass
class FusedPair:
    name: str
    fused: np.ndarray
    png: Path
    npy: Path | None


def _fuse_in_batches(method, pairs: list[ImagePair], loaded: list, progress: bool) -> list[np.ndarray]:
    """Fuse loaded pairs, stacking pairs of one size into the method's batches (a network's fast
    path, exact: FIDELITY.md F2); a non-finite result is reported with the pair that made it."""
    from tqdm.auto import tqdm

    by_shape: dict[tuple, list[int]] = {}
    for index, (mri, _) in enumerate(loaded):
        by_shape.setdefault(mri.shape, []).append(index)
    fused: list = [None] * len(pairs)
    with tqdm(total=len(pairs), desc=f"fusing ({method.name})", unit="pair",
              disable=not progress or len(pairs) < 2, leave=False) as bar:
        for shape, indices in by_shape.items():
            size = batch_size_for(method, (len(indices), *shape))
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                try:
                    stacked = method(np.stack([loaded[i][0] for i in chunk]), np.stack([loaded[i][1] for i in chunk]))
                except FloatingPointError:
                    stacked = None  # find the pair that made it, one at a time
                for position, index in enumerate(chunk):
                    if stacked is None:
                        try:
                            fused[index] = method(*loaded[index])
                        except FloatingPointError as exc:
                            raise FloatingPointError(f"{pairs[index].mri} + {pairs[index].pet}: {exc}") from exc
                    else:
                        fused[index] = stacked[position]
                bar.update(len(chunk))
    return fused


def fuse_pairs(pairs: list[ImagePair], out_dir, method="funfusean", weights=None, save_npy: bool = False,
               progress: bool = True, out_names: dict[str, Path] | None = None, colour: str = "none",
               **options) -> list[FusedPair]:
    """Fuse file pairs and write ``<out_dir>/<name>.png`` (and ``.npy``), all or nothing.

    ``out_names`` maps a pair name to an explicit output path (the single-pair CLI form).
    An output that is one of the inputs is refused before anything is read
    (:class:`OutputOverwritesInputError`), and so is a pair too large for the available memory
    before anything is fused (:class:`ImageTooLargeError`).
    ``colour``: "none" (grey PNGs), "ycbcr" (the fused image as Y beside the PET/SPECT file's
    own Cb, Cr: :func:`funfusean_tf.enhance.ycbcr_colour`) or "energy" (MdAFuse-style
    enhancement, an interpretation: :func:`funfusean_tf.enhance.enhance_colour`); the PNGs are
    then RGB, the .npy stays the grey float output.
    """
    from tqdm.auto import tqdm

    from .enhance import COLOUR_MODES, colourise, load_rgb

    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    outputs = _output_paths(pairs, out_dir, out_names, save_npy)
    check_outputs(pairs, [path for pair in pairs for path in outputs[pair.name]])
    if isinstance(method, str):
        method = shared_method(method, weights=weights, **options)
    loaded, colours = [], []
    for pair in tqdm(pairs, desc="reading", unit="pair", disable=not progress or len(pairs) < 2, leave=False):
        loaded.append(load_pair(pair.mri, pair.pet))
        check_memory(method, loaded[-1][0].shape, f"{pair.mri} + {pair.pet}")
        if colour != "none":
            colours.append(load_rgb(pair.pet))
            if colours[-1].shape[:2] != loaded[-1][1].shape:
                raise ValueError(f"{pair.pet}: its colour image {colours[-1].shape[:2]} and the fused size "
                                 f"{loaded[-1][1].shape} differ")
    fused_images = _fuse_in_batches(method, pairs, loaded, progress)
    results = []
    for pair, fused in zip(pairs, fused_images):
        png, *npy = outputs[pair.name]
        results.append(FusedPair(pair.name, fused, png, npy[0] if npy else None))
    images = [to_uint8(r.fused, name=str(r.png)) for r in results]  # refuses NaN before any write
    if colour != "none":
        images = [colourise(image, rgb, colour) for image, rgb in zip(images, colours)]
    for result, image in zip(results, images):
        write_png(result.png, image)
        if result.npy is not None:
            write_npy(result.npy, result.fused.astype(np.float32))
    return results

