"""What every classical baseline shares: input checks, the output contract, the max-abs rule."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_pair", "finish", "max_abs", "check_positive_int", "check_positive_float"]


def check_pair(mri, pet) -> tuple[np.ndarray, np.ndarray]:
    """The two source images as float64 arrays, or a ValueError saying what is wrong.

    Both must be 2-D, of the same shape, non-empty, numeric and finite. Values are expected in
    [0, 1] (the package's convention, see ``funfusean_tf.data.io``); they are not rescaled here,
    because several methods' parameters (the guided filter's eps, LP-SR's error tolerance) are
    defined on that scale.
    """
    arrays = []
    for name, image in (("mri", mri), ("pet", pet)):
        array = np.asarray(image)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
        if np.iscomplexobj(array):
            raise ValueError(f"{name}: expected a real-valued image, got dtype {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D grey image (H x W), got an array of shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"{name}: the image is empty (shape {array.shape})")
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(f"{name}: {bad} pixel(s) are NaN or infinite")
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"mri is {arrays[0].shape[0]}x{arrays[0].shape[1]} but pet is {arrays[1].shape[0]}x{arrays[1].shape[1]}: "
            "a pair must have the same size"
        )
    return arrays[0], arrays[1]


def finish(fused: np.ndarray) -> np.ndarray:
    """The output contract: float32, clipped to [0, 1].

    The original implementations end with a conversion to 8 bits (MATLAB ``uint8``), which clips
    to the displayable range; clipping here is that step without the quantisation.
    """
    return np.clip(fused, 0.0, 1.0).astype(np.float32)


def max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise 'choose max-absolute' rule; an exact tie |a| == |b| takes the mean.

    For a == b this is a; for a == -b it is 0. Taking the mean on ties (instead of always the
    first input) keeps the rule symmetric in its two inputs.
    """
    abs_a, abs_b = np.abs(a), np.abs(b)
    return np.where(abs_a > abs_b, a, np.where(abs_a < abs_b, b, 0.5 * (a + b)))


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value, name: str, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number
