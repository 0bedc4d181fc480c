"""ONNX export (optional: needs tf2onnx and onnxruntime, not dependencies of the package)."""

from __future__ import annotations

import numpy as np
import pytest

tf2onnx = pytest.importorskip("tf2onnx", reason="tf2onnx is optional: pip install tf2onnx onnxruntime")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is optional: pip install onnxruntime")

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
