#!/usr/bin/env python
"""Regenerate data_manifests/*.toml for the Harvard pair sets and the phantom.

    python scripts/make_manifests.py [--root DATA_ROOT] [--out data_manifests] [--only NAME ...]

For each pair set of funfusean_tf.data.datasets.PAIR_SETS it lists every pair (paired exactly as
``named_pairs`` pairs them), the SHA-256 of both files, the split where the set has one, and the
split files themselves. phantom.toml gets PhantomConfig's defaults and the SHA-256 of the nilearn
template files the phantom is built from. adni_template.toml is written by hand, not here.
Paths are relative to the data root (the folder holding aanlib/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from funfusean_tf.data.datasets import PAIR_SETS, named_pairs
from funfusean_tf.data.manifest import SCHEMA_VERSION, dumps_toml, sha256_file
from funfusean_tf.data.pairs import find_data_root, read_split

REPO = Path(__file__).resolve().parents[1]

MODALITIES = {
    "funfusean_test": ["MRI", "PET"],
    "mdafuse_mr_pet": ["MRI", "PET"],
    "mdafuse_mr_spect": ["MRI", "SPECT"],
    "mdafuse_mr_ct": ["MRI", "CT"],
    "dilran_ct_mri": ["MRI", "CT"],
    "harvard_pet_mri": ["MRI", "PET"],
    "harvard_spect_mri": ["MRI", "SPECT"],
}

SOURCE = "Harvard Whole Brain Atlas (AANLIB, med.harvard.edu/AANLIB), as published with the original methods' code"


def pair_set_manifest(name: str, root: Path) -> dict:
    spec = PAIR_SETS[name]
    pairs = named_pairs(name, root=root)
    split_of: dict[str, str] = {}
    files = []
    for split, rel in spec.split_files:
        for entry in read_split(root / rel):
            split_of[Path(entry).stem] = split
        files.append({"path": rel, "sha256": sha256_file(root / rel), "role": f"split_{split}"})
    if spec.split_files:
        unlisted = [p.name for p in pairs if p.name not in split_of]
        if unlisted:
            raise SystemExit(f"{name}: pairs in no split file: {unlisted[:5]}")
    entries = []
    for pair in pairs:
        entry = {"name": pair.name}
        if split_of:
            entry["split"] = split_of[pair.name]
        entry.update(
            mri=pair.mri.relative_to(root).as_posix(),
            mri_sha256=sha256_file(pair.mri),
            pet=pair.pet.relative_to(root).as_posix(),
            pet_sha256=sha256_file(pair.pet),
        )
        entries.append(entry)
    document = {
        "schema": SCHEMA_VERSION,
        "name": name,
        "kind": "pairs",
        "description": spec.description,
        "modalities": MODALITIES.get(name, ["MRI", "functional"]),
        "source": SOURCE,
        "mri_dir": spec.mri_dir,
        "pet_dir": spec.pet_dir,
        "n_pairs": len(entries),
    }
    if split_of:
        document["n_train"] = sum(e.get("split") == "train" for e in entries)
        document["n_test"] = sum(e.get("split") == "test" for e in entries)
    if files:
        document["files"] = files
    document["pairs"] = entries
    return document


def phantom_manifest() -> dict:
    from funfusean_tf.data.manifest import _nilearn_data_dir
    from funfusean_tf.data.phantom import PHANTOM_MODEL_VERSION, PhantomConfig

    data_dir = _nilearn_data_dir()
    templates = sorted(data_dir.glob("mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz"))
    if len(templates) != 3:
        raise SystemExit(f"expected the T1, GM and WM templates in {data_dir}, found {[p.name for p in templates]}")
    return {
        "schema": SCHEMA_VERSION,
        "name": "phantom",
        "kind": "phantom",
        "description": (
            "Simulated MRI/FDG-PET pairs from the MNI ICBM152 2009 template nilearn ships: uptake 4 GM : 1 WM : 0 CSF, "
            "3-D Gaussian PSF, Poisson noise, optional lesion; axial 1 mm slices padded to 256x256 "
            "(see funfusean_tf/data/phantom.py for the model and what it leaves out)"
        ),
        "model_version": PHANTOM_MODEL_VERSION,
        "parameters": PhantomConfig().to_dict(),
        "files": [{"path": p.name, "root": "nilearn", "sha256": sha256_file(p), "role": "template"} for p in templates],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--root", type=Path, default=None, help="data root holding aanlib/ (default: find_data_root())")
    parser.add_argument("--out", type=Path, default=REPO / "data_manifests")
    parser.add_argument("--only", nargs="*", default=None, help="names to regenerate (pair sets or 'phantom')")
    args = parser.parse_args(argv)
    wanted = args.only or [*PAIR_SETS, "phantom"]
    root = args.root or find_data_root(REPO)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        if name == "phantom":
            document = phantom_manifest()
        else:
            if root is None:
                print("no data root: pass --root or set $FUNFUSEAN_DATA", file=sys.stderr)
                return 2
            document = pair_set_manifest(name, root)
        header = f"Data manifest '{name}'. Generated by scripts/make_manifests.py; do not edit by hand."
        (args.out / f"{name}.toml").write_text(dumps_toml(document, header=header))
        print(f"{name}: {len(document.get('pairs', []))} pairs, {len(document.get('files', []))} extra files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
