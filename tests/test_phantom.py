"""The MNI152 phantom against its stated physical model (funfusean_tf/data/phantom.py)."""

from __future__ import annotations

import numpy as np
import pytest

from funfusean_tf.data import phantom as ph
from funfusean_tf.data.io import read_grey
from funfusean_tf.data.phantom import PhantomConfig, generate_phantom, load_template, phantom_pairs


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory):
    """One cache for this module (the default phantom is generated once), never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ph.CACHE_ENV_VAR, str(tmp_path_factory.mktemp("phantom_cache")))
        yield


@pytest.fixture(scope="module")
def volumes():
    return load_template(1)


# A few slices around the lesion's default centre (z = 15 mm) and a few below: fast to simulate.
SMALL = PhantomConfig(train_z_mm=((-3.0, 3.0),), test_z_mm=((12.0, 19.0),))


def _gen(volumes, **changes):
    return generate_phantom(SMALL.replace(**changes), cache=False, volumes=volumes)


def _brain(data):
    return data.mri > 0  # the template is brain-masked: T1 > 0 is the brain


def test_template_loads_offline_at_1mm(volumes):
    assert volumes.t1.shape == volumes.gm.shape == volumes.wm.shape
    assert np.allclose(np.abs(np.diag(volumes.affine)[:3]), 1.0)
    assert 0.0 <= volumes.gm.min() and volumes.gm.max() <= 1.0
    assert (volumes.gm + volumes.wm).max() <= 1.0 + 1e-6


def test_default_pairs_shapes_range_split_sizes_and_cache(monkeypatch):
    """The default phantom (its generation and cached-read times: benchmarks/bench_timing_goals.py)."""
    config = PhantomConfig()
    cache_file = ph.cache_dir() / f"phantom-{config.cache_key()}.npz"
    cache_file.unlink(missing_ok=True)
    sets = phantom_pairs(config)
    # Default ranges: train [-40, 0) and [30, 60), test [10, 20), 1 mm apart; all those slices
    # hold plenty of brain, so none is skipped.
    expected = {"train": 40 + 30, "test": 10}
    for split, (mri, pet) in sets.items():
        assert mri.shape == pet.shape == (expected[split], 256, 256)
        assert mri.dtype == pet.dtype == np.float32
        for stack in (mri, pet):
            assert np.allclose(stack.min(axis=(1, 2)), 0.0) and np.allclose(stack.max(axis=(1, 2)), 1.0)
    # the first call wrote the cache; the second reads it (simulating again would fail here) and
    # gives the same arrays
    assert cache_file.is_file()

    def no_simulation(*args, **kwargs):
        raise AssertionError("the phantom was simulated again instead of read from the cache")

    monkeypatch.setattr(ph, "_generate", no_simulation)
    again = phantom_pairs(config)
    for split in sets:
        for stored, fresh in zip(again[split], sets[split]):
            assert np.array_equal(stored, fresh)


def test_train_and_test_slice_ranges_are_disjoint():
    data = generate_phantom(PhantomConfig())
    train, test = data.z_mm[data.split == "train"], data.z_mm[data.split == "test"]
    assert not set(train) & set(test)
    assert all(-40 <= z < 0 or 30 <= z < 60 for z in train)
    assert all(10 <= z < 20 for z in test)
    # at least the PSF's FWHM between any training and any test slice
    assert np.min(np.abs(train[:, None] - test[None, :])) >= PhantomConfig().fwhm_mm
    with pytest.raises(ValueError, match="overlaps"):
        PhantomConfig(train_z_mm=((0.0, 20.0),), test_z_mm=((10.0, 30.0),))


def test_deterministic_given_seed(volumes):
    a, b = _gen(volumes, seed=7), _gen(volumes, seed=7)
    assert np.array_equal(a.pet, b.pet) and np.array_equal(a.mri, b.mri)
    c = _gen(volumes, seed=8)
    assert np.array_equal(a.mri, c.mri)
    assert not np.array_equal(a.pet, c.pet)
    # the noise is the only random part: the mean image is the same
    assert abs(float(a.pet.mean()) - float(c.pet.mean())) < 0.01


def test_grey_white_ratio_is_four_in_noiseless_unblurred_pet(volumes):
    clean = _gen(volumes, fwhm_mm=0.0, counts=0.0)
    ratios = []
    for i in range(len(clean.pet)):
        brain = _brain(clean)[i]
        design = np.stack([clean.gm[i][brain], clean.wm[i][brain]], axis=1)
        coef, *_ = np.linalg.lstsq(design, clean.pet[i][brain], rcond=None)
        ratios.append(coef[0] / coef[1])
        residual = design @ coef - clean.pet[i][brain]
        assert np.sqrt(np.mean(residual**2)) < 1e-4  # PET is exactly linear in (GM, WM): CSF uptake 0
    assert np.allclose(ratios, 4.0, rtol=1e-3), ratios
    # On near-pure tissue the ratio is close to, and below, 4 (partial volume mixes a little WM in GM).
    brain = _brain(clean)
    grey = clean.pet[brain & (clean.gm > 0.9)].mean()
    white = clean.pet[brain & (clean.wm > 0.9)].mean()
    assert 3.0 < grey / white <= 4.0


def test_csf_has_almost_no_uptake(volumes):
    clean = _gen(volumes, fwhm_mm=0.0, counts=0.0)
    brain = _brain(clean)
    csf = brain & (clean.gm + clean.wm < 0.05)
    grey = brain & (clean.gm > 0.9)
    assert csf.sum() > 500, "these slices cut the ventricles"
    # uptake there is only the < 5 % tissue mixed in: at most 4 * 0.05 of a GM unit
    assert clean.pet[csf].mean() < 0.05 * clean.pet[grey].mean()
    # and the brain's outside is empty
    assert clean.pet[~brain].max() == 0.0


def _gradient_energy(data):
    gy, gx = np.gradient(data.pet.astype(np.float64), axis=(1, 2))
    return float(np.mean((gx**2 + gy**2)[_brain(data)]))


def test_larger_fwhm_is_measurably_smoother(volumes):
    energy = [_gradient_energy(_gen(volumes, fwhm_mm=f, counts=0.0)) for f in (0.0, 4.0, 8.0)]
    assert energy[0] > 1.5 * energy[1] > 1.5 * 1.5 * energy[2], energy


@pytest.mark.parametrize("fwhm", [4.0, 8.0])
def test_point_source_response_has_the_configured_fwhm(volumes, fwhm):
    # A one-voxel hot "lesion" is a point source: blurred image minus the same image without it
    # is the PSF (blurring is linear). Each slice is min-max scaled on its own, so first undo the
    # two scale factors using pixels far from the source, where the images differ only by scale.
    point = _gen(volumes, fwhm_mm=fwhm, counts=0.0, lesion="hot", lesion_radius_mm=0.5, lesion_ratio=50.0)
    clean = _gen(volumes, fwhm_mm=fwhm, counts=0.0)
    (i,) = np.flatnonzero(point.lesion.any(axis=(1, 2)))
    assert point.lesion[i].sum() == 1
    (row, col), = np.argwhere(point.lesion[i] > 0)
    far = clean.pet[i] > 0.05
    far[row - 30 : row + 31, col - 30 : col + 31] = False
    scale = np.median(point.pet[i][far] / clean.pet[i][far])
    window = (slice(row - 20, row + 21), slice(col - 20, col + 21))
    psf = (point.pet[i] - scale * clean.pet[i])[window].astype(np.float64)
    yy, xx = np.mgrid[-20:21, -20:21]
    sigma = np.sqrt(np.sum((xx**2 + yy**2) * psf) / (2 * psf.sum()))  # in-plane second moment, 1 mm pixels
    assert 2 * np.sqrt(2 * np.log(2)) * sigma == pytest.approx(fwhm, rel=0.02)


def test_blur_spills_activity_outside_the_brain(volumes):
    sharp, blurred = _gen(volumes, fwhm_mm=0.0, counts=0.0), _gen(volumes, fwhm_mm=8.0, counts=0.0)
    outside = ~_brain(sharp)
    assert sharp.pet[outside].max() == 0.0
    assert blurred.pet[outside].mean() > 0.001


def test_poisson_noise_variance_scales_with_mean_and_counts(volumes):
    clean = _gen(volumes, fwhm_mm=0.0, counts=0.0)
    brain = _brain(clean)
    grey, white = brain & (clean.gm > 0.9), brain & (clean.wm > 0.9)

    def cv(data, mask):
        # noisy / noiseless per slice (each is min-max scaled on its own, so compare within a slice)
        values = []
        for i in range(len(data.pet)):
            m = mask[i] & (clean.pet[i] > 0)
            r = data.pet[i][m] / clean.pet[i][m]
            values.append(r.std() / r.mean())
        return float(np.mean(values))

    low, high = _gen(volumes, fwhm_mm=0.0, counts=50.0), _gen(volumes, fwhm_mm=0.0, counts=200.0)
    # Poisson: relative noise ~ 1 / sqrt(counts): four times the counts halves it.
    assert cv(low, white) / cv(high, white) == pytest.approx(2.0, rel=0.1)
    # Poisson: variance proportional to the mean, so CV_white / CV_grey = sqrt(uptake_grey / uptake_white).
    uptake_ratio = clean.pet[grey].mean() / clean.pet[white].mean()
    assert cv(high, white) / cv(high, grey) == pytest.approx(np.sqrt(uptake_ratio), rel=0.1)
    # Absolute level: a voxel of mean brain uptake m expects `counts` events, so CV = sqrt(m / (counts * a)).
    activity = 4.0 * volumes.gm + 1.0 * volumes.wm
    mean_brain = activity[volumes.t1 > 0].mean()
    white_uptake = activity[(volumes.t1 > 0) & (volumes.wm > 0.9)].mean()
    assert cv(high, white) == pytest.approx(np.sqrt(mean_brain / (200.0 * white_uptake)), rel=0.15)


def _lesion_to_grey(data, clean):
    """Mean lesion uptake over mean pure-GM uptake outside it, within the slices the lesion cuts."""
    ratios = []
    for i in np.flatnonzero(data.lesion.any(axis=(1, 2))):
        lesion = data.lesion[i] > 0
        grey = _brain(clean)[i] & (clean.gm[i] > 0.9) & ~lesion
        ratios.append(data.pet[i][lesion].mean() / data.pet[i][grey].mean())
    return float(np.mean(ratios))


def test_hot_lesion_has_the_stated_uptake_ratio(volumes):
    clean = _gen(volumes, fwhm_mm=0.0, counts=0.0, lesion="hot", lesion_ratio=2.0)
    assert clean.lesion.any(axis=(1, 2)).sum() >= 3
    # hot: uptake = 2 x the GM uptake (4); pure GM (> 0.9) averages a little under 4
    assert 2.0 <= _lesion_to_grey(clean, clean) < 2.0 * 4.0 / 3.6
    # blurred and noisy, the lesion still stands out above grey matter, and above no lesion
    base = _gen(volumes)
    hot = _gen(volumes, lesion="hot", lesion_ratio=2.0)
    hot_mask = hot.lesion > 0
    assert _lesion_to_grey(hot, base) > 1.2
    assert hot_mask.any() and not base.lesion.any()
    base.lesion = hot.lesion  # same region, no lesion
    assert _lesion_to_grey(base, base) < 1.0


def test_hypometabolic_lesion_lowers_uptake_by_the_ratio(volumes):
    hypo = _gen(volumes, fwhm_mm=0.0, counts=0.0, lesion="hypo", lesion_ratio=0.5)
    normal = _gen(volumes, fwhm_mm=0.0, counts=0.0)
    assert hypo.lesion.any() and not normal.lesion.any()
    normal.lesion = hypo.lesion  # the same region, without the lesion
    ratio = _lesion_to_grey(hypo, hypo) / _lesion_to_grey(normal, normal)
    assert ratio == pytest.approx(0.5, rel=0.02)
    blurred = _gen(volumes, lesion="hypo", lesion_ratio=0.5)
    plain = _gen(volumes)
    plain.lesion = blurred.lesion
    assert _lesion_to_grey(blurred, blurred) < 0.85 * _lesion_to_grey(plain, plain)


def test_config_validation_and_dict_round_trip():
    with pytest.raises(ValueError, match="lesion"):
        PhantomConfig(lesion="cold")
    with pytest.raises(ValueError, match="fwhm"):
        PhantomConfig(fwhm_mm=-1.0)
    with pytest.raises(ValueError, match="unknown phantom parameter"):
        PhantomConfig.from_dict({"fwhm": 6})
    config = PhantomConfig(fwhm_mm=4.0, lesion="hot", train_z_mm=[[-5, 5]])
    assert PhantomConfig.from_dict(config.to_dict()) == config
    assert config.cache_key() != PhantomConfig().cache_key()


def test_damaged_cache_is_regenerated(volumes):
    first = generate_phantom(SMALL, volumes=volumes)
    cached = list(ph.cache_dir().glob(f"phantom-{SMALL.cache_key()}.npz"))
    assert len(cached) == 1
    cached[0].write_bytes(b"not an npz file")
    again = generate_phantom(SMALL, volumes=volumes)
    assert np.array_equal(first.pet, again.pet)


def test_write_phantom_pngs(tmp_path, volumes):
    pairs = ph.write_phantom_pngs(tmp_path / "demo", n=3, config=SMALL)
    assert len(pairs) == 3 and len({p.name for p in pairs}) == 3
    for pair in pairs:
        mri, pet = read_grey(pair.mri), read_grey(pair.pet)
        assert mri.shape == pet.shape == (256, 256)
        assert mri.max() == 255 and pet.max() == 255 and mri.min() == 0
    assert sorted(p.name for p in (tmp_path / "demo" / "mri").iterdir()) == sorted(f"{p.name}.png" for p in pairs)
