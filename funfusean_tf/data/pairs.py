"""Finding (anatomical, functional) pairs on disk.

A pair set is a list of :class:`ImagePair`: two paths and a name. Folders pair up by file name
when both hold the same names (the Harvard collections), otherwise by natural sort order (the
MdAFuse test set, whose two folders use different names, as its authors paired them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ImagePair",
    "natural_key",
    "list_images",
    "pairs_from_folders",
    "read_split",
    "DATA_ENV_VAR",
    "find_data_root",
]

IMAGE_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".npy")

#: Environment variable naming the folder that holds the real data (``aanlib/``, ``reference/``).
DATA_ENV_VAR = "FUNFUSEAN_DATA"


@dataclass(frozen=True)
class ImagePair:
    mri: Path
    pet: Path
    name: str


def natural_key(text: str):
    """Sort key putting '2.png' before '10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def list_images(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def pairs_from_folders(mri_dir, pet_dir, names: list[str] | None = None) -> list[ImagePair]:
    """Pairs from two folders, by shared file stem if the stems agree, else by natural order.

    ``names`` restricts the result to those stems (a train/test split file).
    """
    mri_files, pet_files = list_images(mri_dir), list_images(pet_dir)
    if not mri_files:
        raise FileNotFoundError(f"{mri_dir}: no images found")
    mri_by_stem = {p.stem: p for p in mri_files}
    pet_by_stem = {p.stem: p for p in pet_files}
    if set(mri_by_stem) == set(pet_by_stem):
        stems = sorted(mri_by_stem, key=natural_key)
        pairs = [ImagePair(mri_by_stem[s], pet_by_stem[s], s) for s in stems]
    else:
        if names is not None:
            raise ValueError(f"{mri_dir} and {pet_dir} do not share file names, so a name list cannot select pairs")
        if len(mri_files) != len(pet_files):
            raise ValueError(
                f"{mri_dir} holds {len(mri_files)} images but {pet_dir} holds {len(pet_files)}: cannot pair them"
            )
        pairs = [ImagePair(m, p, str(i)) for i, (m, p) in enumerate(zip(mri_files, pet_files))]
    if names is not None:
        wanted = [Path(n).stem for n in names]
        missing = [n for n in wanted if n not in mri_by_stem]
        if missing:
            raise FileNotFoundError(f"{mri_dir}: {len(missing)} listed image(s) missing, e.g. {missing[:3]}")
        index = {pair.name: pair for pair in pairs}
        pairs = [index[n] for n in wanted]
    return pairs


def read_split(path) -> list[str]:
    """The names in a split file (one per line; blank lines and '#' comments ignored)."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def find_data_root(start=None) -> Path | None:
    """The real-data folder: $FUNFUSEAN_DATA, else a ``shared/data`` beside or above ``start``."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        root = Path(env).expanduser()
        return root if root.is_dir() else None
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder.parent / "shared" / "data"
        if (candidate / "aanlib").is_dir():
            return candidate
        candidate = folder / "shared" / "data"
        if (candidate / "aanlib").is_dir():
            return candidate
    return None
