"""Data manifests: TOML files naming a data set's files, their SHA-256 and its split.

A manifest (``data_manifests/*.toml``, read with the standard library's ``tomllib``) is one of
three kinds:

- ``kind = "pairs"``: 2-D image pairs (the Harvard sets). Each ``[[pairs]]`` entry has ``name``,
  ``mri``, ``pet`` (paths relative to the data root, the folder holding ``aanlib/``),
  ``mri_sha256``, ``pet_sha256`` and optionally ``split`` ("train" / "test"). ``pet`` names the
  second (functional or other) source whatever its modality (PET, SPECT, CT), as
  :class:`~funfusean_tf.data.pairs.ImagePair` does; ``modalities`` says which.
- ``kind = "nifti"``: co-registered 3-D volumes (ADNI-style T1 MPRAGE + FDG-PET on one 1 mm
  grid). Each pair also says which axial slices to take (``slices = [..]`` or
  ``slice_range = [start, stop, step]``, else the manifest-wide ``[slicing]`` table).
- ``kind = "phantom"``: the simulated phantom's parameters (``[parameters]``) and the hashes of
  the nilearn template files it is built from (``[[files]]`` with ``root = "nilearn"``).

Any manifest may list extra ``[[files]]`` (``path``, ``sha256``, optional ``root``), e.g. the
split lists. :func:`verify_manifest` hashes every file named and reports what is missing or
different.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import ImageReadError, minmax_normalise
from .pairs import ImagePair, find_data_root, natural_key

__all__ = [
    "MANIFEST_ENV_VAR",
    "MANIFEST_KINDS",
    "Manifest",
    "ManifestFile",
    "VerifyReport",
    "manifest_dir",
    "known_manifests",
    "resolve_manifest",
    "read_manifest",
    "manifest_pairs",
    "load_nifti_pairs",
    "phantom_config",
    "load_manifest",
    "manifest_arrays",
    "verify_manifest",
    "sha256_file",
    "dumps_toml",
]

#: Environment variable naming a folder of manifests (default: the checkout's data_manifests/).
MANIFEST_ENV_VAR = "FUNFUSEAN_MANIFESTS"
MANIFEST_KINDS = ("pairs", "nifti", "phantom")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ManifestFile:
    """One file a manifest names: a path relative to its root, and its expected SHA-256."""

    path: str
    sha256: str  # "" when the manifest leaves it to be filled in
    root: str = "data"  # "data" (the data root) or "nilearn" (nilearn's shipped data folder)
    role: str = ""  # e.g. "7 mri", "split_train"


@dataclass
class Manifest:
    name: str
    kind: str
    description: str
    source: Path | None
    raw: dict = field(repr=False)

    @property
    def pairs(self) -> list[dict]:
        return list(self.raw.get("pairs", []))

    def files(self) -> list[ManifestFile]:
        """Every file the manifest names, pairs first, in manifest order."""
        out = []
        for entry in self.pairs:
            for side in ("mri", "pet"):
                out.append(ManifestFile(entry[side], str(entry.get(f"{side}_sha256", "")), "data",
                                        f"{entry.get('name', '?')} {side}"))
        for entry in self.raw.get("files", []):
            out.append(ManifestFile(entry["path"], str(entry.get("sha256", "")), entry.get("root", "data"),
                                    entry.get("role", "")))
        return out

    def splits(self) -> list[str]:
        return sorted({e["split"] for e in self.pairs if e.get("split")})


# --------------------------------------------------------------------------- finding manifests


def manifest_dir() -> Path | None:
    """$FUNFUSEAN_MANIFESTS, else the ``data_manifests/`` folder of the checkout this package runs from."""
    env = os.environ.get(MANIFEST_ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        return folder if folder.is_dir() else None
    folder = Path(__file__).resolve().parents[2] / "data_manifests"
    return folder if folder.is_dir() else None


def known_manifests() -> dict[str, Path]:
    """Manifest name (file stem) -> path, for every ``*.toml`` in :func:`manifest_dir`."""
    folder = manifest_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml"), key=lambda p: natural_key(p.name))}


def resolve_manifest(manifest) -> Path:
    """A manifest given as a path, or as the name of a known one (``funfusean_test``)."""
    if isinstance(manifest, Manifest):
        if manifest.source is None:
            raise ValueError(f"manifest {manifest.name!r} was not read from a file")
        return manifest.source
    path = Path(manifest).expanduser()
    if path.is_file():
        return path
    folder = manifest_dir()
    if folder is not None and not path.is_absolute():
        # "data_manifests/adni.toml" from an experiment config, run from any directory
        for base in (folder.parent, folder):
            if (base / path).is_file():
                return base / path
    known = known_manifests()
    stem = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    if str(manifest) == path.name and stem in known:
        return known[stem]
    hint = f"known: {', '.join(known)}" if known else f"no manifest folder found (set ${MANIFEST_ENV_VAR})"
    raise FileNotFoundError(f"{manifest}: no such manifest file or known manifest name ({hint})")


# --------------------------------------------------------------------------- reading


def read_manifest(manifest) -> Manifest:
    """Parse and check a manifest (a path, a known name, or an already-read :class:`Manifest`)."""
    if isinstance(manifest, Manifest):
        return manifest
    path = resolve_manifest(manifest)
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    kind = raw.get("kind")
    if kind not in MANIFEST_KINDS:
        raise ValueError(f"{path}: 'kind' must be one of {MANIFEST_KINDS}, got {kind!r}")
    schema = raw.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ValueError(f"{path}: manifest schema {schema} is not supported (this version reads {SCHEMA_VERSION})")
    names = set()
    for i, entry in enumerate(raw.get("pairs", [])):
        for key in ("name", "mri", "pet"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{path}: pair #{i + 1} needs a non-empty string {key!r}")
        if entry["name"] in names:
            raise ValueError(f"{path}: pair name {entry['name']!r} appears twice")
        names.add(entry["name"])
        if "split" in entry and entry["split"] not in ("train", "test", "val"):
            raise ValueError(f"{path}: pair {entry['name']!r} has split {entry['split']!r} (train, test or val)")
    for i, entry in enumerate(raw.get("files", [])):
        if not isinstance(entry.get("path"), str) or not entry["path"]:
            raise ValueError(f"{path}: file #{i + 1} needs a non-empty string 'path'")
        if entry.get("root", "data") not in ("data", "nilearn"):
            raise ValueError(f"{path}: file {entry['path']!r} has root {entry['root']!r} (data or nilearn)")
    return Manifest(
        name=str(raw.get("name", path.stem)),
        kind=kind,
        description=str(raw.get("description", "")),
        source=path,
        raw=raw,
    )


def _data_root(root) -> Path:
    if root is not None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: the data root is not a folder")
        return root
    found = find_data_root()
    if found is None:
        raise FileNotFoundError(
            "no data root given and none found: pass --root / root=, set $FUNFUSEAN_DATA, "
            "or place shared/data beside the checkout"
        )
    return found


def _nilearn_data_dir() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nilearn is not installed; the phantom's template files cannot be found")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _file_path(item: ManifestFile, root: Path | None) -> Path:
    base = _nilearn_data_dir() if item.root == "nilearn" else root
    return Path(base) / item.path


def _select(manifest: Manifest, split: str | None) -> list[dict]:
    entries = manifest.pairs
    if split is None:
        return entries
    splits = manifest.splits()
    if not splits:
        raise KeyError(f"manifest {manifest.name!r} has no train/test split (asked for {split!r})")
    if split not in splits:
        raise KeyError(f"manifest {manifest.name!r} has no split {split!r} (has: {', '.join(splits)})")
    return [e for e in entries if e.get("split") == split]


def manifest_pairs(manifest, root=None, split: str | None = None) -> list[ImagePair]:
    """The 2-D image pairs of a ``kind = "pairs"`` manifest, as paths under ``root``."""
    manifest = read_manifest(manifest)
    if manifest.kind != "pairs":
        hint = {"nifti": "load_nifti_pairs", "phantom": "funfusean_tf.data.phantom.phantom_pairs"}[manifest.kind]
        raise ValueError(f"manifest {manifest.name!r} is of kind {manifest.kind!r}, not 2-D pairs: use {hint}")
    base = _data_root(root)
    return [ImagePair(base / e["mri"], base / e["pet"], e["name"]) for e in _select(manifest, split)]


def phantom_config(manifest):
    """The :class:`~funfusean_tf.data.phantom.PhantomConfig` a ``kind = "phantom"`` manifest states."""
    from .phantom import PhantomConfig

    manifest = read_manifest(manifest)
    if manifest.kind != "phantom":
        raise ValueError(f"manifest {manifest.name!r} is of kind {manifest.kind!r}, not phantom")
    return PhantomConfig.from_dict(dict(manifest.raw.get("parameters", {})))


# --------------------------------------------------------------------------- NIfTI pairs


def _slice_list(entry: dict, defaults: dict, depth: int, where: str) -> list[int]:
    if "slices" in entry:
        slices = [int(s) for s in entry["slices"]]
    else:
        spec = entry.get("slice_range", defaults.get("slice_range"))
        if spec is None:
            slices = list(range(depth))
        else:
            if not 2 <= len(spec) <= 3:
                raise ValueError(f"{where}: slice_range must be [start, stop] or [start, stop, step]")
            slices = list(range(*[int(v) for v in spec]))
    bad = [s for s in slices if not 0 <= s < depth]
    if bad:
        raise ValueError(f"{where}: slice(s) {bad[:5]} outside the volume ({depth} axial slices)")
    return slices


def _centre_fit(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop or zero-pad a 2-D image to size x size."""
    from .io import centre_fit

    return centre_fit(image, size)


