"""Reading source images and writing fused ones.

Everything that turns a file into a [0, 1] grey array, or an array into a file, lives here, so
that every method, metric and command reads images the same way:

- palette GIFs (the Harvard atlas files FunFuseAn shipped) go through PIL's ``convert('L')``,
  because the palette index is not a grey level;
- RGB pseudo-colour PET/SPECT becomes grey with 0.2989 R + 0.5870 G + 0.1140 B, the weights the
  original FunFuseAn and MdAFuse code used (see FIDELITY.md);
- NPY arrays are taken as they are; NIfTI volumes give one axial slice (nibabel), or the whole
  volume with its header (:func:`read_volume`, for `funfusean_tf.volumes`);
- each image is then min-max scaled to [0, 1] on its own, as the originals did. A constant image
  cannot be scaled and is an error, not a division by zero.

Writing is atomic: a file appears complete or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "ImageReadError",
    "RGB_TO_GREY_WEIGHTS",
    "read_grey",
    "read_volume",
    "is_nifti_path",
    "minmax_normalise",
    "load_image",
    "load_pair",
    "as_stack",
    "check_pair",
    "centre_fit",
    "to_uint8",
    "write_png",
    "write_npy",
    "atomic_path",
]

#: ITU-R BT.601 luma weights as rounded in the originals' code (FunFuseAn, MdAFuse training).
RGB_TO_GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)

_RASTER_SUFFIXES = {".png", ".gif", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageReadError(ValueError):
    """A source image that cannot be used, with the file and the reason in the message."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def is_nifti_path(path) -> bool:
    """Whether a file name ends in .nii or .nii.gz (any case)."""
    return _suffix(Path(path)) in _NIFTI_SUFFIXES


def _read_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in ("P", "PA", "L", "LA", "1"):
                # Palette GIFs: the palette index is not a grey level; convert('L') looks it up.
                return np.asarray(image.convert("L"), dtype=np.float64)
            if image.mode in ("I", "I;16", "I;16B", "F"):
                return np.asarray(image, dtype=np.float64)
            rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc
    except Exception as exc:  # PIL's plugins raise many types on damaged files (DecompressionBombError, ...)
        raise ImageReadError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    return rgb_to_grey(rgb)


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Grey = 0.2989 R + 0.5870 G + 0.1140 B (the originals' weights; see FIDELITY.md)."""
    r, g, b = RGB_TO_GREY_WEIGHTS
    return r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]


