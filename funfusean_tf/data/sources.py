"""Arrays of pairs for training and evaluation, from whatever a DataConfig names.

One function, :func:`load_arrays`, so the trainer, the sweep runner and the notebooks get data
the same way: (mri, pet) stacks of shape (N, H, W), float32 in [0, 1], and the pair names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import load_pair
from .pairs import ImagePair, pairs_from_folders

__all__ = ["load_arrays", "pairs_for", "centre_crop"]


def centre_crop(stack: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of the last two axes to size x size (no-op for size 0)."""
    if not size:
        return stack
    height, width = stack.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the images ({height}x{width})")
    top, left = (height - size) // 2, (width - size) // 2
    return stack[..., top : top + size, left : left + size]


def pairs_for(data_config, split: str | None = None) -> list[ImagePair]:
    """The file pairs a non-phantom DataConfig names (``split`` overrides data_config.split)."""
    split = data_config.split if split is None else split
    root = Path(data_config.root) if data_config.root else None
    if data_config.source == "pair_set":
        from .datasets import PAIR_SETS, named_pairs

        if not data_config.pair_set:
            raise ValueError("data.source = 'pair_set' needs data.pair_set (one of: " + ", ".join(PAIR_SETS) + ")")
        has_split = bool(PAIR_SETS[data_config.pair_set].split_files) if data_config.pair_set in PAIR_SETS else False
        return named_pairs(data_config.pair_set, split=split if has_split and split else None, root=root)
    if data_config.source == "folders":
        if not (data_config.mri_dir and data_config.pet_dir):
            raise ValueError("data.source = 'folders' needs data.mri_dir and data.pet_dir")
        return pairs_from_folders(data_config.mri_dir, data_config.pet_dir)
    if data_config.source == "manifest":
        from .manifest import manifest_pairs

        return manifest_pairs(data_config.manifest, root=root, split=split or None)
    raise ValueError(f"data.source {data_config.source!r} has no file pairs (one of: phantom, pair_set, folders, manifest)")


def load_arrays(data_config, split: str | None = None, progress: bool = False):
    """(mri, pet, names): float32 stacks (N, H, W) in [0, 1] and the pair names."""
    split = data_config.split if split is None else split
    if data_config.source == "phantom":
        from .phantom import PhantomConfig, phantom_pairs

        sets = phantom_pairs(PhantomConfig.from_dict(data_config.phantom))
        if split not in sets:
            raise ValueError(f"the phantom has splits {sorted(sets)}, not {split!r}")
        mri, pet = sets[split]
        names = [f"phantom_{split}_{i:03d}" for i in range(len(mri))]
    elif data_config.source == "manifest":
        from .manifest import manifest_arrays

        root = Path(data_config.root) if data_config.root else None
        mri, pet, names = manifest_arrays(data_config.manifest, root=root, split=split or None, progress=progress)
    else:
        pairs = pairs_for(data_config, split)
        iterator = pairs
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(pairs, desc="loading pairs", unit="pair", leave=False)
        loaded = [load_pair(p.mri, p.pet) for p in iterator]
        shapes = {m.shape for m, _ in loaded}
        if len(shapes) > 1 and not data_config.crop:
            raise ValueError(f"pairs of different sizes {sorted(shapes)}: set data.crop to train on a common size")
        mri = np.stack([centre_crop(m, data_config.crop) for m, _ in loaded])
        pet = np.stack([centre_crop(p, data_config.crop) for _, p in loaded])
        names = [p.name for p in pairs]
        data_config = _no_crop(data_config)
    if data_config.max_pairs:
        mri, pet, names = mri[: data_config.max_pairs], pet[: data_config.max_pairs], names[: data_config.max_pairs]
    mri, pet = centre_crop(mri, data_config.crop), centre_crop(pet, data_config.crop)
    return np.ascontiguousarray(mri, np.float32), np.ascontiguousarray(pet, np.float32), names


def _no_crop(data_config):
    import dataclasses

    return dataclasses.replace(data_config, crop=0)
