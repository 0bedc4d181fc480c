"""Contribution maps and the Omega colour coding (FunFuseAn, paper section 2.2), for any network.

The contribution of input k at pixel (n, m) is ``sum_ij dF[i, j] / dI_k[n, m]``: the gradient of
``sum(F)`` with respect to each input. :func:`contribution_maps` gets both from ONE backward pass
(a vector-Jacobian product with a cotangent of ones), never a full Jacobian, inside a
``tf.function``; it works for any Keras model with two image inputs ``[mri, pet]`` of shape
(N, H, W, 1). :func:`jacobian_probe` is the same pass with a one-hot or region cotangent: the map
of ``d sum(F[region]) / d I_k`` (the per-pixel view that FuseVis later built on; not in the paper).

BatchNorm follows the model's fidelity option (FIDELITY.md, "BatchNorm statistics"): the model is
called with ``training=False``, so ``BatchStatNormalization(statistics="batch")`` normalises each
image with its own statistics (as the original's batch size 1) and updates nothing: a batch of
several images gives each image the maps it would get alone (up to oneDNN's batch-size-dependent
rounding). Each image is still its own batch by default (``batch_size=None``).

:func:`colour_code` is the paper's visualisation. ``mode="faithful"`` repeats the original
visualisation.py step by step: min-max of the signed gradient stack to [0, 1] (float32, NumPy),
``cv2.normalize`` NORM_MINMAX to 0..255 as CV_32F (its float32 arithmetic is reproduced here),
``np.uint8`` truncation; the MRI map stacked to three grey channels, the PET map through OpenCV's
JET look-up table *read as RGB although OpenCV writes BGR* (so low contributions come out red and
high ones blue); ``skimage.color.rgb2hsv`` of both; H and S from the PET map with S scaled by
Omega, V from the MRI map; ``skimage.color.hsv2rgb``. ``mode="corrected"`` differs in one step
only: the JET table is flipped to RGB, so the hues run as the authors meant (low blue, high red).

:func:`omega_grid` and :func:`lambda_grid` draw figures in the style of the paper's Fig. 2 and
return a matplotlib ``Figure`` (no pyplot state is touched); :func:`save_figure` writes a PNG.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

__all__ = [
    "COLOUR_MODES",
    "ContributionMaps",
    "contribution_maps",
    "contribution_tensors",
    "jacobian_probe",
    "region_cotangent",
    "uses_batch_statistics",
    "gradient_to_uint8",
    "jet_rgb",
    "colour_code",
    "to_rgb8",
    "contribution_figure",
    "omega_grid",
    "lambda_grid",
    "save_figure",
    "VisualizedPair",
    "visualize_pairs",
]

#: "faithful": OpenCV's BGR JET table read as RGB, as the original; "corrected": the intended jet.
COLOUR_MODES = ("faithful", "corrected")

#: The paper's Omega (section 2.2 and the results) and the values its figure shows.
DEFAULT_OMEGA = 0.6
PAPER_OMEGAS = (0.3, 0.6, 0.9)

#: Batch size for models whose BatchNorm uses moving statistics (images are then independent).
_MOVING_BATCH = 8


class ContributionMaps(NamedTuple):
    """Contribution maps of both inputs and the fused image (the model's dtype), shaped like the inputs."""

    mri: np.ndarray
    pet: np.ndarray
    fused: np.ndarray


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def _keras_model(model):
    """A Keras model from a model or a loaded fusion method (``NetworkMethod.model``)."""
    import keras

    inner = getattr(model, "model", model)
    if not isinstance(inner, keras.Model):
        name = getattr(model, "name", type(model).__name__)
        raise TypeError(
            f"{name} is not a differentiable network (no Keras model): contribution maps need a fusion network "
            "such as funfusean, not a classical method"
        )
    if len(inner.inputs) != 2:
        raise ValueError(f"{inner.name}: contribution maps need a model with two image inputs [mri, pet], "
                         f"this one has {len(inner.inputs)}")
    return inner


def uses_batch_statistics(model) -> bool:
    """True when some BatchNorm of the model normalises with batch statistics at inference."""
    from .models.layers import uses_batch_statistics as _uses

    return _uses(_keras_model(model))


def _first_output(outputs):
    if isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return outputs


def _eligible_input_conv(layer, channels: int) -> bool:
    """A Conv2D whose input gradient is a depthwise correlation with the flipped kernel: linear,
    stride 1, no dilation, SAME padding, odd kernel, channels last, one group, ``channels`` in."""
    import keras

    return (
        type(layer) is keras.layers.Conv2D
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and getattr(layer, "groups", 1) == 1
        and all(size % 2 == 1 for size in layer.kernel_size)
        and layer.activation is keras.activations.linear
        and int(layer.kernel.shape[2]) == channels == 1
    )


def _input_convs(model) -> list[list] | None:
    """For each model input: the Conv2D layers that read it, when every reader is one that
    :func:`_eligible_input_conv` accepts (else ``[]`` for that input, which then takes the plain
    gradient). None when the model's graph cannot be read this way."""
    inputs = list(model.inputs)
    plan = [[] for _ in inputs]
    eligible = [True for _ in inputs]
    try:
        operations = list(getattr(model, "operations", model.layers))
        for operation in operations:
            if operation.__class__.__name__ == "InputLayer":
                continue
            nodes = getattr(operation, "_inbound_nodes", [])
            read = {k for node in nodes for tensor in node.input_tensors for k, x in enumerate(inputs) if tensor is x}
            for k in read:
                if len(nodes) == 1 and _eligible_input_conv(operation, int(inputs[k].shape[-1])):
                    plan[k].append(operation)
                else:
                    eligible[k] = False
    except Exception:  # a model whose graph does not look like a Keras functional one
        return None
    return [layers if ok else [] for layers, ok in zip(plan, eligible)]


class _Split:
    """How the gradient pass runs for one model: which input convolutions it transposes itself.

    The sources of the tape are the two input tensors, except where every layer reading an input
    is a plain stride-1 SAME Conv2D (FunFuseAn's four first convolutions): there the tape stops
    at those convolutions' outputs and the last step, the transpose of a 1-channel-input
    convolution, is done here as a depthwise correlation with the flipped kernel summed over
    channels. It is the same linear map (equal within float32 rounding, see the tests), but
    oneDNN's Conv2DBackpropInput with one output channel is 4-7x slower than the forward
    convolution for 9x9 and 7x7 kernels (benchmarks/bench_contributions.py).
    """

    def __init__(self, model, split_input_convs: bool):
        import keras

        plan = _input_convs(model) if split_input_convs else None
        if not plan or not any(plan):
            self.plan = [[] for _ in model.inputs]
            self.traced = model
        else:
            self.plan = plan
            outputs = [_first_output(model.outputs)] + [layer.output for layers in plan for layer in layers]
            self.traced = keras.Model(model.inputs, outputs, name=f"{model.name}_with_input_convs")
        self.model = model

    def forward(self, mri, pet):
        outputs = self.traced([mri, pet], training=False)
        if self.traced is self.model:
            return _first_output(outputs), []
        fused, *convs = outputs
        return fused, convs

    def backward(self, tape, target, inputs, convs, cotangent):
        import tensorflow as tf

        sources, slots, position = [], [], 0
        hidden = iter(convs)
        for k, layers in enumerate(self.plan):
            if layers:
                sources.extend(next(hidden) for _ in layers)
                slots.append(list(range(position, position + len(layers))))
                position += len(layers)
            else:
                sources.append(inputs[k])
                slots.append([position])
                position += 1
        grads = tape.gradient(target, sources, output_gradients=cotangent,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = []
        for k, layers in enumerate(self.plan):
            if layers:
                out.append(tf.add_n([_transpose_input_conv(layer, grads[i]) for layer, i in zip(layers, slots[k])]))
            else:
                out.append(grads[slots[k][0]])
        return out


def _transpose_input_conv(layer, grad):
    """The input gradient of a 1-channel-input, stride-1, SAME, odd-kernel Conv2D."""
    import tensorflow as tf

    kernel = tf.cast(layer.kernel, grad.dtype)  # (kh, kw, 1, C)
    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])  # (kh, kw, C, 1)
    return tf.reduce_sum(tf.nn.depthwise_conv2d(grad, flipped, [1, 1, 1, 1], "SAME"), axis=-1, keepdims=True)


_SPLITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _split(model, split_input_convs: bool) -> _Split:
    per_model = _SPLITS.setdefault(model, {})
    if split_input_convs not in per_model:
        per_model[split_input_convs] = _Split(model, split_input_convs)
    return per_model[split_input_convs]


def contribution_tensors(model, mri, pet, cotangent=None, split_input_convs: bool = True):
    """The gradient pass on tensors, for use inside a ``tf.function`` (export, custom loops).

    ``mri`` and ``pet``: (N, H, W, 1) tensors. Returns ``(grad_mri, grad_pet, fused)``, where the
    gradients are of ``sum(F)`` (or of ``sum(cotangent * F)`` when a cotangent is given) with
    respect to each input: one ``tf.GradientTape`` pass, only the input tensors as sources, the
    model called with ``training=False``. With batch-statistics BatchNorm each image is normalised
    with its own statistics at inference, so a batch gives each image its own maps.
    ``split_input_convs=False`` runs the tape through to the input tensors (see :class:`_Split`).
    """
    import tensorflow as tf

    split = _split(_keras_model(model), split_input_convs)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(mri)
        tape.watch(pet)
        fused, convs = split.forward(mri, pet)
        if cotangent is None:
            target = tf.reduce_sum(fused)  # the paper's map: a cotangent of ones
        else:
            target = fused
            cotangent = tf.cast(cotangent, fused.dtype)
    grad_mri, grad_pet = split.backward(tape, target, [mri, pet], convs, cotangent)
    return grad_mri, grad_pet, fused


