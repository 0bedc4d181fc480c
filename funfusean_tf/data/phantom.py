"""An MRI / FDG-PET brain phantom built only from files installed packages ship (no download).

The default data of this package: co-registered anatomical / functional axial slice pairs that
need nothing but ``nilearn`` (which ships the MNI ICBM152 2009 template at 1 mm, with its grey-
and white-matter probability maps) and ``scipy``.

What is simulated
-----------------
- **Anatomy (the "MRI")**: the MNI ICBM152 2009 (nlin sym 09a) T1-weighted template as nilearn
  ships it (1 mm isotropic, 197 x 233 x 189, brain-masked, 8-bit). It is an average of 152
  subjects, so it is smoother and less noisy than one T1 MPRAGE scan; no MRI noise or bias field
  is added.
- **True FDG uptake**: ``activity = gm_uptake * P(GM) + wm_uptake * P(WM) + csf_uptake * P(CSF)``
  with the template's tissue probability maps, ``P(CSF) = 1 - P(GM) - P(WM)`` inside the
  template's brain mask (T1 > 0) and zero uptake outside it. The defaults 4 : 1 : 0 are the
  grey : white : CSF uptake ratio conventionally used for simulated FDG brain PET (the BrainWeb
  convention). Partial volume in the 1 mm template is modelled as a linear mixture of the
  tissue probabilities.
- **Lesion (optional)**: a sphere (centre in MNI millimetres, radius in mm). ``"hot"``: a
  uniform tumour whose uptake is ``lesion_ratio`` times the grey-matter uptake (tumour-to-grey
  ratio), inside the brain mask. ``"hypo"``: the normal uptake inside the sphere multiplied by
  ``lesion_ratio`` (< 1; a hypometabolic region as in dementia or an epileptic focus).
- **Scanner resolution**: a shift-invariant, isotropic 3-D Gaussian point-spread function of
  ``fwhm_mm`` (default 6 mm; clinical PET is roughly 4-8 mm), sigma = FWHM / (2 sqrt(2 ln 2)),
  applied to the whole activity volume (so out-of-slice activity blurs into each slice).
- **Counting noise**: independent Poisson noise per voxel in image space. The blurred volume is
  scaled so that a voxel of the *mean* (unblurred) brain uptake expects ``counts`` events,
  ``numpy.random.Generator.poisson`` is drawn, and the result scaled back. ``counts = 0`` gives
  a noiseless image. Deterministic given ``seed`` and the rest of the configuration; only the
  slab of slices the train/test ranges need is drawn, so changing the ranges changes the noise
  realisation of a given slice.

What is NOT simulated
---------------------
No photon attenuation or attenuation correction, no scatter or randoms, no sinogram and no
iterative reconstruction (so the noise is white, not the correlated, blobby noise of OSEM
images, and there is no reconstruction bias), no positron range, no depth-of-interaction or
spatially varying resolution, no partial-volume correction, no patient motion, no PET-MRI
misregistration (the two are perfectly aligned), no kinetic modelling or SUV scaling, no
subject-to-subject variability (one template brain). The MRI is an average template, not one
subject's scan. Treat the phantom as a deterministic smoke-test and demo data set, not as a
substitute for ADNI.

Slices
------
Axial slices (the template's third axis) are rotated so that anterior is up and the subject's
right is on the image's right (neurological convention, as the RAS template is stored),
resampled in-plane to ``pixel_mm`` (1 mm by default: no resampling for the 1 mm template) and
centre-padded or cropped to
``image_size`` (256 x 256, like ADNI's 1 mm slices). Slices whose brain area is below
``min_brain_fraction`` of the largest axial brain area are skipped. Train and test slices come
from disjoint ranges of MNI z (millimetres, half-open ``[lo, hi)``); the default ranges leave
10 mm gaps, more than the PSF's FWHM, so a test slice is not a blurred copy of a training one.
Every slice is min-max scaled to [0, 1] on its own (:func:`funfusean_tf.data.io.minmax_normalise`),
as FunFuseAn scaled its inputs: absolute uptake is lost, ratios within a slice are kept (the
background is 0, so the minimum is 0).

Results are cached as ``.npz`` under ``$FUNFUSEAN_CACHE`` (default ``~/.cache/funfusean_tf``),
keyed by a hash of the configuration and of :data:`PHANTOM_MODEL_VERSION`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import atomic_path, minmax_normalise, to_uint8, write_png
from .pairs import ImagePair

__all__ = [
    "PHANTOM_MODEL_VERSION",
    "CACHE_ENV_VAR",
    "PhantomConfig",
    "PhantomSlices",
    "PhantomVolumes",
    "load_template",
    "simulate_volumes",
    "generate_phantom",
    "phantom_pairs",
    "write_phantom_pngs",
    "cache_dir",
    "fwhm_to_sigma",
]

#: Bump when the simulation changes, so that stale cached arrays are not reused.
PHANTOM_MODEL_VERSION = 1

#: Environment variable naming the cache folder.
CACHE_ENV_VAR = "FUNFUSEAN_CACHE"

_LESION_KINDS = ("none", "hot", "hypo")


@dataclass(frozen=True)
class PhantomConfig:
    """Every parameter of the phantom (data_manifests/phantom.toml lists the same defaults)."""

    #: seed of the Poisson noise (the only random part).
    seed: int = 0
    #: template voxel size to load from nilearn (1 = the shipped file; 2 = nilearn's resampling).
    template_resolution_mm: int = 1
    #: uptake per unit tissue probability (FDG grey : white : CSF = 4 : 1 : 0).
    gm_uptake: float = 4.0
    wm_uptake: float = 1.0
    csf_uptake: float = 0.0
    #: FWHM of the isotropic 3-D Gaussian PSF in mm; 0 = no blur.
    fwhm_mm: float = 6.0
    #: expected Poisson counts in a voxel of mean brain uptake; 0 = no noise.
    counts: float = 200.0
    #: "none", "hot" (tumour, uptake = lesion_ratio x grey-matter uptake) or "hypo" (uptake x lesion_ratio).
    lesion: str = "none"
    lesion_center_mm: tuple[float, float, float] = (30.0, -20.0, 15.0)
    lesion_radius_mm: float = 8.0
    lesion_ratio: float = 2.0
    #: output slice geometry.
    image_size: int = 256
    pixel_mm: float = 1.0
    #: skip axial slices whose brain area is below this fraction of the largest one.
    min_brain_fraction: float = 0.25
    #: slice spacing in mm within the ranges.
    slice_step_mm: float = 1.0
    #: half-open MNI z ranges [lo, hi) in mm.
    train_z_mm: tuple[tuple[float, float], ...] = ((-40.0, 0.0), (30.0, 60.0))
    test_z_mm: tuple[tuple[float, float], ...] = ((10.0, 20.0),)

    def __post_init__(self):
        # Normalise sequences (from TOML lists) to tuples so the config is hashable and comparable.
        object.__setattr__(self, "lesion_center_mm", tuple(float(v) for v in self.lesion_center_mm))
        object.__setattr__(self, "train_z_mm", tuple((float(a), float(b)) for a, b in self.train_z_mm))
        object.__setattr__(self, "test_z_mm", tuple((float(a), float(b)) for a, b in self.test_z_mm))
        self.validate()

    def validate(self) -> None:
        if self.lesion not in _LESION_KINDS:
            raise ValueError(f"phantom lesion must be one of {_LESION_KINDS}, got {self.lesion!r}")
        if len(self.lesion_center_mm) != 3:
            raise ValueError("phantom lesion_center_mm needs three coordinates (x, y, z in MNI mm)")
        if self.fwhm_mm < 0:
            raise ValueError(f"phantom fwhm_mm must be >= 0, got {self.fwhm_mm}")
        if self.counts < 0:
            raise ValueError(f"phantom counts must be >= 0, got {self.counts}")
        if self.lesion_radius_mm <= 0 or self.lesion_ratio < 0:
            raise ValueError("phantom lesion_radius_mm must be > 0 and lesion_ratio >= 0")
        if self.image_size < 8 or self.pixel_mm <= 0 or self.slice_step_mm <= 0:
            raise ValueError("phantom image_size must be >= 8, pixel_mm and slice_step_mm > 0")
        for name in ("train_z_mm", "test_z_mm"):
            for lo, hi in getattr(self, name):
                if not hi > lo:
                    raise ValueError(f"phantom {name}: range [{lo}, {hi}) is empty")
        for lo, hi in self.train_z_mm:
            for tlo, thi in self.test_z_mm:
                if lo < thi and tlo < hi:
                    raise ValueError(
                        f"phantom train range [{lo}, {hi}) overlaps test range [{tlo}, {thi}); they must be disjoint"
                    )

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["lesion_center_mm"] = list(self.lesion_center_mm)
        out["train_z_mm"] = [list(r) for r in self.train_z_mm]
        out["test_z_mm"] = [list(r) for r in self.test_z_mm]
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "PhantomConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown phantom parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes) -> "PhantomConfig":
        return dataclasses.replace(self, **changes)

    def cache_key(self) -> str:
        payload = json.dumps({"model": PHANTOM_MODEL_VERSION, "config": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass
class PhantomVolumes:
    """The 3-D maps on the template grid (x, y, z voxels; RAS, ``affine`` voxel -> MNI mm)."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    affine: np.ndarray


