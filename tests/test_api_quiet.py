"""No noise that looks like failure: a quiet TensorFlow start (CLI and Python API), and `fuse` in a
loop reusing one loaded network and one traced forward pass."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import funfusean_tf
from funfusean_tf import fusion
from funfusean_tf.cli import _wants_verbose

#: TensorFlow's C++ log lines (absl format: severity, MMDD, time, thread, file:line]), absl's
#: pre-initialisation notice, and the cuInit failure of a machine without a GPU.
TF_NOISE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w.\-/]+:\d+\]|WARNING: All log messages before absl::InitializeLog)"
    r"|cuInit",
    re.MULTILINE,
)

CLI = "import sys; from funfusean_tf.cli import main; sys.exit(main(sys.argv[1:]))"

API_LOOP = """
import numpy as np
{import_fuse}
rng = np.random.default_rng(0)
for _ in range(8):  # the old code warned about retracing from the 5th call on
    fuse(rng.random((32, 40), dtype=np.float32), rng.random((32, 40), dtype=np.float32))
print("fused")
"""


def _user_env(**extra) -> dict:
    """The environment of a user who set none of the logging variables (conftest sets one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", funfusean_tf.VERBOSE_ENV_VAR)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def png_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(7)
    for name in ("mri", "pet"):
        Image.fromarray(rng.integers(0, 256, (32, 40)).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def _cli_stderr(png_pair, *extra_args, **extra_env) -> str:
    out = png_pair / f"fused{len(extra_args)}{len(extra_env)}.png"
    args = ["fuse", "--mri", str(png_pair / "mri.png"), "--pet", str(png_pair / "pet.png"), "--out", str(out),
            *extra_args]
    done = subprocess.run([sys.executable, "-c", CLI, *args], env=_user_env(**extra_env), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and f"wrote {out}" in done.stdout
    return done.stderr


def test_cli_fuse_prints_nothing_on_stderr(png_pair):
    """The shipped network fusing a real (tiny) pair, as a user runs it: no cuInit, no C++ log line."""
    stderr = _cli_stderr(png_pair)
    assert not TF_NOISE.search(stderr), stderr
    assert stderr.strip() == ""


@pytest.mark.parametrize("how", ["TF_CPP_MIN_LOG_LEVEL=0", "--verbose"])
def test_cli_keeps_tensorflow_logs_when_asked(png_pair, how):
    """The check above can fail: asked for TensorFlow's logs, the same run shows them (on a CPU
    machine the cuInit failure among them; on a GPU machine its device lines)."""
    if how == "--verbose":
        stderr = _cli_stderr(png_pair, "--verbose")
    else:
        stderr = _cli_stderr(png_pair, TF_CPP_MIN_LOG_LEVEL="0")
    assert TF_NOISE.search(stderr), f"no TensorFlow log line with {how}:\n{stderr}"


@pytest.mark.parametrize("import_fuse", ["import funfusean_tf; fuse = funfusean_tf.fuse",
                                         "from funfusean_tf.fusion import fuse"])
def test_python_api_in_a_loop_prints_nothing_on_stderr(import_fuse):
    """`fuse(...)` eight times, found either way: no start-up noise, no retracing warning."""
    code = API_LOOP.format(import_fuse=import_fuse)
    done = subprocess.run([sys.executable, "-c", code], env=_user_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fused"
    assert "retracing" not in done.stderr, done.stderr
    assert not TF_NOISE.search(done.stderr), done.stderr
    assert done.stderr.strip() == ""


@pytest.mark.parametrize(("env", "argv", "wanted"), [
    ({}, ["fuse", "--mri", "a"], False),
    ({}, ["--verbose", "fuse"], True),
    ({}, ["fuse", "--verbose"], True),
    ({}, ["fuse", "--", "--verbose"], False),
    ({"FUNFUSEAN_VERBOSE_TF": "1"}, [], True),
    ({"FUNFUSEAN_VERBOSE_TF": "0"}, [], False),
    ({"TF_CPP_MIN_LOG_LEVEL": "0"}, [], True),
    ({"TF_CPP_MIN_LOG_LEVEL": "2"}, [], False),
])
def test_verbose_switches(monkeypatch, env, argv, wanted):
    for key in ("FUNFUSEAN_VERBOSE_TF", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert (_wants_verbose(argv) or funfusean_tf._tensorflow_logs_wanted()) is wanted


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def tf_log():
    import tensorflow as tf

    handler = _Records()
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def fresh_cache():
    fusion.clear_shared_methods()
    yield
    fusion.clear_shared_methods()


def test_fuse_in_a_loop_traces_once(fresh_cache, tf_log, rng):
    """20 calls on same-size pairs, then other sizes and a stack: one network, one trace."""
    for _ in range(20):
        fusion.fuse(rng.random((48, 56), dtype=np.float32), rng.random((48, 56), dtype=np.float32))
    method = fusion.shared_method("funfusean")
    assert fusion.fuse is funfusean_tf.fuse
    assert method._forward.experimental_get_tracing_count() == 1
    for shape in ((40, 40), (3, 48, 56)):
        fused = fusion.fuse(rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32))
        assert fused.shape == shape
    assert fusion.shared_method("funfusean") is method
    assert method._forward.experimental_get_tracing_count() == 1
    assert not [m for m in tf_log if "retracing" in m], tf_log


def test_fuse_again_gives_the_identical_array(fresh_cache, rng):
    mri, pet = rng.random((64, 64), dtype=np.float32), rng.random((64, 64), dtype=np.float32)
    first = fusion.fuse(mri, pet)
    again = fusion.fuse(mri, pet)
    assert again.dtype == np.float32 and not np.shares_memory(first, again)
    np.testing.assert_array_equal(again, first)
    # ... and the same as a model built and loaded just for this call (the uncached path).
    np.testing.assert_array_equal(fusion.load_method("funfusean")(mri, pet), first)


def test_shared_method_per_weights_file_and_options(fresh_cache, tmp_path, rng):
    import keras

    from funfusean_tf.config import ModelConfig
    from funfusean_tf.models.funfusean import build_funfusean

    weights = tmp_path / "net.weights.h5"
    keras.utils.set_random_seed(1)
    build_funfusean(hf_rule="guarded").save_weights(weights)
    guarded = ModelConfig(hf_rule="guarded")
    method = fusion.shared_method("funfusean", weights=weights, model_config=guarded)
    same = fusion.shared_method("funfusean", weights=str(weights), model_config=ModelConfig(hf_rule="guarded"))
    assert same is method
    assert fusion.shared_method("funfusean", weights=weights, model_config=ModelConfig(hf_rule="exact")) is not method
    assert fusion.shared_method("funfusean") is not method
    assert fusion.load_method("funfusean", weights=weights, model_config=guarded) is not method

    mri, pet = rng.random((32, 32), dtype=np.float32), rng.random((32, 32), dtype=np.float32)
    before = fusion.fuse(mri, pet, weights=weights, model_config=guarded)
    keras.utils.set_random_seed(2)
    build_funfusean(hf_rule="guarded").save_weights(weights)  # retrained in place: loaded anew
    after = fusion.fuse(mri, pet, weights=weights, model_config=guarded)
    assert fusion.shared_method("funfusean", weights=weights, model_config=guarded) is not method
    assert not np.array_equal(after, before)
    fresh = fusion.load_method("funfusean", weights=weights, model_config=guarded)
    np.testing.assert_array_equal(after, fresh(mri, pet))


def test_shared_methods_are_bounded(fresh_cache, monkeypatch):
    from funfusean_tf.config import ModelConfig

    monkeypatch.setattr(fusion, "SHARED_METHODS_MAX", 2)
    first = fusion.shared_method("funfusean")
    fusion.shared_method("funfusean", model_config=ModelConfig(hf_rule="guarded"))
    assert fusion.shared_method("funfusean") is first  # used again: now the most recent
    fusion.shared_method("funfusean", model_config=ModelConfig(hf_rule="guarded", hf_eps=1e-2))
    assert len(fusion._shared_methods) == 2
    assert fusion.shared_method("funfusean") is first


def test_baselines_and_errors_go_through_shared_method(fresh_cache, rng):
    mri, pet = rng.random((16, 16), dtype=np.float32), rng.random((16, 16), dtype=np.float32)
    np.testing.assert_allclose(fusion.fuse(mri, pet, method="average"), (mri + pet) / 2, rtol=1e-6)
    with pytest.raises(KeyError, match="unknown method"):
        fusion.fuse(mri, pet, method="no-such-method")
    with pytest.raises(ValueError, match="takes no extra parameters"):
        fusion.fuse(mri, pet, method="funfusean", radius=3)
    with pytest.raises(FileNotFoundError, match="no shipped funfusean weights for lambda 0.5"):
        fusion.fuse(mri, pet, method="funfusean", lam=0.5)
    assert not fusion._shared_methods