def _load_nifti(path: Path):
    """(nibabel image, its values as float64 with the file's scl_slope/scl_inter applied)."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        return image, np.asanyarray(image.dataobj, dtype=np.float64)
    except Exception as exc:  # nibabel raises several unrelated types for a bad file
        raise ImageReadError(f"{path}: not a readable NIfTI file ({exc})") from exc


def read_volume(path):
    """A 3-D NIfTI volume: (raw values as float64, the nibabel image with its header and affine).

    A 4-D file holding one volume (X, Y, Z, 1) is taken as 3-D; any other shape, NaN or infinite
    values are an :class:`ImageReadError` naming the file. Values are not scaled.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if not is_nifti_path(path):
        raise ImageReadError(f"{path}: not a NIfTI volume (expected .nii or .nii.gz)")
    image, volume = _load_nifti(path)
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise ImageReadError(f"{path}: expected a 3-D NIfTI volume (or 4-D with one volume), got shape {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise ImageReadError(f"{path}: the volume contains NaN or infinite values")
    return volume, image


def _read_nifti(path: Path, slice_index: int | None, axis: int) -> np.ndarray:
    volume = np.squeeze(_load_nifti(path)[1])
    if volume.ndim == 2:
        return volume
    if volume.ndim != 3:
        raise ImageReadError(f"{path}: expected a 2-D or 3-D NIfTI volume, got shape {volume.shape}")
    if slice_index is None:
        raise ImageReadError(f"{path}: a 3-D NIfTI volume needs a slice index")
    if not 0 <= slice_index < volume.shape[axis]:
        raise ImageReadError(
            f"{path}: slice {slice_index} is outside the volume ({volume.shape[axis]} slices on axis {axis})"
        )
    return np.take(volume, slice_index, axis=axis)


def read_grey(path, slice_index: int | None = None, axis: int = 2) -> np.ndarray:
    """Raw grey values of a 2-D image file as float64 (no scaling).

    ``slice_index`` and ``axis`` pick the slice of a 3-D NIfTI volume (axis 2 = axial for RAS
    volumes).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = _suffix(path)
    if suffix in _RASTER_SUFFIXES:
        image = _read_raster(path)
    elif suffix == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ImageReadError(f"{path}: not a readable .npy array ({exc})") from exc
        if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
            raise ImageReadError(f"{path}: the array holds {image.dtype}, not real numbers")
        image = np.asarray(image, dtype=np.float64)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        elif image.ndim == 3 and image.shape[-1] == 3:
            image = rgb_to_grey(image)
    elif suffix in _NIFTI_SUFFIXES:
        image = _read_nifti(path, slice_index, axis)
    else:
        raise ImageReadError(
            f"{path}: unsupported file type {suffix!r} (expected PNG, GIF, TIFF, JPEG, BMP, NPY or NIfTI)"
        )
    if image.ndim != 2:
        raise ImageReadError(f"{path}: expected a 2-D image, got an array of shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ImageReadError(f"{path}: the image contains NaN or infinite values")
    return image


def scalable_range(image: np.ndarray, name: str = "image") -> tuple[float, float]:
    """(min, max) of an image that can be min-max scaled: finite, not empty, not constant."""
    if not np.all(np.isfinite(image)):
        raise ImageReadError(f"{name}: the image contains NaN or infinite values")
    if image.size == 0:
        raise ImageReadError(f"{name}: the image is empty (shape {image.shape})")
    low, high = float(image.min()), float(image.max())
    if high <= low:
        raise ImageReadError(f"{name}: the image is constant (every pixel is {low:g}); it cannot be min-max scaled")
    return low, high


def minmax_normalise(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(x - min) / (max - min) as float32, per image, as the originals scaled every input."""
    image = np.asarray(image, dtype=np.float64)
    low, high = scalable_range(image, name)
    if not np.isfinite(high - low):  # a range wider than float64 holds: halve everything first (exact)
        image, low, high = image / 2, low / 2, high / 2
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def load_image(path, slice_index: int | None = None, axis: int = 2) -> np.ndarray:
    """A file as a float32 [0, 1] grey image, min-max scaled on its own."""
    return minmax_normalise(read_grey(path, slice_index, axis), name=str(path))


def load_pair(mri_path, pet_path) -> tuple[np.ndarray, np.ndarray]:
    """An anatomical and a functional image, checked to have the same size."""
    mri = load_image(mri_path)
    pet = load_image(pet_path)
    if mri.shape != pet.shape:
        raise ImageReadError(
            f"{mri_path} is {mri.shape[0]}x{mri.shape[1]} but {pet_path} is {pet.shape[0]}x{pet.shape[1]}: "
            "a pair must have the same size"
        )
    return mri, pet


def as_stack(image, name: str, dtype=np.float32) -> tuple[np.ndarray, bool]:
    """(H, W), (N, H, W) or (N, H, W, 1) -> ((N, H, W) array, whether the input was one image).

    ``dtype=None`` keeps the input's floating type (float64 for finite-difference checks).
    """
    array = np.asarray(image) if dtype is None else np.asarray(image, dtype=dtype)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return array[None], True
    if array.ndim == 3:
        return array, False
    raise ValueError(f"{name}: expected an (H, W) image or an (N, H, W) stack, got shape {np.shape(image)}")


def check_pair(mri, pet, dtype=np.float32):
    """Both inputs as stacks of one shape, finite; returns (mri, pet, single)."""
    mri, single = as_stack(mri, "mri", dtype)
    pet, _ = as_stack(pet, "pet", dtype)
    if mri.shape != pet.shape:
        raise ValueError(f"mri {mri.shape[-2:]} and pet {pet.shape[-2:]} differ in size")
    for name, array in (("mri", mri), ("pet", pet)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}: the image contains NaN or infinite values")
    return mri, pet, single


def centre_fit(image: np.ndarray, size: int, dtype=None) -> np.ndarray:
    """Centre crop and/or zero-pad a 2-D image to size x size (both axes independently)."""
    out = np.zeros((size, size), dtype=dtype or image.dtype)
    h, w = image.shape
    sr, dr = max(0, (h - size) // 2), max(0, (size - h) // 2)
    sc, dc = max(0, (w - size) // 2), max(0, (size - w) // 2)
    nh, nw = min(h, size), min(w, size)
    out[dr:dr + nh, dc:dc + nw] = image[sr:sr + nh, sc:sc + nw]
    return out


def to_uint8(fused: np.ndarray, name: str = "fused image") -> np.ndarray:
    """A fused float image as 8 bits: min-max scaled per image, then truncated (np.uint8).

    The original FunFuseAn min-max scales the tanh output and truncates to uint8 (see
    FIDELITY.md, "8-bit output"). A NaN or infinite pixel is an error, never a silent black pixel.
    """
    fused = np.asarray(fused, dtype=np.float64)
    if not np.all(np.isfinite(fused)):
        bad = int(np.size(fused) - np.count_nonzero(np.isfinite(fused)))
        raise FloatingPointError(f"{name}: {bad} pixel(s) are NaN or infinite; refusing to write it")
    low, high = fused.min(), fused.max()
    if high <= low:
        return np.zeros(fused.shape, dtype=np.uint8)
    return np.uint8(255.0 * (fused - low) / (high - low))


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class atomic_path:
    """Context manager giving a temporary path beside ``path``; renamed onto it only on success.

    The hidden temporary name never reaches the user: an OSError while creating, writing or
    renaming it (a read-only folder, a full disk) is raised again naming ``path`` instead.
    """

    def __init__(self, path, suffix: str | None = None):
        self.path = Path(path)
        self.suffix = suffix if suffix is not None else "".join(self.path.suffixes) or ".tmp"
        self.tmp = None

    def _named_for_user(self, exc: OSError) -> OSError:
        """The same kind of OSError (errno kept), naming ``path`` where it named the temp file."""
        if exc.errno is not None and exc.strerror:
            return type(exc)(exc.errno, exc.strerror, str(self.path))
        message = str(exc).replace(str(self.tmp), str(self.path)) if self.tmp is not None else str(exc)
        return type(exc)(f"{self.path}: cannot write ({message})")

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.suffix, dir=self.path.parent)
        except OSError as exc:
            raise self._named_for_user(exc) from exc
        os.close(handle)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            # mkstemp creates the file 0600; give it the mode an ordinary open() would have
            # (0666 minus the umask), else every written image would be private to its owner.
            try:
                os.chmod(self.tmp, _new_file_mode())
            except OSError:
                pass
            try:
                os.replace(self.tmp, self.path)
            except OSError as error:
                self.tmp.unlink(missing_ok=True)
                raise self._named_for_user(error) from error
            return False
        self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and self.tmp is not None and str(self.tmp) in str(exc):
            raise self._named_for_user(exc) from exc
        return False


def write_png(path, image_uint8: np.ndarray) -> Path:
    """Write an 8-bit grey or RGB image as PNG, atomically."""
    from PIL import Image

    image_uint8 = np.asarray(image_uint8)
    if image_uint8.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8, got {image_uint8.dtype}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image_uint8).save(tmp, format="PNG")
    return Path(path)


def write_npy(path, array: np.ndarray) -> Path:
    """Write a float array as .npy, atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array))
    return Path(path)
