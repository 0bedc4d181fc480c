"""Fusing co-registered 3-D NIfTI volumes slice by slice: ``fuse_volume(mri, pet, out)``.

The MRI and PET/SPECT volumes must lie on one grid (shape, voxel sizes and affine within
:data:`ZOOM_ATOL`/:data:`AFFINE_ATOL` mm or :data:`RELATIVE_TOL`); a grid that differs is refused
(:class:`GridMismatchError`) with both files named and how they differ. Nothing is resampled.

Each slice along ``axis`` is scaled to [0, 1] and fused by any method of funfusean_tf.fusion
(a network in batches of :meth:`NetworkMethod.batch_for` slices, one batch of activations at a
time; a classical method one slice at a time). Scaling (FIDELITY.md D6):

- ``scaling="slice"`` (default): each slice min-max scaled on its own, as the originals scaled
  every 2-D input image (D1);
- ``scaling="volume"``: each volume min-max scaled once (its global minimum and maximum), so a
  slice keeps its intensity relative to the rest of the volume.

A slice where both inputs are constant (empty background, usually all zero) is written as 0 and
not fused. A slice where only one input is constant cannot be min-max scaled on its own (the 2-D
path refuses a constant image); with per-slice scaling that input's slice is taken as all zero
(``x - min``, the numerator of min-max scaling) and the slice is fused with it; with per-volume
scaling it is scaled with the volume's range like any other slice.

The output holds the method's float output per slice (not 8-bit) on the MRI's grid: the header is
a copy of the MRI's (affine, qform/sform and their codes, voxel sizes, units), float32 or scaled
int16 (nibabel's scl_slope/scl_inter), written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.io import ImageReadError, atomic_path, is_nifti_path, minmax_normalise, read_volume, scalable_range
from .data.pairs import ImagePair
from .fusion import batch_size_for, check_memory, check_outputs, shared_method

__all__ = ["GridMismatchError", "is_nifti_path", "check_same_grid", "scale_volume_slices", "fuse_volume_arrays",
           "fuse_volume", "check_volume_paths", "VolumeResult", "SCALINGS", "OUTPUT_DTYPES"]

SCALINGS = ("slice", "volume")
OUTPUT_DTYPES = ("float32", "int16")
#: Voxel sizes may differ by this much (mm) plus RELATIVE_TOL of their size; affines likewise.
ZOOM_ATOL = 1e-3
AFFINE_ATOL = 1e-3
RELATIVE_TOL = 1e-4


class GridMismatchError(ValueError):
    """Two volumes that are not on the same voxel grid (shape, voxel size or affine)."""


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def check_same_grid(mri_path, mri_image, mri_shape, pet_path, pet_image, pet_shape) -> None:
    """Refuse (GridMismatchError) two volumes whose shape, voxel sizes or affine differ."""
    problems = []
    if tuple(mri_shape) != tuple(pet_shape):
        problems.append(f"shapes {'x'.join(map(str, mri_shape))} and {'x'.join(map(str, pet_shape))}")
    mri_zooms = np.asarray(mri_image.header.get_zooms()[:3], dtype=np.float64)
    pet_zooms = np.asarray(pet_image.header.get_zooms()[:3], dtype=np.float64)
    if not np.allclose(mri_zooms, pet_zooms, rtol=RELATIVE_TOL, atol=ZOOM_ATOL):
        problems.append(f"voxel sizes {_fmt(mri_zooms)} and {_fmt(pet_zooms)} mm")
    mri_affine = np.asarray(mri_image.affine, dtype=np.float64)
    pet_affine = np.asarray(pet_image.affine, dtype=np.float64)
    if not np.allclose(mri_affine, pet_affine, rtol=RELATIVE_TOL, atol=AFFINE_ATOL):
        difference = float(np.max(np.abs(mri_affine - pet_affine)))
        problems.append(f"affines (voxel to world) that differ by up to {difference:g} "
                        f"(tolerance {AFFINE_ATOL:g} mm + {RELATIVE_TOL:g} relative)")
    if problems:
        raise GridMismatchError(
            f"{mri_path} and {pet_path} are not on the same voxel grid: " + "; ".join(problems)
            + ". Fusing slice by slice needs co-registered volumes on one grid (resample the PET onto the MRI "
              "grid first; nothing is resampled here)"
        )


def _constant(image: np.ndarray) -> bool:
    return bool(image.max() <= image.min())


def _volume_scaler(volume: np.ndarray, name: str):
    """slice -> [0, 1] float32 with the whole volume's min and max (a constant volume is refused)."""
    low, high = scalable_range(volume, name)
    span = high - low

    def scale(image: np.ndarray) -> np.ndarray:
        return np.clip((image - low) / span, 0.0, 1.0).astype(np.float32)

    return scale