def _load_canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
        volume = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises several unrelated types for a bad file
        raise ImageReadError(f"{path}: not a readable NIfTI file ({exc})") from exc
    volume = np.squeeze(volume)
    if volume.ndim != 3:
        raise ImageReadError(f"{path}: expected a 3-D volume, got shape {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise ImageReadError(f"{path}: the volume contains NaN or infinite values")
    return volume, np.asarray(image.affine)


def load_nifti_pairs(manifest, root=None, split: str | None = None, progress: bool = False):
    """Axial slice pairs of a ``kind = "nifti"`` manifest.

    Each volume is reoriented to RAS (``nibabel.as_closest_canonical``) so axis 2 is axial
    whatever the stored orientation; the MRI and PET of a pair must then share the grid (shape
    and affine: co-registered and resampled to one 1 mm grid before listing them). Slices are
    rotated anterior-up (as the phantom's), centre-cropped/padded to ``[slicing] image_size``
    (256 by default), slices whose MRI foreground (pixels above 5 % of the volume's maximum)
    covers less than ``min_foreground_fraction`` of the image are skipped, and each slice is
    min-max scaled to [0, 1] on its own.

    Returns ``(mri[N,H,W], pet[N,H,W], names)`` with names ``"<pair>:z<slice>"``.
    """
    manifest = read_manifest(manifest)
    if manifest.kind != "nifti":
        raise ValueError(f"manifest {manifest.name!r} is of kind {manifest.kind!r}, not nifti")
    base = _data_root(root)
    slicing = dict(manifest.raw.get("slicing", {}))
    if int(slicing.get("axis", 2)) != 2:
        raise ValueError(f"{manifest.source}: [slicing] axis must be 2 (axial after reorientation to RAS)")
    size = int(slicing.get("image_size", 256))
    min_fg = float(slicing.get("min_foreground_fraction", 0.0))
    entries = _select(manifest, split)
    iterator = entries
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(entries, desc="loading NIfTI pairs", unit="pair", leave=False)
    mri_out, pet_out, names = [], [], []
    for entry in iterator:
        mri_path, pet_path = base / entry["mri"], base / entry["pet"]
        mri_vol, mri_aff = _load_canonical(mri_path)
        pet_vol, pet_aff = _load_canonical(pet_path)
        if mri_vol.shape != pet_vol.shape or not np.allclose(mri_aff, pet_aff, atol=1e-3):
            raise ValueError(
                f"{mri_path} (shape {mri_vol.shape}) and {pet_path} (shape {pet_vol.shape}) are not on one grid: "
                "co-register the PET to the MRI and resample it onto the MRI's grid first"
            )
        where = f"{manifest.source}: pair {entry['name']!r}"
        threshold = 0.05 * float(mri_vol.max())
        for k in _slice_list(entry, slicing, mri_vol.shape[2], where):
            mri2d = _centre_fit(np.rot90(mri_vol[:, :, k]), size)
            pet2d = _centre_fit(np.rot90(pet_vol[:, :, k]), size)
            if min_fg > 0 and np.mean(mri2d > threshold) < min_fg:
                continue
            label = f"{entry['name']}:z{k}"
            mri_out.append(minmax_normalise(mri2d, name=f"{mri_path} slice {k}"))
            pet_out.append(minmax_normalise(pet2d, name=f"{pet_path} slice {k}"))
            names.append(label)
    if not names:
        raise ValueError(f"manifest {manifest.name!r}: no slice selected")
    return np.stack(mri_out), np.stack(pet_out), names


def manifest_arrays(manifest, root=None, split: str | None = None, progress: bool = False):
    """``(mri[N,H,W], pet[N,H,W], names)`` float32 in [0, 1] for a manifest of any kind.

    Pairs are read with :func:`funfusean_tf.data.io.load_pair` (so they must all have one size),
    NIfTI pairs are sliced by :func:`load_nifti_pairs`, the phantom is generated (``split``
    defaults to "train" there).
    """
    manifest = read_manifest(manifest)
    if manifest.kind == "nifti":
        return load_nifti_pairs(manifest, root, split, progress=progress)
    if manifest.kind == "phantom":
        split = split or "train"
        mri, pet = load_manifest(manifest, split=split)
        return mri, pet, [f"phantom_{split}_{i:03d}" for i in range(len(mri))]
    from .io import load_pair

    pairs = manifest_pairs(manifest, root, split)
    if not pairs:
        raise ValueError(f"manifest {manifest.name!r} has no pairs" + (f" in split {split!r}" if split else ""))
    iterator = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc=f"loading {manifest.name}", unit="pair", leave=False)
    loaded = [load_pair(p.mri, p.pet) for p in iterator]
    shapes = sorted({m.shape for m, _ in loaded})
    if len(shapes) > 1:
        raise ValueError(f"manifest {manifest.name!r}: pairs of different sizes {shapes}; crop them to one size")
    return (np.stack([m for m, _ in loaded]), np.stack([p for _, p in loaded]), [p.name for p in pairs])