class _Engine:
    """The traced (tf.function) gradient pass of one model, per jit and split setting, cached."""

    def __init__(self, model, jit_compile: bool, split_input_convs: bool = True):
        import tensorflow as tf

        self.dtype = model.inputs[0].dtype
        spec = tf.TensorSpec((None, None, None, 1), self.dtype)

        def contributions(mri, pet):
            return contribution_tensors(model, mri, pet, split_input_convs=split_input_convs)

        def vjp(mri, pet, cotangent):
            return contribution_tensors(model, mri, pet, cotangent, split_input_convs=split_input_convs)

        self.plan = _split(model, split_input_convs).plan
        self.contributions = tf.function(contributions, input_signature=[spec, spec], jit_compile=jit_compile,
                                         reduce_retracing=True)
        self.vjp = tf.function(vjp, input_signature=[spec, spec, spec], jit_compile=jit_compile,
                               reduce_retracing=True)


_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _engine(model, jit_compile: bool, split_input_convs: bool | None = None) -> _Engine:
    if split_input_convs is None:
        # XLA's CPU depthwise convolution is slow: under XLA the plain tape is faster.
        split_input_convs = not jit_compile
    per_model = _ENGINES.setdefault(model, {})
    key = (jit_compile, split_input_convs)
    if key not in per_model:
        per_model[key] = _Engine(model, jit_compile, split_input_convs)
    return per_model[key]


def _as_batch(image, name: str) -> tuple[np.ndarray, bool]:
    from .data.io import as_stack

    return as_stack(image, name, dtype=None)


def _inputs(mri, pet):
    from .data.io import check_pair

    return check_pair(mri, pet, dtype=None)


