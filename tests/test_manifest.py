"""Data manifests: hashes of the real Harvard sets, tamper detection, NIfTI slices, the CLI."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from funfusean_tf.cli import main as cli_main
from funfusean_tf.data.datasets import PAIR_SETS, named_pairs
from funfusean_tf.data.manifest import (
    dumps_toml,
    known_manifests,
    load_manifest,
    load_nifti_pairs,
    manifest_arrays,
    manifest_pairs,
    phantom_config,
    read_manifest,
    verify_manifest,
)
from funfusean_tf.data.phantom import PhantomConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = REPO_ROOT / "data_manifests"
HARVARD = sorted(PAIR_SETS)


def test_every_pair_set_and_the_phantom_has_a_manifest():
    names = set(known_manifests())
    assert set(HARVARD) | {"phantom", "adni_template"} <= names
    for name in names:
        assert read_manifest(name).kind in ("pairs", "nifti", "phantom")


@pytest.mark.shared_data
@pytest.mark.parametrize("name", HARVARD)
def test_real_harvard_manifest_verifies(name, shared_data):
    report = verify_manifest(MANIFESTS / f"{name}.toml", root=shared_data)
    assert report.all_ok, report.summary()
    assert len(report.ok) == 2 * len(read_manifest(name).pairs) + len(read_manifest(name).raw.get("files", []))


@pytest.mark.shared_data
@pytest.mark.parametrize("name", HARVARD)
def test_manifest_pairs_match_the_named_pair_sets(name, shared_data):
    spec = PAIR_SETS[name]
    assert [(p.mri, p.pet, p.name) for p in manifest_pairs(name, root=shared_data)] == [
        (p.mri, p.pet, p.name) for p in named_pairs(name, root=shared_data)
    ]
    for split, _ in spec.split_files:
        from_manifest = {p.name for p in manifest_pairs(name, root=shared_data, split=split)}
        assert from_manifest == {p.name for p in named_pairs(name, split=split, root=shared_data)}
    if not spec.split_files:
        with pytest.raises(KeyError, match="no train/test split"):
            manifest_pairs(name, root=shared_data, split="train")


@pytest.mark.shared_data
def test_harvard_split_sizes_are_as_published(shared_data):
    # README: 245/24 (PET) and 333/24 (SPECT)
    for name, train, test in (("harvard_pet_mri", 245, 24), ("harvard_spect_mri", 333, 24)):
        assert len(manifest_pairs(name, root=shared_data, split="train")) == train
        assert len(manifest_pairs(name, root=shared_data, split="test")) == test


@pytest.mark.shared_data
def test_manifest_arrays_of_real_pairs(shared_data):
    mri, pet, names = manifest_arrays("harvard_pet_mri", root=shared_data, split="test")
    assert mri.shape == pet.shape == (24, 256, 256) and mri.dtype == np.float32
    assert names == [p.name for p in named_pairs("harvard_pet_mri", split="test", root=shared_data)]
    assert np.allclose(pet.max(axis=(1, 2)), 1.0) and np.allclose(pet.min(axis=(1, 2)), 0.0)


def test_manifest_path_relative_to_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an experiment config names "data_manifests/x.toml" from anywhere
    assert read_manifest("data_manifests/funfusean_test.toml").source == MANIFESTS / "funfusean_test.toml"


@pytest.fixture
def tampered(tmp_path, shared_data):
    """A copy of funfusean_test under tmp_path with one file altered and one deleted."""
    root = tmp_path / "data"
    shutil.copytree(shared_data / "aanlib" / "funfusean_test", root / "aanlib" / "funfusean_test")
    altered = root / "aanlib/funfusean_test/pet/3.gif"
    payload = bytearray(altered.read_bytes())
    payload[-2] ^= 0xFF
    altered.write_bytes(bytes(payload))
    (root / "aanlib/funfusean_test/mri/7.gif").unlink()
    return root


@pytest.mark.shared_data
def test_tampered_copy_reports_wrong_hash_and_missing_file(tampered):
    report = verify_manifest(MANIFESTS / "funfusean_test.toml", root=tampered)
    assert not report.all_ok
    assert report.missing == ["aanlib/funfusean_test/mri/7.gif"]
    assert [path for path, _, _ in report.wrong_hash] == ["aanlib/funfusean_test/pet/3.gif"]
    assert len(report.ok) == 18
    path, expected, actual = report.wrong_hash[0]
    assert expected != actual and len(actual) == 64


@pytest.mark.shared_data
def test_cli_verify_exit_status_and_names(tampered, shared_data, capsys):
    assert cli_main(["data", "verify", "funfusean_test", "--root", str(shared_data), "--no-progress"]) == 0
    assert "20 ok, 0 missing, 0 wrong hash" in capsys.readouterr().out
    status = cli_main(["data", "verify", str(MANIFESTS / "funfusean_test.toml"), "--root", str(tampered)])
    out = capsys.readouterr().out
    assert status != 0
    assert "1 missing" in out and "1 wrong hash" in out
    assert "aanlib/funfusean_test/mri/7.gif" in out and "aanlib/funfusean_test/pet/3.gif" in out


def test_cli_verify_unknown_manifest_is_an_error(capsys):
    assert cli_main(["data", "verify", "no_such_manifest"]) != 0
    assert "no_such_manifest" in capsys.readouterr().err


def test_cli_list_names_every_manifest(capsys):
    assert cli_main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in [*HARVARD, "phantom", "adni_template"]:
        assert sum(line.split()[1:2] == [name] for line in lines) == 1, name


def test_cli_phantom_writes_pngs(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNFUSEAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "phantom"
    assert cli_main(["data", "phantom", "--out", str(out), "--n", "2", "--counts", "0"]) == 0
    assert len(list((out / "mri").glob("*.png"))) == len(list((out / "pet").glob("*.png"))) == 2


def test_phantom_manifest_states_the_defaults_and_its_template_hashes():
    # the nilearn template files the phantom is built from are the ones hashed in the manifest
    report = verify_manifest(MANIFESTS / "phantom.toml")
    assert report.all_ok and len(report.ok) == 3, report.summary()
    assert phantom_config(MANIFESTS / "phantom.toml") == PhantomConfig()


def test_adni_template_lists_files_a_user_must_supply(tmp_path):
    manifest = read_manifest(MANIFESTS / "adni_template.toml")
    assert manifest.kind == "nifti" and manifest.splits() == ["test", "train"]
    report = verify_manifest(manifest, root=tmp_path)
    assert not report.all_ok and len(report.missing) == 2 * len(manifest.pairs)


def _write_manifest(path: Path, document: dict) -> Path:
    path.write_text(dumps_toml(document))
    return path


def _nifti(path: Path, volume: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), str(path))


def test_nifti_manifest_picks_the_listed_axial_slices(tmp_path):
    shape = (40, 50, 30)
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    mri = 1.0 + x + 2.0 * y + 100.0 * z  # slice k has values 100k + ...: identifiable
    pet = 1.0 + 3.0 * x + y + 50.0 * z
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    _nifti(tmp_path / "a_t1.nii.gz", mri, ras)
    # stored with the x axis flipped (LAS): the loader must reorient it back to RAS
    las = ras.copy()
    las[0, 0], las[0, 3] = -1.0, shape[0] - 1.0
    _nifti(tmp_path / "a_pet.nii.gz", pet[::-1], las)
    document = {
        "schema": 1, "name": "toy", "kind": "nifti",
        "slicing": {"axis": 2, "image_size": 64, "slice_range": [0, 30, 10]},
        "pairs": [
            {"name": "a", "split": "train", "mri": "a_t1.nii.gz", "pet": "a_pet.nii.gz", "slices": [3, 17]},
            {"name": "b", "split": "test", "mri": "a_t1.nii.gz", "pet": "a_t1.nii.gz"},
        ],
    }
    manifest = _write_manifest(tmp_path / "toy.toml", document)
    mri_s, pet_s, names = load_nifti_pairs(manifest, root=tmp_path)
    assert names == ["a:z3", "a:z17", "b:z0", "b:z10", "b:z20"]
    assert mri_s.shape == pet_s.shape == (5, 64, 64)
    # slice content: anterior up (row 0 = largest y) and x increasing to the right, after scaling
    raw = np.rot90(pet[:, :, 17])
    expected = np.zeros((64, 64), np.float32)
    expected[7:57, 12:52] = raw
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert np.allclose(pet_s[1], expected, atol=1e-6)
    assert pet_s[1][7, 12] > pet_s[1][56, 12]  # anterior (high y) at the top
    assert pet_s[1][7, 51] > pet_s[1][7, 12]  # subject's right (high x) on the right
    only_test = load_manifest(manifest, root=tmp_path, split="test")
    assert only_test[2] == ["b:z0", "b:z10", "b:z20"]
    assert manifest_arrays(manifest, root=tmp_path, split="train")[2] == ["a:z3", "a:z17"]
    document["slicing"]["min_foreground_fraction"] = 0.5  # the 40x50 volume covers < 50 % of 64x64
    with pytest.raises(ValueError, match="no slice selected"):
        load_nifti_pairs(_write_manifest(tmp_path / "toy2.toml", document), root=tmp_path)
    document["slicing"]["min_foreground_fraction"] = 0.4  # it covers 2000 / 4096 = 49 %
    kept = load_nifti_pairs(_write_manifest(tmp_path / "toy3.toml", document), root=tmp_path)[2]
    # ... except slice 0, where every MRI value (<= 1 + 39 + 98) is under 5 % of the maximum (3038)
    assert kept == ["a:z3", "a:z17", "b:z10", "b:z20"]
    with pytest.raises(ValueError, match="not 2-D pairs"):
        manifest_pairs(manifest, root=tmp_path)


def test_nifti_pair_on_different_grids_is_refused(tmp_path):
    _nifti(tmp_path / "m.nii", np.ones((8, 8, 4)), np.eye(4))
    _nifti(tmp_path / "p.nii", np.ones((8, 8, 5)), np.eye(4))
    manifest = _write_manifest(tmp_path / "bad.toml", {
        "schema": 1, "kind": "nifti", "pairs": [{"name": "x", "mri": "m.nii", "pet": "p.nii"}]})
    with pytest.raises(ValueError, match="m.nii.*p.nii.*not on one grid"):
        load_nifti_pairs(manifest, root=tmp_path)


@pytest.mark.parametrize(
    "document, message",
    [
        ({"schema": 1, "kind": "images"}, "kind"),
        ({"schema": 2, "kind": "pairs"}, "schema"),
        ({"schema": 1, "kind": "pairs", "pairs": [{"name": "a", "mri": "x", "pet": "y"}] * 2}, "twice"),
        ({"schema": 1, "kind": "pairs", "pairs": [{"name": "a", "mri": "x"}]}, "pet"),
        ({"schema": 1, "kind": "pairs", "pairs": [{"name": "a", "mri": "x", "pet": "y", "split": "dev"}]}, "split"),
    ],
)
def test_malformed_manifests_are_refused(tmp_path, document, message):
    with pytest.raises(ValueError, match=message):
        read_manifest(_write_manifest(tmp_path / "m.toml", document))


def test_missing_hash_is_not_ok(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = _write_manifest(tmp_path / "m.toml", {"schema": 1, "kind": "pairs", "pairs": [
        {"name": "a", "mri": "a.png", "mri_sha256": "", "pet": "a.png",
         "pet_sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"}]})
    report = verify_manifest(manifest, root=tmp_path)
    assert report.ok == ["a.png"] and report.no_hash == ["a.png"] and not report.all_ok


def test_toml_writer_round_trips():
    document = {"schema": 1, "name": 'quote " and \\ back', "ratio": 0.1, "flag": True,
                "ranges": [[-40.0, 0.0], [30.0, 60.0]], "table": {"a": 1, "b": "two"},
                "pairs": [{"name": "1", "mri": "x/1.gif"}, {"name": "2", "mri": "x/2.gif"}]}
    assert tomllib.loads(dumps_toml(document, header="two\nlines")) == document