def load_manifest(manifest, root=None, split: str | None = None):
    """Whatever the manifest holds: ImagePair list (pairs), arrays (nifti) or phantom arrays.

    For ``kind = "phantom"`` this is ``phantom_pairs(config)`` (a dict of splits) when
    ``split`` is None, else that split's ``(mri, pet)``.
    """
    manifest = read_manifest(manifest)
    if manifest.kind == "pairs":
        return manifest_pairs(manifest, root, split)
    if manifest.kind == "nifti":
        return load_nifti_pairs(manifest, root, split)
    from .phantom import phantom_pairs

    sets = phantom_pairs(phantom_config(manifest))
    if split is None:
        return sets
    if split not in sets:
        raise KeyError(f"the phantom has splits {sorted(sets)}, not {split!r}")
    return sets[split]


# --------------------------------------------------------------------------- verifying


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class VerifyReport:
    """What :func:`verify_manifest` found, one list per outcome (paths as the manifest gives them)."""

    manifest: str
    root: Path | None
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    wrong_hash: list[tuple[str, str, str]] = field(default_factory=list)  # (path, expected, actual)
    no_hash: list[str] = field(default_factory=list)  # present, but the manifest gives no hash

    @property
    def total(self) -> int:
        return len(self.ok) + len(self.missing) + len(self.wrong_hash) + len(self.no_hash)

    @property
    def all_ok(self) -> bool:
        return not (self.missing or self.wrong_hash or self.no_hash)

    def summary(self, limit: int = 5) -> str:
        def first(items):
            items = list(items)
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        lines = [
            f"manifest {self.manifest} (root {self.root}): {self.total} file(s): "
            f"{len(self.ok)} ok, {len(self.missing)} missing, {len(self.wrong_hash)} wrong hash"
            + (f", {len(self.no_hash)} without a hash in the manifest" if self.no_hash else "")
        ]
        if self.missing:
            lines.append(f"  missing: {first(self.missing)}")
        if self.wrong_hash:
            lines.append(f"  wrong hash: {first(p for p, _, _ in self.wrong_hash)}")
        if self.no_hash:
            lines.append(f"  no hash to check: {first(self.no_hash)}")
        lines.append("  all files verified" if self.all_ok else "  NOT verified")
        return "\n".join(lines)