def _run(model, mri, pet, batch_size, jit_compile, cotangent=None) -> ContributionMaps:
    model = _keras_model(model)
    mri, pet, single = _inputs(mri, pet)
    if batch_size is None:
        batch_size = 1 if uses_batch_statistics(model) else _MOVING_BATCH
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    engine = _engine(model, bool(jit_compile))
    dtype = np.dtype(engine.dtype)
    outputs = ([], [], [])
    for start in range(0, len(mri), batch_size):
        a = np.ascontiguousarray(mri[start : start + batch_size, ..., None], dtype=dtype)
        b = np.ascontiguousarray(pet[start : start + batch_size, ..., None], dtype=dtype)
        if cotangent is None:
            results = engine.contributions(a, b)
        else:
            c = np.broadcast_to(cotangent[None, ..., None], a.shape).astype(dtype)
            results = engine.vjp(a, b, c)
        for store, result in zip(outputs, results):
            store.append(np.asarray(result)[..., 0])
    grad_mri, grad_pet, fused = (np.concatenate(store) for store in outputs)
    for name, array in (("MRI contribution map", grad_mri), ("PET contribution map", grad_pet),
                        ("fused image", fused)):
        bad = ~np.isfinite(array)
        if bad.any():
            raise FloatingPointError(
                f"{model.name}: the {name} has {int(bad.sum())} NaN or infinite value(s) (for FunFuseAn: the exact "
                "max/sum rule divided by a vanishing sum; load the model with hf_rule='guarded', see FIDELITY.md)"
            )
    if single:
        grad_mri, grad_pet, fused = grad_mri[0], grad_pet[0], fused[0]
    return ContributionMaps(grad_mri, grad_pet, fused)


def contribution_maps(model, mri, pet, batch_size: int | None = None, jit_compile: bool = False) -> ContributionMaps:
    """``d sum(F) / d I_mri`` and ``d sum(F) / d I_pet`` (and F itself) for a two-input network.

    ``model`` is a Keras model with inputs [mri, pet] or a loaded fusion method (its ``.model``).
    ``mri`` and ``pet`` are [0, 1] images (H, W), or stacks (N, H, W) / (N, H, W, 1). One
    ``tf.GradientTape`` pass per batch gives both maps (one vector-Jacobian product; no weight
    gradients; where an input is read only by plain convolutions, their transpose is the last
    step, done as a depthwise correlation, see FIDELITY.md). ``batch_size=None`` is 1 for models with batch-statistics BatchNorm (each image is
    its own batch, as in the original) and 8 otherwise. ``jit_compile`` compiles with XLA.
    Returns float arrays (the model's dtype) shaped like the inputs, without the channel axis.
    """
    return _run(model, mri, pet, batch_size, jit_compile)


def region_cotangent(shape: tuple[int, int], region) -> np.ndarray:
    """The (H, W) cotangent of a Jacobian probe: one-hot, a box of ones, or a given weight map.

    ``region`` is ``(i, j)`` (one output pixel), ``(slice, slice)`` (a rectangle), or an (H, W)
    boolean / float array (a mask or any weighting of the output pixels).
    """
    height, width = shape
    if isinstance(region, np.ndarray) or (isinstance(region, (list, tuple)) and len(region) != 2):
        weights = np.asarray(region, dtype=np.float64)
        if weights.shape != (height, width):
            raise ValueError(f"region mask has shape {weights.shape}, expected {(height, width)}")
        if not np.any(weights):
            raise ValueError("region mask selects no output pixel")
        return weights
    if not isinstance(region, (list, tuple)) or len(region) != 2:
        raise ValueError(f"region must be (i, j), (slice, slice) or an (H, W) mask, got {region!r}")
    rows, cols = region
    cotangent = np.zeros((height, width))
    if isinstance(rows, slice) or isinstance(cols, slice):
        rows = rows if isinstance(rows, slice) else slice(int(rows), int(rows) + 1)
        cols = cols if isinstance(cols, slice) else slice(int(cols), int(cols) + 1)
        cotangent[rows, cols] = 1.0
        if not cotangent.any():
            raise ValueError(f"region {region!r} is empty for a {height}x{width} image")
        return cotangent
    i, j = int(rows), int(cols)
    if not (0 <= i < height and 0 <= j < width):
        raise ValueError(f"output pixel {(i, j)} is outside the {height}x{width} image")
    cotangent[i, j] = 1.0
    return cotangent


