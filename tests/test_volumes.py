"""`funfusean fuse` on co-registered NIfTI volumes (funfusean_tf.volumes): slice-by-slice fusion
against numpy references, the MRI's grid and header kept, and refusals with nothing written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from funfusean_tf.cli import main
from funfusean_tf.volumes import fuse_volume, fuse_volume_arrays

SHAPE = (24, 20, 6)
ZOOMS = (1.2, 0.9, 2.5)


def _oblique_affine(zooms=ZOOMS, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A rotation (about two axes) times non-unit voxel sizes, plus a translation."""
    a, b = np.deg2rad(12.0), np.deg2rad(-7.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(zooms)
    affine[:3, 3] = np.array([-14.0, 20.5, -3.25]) + np.asarray(shift)
    return affine


def _save(path, data, affine, qform_code=1, sform_code=4):
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))
    return path


def _source_volumes(rng, shape=SHAPE):
    """Raw MRI (int16 grey levels) and PET (float32) with empty and half-empty slices."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    # intensity trends along every axis, so that each axis' slices (and per-slice against
    # per-volume scaling) give clearly different results
    mri = (rng.integers(0, 300, shape) + 20 * x + 80 * z).astype(np.int16)
    pet = ((rng.random(shape) * 10 + 2.0) * (1 + 0.5 * z) + 0.8 * y).astype(np.float32)
    mri[:, :, 0] = 0          # axial slice 0: both empty
    pet[:, :, 0] = 0
    pet[:, :, 4] = 0          # axial slice 4: PET empty, MRI not
    mri[0, :, :] = 0          # sagittal slice 0: both empty
    pet[0, :, :] = 0
    mri[:, 3, :] = 0          # coronal slice 3: MRI empty, PET not
    return mri, pet


@pytest.fixture
def volumes(tmp_path, rng):
    mri, pet = _source_volumes(rng)
    affine = _oblique_affine()
    mri_path = _save(tmp_path / "t1.nii.gz", mri, affine, qform_code=1, sform_code=4)
    pet_path = _save(tmp_path / "fdg.nii", pet, affine, qform_code=2, sform_code=2)
    return mri_path, pet_path, mri.astype(np.float64), pet.astype(np.float64)


def _slice_minmax(image: np.ndarray) -> np.ndarray:
    low, high = image.min(), image.max()
    return np.zeros_like(image) if high == low else (image - low) / (high - low)


def _reference(mri, pet, axis, scaling="slice"):
    """The average method slice by slice, computed here in numpy (float64)."""
    out = np.zeros(mri.shape)
    m_lo, m_hi, p_lo, p_hi = mri.min(), mri.max(), pet.min(), pet.max()
    for i in range(mri.shape[axis]):
        a, b = np.take(mri, i, axis=axis), np.take(pet, i, axis=axis)
        if a.max() == a.min() and b.max() == b.min():
            continue
        if scaling == "slice":
            a, b = _slice_minmax(a), _slice_minmax(b)
        else:
            a, b = (a - m_lo) / (m_hi - m_lo), (b - p_lo) / (p_hi - p_lo)
        index = [slice(None)] * 3
        index[axis] = i
        out[tuple(index)] = np.clip((a + b) / 2, 0, 1)
    return out


def _fuse(mri_path, pet_path, out, *extra):
    return main(["fuse", "--mri", str(mri_path), "--pet", str(pet_path), "--out", str(out), "--method", "average",
                 "--quiet", *extra])


def test_output_keeps_the_mri_grid_and_header(tmp_path, volumes):
    mri_path, pet_path, mri, _ = volumes
    out = tmp_path / "out" / "fused.nii.gz"
    assert _fuse(mri_path, pet_path, out) == 0
    source, fused = nib.load(str(mri_path)), nib.load(str(out))
    assert fused.shape == SHAPE and fused.get_data_dtype() == np.float32
    np.testing.assert_allclose(fused.affine, _oblique_affine(), atol=1e-5)
    np.testing.assert_array_equal(fused.affine, source.affine)
    np.testing.assert_array_equal(fused.get_qform(), source.get_qform())
    np.testing.assert_array_equal(fused.get_sform(), source.get_sform())
    assert int(fused.header["qform_code"]) == 1 and int(fused.header["sform_code"]) == 4  # the MRI's, not the PET's
    np.testing.assert_allclose(fused.header.get_zooms(), ZOOMS, rtol=1e-6)
    assert fused.header.get_xyzt_units() == ("mm", "sec")
    assert nib.aff2axcodes(fused.affine) == nib.aff2axcodes(source.affine)
    assert sorted(p.name for p in out.parent.iterdir()) == ["fused.nii.gz"]  # no temporary file left


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_each_axis_equals_a_per_slice_numpy_reference(tmp_path, volumes, axis):
    mri_path, pet_path, mri, pet = volumes
    out = tmp_path / f"fused{axis}.nii"
    assert _fuse(mri_path, pet_path, out, "--axis", str(axis)) == 0
    fused = np.asanyarray(nib.load(str(out)).dataobj)
    expected = _reference(mri, pet, axis)
    np.testing.assert_allclose(fused, expected, atol=2e-7)
    # the references differ between axes (the test can tell them apart)
    assert np.abs(expected - _reference(mri, pet, (axis + 1) % 3)).max() > 0.05


def test_empty_slices_stay_zero_and_are_not_fused(volumes):
    _, _, mri, pet = volumes
    seen = []

    class Recording:
        name = "recording"

        def __call__(self, a, b):
            seen.append(len(a))
            return (np.asarray(a) + np.asarray(b)) / 2

    fused = fuse_volume_arrays(mri, pet, Recording(), axis=2, progress=False)
    assert np.all(fused[:, :, 0] == 0)
    assert sum(seen) == SHAPE[2] - 1  # slice 0 (both empty) never reached the method
    # axial slice 4: the PET slice is empty, the MRI's is not: the PET is taken as all zero
    np.testing.assert_allclose(fused[:, :, 4], _slice_minmax(mri[:, :, 4]) / 2, atol=2e-7)
    fused0 = fuse_volume_arrays(mri, pet, Recording(), axis=0, progress=False)
    assert np.all(fused0[0] == 0) and np.abs(fused0[1:]).min() >= 0 and np.abs(fused0[1]).max() > 0


def test_volume_scaling_equals_a_numpy_reference(tmp_path, volumes):
    mri_path, pet_path, mri, pet = volumes
    out = tmp_path / "fused.nii.gz"
    assert _fuse(mri_path, pet_path, out, "--scaling", "volume") == 0
    fused = np.asanyarray(nib.load(str(out)).dataobj)
    expected = _reference(mri, pet, 2, scaling="volume")
    np.testing.assert_allclose(fused, expected, atol=2e-7)
    assert np.abs(expected - _reference(mri, pet, 2, scaling="slice")).max() > 0.05  # a different result


def test_int16_output_round_trips_within_the_scaling_step(tmp_path, volumes):
    mri_path, pet_path, mri, pet = volumes
    out = tmp_path / "fused16.nii.gz"
    assert _fuse(mri_path, pet_path, out, "--dtype", "int16") == 0
    image = nib.load(str(out))
    assert image.get_data_dtype() == np.int16
    slope = float(image.dataobj.slope)
    assert 0 < slope < 1e-3  # [0, 1] values spread over the int16 range
    expected = _reference(mri, pet, 2)
    np.testing.assert_allclose(image.get_fdata(), expected, atol=slope / 2 + 1e-6)
    assert np.all(image.get_fdata()[:, :, 0] == 0)


def _assert_refused(capsys, code, out, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name.split('.')[0]}")]


def test_mismatched_shape_is_refused_naming_both_files(tmp_path, volumes, capsys, rng):
    mri_path, _, _, _ = volumes
    pet_path = _save(tmp_path / "small_pet.nii.gz", rng.random((24, 20, 5)).astype(np.float32), _oblique_affine())
    out = tmp_path / "fused.nii.gz"
    _assert_refused(capsys, _fuse(mri_path, pet_path, out), out, str(mri_path), str(pet_path), "24x20x6", "24x20x5")


def test_mismatched_affine_and_zooms_are_refused(tmp_path, volumes, capsys, rng):
    mri_path, _, _, _ = volumes
    shifted = _save(tmp_path / "shifted.nii.gz", rng.random(SHAPE).astype(np.float32), _oblique_affine(shift=(0, 0.5, 0)))
    out = tmp_path / "fused.nii.gz"
    _assert_refused(capsys, _fuse(mri_path, shifted, out), out, str(mri_path), str(shifted), "affines", "0.5")
    zoomed = _save(tmp_path / "zoomed.nii.gz", rng.random(SHAPE).astype(np.float32), _oblique_affine(zooms=(1.2, 1.0, 2.5)))
    _assert_refused(capsys, _fuse(mri_path, zoomed, out), out, str(zoomed), "voxel sizes", "(1.2, 0.9, 2.5)",
                    "(1.2, 1, 2.5)")


def test_an_affine_within_tolerance_is_accepted(tmp_path, volumes, rng):
    mri_path, _, mri, _ = volumes
    pet = rng.random(SHAPE).astype(np.float32)
    close = _save(tmp_path / "close.nii.gz", pet, _oblique_affine(shift=(2e-5, 0, -2e-5)))
    out = tmp_path / "fused.nii.gz"
    assert _fuse(mri_path, close, out) == 0
    np.testing.assert_allclose(np.asanyarray(nib.load(str(out)).dataobj), _reference(mri, pet.astype(np.float64), 2),
                               atol=2e-7)


def test_output_that_is_an_input_is_refused(tmp_path, volumes, capsys):
    mri_path, pet_path, _, _ = volumes
    before = mri_path.read_bytes()
    code = _fuse(mri_path, pet_path, tmp_path / "." / mri_path.name)
    err = capsys.readouterr().err
    assert code == 2 and "would overwrite the input" in err and str(mri_path) in err
    assert mri_path.read_bytes() == before


def test_4d_volumes(tmp_path, volumes, capsys, rng):
    mri_path, pet_path, mri, pet = volumes
    one = _save(tmp_path / "pet4d.nii.gz", pet.astype(np.float32)[..., None], _oblique_affine())
    out = tmp_path / "fused.nii.gz"
    assert _fuse(mri_path, one, out) == 0
    np.testing.assert_allclose(np.asanyarray(nib.load(str(out)).dataobj), _reference(mri, pet, 2), atol=2e-7)
    out.unlink()
    two = _save(tmp_path / "pet4d2.nii.gz", rng.random((*SHAPE, 2)).astype(np.float32), _oblique_affine())
    _assert_refused(capsys, _fuse(mri_path, two, out), out, str(two), "3-D")


def test_volume_output_needs_nifti_inputs_and_volume_options_need_volume_output(tmp_path, volumes, capsys):
    mri_path, pet_path, _, _ = volumes
    png = tmp_path / "pet.png"
    png.write_bytes(b"not really")
    out = tmp_path / "fused.nii.gz"
    _assert_refused(capsys, _fuse(mri_path, png, out), out, str(png), ".nii")
    out_png = tmp_path / "fused.png"
    _assert_refused(capsys, _fuse(mri_path, pet_path, out_png, "--axis", "1"), out_png, "--axis")


def test_a_failure_midway_leaves_no_output(tmp_path, volumes):
    mri_path, pet_path, _, _ = volumes
    calls = []

    class FailsSecond:
        name = "fails"

        def batch_for(self, shape):
            return 2

        def __call__(self, a, b):
            calls.append(len(a))
            if len(calls) == 2:
                raise FloatingPointError("2 fused pixel(s) are NaN")
            return (a + b) / 2

    out = tmp_path / "out" / "fused.nii.gz"
    out.parent.mkdir()
    with pytest.raises(FloatingPointError, match="slices 3-4 along axis 2"):
        fuse_volume(mri_path, pet_path, out, method=FailsSecond(), progress=False)
    assert calls == [2, 2] and not list(out.parent.iterdir())


def test_funfusean_volume_equals_fusing_each_slice(tmp_path, rng):
    import funfusean_tf as ff

    shape = (64, 64, 3)
    y, x = np.mgrid[:64, :64]
    mri = np.stack([(np.sin(x / (5 + k)) + np.cos(y / 7)) * 300 + 600 + rng.normal(0, 20, (64, 64))
                    for k in range(3)], axis=-1).astype(np.float32)
    pet = np.stack([np.exp(-((x - 30 - 4 * k) ** 2 + (y - 34) ** 2) / 150) * 8 + rng.random((64, 64))
                    for k in range(3)], axis=-1).astype(np.float32)
    mri_path = _save(tmp_path / "m.nii.gz", mri, _oblique_affine())
    pet_path = _save(tmp_path / "p.nii.gz", pet, _oblique_affine())
    out = tmp_path / "f.nii.gz"
    assert main(["fuse", "--mri", str(mri_path), "--pet", str(pet_path), "--out", str(out), "--quiet"]) == 0
    fused = np.asanyarray(nib.load(str(out)).dataobj)
    assert fused.shape == shape and fused.dtype == np.float32
    a = np.stack([_slice_minmax(mri[:, :, k].astype(np.float64)) for k in range(3)]).astype(np.float32)
    b = np.stack([_slice_minmax(pet[:, :, k].astype(np.float64)) for k in range(3)]).astype(np.float32)
    # FunFuseAn with the shipped weights on the three slices as one stack: the batch the volume
    # path runs, so oneDNN's batch-size-dependent kernels are the same on both sides on any CPU
    # (batch == single calls is tested without oneDNN in test_fuse_cli.py)
    expected = ff.fuse(a, b)
    for k in range(3):
        np.testing.assert_allclose(fused[:, :, k], expected[k], atol=1e-4)
    assert np.abs(fused[:, :, 0] - fused[:, :, 2]).max() > 1e-2