def _slice_scaler(name: str):
    """slice -> [0, 1] float32 min-max scaled on its own; a constant slice -> all zero."""

    def scale(image: np.ndarray, index: int) -> np.ndarray:
        if _constant(image):
            return np.zeros(image.shape, np.float32)
        return minmax_normalise(image, name=f"{name} slice {index}")

    return scale


def scale_volume_slices(mri: np.ndarray, pet: np.ndarray, axis: int = 2, scaling: str = "slice",
                        names: tuple[str, str] = ("mri", "pet")):
    """Yield (index, mri slice, pet slice) in [0, 1] for every slice along ``axis`` that is not
    empty in both volumes (see the module docstring for the rules)."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    mri_slices, pet_slices = np.moveaxis(mri, axis, 0), np.moveaxis(pet, axis, 0)
    if scaling == "volume":
        scale_mri, scale_pet = _volume_scaler(mri, names[0]), _volume_scaler(pet, names[1])
        scale = lambda which, image, index: (scale_mri if which == 0 else scale_pet)(image)  # noqa: E731
    else:
        scalers = (_slice_scaler(names[0]), _slice_scaler(names[1]))
        scale = lambda which, image, index: scalers[which](image, index)  # noqa: E731
    for index, (a, b) in enumerate(zip(mri_slices, pet_slices)):
        if _constant(a) and _constant(b):
            continue
        yield index, scale(0, a, index), scale(1, b, index)


def fuse_volume_arrays(mri: np.ndarray, pet: np.ndarray, method="funfusean", axis: int = 2, scaling: str = "slice",
                       progress: bool = True, names: tuple[str, str] = ("mri", "pet"), **options) -> np.ndarray:
    """Fuse two raw 3-D arrays of one shape slice by slice along ``axis``; float32, the input's shape.

    ``method`` is a name (:func:`funfusean_tf.fusion.shared_method`, with ``options``) or a
    loaded method. Empty slices (both inputs constant) are 0. ``names`` label messages.
    """
    from tqdm.auto import tqdm

    mri, pet = np.asarray(mri, dtype=np.float64), np.asarray(pet, dtype=np.float64)
    if mri.ndim != 3 or mri.shape != pet.shape:
        raise ValueError(f"{names[0]} {mri.shape} and {names[1]} {pet.shape}: expected two 3-D volumes of one shape")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if isinstance(method, str):
        method = shared_method(method, **options)
    out = np.zeros(mri.shape, np.float32)
    out_slices = np.moveaxis(out, axis, 0)  # a view: writing a slice writes the volume
    slice_shape = out_slices.shape[1:]
    check_memory(method, slice_shape, f"{names[0]} + {names[1]} (one slice along axis {axis})")
    batch = batch_size_for(method, out_slices.shape)
    pending: list = []

    def flush():
        indices = [index for index, _, _ in pending]
        try:
            fused = method(np.stack([a for _, a, _ in pending]), np.stack([b for _, _, b in pending]))
        except FloatingPointError as exc:
            raise FloatingPointError(f"{names[0]} + {names[1]}: slices {indices[0]}-{indices[-1]} along axis "
                                     f"{axis}: {exc}") from exc
        fused = np.asarray(fused, dtype=np.float32).reshape(len(indices), *slice_shape)
        if not np.all(np.isfinite(fused)):
            raise FloatingPointError(f"{names[0]} + {names[1]}: {method.name} gave NaN or infinite values in slices "
                                     f"{indices[0]}-{indices[-1]} along axis {axis}; nothing is written")
        for index, image in zip(indices, fused):
            out_slices[index] = image
        pending.clear()

    with tqdm(total=out_slices.shape[0], desc=f"fusing slices ({method.name})", unit="slice",
              disable=not progress, leave=False) as bar:
        done = 0
        for index, a, b in scale_volume_slices(mri, pet, axis, scaling, names):
            pending.append((index, a, b))
            if len(pending) == batch:
                flush()
                bar.update(index + 1 - done)
                done = index + 1
        if pending:
            flush()
        bar.update(out_slices.shape[0] - done)
    return out


@dataclass
class VolumeResult:
    path: Path
    shape: tuple
    dtype: str
    fused_slices: int
    empty_slices: int


def _output_image(fused: np.ndarray, mri_image, dtype: str, description: str):
    """A nibabel image of ``fused`` on the MRI's grid, its header a copy of the MRI's."""
    header = mri_image.header.copy()
    header.set_data_dtype(np.float32 if dtype == "float32" else np.int16)
    header.set_slope_inter(None, None)  # nibabel works out int16 scaling (scl_slope/scl_inter) on writing
    for key in ("cal_min", "cal_max"):
        if key in header:
            header[key] = 0  # the MRI's display window does not fit the fused values
    if "descrip" in header:
        header["descrip"] = description[:79].encode("ascii", "replace")
    image = type(mri_image)(fused, mri_image.affine, header)
    # The constructor keeps a header whose best affine is the one given; set both forms explicitly
    # anyway so that a qform that differs from the sform survives as it was.
    if hasattr(mri_image, "get_qform"):
        qform, qcode = mri_image.get_qform(coded=True)
        sform, scode = mri_image.get_sform(coded=True)
        image.set_qform(qform, int(qcode))
        image.set_sform(sform, int(scode))
    return image


def check_volume_paths(mri_path, pet_path, out_path) -> None:
    """The checks that need no file read: NIfTI names, inputs that exist, an output that is not an input."""
    mri_path, pet_path, out_path = Path(mri_path), Path(pet_path), Path(out_path)
    if not is_nifti_path(out_path):
        raise ValueError(f"{out_path}: a fused volume is written as NIfTI; give a .nii or .nii.gz file name")
    for role, path in (("--mri", mri_path), ("--pet", pet_path)):
        if not is_nifti_path(path):
            raise ImageReadError(f"{path}: a NIfTI output needs NIfTI volume inputs ({role} must be .nii or .nii.gz)")
    check_outputs([ImagePair(mri_path, pet_path, out_path.name)], [out_path])
    for path in (mri_path, pet_path):
        if not path.is_file():
            raise ImageReadError(f"{path}: no such file")


def fuse_volume(mri_path, pet_path, out_path, method="funfusean", axis: int = 2, dtype: str = "float32",
                scaling: str = "slice", progress: bool = True, **options) -> VolumeResult:
    """Fuse two co-registered NIfTI volumes slice by slice and write a NIfTI volume (see the module docstring).

    An output that is one of the inputs, a file that is not a 3-D NIfTI volume, grids that
    differ: each is an error naming the file(s), and nothing is written.
    """
    import nibabel as nib

    mri_path, pet_path, out_path = Path(mri_path), Path(pet_path), Path(out_path)
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    check_volume_paths(mri_path, pet_path, out_path)
    mri, mri_image = read_volume(mri_path)
    pet, pet_image = read_volume(pet_path)
    check_same_grid(mri_path, mri_image, mri.shape, pet_path, pet_image, pet.shape)
    if isinstance(method, str):
        method = shared_method(method, **options)
    fused = fuse_volume_arrays(mri, pet, method, axis=axis, scaling=scaling, progress=progress,
                               names=(str(mri_path), str(pet_path)))
    empty = sum(_constant(a) and _constant(b) for a, b in zip(np.moveaxis(mri, axis, 0), np.moveaxis(pet, axis, 0)))
    image = _output_image(fused, mri_image, dtype, f"funfusean {method.name} fusion, {scaling} scaling, axis {axis}")
    suffix = ".nii.gz" if out_path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_path(out_path, suffix=suffix) as tmp:
        nib.save(image, str(tmp))
    return VolumeResult(out_path, fused.shape, dtype, fused.shape[axis] - int(empty), int(empty))