def verify_manifest(path, root=None, progress: bool = False) -> VerifyReport:
    """Hash every file the manifest names and compare with the SHA-256 it states.

    ``root`` is the data root (the folder holding ``aanlib/``; default
    :func:`~funfusean_tf.data.pairs.find_data_root`); files with ``root = "nilearn"`` are looked
    up in nilearn's installed data folder. A manifest naming only nilearn files needs no data root.
    """
    manifest = read_manifest(path)
    files = manifest.files()
    needs_root = any(f.root == "data" for f in files)
    base = _data_root(root) if needs_root else (Path(root) if root is not None else None)
    report = VerifyReport(manifest=manifest.name, root=base)
    iterator = files
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(files, desc=f"hashing {manifest.name}", unit="file", leave=False)
    for item in iterator:
        target = _file_path(item, base)
        label = f"{item.root}:{item.path}" if item.root != "data" else item.path
        if not target.is_file():
            report.missing.append(label)
            continue
        if not item.sha256:
            report.no_hash.append(label)
            continue
        actual = sha256_file(target)
        if actual == item.sha256.lower():
            report.ok.append(label)
        else:
            report.wrong_hash.append((label, item.sha256, actual))
    return report


# --------------------------------------------------------------------------- writing


def _toml_value(value) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML writer: {value} is not finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"TOML writer: cannot write {type(value).__name__}")


def dumps_toml(document: dict, header: str = "") -> str:
    """A small TOML writer for manifests: scalars and arrays at the top, then tables and
    arrays of tables (one level deep). Enough for this module's files; read back with tomllib."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    scalars = {k: v for k, v in document.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in document.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
    for key, value in document.items():
        if _is_table_array(value):
            for table in value:
                lines += ["", f"[[{key}]]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
