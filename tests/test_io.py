"""funfusean_tf.data.io: how files become [0, 1] grey images and arrays become files."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from funfusean_tf.data import io
from funfusean_tf.data.io import ImageReadError, load_image, load_pair, read_grey, to_uint8, write_png


@pytest.mark.shared_data
@pytest.mark.parametrize("side", ["pet", "mri"])
def test_palette_gif_is_read_through_convert_L(shared_data, side):
    path = shared_data / "aanlib" / "funfusean_test" / side / "1.gif"
    with Image.open(path) as image:
        assert image.mode == "P"
        index = np.asarray(image)
        expected = np.asarray(image.convert("L"), dtype=np.float64)
    grey = read_grey(path)
    assert grey.shape == (256, 256)
    assert np.array_equal(grey, expected)
    # the test means something: the palette index is not the grey level
    assert np.mean(index != expected) > 0.1
    scaled = load_image(path)
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0


def test_rgb_uses_the_originals_weights(tmp_path):
    rgb = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
         [[10, 20, 30], [77, 77, 77], [0, 0, 0]]],
        dtype=np.uint8,
    )
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    grey = read_grey(path)
    # 0.2989 R + 0.5870 G + 0.1140 B, worked out by hand
    expected = np.array([[76.2195, 149.685, 29.07], [18.149, 76.9923, 0.0]])
    assert np.allclose(grey, expected, atol=1e-9)
    # not PIL's own integer luma (299/587/114 per mille, rounded): 76 for pure red
    with Image.open(path) as image:
        assert np.asarray(image.convert("L"))[0, 0] == 76


def test_rgb_npy_uses_the_same_weights(tmp_path):
    rgb = np.zeros((2, 2, 3))
    rgb[0, 0] = (1.0, 0.0, 0.0)
    rgb[1, 1] = (0.0, 0.0, 2.0)
    np.save(tmp_path / "a.npy", rgb)
    grey = read_grey(tmp_path / "a.npy")
    assert grey[0, 0] == pytest.approx(0.2989) and grey[1, 1] == pytest.approx(0.228)


def test_constant_image_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "flat_slice.png"
    Image.fromarray(np.full((8, 8), 42, dtype=np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="flat_slice.png.*constant"):
        load_image(path)


def test_nan_in_npy_is_an_error(tmp_path):
    array = np.ones((4, 4))
    array[1, 2] = np.nan
    array[0, 0] = 0.0
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ImageReadError, match="bad.npy.*NaN"):
        read_grey(tmp_path / "bad.npy")
    with pytest.raises(ImageReadError, match="bad.npy"):
        load_image(tmp_path / "bad.npy")


def test_mismatched_pair_names_both_files(tmp_path):
    small, large = tmp_path / "mri_small.png", tmp_path / "pet_large.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(small)
    Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10)).save(large)
    with pytest.raises(ImageReadError) as info:
        load_pair(small, large)
    message = str(info.value)
    assert "mri_small.png" in message and "pet_large.png" in message and "8x8" in message and "10x10" in message


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(ImageReadError, match="nothing_here.png.*no such file"):
        read_grey(tmp_path / "nothing_here.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_grey(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_grey(tmp_path / "broken.png")


def test_nifti_volume_needs_a_slice_and_gives_that_slice(tmp_path):
    import nibabel as nib

    volume = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    with pytest.raises(ImageReadError, match="slice index"):
        read_grey(path)
    assert np.array_equal(read_grey(path, slice_index=2), volume[:, :, 2])
    with pytest.raises(ImageReadError, match="outside"):
        read_grey(path, slice_index=3)


def test_to_uint8_scales_truncates_and_refuses_nan():
    assert to_uint8(np.array([[0.0, 0.5], [0.25, 1.0]])).tolist() == [[0, 127], [63, 255]]
    assert to_uint8(np.array([[-1.0, 1.0]])).tolist() == [[0, 255]]  # min-max, not clipping
    for bad in (np.nan, np.inf):
        image = np.zeros((3, 3))
        image[1, 1] = bad
        with pytest.raises(FloatingPointError, match="1 pixel"):
            to_uint8(image, name="fused")


def test_write_png_round_trip(tmp_path):
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = write_png(tmp_path / "sub" / "out.png", image)
    assert np.array_equal(read_grey(path), image.astype(np.float64))
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]
    with pytest.raises(TypeError):
        write_png(tmp_path / "float.png", image.astype(np.float32))
    assert not (tmp_path / "float.png").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_png(tmp_path / "out.png", np.zeros((4, 4), dtype=np.uint8))
        npy = io.write_npy(tmp_path / "out.npy", np.zeros(3))
    finally:
        os.umask(mask)
    # as open() would create them (0666 & ~umask), not mkstemp's private 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(npy.stat().st_mode) == 0o644


def test_write_png_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "fused.png"
    old = np.full((4, 4), 9, dtype=np.uint8)
    write_png(target, old)
    before = target.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"\x89PNG partial")  # half a file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        write_png(target, np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(OSError):
        write_png(tmp_path / "new.png", np.zeros((4, 4), dtype=np.uint8))
    # the old file is intact, the new one never appeared, no temporary file is left behind
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.png"]


def test_write_npy_is_atomic(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "save", failing)
    with pytest.raises(OSError):
        io.write_npy(tmp_path / "x.npy", np.zeros(3))
    assert list(tmp_path.iterdir()) == []


def _refuse_temp_files_in(folder, monkeypatch, errno_code=13, strerror="Permission denied"):
    """mkstemp as in a read-only folder (chmod alone does not stop root): the OSError names the temp file."""
    real = io.tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None):
        if dir is not None and os.path.samefile(dir, folder):
            raise OSError(errno_code, strerror, os.path.join(dir, f"{prefix}q1w2e3r4{suffix}"))
        return real(prefix=prefix, suffix=suffix, dir=dir)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)


def test_write_errors_name_the_path_asked_for_not_the_temp_file(tmp_path, monkeypatch):
    """Issue 15 case 6: a read-only folder, a failed rename, a full disk: the message names out.png."""
    target = tmp_path / "out.png"
    _refuse_temp_files_in(tmp_path, monkeypatch)
    with pytest.raises(PermissionError) as info:
        write_png(target, np.zeros((4, 4), np.uint8))
    assert str(target) in str(info.value) and "Permission denied" in str(info.value)
    assert ".out." not in str(info.value) and "q1w2e3r4" not in str(info.value)
    monkeypatch.undo()

    def no_rename(src, dst):
        raise OSError(30, "Read-only file system", str(src), None, str(dst))

    monkeypatch.setattr(io.os, "replace", no_rename)
    with pytest.raises(OSError) as info:
        io.write_npy(tmp_path / "out.npy", np.zeros(3))
    assert str(tmp_path / "out.npy") in str(info.value) and ".out." not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the temp file is removed
    monkeypatch.undo()

    from PIL import Image as PILImage

    def full_disk(self, fp, *args, **kwargs):
        raise OSError(28, "No space left on device", str(fp))

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    with pytest.raises(OSError) as info:
        write_png(target, np.zeros((4, 4), np.uint8))
    assert str(target) in str(info.value) and ".out." not in str(info.value)
    assert list(tmp_path.iterdir()) == []
