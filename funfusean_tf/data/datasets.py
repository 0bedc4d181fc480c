"""The real pair sets this project knows by name, located under a data root.

The data root is the folder holding ``aanlib/`` and ``reference/`` (``../shared/data`` beside a
checkout, or ``$FUNFUSEAN_DATA``). Nothing here is shipped with the package: these are the
public Harvard Whole Brain Atlas pairs the original methods were published with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .pairs import ImagePair, find_data_root, pairs_from_folders, read_split

__all__ = ["PairSetSpec", "PAIR_SETS", "named_pairs"]


@dataclass(frozen=True)
class PairSetSpec:
    mri_dir: str
    pet_dir: str
    split_files: tuple[tuple[str, str], ...] = ()
    description: str = ""


PAIR_SETS: dict[str, PairSetSpec] = {
    "funfusean_test": PairSetSpec(
        "aanlib/funfusean_test/mri", "aanlib/funfusean_test/pet",
        description="the 10 MRI/PET-FDG pairs shipped with FunFuseAn (palette GIFs)"),
    "mdafuse_mr_pet": PairSetSpec(
        "aanlib/mdafuse_test/MRI_PET/MRI", "aanlib/mdafuse_test/MRI_PET/PET",
        description="MdAFuse's 42 MR-PET test pairs (RGB PNG)"),
    "mdafuse_mr_spect": PairSetSpec(
        "aanlib/mdafuse_test/MRI_SPECT/MRI", "aanlib/mdafuse_test/MRI_SPECT/SPECT",
        description="MdAFuse's 74 MR-SPECT test pairs"),
    "mdafuse_mr_ct": PairSetSpec(
        "aanlib/mdafuse_test/MRI_CT/MRI", "aanlib/mdafuse_test/MRI_CT/CT",
        description="MdAFuse's 21 MR-CT test pairs"),
    "dilran_ct_mri": PairSetSpec(
        "aanlib/dilran_ct_mri/MRI", "aanlib/dilran_ct_mri/CT",
        description="DILRAN's 184 CT-MRI pairs (MRI first, CT as the second source)"),
    "harvard_pet_mri": PairSetSpec(
        "aanlib/harvard_pet_mri/MRI", "aanlib/harvard_pet_mri/PET",
        (("train", "aanlib/harvard_pet_mri/split_train.txt"), ("test", "aanlib/harvard_pet_mri/split_test.txt")),
        description="269 Harvard MRI/PET pairs with a 245/24 train/test split"),
    "harvard_spect_mri": PairSetSpec(
        "aanlib/harvard_spect_mri/MRI", "aanlib/harvard_spect_mri/SPECT",
        (("train", "aanlib/harvard_spect_mri/split_train.txt"), ("test", "aanlib/harvard_spect_mri/split_test.txt")),
        description="357 Harvard MRI/SPECT pairs with a 333/24 train/test split"),
}


def named_pairs(name: str, split: str | None = None, root=None) -> list[ImagePair]:
    """The pairs of a known set (``split`` 'train' or 'test' where the set has one)."""
    if name not in PAIR_SETS:
        raise KeyError(f"unknown pair set {name!r}; known: {', '.join(sorted(PAIR_SETS))}")
    root = Path(root) if root is not None else find_data_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(
            f"pair set {name!r} needs the real data folder (holding aanlib/): set $FUNFUSEAN_DATA "
            "or place shared/data beside the checkout"
        )
    spec = PAIR_SETS[name]
    names = None
    if split is not None:
        splits = dict(spec.split_files)
        if split not in splits:
            raise KeyError(f"pair set {name!r} has no split {split!r} (has: {', '.join(splits) or 'none'})")
        names = read_split(root / splits[split])
    return pairs_from_folders(root / spec.mri_dir, root / spec.pet_dir, names=names)
