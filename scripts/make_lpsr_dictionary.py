"""Regenerate funfusean_tf/baselines/lpsr_dictionary.npy, the LP-SR baseline's dictionary.

Liu, Liu and Wang (Information Fusion 2015) learned a 256-atom dictionary of 8x8 patches with
K-SVD on 100,000 patches of natural images. Their training images cannot be fetched here, so this
script learns a dictionary of the same shape with scikit-learn's MiniBatchDictionaryLearning on
8x8 patches of the greyscale images scikit-image ships inside its wheel (no download), with a
fixed seed:

    .venv/bin/python scripts/make_lpsr_dictionary.py [--out PATH] [--patches N] [--seed S]

Patches are taken in row-major order (patch.ravel()), mean-removed (the DC part is handled
separately by the fusion rule, as in Liu's code), and flat patches are skipped. The result is a
(64, 256) float32 array whose columns are unit-norm atoms. Re-running with the same arguments and
library versions gives the same dictionary up to floating-point round-off of the BLAS in use.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "funfusean_tf" / "baselines" / "lpsr_dictionary.npy"

#: images inside skimage/data/ of the installed wheel (no network needed)
IMAGES = (
    "camera", "coins", "moon", "text", "page", "clock", "brick", "grass", "gravel", "cell",
    "microaneurysms", "shepp_logan_phantom", "astronaut", "chelsea", "coffee", "rocket",
    "immunohistochemistry", "hubble_deep_field", "retina",
)  # fmt: skip


def grey_images() -> list[np.ndarray]:
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    images = []
    for name in IMAGES:
        image = img_as_float(getattr(skimage.data, name)())
        if image.ndim == 3:
            image = rgb2gray(image[..., :3])
        images.append(np.asarray(image, dtype=np.float64))
    return images


def sample_patches(images, count: int, patch: int, rng: np.random.Generator, min_std: float = 0.01) -> np.ndarray:
    per_image = -(-count // len(images))
    rows = []
    for image in images:
        h, w = image.shape
        # oversample, then keep the first non-flat ones
        ys = rng.integers(0, h - patch + 1, size=4 * per_image)
        xs = rng.integers(0, w - patch + 1, size=4 * per_image)
        windows = np.lib.stride_tricks.sliding_window_view(image, (patch, patch))
        patches = windows[ys, xs].reshape(len(ys), patch * patch)
        patches = patches[patches.std(axis=1) > min_std][:per_image]
        rows.append(patches)
    patches = np.concatenate(rows)[:count]
    return patches - patches.mean(axis=1, keepdims=True)


def learn(patches: np.ndarray, atoms: int, seed: int, epochs: int, alpha: float) -> np.ndarray:
    import warnings

    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.exceptions import ConvergenceWarning

    model = MiniBatchDictionaryLearning(
        n_components=atoms,
        alpha=alpha,
        batch_size=256,
        max_iter=epochs,
        fit_algorithm="cd",
        transform_algorithm="omp",
        random_state=seed,
        shuffle=True,
    )
    # scale so that a typical patch has unit norm: alpha then means the same for every data set
    scale = np.median(np.linalg.norm(patches, axis=1))
    with warnings.catch_warnings():
        # the inner lasso solves of a mini-batch stop early by design; that is not a failure here
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(patches / scale)
    dictionary = model.components_.T.copy()  # (n_features, n_atoms): atoms are columns
    norms = np.linalg.norm(dictionary, axis=0)
    if np.any(norms == 0):
        raise RuntimeError("dictionary learning produced an all-zero atom; try more patches")
    return (dictionary / norms).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--patches", type=int, default=30000, help="at most this many (flat patches are skipped)")
    parser.add_argument("--atoms", type=int, default=256)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.2, help="sparsity weight (patches scaled to median norm 1)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    patches = sample_patches(grey_images(), args.patches, args.patch_size, rng)
    dictionary = learn(patches, args.atoms, args.seed, args.epochs, args.alpha)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, dictionary)
    print(
        f"wrote {args.out}: {dictionary.shape[0]}x{dictionary.shape[1]} from {len(patches)} patches "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
