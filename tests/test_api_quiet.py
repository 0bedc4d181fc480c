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


# -- issue 15 case 5: the Python API checks its inputs as the command line does -------------------


@pytest.mark.parametrize("method", ["average", "gff", "funfusean"])
def test_fuse_refuses_constant_and_1x1_images_with_the_cli_message(fresh_cache, tmp_path, capsys, rng, method):
    from funfusean_tf.cli import main

    good = rng.random((16, 16), dtype=np.float32)
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(tmp_path / "flat.png")
    Image.fromarray((good * 255).astype(np.uint8)).save(tmp_path / "good.png")
    assert main(["fuse", "--mri", str(tmp_path / "flat.png"), "--pet", str(tmp_path / "good.png"),
                 "--out", str(tmp_path / "f.png"), "--method", method]) == 2
    cli_message = capsys.readouterr().err.strip().split("flat.png: ", 1)[1]
    assert cli_message == "the image is constant (every pixel is 7); it cannot be min-max scaled"
    for flat in (np.full((16, 16), 7, np.uint8), np.full((16, 16), 7.0)):
        with pytest.raises(ValueError) as info:
            fusion.fuse(flat, good, method=method)
        assert str(info.value) == f"mri: {cli_message}"
    with pytest.raises(ValueError, match=r"^pet: the image is constant \(every pixel is 0.5\)"):
        fusion.fuse(good, np.full((16, 16), 0.5, np.float32), method=method)
    with pytest.raises(ValueError, match=r"^mri: the image is constant \(every pixel is 3\)"):
        fusion.fuse(np.full((1, 1), 3, np.uint8), np.full((1, 1), 9, np.uint8), method=method)
    stack = rng.random((3, 16, 16), dtype=np.float32)
    stack[1] = 0.25
    with pytest.raises(ValueError, match=r"^pet\[1\]: the image is constant"):
        fusion.fuse(rng.random((3, 16, 16), dtype=np.float32), stack, method=method)


@pytest.mark.parametrize("method", ["average", "funfusean"])
def test_fuse_scales_a_raw_uint8_image_as_the_cli_reads_its_file(fresh_cache, tmp_path, rng, method):
    """A uint8 array, its min-max-scaled [0, 1] version and its PNG file through the CLI: one result."""
    from funfusean_tf.cli import main
    from funfusean_tf.data.io import minmax_normalise

    mri8 = rng.integers(20, 201, (24, 32)).astype(np.uint8)  # not 0..255: u8 / 255 would differ
    pet8 = rng.integers(5, 151, (24, 32)).astype(np.uint8)
    scaled = fusion.fuse(minmax_normalise(mri8), minmax_normalise(pet8), method=method)
    np.testing.assert_array_equal(fusion.fuse(mri8, pet8, method=method), scaled)
    np.testing.assert_array_equal(fusion.fuse(mri8.astype(np.float64), pet8.astype(np.float64), method=method),
                                  scaled)  # floats outside [0, 1] too
    for name, array in (("mri", mri8), ("pet", pet8)):
        Image.fromarray(array).save(tmp_path / f"{name}.png")
    assert main(["fuse", "--mri", str(tmp_path / "mri.png"), "--pet", str(tmp_path / "pet.png"), "--out",
                 str(tmp_path / "f.png"), "--method", method, "--npy", "--quiet"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), scaled, rtol=0, atol=1e-6)
    # valid [0, 1] floats are used as given: the same output as the method called directly
    mri, pet = rng.random((24, 32), dtype=np.float32) * 0.5 + 0.1, rng.random((24, 32), dtype=np.float32)
    np.testing.assert_array_equal(fusion.fuse(mri, pet, method=method),
                                  fusion.shared_method(method)(mri, pet))


def test_fuse_rejects_what_it_cannot_read_with_a_message(fresh_cache):
    good = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    cases = [
        (np.zeros((0, 8)), np.zeros((0, 8)), "empty"),
        (good.astype(np.complex64), good, "real numbers"),
        (np.array([["a"] * 8] * 8), good, "real numbers"),
        (good, good[:, :7], "same size"),
        (np.where(good > 0.5, np.nan, good), good, "NaN"),
        (good[None, None], good, "expected an"),
    ]
    for mri, pet, fragment in cases:
        with pytest.raises(ValueError, match=fragment):
            fusion.fuse(mri, pet, method="average")
