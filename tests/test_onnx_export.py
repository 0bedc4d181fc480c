"""ONNX export (needs tf2onnx and onnxruntime: the package's `onnx` extra, also in its `test`
extra). A user without them gets a skip; under CI (.ci/run installs `.[test]`) a missing one is
an error, so the export is tested there."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from conftest import running_in_ci


def _optional(module: str):
    if running_in_ci():
        return importlib.import_module(module)  # ImportError: the CI install is incomplete
    return pytest.importorskip(module, reason=f"{module} is optional: pip install 'funfusean_tf[onnx]'")


tf2onnx = _optional("tf2onnx")
ort = _optional("onnxruntime")

from funfusean_tf.export import export_onnx  # noqa: E402
from funfusean_tf.fusion import NetworkMethod  # noqa: E402
from funfusean_tf.models.funfusean import build_funfusean  # noqa: E402


def test_onnx_matches_keras_with_moving_statistics(tmp_path, rng):
    method = NetworkMethod(build_funfusean(hf_rule="guarded", bn_statistics="moving"), "funfusean")
    path = export_onnx(method, tmp_path / "f.onnx")
    session = ort.InferenceSession(str(path))
    mri, pet = rng.random((2, 64, 64)).astype(np.float32), rng.random((2, 64, 64)).astype(np.float32)
    out = session.run(None, {"mri": mri[..., None], "pet": pet[..., None]})[0][..., 0]
    np.testing.assert_allclose(out, method(mri, pet), atol=1e-5)


def test_onnx_batch_equals_single_calls_with_batch_statistics(tmp_path, rng):
    """Issue 15, case 4: with per-batch statistics (FunFuseAn's own mode, the shipped weights) an
    ONNX batch of 3 equals 3 single calls within 1e-5; before, the images shared the statistics."""
    from funfusean_tf.fusion import load_method

    method = load_method("funfusean")
    path = export_onnx(method, tmp_path / "f.onnx")
    session = ort.InferenceSession(str(path))
    mri = rng.random((3, 48, 48, 1)).astype(np.float32)
    pet = (rng.random((3, 48, 48, 1)) * np.array([1.0, 0.05, 0.4], np.float32).reshape(3, 1, 1, 1)).astype(np.float32)
    batch = session.run(None, {"mri": mri, "pet": pet})[0]
    singles = np.concatenate([session.run(None, {"mri": mri[i : i + 1], "pet": pet[i : i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(batch, singles, atol=1e-5, rtol=0)
    # and each single ONNX call is the Keras single call (the same network, another runtime)
    keras_single = np.concatenate([np.asarray(method.model([mri[i : i + 1], pet[i : i + 1]], training=False))
                                   for i in range(3)])
    np.testing.assert_allclose(singles, keras_single, atol=2e-3)  # oneDNN vs ORT kernels: the exact rule amplifies float rounding
