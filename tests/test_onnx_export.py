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