@dataclass
class PhantomSlices:
    """Axial slices, all [N, image_size, image_size] float32, plus per-slice metadata.

    ``mri`` and ``pet`` are each min-max scaled to [0, 1] per slice; ``gm``, ``wm`` are the
    tissue probabilities and ``lesion`` the lesion mask (0/1) cut and resampled the same way, for
    checking the model; ``z_mm`` is each slice's MNI z and ``split`` 'train' or 'test'.
    """

    mri: np.ndarray
    pet: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    lesion: np.ndarray
    z_mm: np.ndarray
    split: np.ndarray
    config: PhantomConfig = field(default_factory=PhantomConfig)

    def select(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        keep = self.split == split
        return self.mri[keep], self.pet[keep]


def fwhm_to_sigma(fwhm: float) -> float:
    """Gaussian sigma for a full width at half maximum: FWHM / (2 sqrt(2 ln 2))."""
    return float(fwhm) / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "funfusean_tf"


def load_template(resolution_mm: int = 1) -> PhantomVolumes:
    """The MNI152 2009 T1 template and GM/WM probability maps nilearn ships (offline)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's FutureWarnings about defaults
        from nilearn import datasets

        t1_img = datasets.load_mni152_template(resolution=resolution_mm)
        gm_img = datasets.load_mni152_gm_template(resolution=resolution_mm)
        wm_img = datasets.load_mni152_wm_template(resolution=resolution_mm)
    t1 = np.asarray(t1_img.get_fdata(dtype=np.float32))
    gm = np.asarray(gm_img.get_fdata(dtype=np.float32))
    wm = np.asarray(wm_img.get_fdata(dtype=np.float32))
    # nilearn ships the probability maps as 8-bit (0..255); bring them to [0, 1].
    for name, arr in (("gm", gm), ("wm", wm)):
        if arr.max() > 1.0 + 1e-6:
            arr /= 255.0 if arr.max() <= 255.0 + 1e-3 else float(arr.max())
        np.clip(arr, 0.0, 1.0, out=arr)
    total = gm + wm
    over = total > 1.0
    if np.any(over):  # never let the mixture exceed one tissue unit
        gm[over] /= total[over]
        wm[over] /= total[over]
    if t1.shape != gm.shape or t1.shape != wm.shape:
        raise ValueError(f"nilearn templates disagree in shape: T1 {t1.shape}, GM {gm.shape}, WM {wm.shape}")
    if not np.allclose(t1_img.affine, gm_img.affine) or not np.allclose(t1_img.affine, wm_img.affine):
        raise ValueError("nilearn T1 and tissue templates have different affines")
    return PhantomVolumes(t1=t1, gm=gm, wm=wm, brain=t1 > 0, affine=np.asarray(t1_img.affine, dtype=np.float64))


def _lesion_mask(shape, affine, center_mm, radius_mm) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``center_mm`` (world coordinates)."""
    i, j, k = (np.arange(n, dtype=np.float64) for n in shape)
    grid = np.ix_(i, j, k)
    dist2 = np.zeros(shape, dtype=np.float64)
    for row in range(3):
        coord = affine[row, 3] - float(center_mm[row])
        coord = coord + sum(affine[row, col] * grid[col] for col in range(3))
        dist2 += coord**2
    return dist2 <= radius_mm**2


def true_activity(config: PhantomConfig, volumes: PhantomVolumes) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free, unblurred uptake on the template grid, and the lesion mask."""
    gm, wm, brain = volumes.gm, volumes.wm, volumes.brain
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    activity = config.gm_uptake * gm + config.wm_uptake * wm + config.csf_uptake * csf
    activity = np.where(brain, activity, 0.0).astype(np.float32)
    lesion = np.zeros(activity.shape, dtype=bool)
    if config.lesion != "none":
        lesion = _lesion_mask(activity.shape, volumes.affine, config.lesion_center_mm, config.lesion_radius_mm) & brain
        if config.lesion == "hot":
            activity[lesion] = config.lesion_ratio * config.gm_uptake
        else:
            activity[lesion] *= config.lesion_ratio
    return activity, lesion


def _slice_indices(config: PhantomConfig, volumes: PhantomVolumes) -> list[tuple[int, float, str]]:
    """(voxel index, z in mm, split) of every slice kept, in increasing z."""
    z_scale, z_offset = volumes.affine[2, 2], volumes.affine[2, 3]
    if volumes.affine[2, 0] or volumes.affine[2, 1] or z_scale <= 0:
        raise ValueError("the template's third axis is not the superior z axis")
    area = volumes.brain.sum(axis=(0, 1))
    keep_area = area >= config.min_brain_fraction * area.max()
    chosen: dict[int, tuple[int, float, str]] = {}
    for split, ranges in (("train", config.train_z_mm), ("test", config.test_z_mm)):
        for lo, hi in ranges:
            z = lo
            while z < hi - 1e-9:
                k = int(round((z - z_offset) / z_scale))
                if 0 <= k < area.size and keep_area[k]:
                    chosen.setdefault(k, (k, float(k * z_scale + z_offset), split))
                z += config.slice_step_mm
    return [chosen[k] for k in sorted(chosen)]


def _blur(volume: np.ndarray, sigma_vox: np.ndarray, z_lo: int, z_hi: int) -> tuple[np.ndarray, int]:
    """Gaussian blur of the slab needed for slices [z_lo, z_hi], exact as if on the whole volume."""
    from scipy import ndimage

    truncate = 4.0
    margin = int(truncate * float(sigma_vox[2]) + 0.5) + 1
    start, stop = max(0, z_lo - margin), min(volume.shape[2], z_hi + 1 + margin)
    slab = volume[:, :, start:stop]
    if np.all(sigma_vox == 0):
        return slab.copy(), start
    # mode constant (zero activity outside the template's field of view)
    return ndimage.gaussian_filter(slab, sigma=sigma_vox, mode="constant", cval=0.0, truncate=truncate), start


def _to_image(axial: np.ndarray, voxel_mm: tuple[float, float], config: PhantomConfig, order: int) -> np.ndarray:
    """An (x, y) axial slice as an image: anterior up, subject's right on the right, padded/cropped."""
    image = np.rot90(axial)  # rows: y from anterior to posterior; columns: x from left (-) to right (+)
    zoom = (voxel_mm[1] / config.pixel_mm, voxel_mm[0] / config.pixel_mm)
    if not np.allclose(zoom, 1.0):
        from scipy import ndimage

        image = ndimage.zoom(image, zoom, order=order, mode="constant", cval=0.0, grid_mode=True)
    from .io import centre_fit

    return centre_fit(image, config.image_size, dtype=np.float32)


def simulate_volumes(config: PhantomConfig, volumes: PhantomVolumes | None = None):
    """Simulate, returning (slice list, PET slab, slab start, lesion mask, volumes).

    Only the slab of axial slices needed (plus the PSF's margin) is blurred and noised, which
    keeps generation fast; the blur is identical to blurring the whole volume.
    """
    volumes = volumes or load_template(config.template_resolution_mm)
    chosen = _slice_indices(config, volumes)
    if not chosen:
        raise ValueError("phantom: no axial slice falls in the train/test ranges with enough brain")
    activity, lesion = true_activity(config, volumes)
    voxel_mm = np.sqrt(np.sum(volumes.affine[:3, :3] ** 2, axis=0))
    sigma_vox = np.asarray([fwhm_to_sigma(config.fwhm_mm) / v for v in voxel_mm])
    k_lo, k_hi = chosen[0][0], chosen[-1][0]
    pet, start = _blur(activity, sigma_vox, k_lo, k_hi)
    if config.counts > 0:
        mean_brain = float(activity[volumes.brain].mean())
        scale = config.counts / mean_brain
        rng = np.random.default_rng(config.seed)
        pet = rng.poisson(np.clip(pet, 0.0, None).astype(np.float64) * scale).astype(np.float32) / np.float32(scale)
    return chosen, pet, start, lesion, volumes


def _generate(config: PhantomConfig, volumes: PhantomVolumes | None = None) -> PhantomSlices:
    chosen, pet_slab, start, lesion, volumes = simulate_volumes(config, volumes)
    voxel_mm = tuple(float(v) for v in np.sqrt(np.sum(volumes.affine[:3, :3] ** 2, axis=0))[:2])
    mri, pet, gm, wm, les, z_mm, split = [], [], [], [], [], [], []
    for k, z, which in chosen:
        name = f"phantom slice z={z:g} mm"
        mri.append(minmax_normalise(_to_image(volumes.t1[:, :, k], voxel_mm, config, order=1), name=f"{name} (MRI)"))
        pet.append(minmax_normalise(_to_image(pet_slab[:, :, k - start], voxel_mm, config, order=1), name=f"{name} (PET)"))
        gm.append(_to_image(volumes.gm[:, :, k], voxel_mm, config, order=1))
        wm.append(_to_image(volumes.wm[:, :, k], voxel_mm, config, order=1))
        les.append(_to_image(lesion[:, :, k].astype(np.float32), voxel_mm, config, order=0))
        z_mm.append(z)
        split.append(which)
    return PhantomSlices(
        mri=np.stack(mri).astype(np.float32),
        pet=np.stack(pet).astype(np.float32),
        gm=np.stack(gm).astype(np.float32),
        wm=np.stack(wm).astype(np.float32),
        lesion=(np.stack(les) > 0.5).astype(np.float32),
        z_mm=np.asarray(z_mm, dtype=np.float64),
        split=np.asarray(split),
        config=config,
    )


_ARRAYS = ("mri", "pet", "gm", "wm", "lesion", "z_mm", "split")


def generate_phantom(
    config: PhantomConfig | None = None, cache: bool = True, volumes: PhantomVolumes | None = None
) -> PhantomSlices:
    """The phantom's slices for ``config``, read from the on-disk cache when present.

    ``volumes`` (from :func:`load_template`) saves reloading the template when generating many
    configurations; it must be the template of ``config.template_resolution_mm``.
    """
    config = config or PhantomConfig()
    path = cache_dir() / f"phantom-{config.cache_key()}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if json.loads(str(stored["config"])) == config.to_dict():
                    arrays = {k: stored[k] for k in _ARRAYS}
                    arrays["lesion"] = arrays["lesion"].astype(np.float32)
                    return PhantomSlices(**arrays, config=config)
        except Exception:  # a damaged cache file is regenerated, never trusted
            pass
    data = _generate(config, volumes)
    if cache:
        try:
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as handle:
                    np.savez_compressed(  # ~8 MB for the default instead of ~100 MB
                        handle,
                        config=np.asarray(json.dumps(config.to_dict(), sort_keys=True)),
                        **{k: getattr(data, k) for k in _ARRAYS if k != "lesion"},
                        lesion=data.lesion.astype(np.uint8),
                    )
        except OSError:
            pass  # a read-only home is not an error: the data is still returned
    return data


def phantom_pairs(config: PhantomConfig | None = None, cache: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'train': (mri[N,H,W], pet[N,H,W]), 'test': (...)}``, float32, each slice in [0, 1]."""
    data = generate_phantom(config, cache=cache)
    return {split: data.select(split) for split in ("train", "test")}


def write_phantom_pngs(out_dir, n: int = 4, config: PhantomConfig | None = None, split: str = "test") -> list[ImagePair]:
    """Write ``n`` phantom pairs as 8-bit PNGs into ``out_dir/mri`` and ``out_dir/pet``.

    The slices are spread evenly over the split. Returns the pairs written (name = the slice's
    MNI z), ready for anything that reads :class:`ImagePair` lists.
    """
    if n < 1:
        raise ValueError(f"need at least one phantom pair, got n={n}")
    data = generate_phantom(config)
    index = np.flatnonzero(data.split == split)
    if index.size == 0:
        raise ValueError(f"the phantom has no {split!r} slices")
    picks = index[np.unique(np.linspace(0, index.size - 1, num=min(n, index.size)).round().astype(int))]
    out_dir = Path(out_dir)
    pairs = []
    for i in picks:
        name = f"z{data.z_mm[i]:+04.0f}mm"
        mri_path = write_png(out_dir / "mri" / f"{name}.png", to_uint8(data.mri[i], name=f"{name} MRI"))
        pet_path = write_png(out_dir / "pet" / f"{name}.png", to_uint8(data.pet[i], name=f"{name} PET"))
        pairs.append(ImagePair(mri_path, pet_path, name))
    return pairs