def jacobian_probe(model, mri, pet, region, batch_size: int | None = None,
                   jit_compile: bool = False) -> ContributionMaps:
    """Maps of ``d sum(F[region]) / d I_k`` for both inputs: one VJP with a region cotangent.

    ``region`` as in :func:`region_cotangent`; the same region is probed in every image of a
    stack. A single output pixel gives one row of the full Jacobian per input, i.e. which input
    pixels that output pixel depends on and how strongly (beyond the paper, in the spirit of
    FuseVis). The whole image as region gives back :func:`contribution_maps`.
    """
    mri_batch, _, _ = _inputs(mri, pet)
    cotangent = region_cotangent(mri_batch.shape[1:], region)
    return _run(model, mri, pet, batch_size, jit_compile, cotangent=cotangent)


# --------------------------------------------------------------------------------------------
# Colour coding
# --------------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in COLOUR_MODES:
        raise ValueError(f"mode must be one of {COLOUR_MODES}, got {mode!r}")


def _stack(grad, name: str) -> tuple[np.ndarray, bool]:
    array, single = _as_batch(grad, name)
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise FloatingPointError(f"{name}: the gradient map contains NaN or infinite values")
    return array, single


def _opencv_minmax_255(image: np.ndarray) -> np.ndarray:
    """``cv2.normalize(image, None, 0, 255, NORM_MINMAX, dtype=CV_32F)`` of a float32 image.

    OpenCV computes scale = 255 / (max - min) in double, converts it to float32, derives the
    shift -min * scale from that float32 scale (rounded to float32 too) and evaluates
    ``image * scale + shift`` as a fused multiply-add in float32. Here the product is formed
    exactly in float64 (24-bit times 24-bit mantissas), the shift added there and the sum rounded
    to float32; the tests check the result against cv2.normalize bit for bit. A range below
    DBL_EPSILON gives scale 0: an all-zero image.
    """
    low, high = float(image.min()), float(image.max())
    if high - low > np.finfo(np.float64).eps:
        scale = np.float32(255.0 * (1.0 / (high - low)))
    else:
        scale = np.float32(0.0)
    shift = np.float32(0.0 - low * float(scale))
    return (image.astype(np.float64) * float(scale) + float(shift)).astype(np.float32)


def gradient_to_uint8(grad) -> np.ndarray:
    """Signed gradient maps to 8 bits exactly as the original: two min-max steps, then truncation.

    First ``(g - min) / (max - min)`` over the whole stack in float32 (the original normalised
    every test image's map together), then per image OpenCV's NORM_MINMAX to 0..255 as float32,
    then ``np.uint8`` (truncation, not rounding). A constant stack (the original would divide 0 by
    0) gives zeros. (H, W) in, (H, W) out; (N, H, W) in, (N, H, W) out.
    """
    stack, single = _stack(grad, "gradient")
    low, high = stack.min(), stack.max()  # float32 scalars, as np.min on the float32 maps
    if high > low:
        stack = (stack - low) / (high - low)
    else:
        stack = np.zeros_like(stack)
    out = np.stack([np.uint8(_opencv_minmax_255(image)) for image in stack])
    return out[0] if single else out


@lru_cache(maxsize=1)
def _opencv_jet_bgr() -> np.ndarray:
    """OpenCV's COLORMAP_JET look-up table, 256 x 3, in OpenCV's own BGR order."""
    import cv2

    levels = np.arange(256, dtype=np.uint8)[:, None]
    table = cv2.applyColorMap(levels, cv2.COLORMAP_JET)[:, 0, :]
    table.setflags(write=False)
    return table


