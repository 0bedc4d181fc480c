"""Store a Keras ``.weights.h5`` file's float32 arrays as float16, to ship weights under 5 MiB.

Keras casts each stored array to its variable's dtype when the file is loaded, so the result
loads with ``model.load_weights`` unchanged. Rounding to float16 is a deviation (FIDELITY.md,
"Shipped MdAFuse weights"); ``--check`` fuses pairs with both files and prints the largest
difference of the outputs, so the size of that deviation is measured, not assumed.

    python scripts/make_float16_weights.py runs/mdafuse_harvard_cpu/final.weights.h5 \
        funfusean_tf/weights/mdafuse_lambda0.7.weights.h5 --check mdafuse
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import h5py
import numpy as np


def to_float16(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with every float32 dataset stored as float16; returns how many."""
    tmp = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, tmp)
    converted = 0
    with h5py.File(tmp, "r+") as store:
        names = []
        store.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            data = store[name][()]
            if data.dtype != np.float32:
                continue
            if np.any(np.abs(data) > np.finfo(np.float16).max):
                raise ValueError(f"{src}: {name} holds values beyond float16's range")
            attrs = dict(store[name].attrs)
            del store[name]
            new = store.create_dataset(name, data=data.astype(np.float16))
            new.attrs.update(attrs)
            converted += 1
    # h5py leaves the freed space in the file; repacking by copying the tree reclaims it.
    with h5py.File(tmp, "r") as source, h5py.File(dst, "w") as target:
        for key in source:
            source.copy(key, target)
        target.attrs.update(dict(source.attrs))
    tmp.unlink()
    return converted


def check(network: str, full: Path, half: Path, pair_set: str = "funfusean_test") -> float:
    from funfusean_tf.data.datasets import named_pairs
    from funfusean_tf.data.io import load_pair
    from funfusean_tf.fusion import load_method

    a = load_method(network, weights=full)
    b = load_method(network, weights=half)
    worst = 0.0
    for pair in named_pairs(pair_set):
        mri, pet = load_pair(pair.mri, pair.pet)
        worst = max(worst, float(np.max(np.abs(a(mri, pet) - b(mri, pet)))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--check", metavar="NETWORK", help="fuse the FunFuseAn test pairs with both files")
    args = parser.parse_args()
    count = to_float16(args.src, args.dst)
    print(f"{args.dst}: {count} arrays as float16, {args.dst.stat().st_size:,} bytes "
          f"(from {args.src.stat().st_size:,})")
    if args.check:
        worst = check(args.check, args.src, args.dst)
        print(f"largest |float32 - float16| of the fused output on funfusean_test: {worst:.3e} "
              f"({worst * 255:.3f} grey levels of 255)")


if __name__ == "__main__":
    main()