def jet_rgb(levels: np.ndarray, mode: str = "faithful") -> np.ndarray:
    """8-bit levels through OpenCV's JET table as (..., 3) uint8 "RGB".

    ``faithful``: the table's BGR triples taken as RGB, as the original did (a reversed jet:
    level 0 is dark red, 255 dark blue). ``corrected``: flipped to true RGB (0 blue, 255 red).
    """
    _check_mode(mode)
    levels = np.asarray(levels)
    if levels.dtype != np.uint8:
        raise TypeError(f"jet_rgb expects uint8 levels, got {levels.dtype}")
    table = _opencv_jet_bgr()
    if mode == "corrected":
        table = table[:, ::-1]
    return table[levels]


def colour_code(grad_mri, grad_pet, omega: float = DEFAULT_OMEGA, mode: str = "faithful") -> np.ndarray:
    """The paper's colour coding of a pair of contribution maps: float RGB in [0, 1], (..., 3).

    H and S come from the PET map through JET (S multiplied by ``omega``), V from the MRI map.
    ``omega = 0`` gives grey: the MRI map's value channel. See the module docstring for the
    steps; ``mode`` is "faithful" (the original's BGR-as-RGB JET) or "corrected".
    """
    from skimage import color

    _check_mode(mode)
    omega = float(omega)
    if not (np.isfinite(omega) and 0.0 <= omega <= 1.0):
        raise ValueError(f"omega must be in [0, 1], got {omega}")
    mri8 = gradient_to_uint8(grad_mri)
    pet8 = gradient_to_uint8(grad_pet)
    if mri8.shape != pet8.shape:
        raise ValueError(f"the MRI map {mri8.shape} and the PET map {pet8.shape} differ in shape")
    mri_hsv = color.rgb2hsv(np.stack([mri8, mri8, mri8], axis=-1))  # the MRI map as three grey channels
    pet_hsv = color.rgb2hsv(jet_rgb(pet8, mode))
    mri_hsv[..., 0] = pet_hsv[..., 0]
    mri_hsv[..., 1] = pet_hsv[..., 1] * omega
    return color.hsv2rgb(mri_hsv)


def to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """A [0, 1] float RGB image as uint8 (rounded) for a PNG file."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if not np.all(np.isfinite(rgb)):
        raise FloatingPointError("the colour-coded image contains NaN or infinite values")
    return np.uint8(np.round(np.clip(rgb, 0.0, 1.0) * 255.0))


# --------------------------------------------------------------------------------------------
# Figures (matplotlib Figure objects; no pyplot, no global state)
# --------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def contribution_figure(grad, title: str = "contribution map", cmap: str = "gray", label: str | None = None):
    """One signed contribution map (H, W) with a colour bar of its raw values."""
    grad = np.asarray(grad, dtype=np.float64)
    if grad.ndim != 2:
        raise ValueError(f"contribution_figure draws one (H, W) map, got shape {grad.shape}")
    figure = _figure(4.6, 4.0)
    axes = figure.add_subplot()
    shown = axes.imshow(grad, cmap=cmap, interpolation="nearest")
    axes.set_title(title)
    axes.set_axis_off()
    figure.colorbar(shown, ax=axes, shrink=0.85, label=label or r"$\sum_{ij}\,\partial F_{ij}/\partial I(n,m)$")
    return figure


def _rows(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3):
        return array[None]
    if array.ndim in (3, 4):
        return array
    raise ValueError(f"{name}: expected (H, W) or (N, H, W), got shape {array.shape}")


def _show(axes, image, title=None):
    image = np.asarray(image)
    if image.ndim == 2:
        axes.imshow(image, cmap="gray", interpolation="nearest")
    else:
        axes.imshow(np.clip(image, 0, 1) if image.dtype.kind == "f" else image, interpolation="nearest")
    if title:
        axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def omega_grid(grad_mri, grad_pet, omegas: Sequence[float] = PAPER_OMEGAS, mode: str = "faithful",
               fused=None, row_labels: Sequence[str] | None = None, path=None):
    """Colour-coded results for several Omega values: one row per pair, one column per Omega.

    ``grad_mri`` / ``grad_pet``: (H, W) or (N, H, W) contribution maps; ``fused`` (same shape)
    adds a first column with the fused image. Returns the Figure (saved as PNG when ``path``).
    """
    mri, pet = _rows(grad_mri, "grad_mri"), _rows(grad_pet, "grad_pet")
    if mri.shape != pet.shape:
        raise ValueError(f"grad_mri {mri.shape} and grad_pet {pet.shape} differ in shape")
    if not omegas:
        raise ValueError("give at least one Omega")
    fused_rows = None if fused is None else _rows(fused, "fused")
    columns = len(omegas) + (fused_rows is not None)
    coded = [colour_code(mri, pet, omega, mode) for omega in omegas]  # the stack, as the original
    figure = _figure(2.2 * columns, 2.3 * len(mri))
    grid = figure.subplots(len(mri), columns, squeeze=False)
    for row in range(len(mri)):
        column = 0
        if fused_rows is not None:
            _show(grid[row, 0], fused_rows[row], "fused" if row == 0 else None)
            column = 1
        for omega, image in zip(omegas, coded):
            _show(grid[row, column], image[row], rf"$\Omega$ = {omega:g}" if row == 0 else None)
            column += 1
        if row_labels:
            grid[row, 0].text(-0.08, 0.5, row_labels[row], transform=grid[row, 0].transAxes, rotation=90,
                              ha="right", va="center", fontsize=9)
    figure.suptitle(f"colour-coded contributions ({mode} jet)", fontsize=10)
    if path is not None:
        save_figure(figure, path)
    return figure


def lambda_grid(fused_by_lambda: Mapping[float, np.ndarray], coded_by_lambda: Mapping[float, np.ndarray] | None = None,
                mri=None, pet=None, path=None):
    """Fused images across lambda (one column each), as the paper's Fig. 2.

    ``fused_by_lambda``: {lambda: (H, W) fused image} (one pair). ``coded_by_lambda`` adds a second
    row with the colour-coded contributions of each lambda; ``mri`` / ``pet`` add the inputs as
    the first columns. Returns the Figure (saved as PNG when ``path``).
    """
    if not fused_by_lambda:
        raise ValueError("give the fused image of at least one lambda")
    lambdas = sorted(fused_by_lambda)
    inputs = [(name, image) for name, image in (("MRI", mri), ("PET", pet)) if image is not None]
    columns = len(inputs) + len(lambdas)
    rows = 1 + (coded_by_lambda is not None)
    figure = _figure(2.2 * columns, 2.3 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    for column, (name, image) in enumerate(inputs):
        _show(grid[0, column], image, name)
        if rows == 2:
            grid[1, column].set_axis_off()
    for column, lam in enumerate(lambdas, start=len(inputs)):
        _show(grid[0, column], fused_by_lambda[lam], rf"$\lambda$ = {lam:g}")
        if rows == 2:
            if lam not in coded_by_lambda:
                raise ValueError(f"no colour-coded image for lambda {lam:g}")
            _show(grid[1, column], coded_by_lambda[lam])
    if path is not None:
        save_figure(figure, path)
    return figure


def save_figure(figure, path, dpi: int = 150):
    """Write a Figure as PNG, atomically (complete or not at all)."""
    from .data.io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path


# --------------------------------------------------------------------------------------------
# Files: everything `funfusean visualize` writes for a list of pairs
# --------------------------------------------------------------------------------------------


@dataclass
class VisualizedPair:
    """One pair's results and the files written for it."""

    name: str
    maps: ContributionMaps
    coded: np.ndarray
    fused_by_lambda: dict = field(default_factory=dict)
    coded_by_lambda: dict = field(default_factory=dict)
    files: list = field(default_factory=list)


def _method_name(method) -> str:
    return getattr(method, "name", None) or getattr(getattr(method, "model", None), "name", "model")


def visualize_pairs(pairs, out_dir, method, omega: float = DEFAULT_OMEGA, mode: str = "faithful",
                    omegas: Sequence[float] | None = None, lambda_methods: Mapping[float, object] | None = None,
                    save_npy: bool = False, jit_compile: bool = False, progress: bool = True) -> list[VisualizedPair]:
    """Contribution maps, colour coding and figures for file pairs, written all or nothing.

    For each :class:`~funfusean_tf.data.pairs.ImagePair` ``p`` this writes into ``out_dir``:
    ``<p.name>_fused.png`` (8-bit, as ``funfusean fuse``), ``<p.name>_mri_contribution.png`` and
    ``<p.name>_pet_contribution.png`` (the signed maps with a colour bar), and
    ``<p.name>_colour_coded.png`` (the coding at ``omega``); with ``omegas`` also
    ``<p.name>_omega_grid.png``, with ``lambda_methods`` ({lambda: method}) also
    ``<p.name>_lambda_grid.png`` (fused images and colour codings across lambda), with
    ``save_npy`` the raw maps as ``.npy``. Every pair is read and computed before the first file
    is written, so a bad input leaves nothing behind. ``method``: a loaded network (NetworkMethod)
    or a Keras model. The faithful first min-max step runs over each pair's map on its own.
    """
    from tqdm.auto import tqdm

    from .data.io import load_pair, to_uint8, write_npy, write_png

    _check_mode(mode)
    _keras_model(method)  # a classical method fails here, before anything is read
    for extra in (lambda_methods or {}).values():
        _keras_model(extra)
    show = progress and len(pairs) > 1
    loaded = [load_pair(pair.mri, pair.pet) for pair in tqdm(pairs, desc="reading", unit="pair", disable=not show,
                                                                 leave=False)]
    results = []
    for pair, (mri, pet) in tqdm(list(zip(pairs, loaded)), desc=f"contributions ({_method_name(method)})",
                                 unit="pair", disable=not show, leave=False):
        try:
            maps = contribution_maps(method, mri, pet, jit_compile=jit_compile)
            result = VisualizedPair(pair.name, maps, colour_code(maps.mri, maps.pet, omega, mode))
            for lam, other in sorted((lambda_methods or {}).items()):
                other_maps = contribution_maps(other, mri, pet, jit_compile=jit_compile)
                result.fused_by_lambda[lam] = other_maps.fused
                result.coded_by_lambda[lam] = colour_code(other_maps.mri, other_maps.pet, omega, mode)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{pair.mri} + {pair.pet}: {exc}") from exc
        results.append(result)
    fused8 = [to_uint8(r.maps.fused, name=f"{r.name} fused") for r in results]  # refuses NaN before any write
    coded8 = [to_rgb8(r.coded) for r in results]

    out_dir = Path(out_dir)
    for result, fused, coded, (mri, pet) in zip(results, fused8, coded8, loaded):
        stem = out_dir / result.name
        result.files.append(write_png(f"{stem}_fused.png", fused))
        for kind, grad, cmap in (("mri", result.maps.mri, "gray"), ("pet", result.maps.pet, "jet")):
            figure = contribution_figure(grad, f"{kind.upper()} contribution ({result.name})", cmap=cmap,
                                         label=rf"$\sum_{{ij}}\,\partial F_{{ij}}/\partial I_{{{kind}}}(n,m)$")
            result.files.append(Path(save_figure(figure, f"{stem}_{kind}_contribution.png")))
            if save_npy:
                result.files.append(write_npy(f"{stem}_{kind}_contribution.npy", grad.astype(np.float32)))
        result.files.append(write_png(f"{stem}_colour_coded.png", coded))
        if omegas:
            omega_grid(result.maps.mri, result.maps.pet, omegas, mode, fused=result.maps.fused,
                       path=f"{stem}_omega_grid.png")
            result.files.append(Path(f"{stem}_omega_grid.png"))
        if result.fused_by_lambda:
            lambda_grid(result.fused_by_lambda, result.coded_by_lambda, mri=mri, pet=pet,
                        path=f"{stem}_lambda_grid.png")
            result.files.append(Path(f"{stem}_lambda_grid.png"))
    return results
