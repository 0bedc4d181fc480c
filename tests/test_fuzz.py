"""Fuzzing (Hypothesis) the image loaders, the Python API and the metrics (issue 15).

Every generated input must end in a clean error, a ValueError (the package's ImageReadError,
MetricInputError, ... are ValueErrors) or FloatingPointError with a message, or in a correct,
finite result. Never another exception type, a crash, a NaN or an out-of-range value.

Two variants of each target:

- ``test_fuzz_*_sample``: a small sample, derandomized (the same examples on every run), in the
  default test command;
- ``test_fuzz_long``: marked ``fuzz`` (and ``slow``), deselected by default (setup.cfg addopts
  ``-m "not fuzz"``); at least 10,000 generated inputs over all targets. Run it with
  ``python -m pytest tests/test_fuzz.py -m fuzz -s``; ``FUNFUSEAN_FUZZ_EXAMPLES`` scales it,
  ``FUNFUSEAN_FUZZ_REPORT=path.json`` writes the counts per target and outcome.
"""

from __future__ import annotations

import io as bytes_io
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from funfusean_tf import fusion  # noqa: E402
from funfusean_tf.data import io  # noqa: E402

CLEAN_ERRORS = (ValueError, FloatingPointError)
COUNTS: dict[str, Counter] = {}

_QUIET = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _outcome(target: str, call):
    """Run ``call``; return its result, or None after a clean error (counted either way)."""
    counter = COUNTS.setdefault(target, Counter())
    try:
        result = call()
    except CLEAN_ERRORS as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        counter[f"error:{type(exc).__name__}"] += 1
        return None
    counter["ok"] += 1
    return result


# -- loaders -------------------------------------------------------------------------------------

SUFFIXES = [".png", ".gif", ".tif", ".jpg", ".bmp", ".npy", ".nii", ".nii.gz", ".txt"]
RASTER_FORMATS = {"PNG": ".png", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp", "JPEG": ".jpg"}


@st.composite
def damaged_raster(draw):
    """(suffix, bytes): a small valid raster, then truncated and/or with bytes changed."""
    from PIL import Image

    fmt = draw(st.sampled_from(sorted(RASTER_FORMATS)))
    mode = draw(st.sampled_from(["L", "RGB", "P", "I;16", "1"] if fmt in ("PNG", "TIFF") else ["L", "RGB"]))
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3)).astype(np.uint8), "RGB")
    elif mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 256, (height, width)).astype(np.uint8)).convert(mode)
    buffer = bytes_io.BytesIO()
    image.save(buffer, format=fmt)
    data = bytearray(buffer.getvalue())
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return RASTER_FORMATS[fmt], bytes(data)


@st.composite
def npy_file(draw):
    """(suffix, bytes): an .npy of an odd shape and dtype, NaN and inf possible; sometimes truncated."""
    dtype = draw(st.sampled_from(["uint8", "int16", "int64", "float16", "float32", "float64", "bool", "complex64"]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    array = draw(hnp.arrays(dtype, shape))
    buffer = bytes_io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return ".npy", data


file_bytes = st.one_of(
    st.tuples(st.sampled_from(SUFFIXES), st.binary(max_size=256)),
    damaged_raster(),
    npy_file(),
)


def check_loader(suffix_and_bytes):
    suffix, data = suffix_and_bytes
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        image = _outcome("loaders", lambda: io.load_image(path))
    if image is not None:
        assert image.ndim == 2 and image.dtype == np.float32 and image.size > 0
        assert np.all(np.isfinite(image)) and image.min() == 0.0 and image.max() == 1.0


# -- the Python API ------------------------------------------------------------------------------

API_DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "bool"]


@st.composite
def api_pair(draw, max_side=10):
    """Two arrays of one (usually) shape: odd dtypes, (H, W), (N, H, W), (N, H, W, 1) or wrong ranks."""
    kind = draw(st.sampled_from(["image", "image", "stack", "odd"]))  # odd ranks and sizes 1 in 4
    shape = draw({
        "image": hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=max_side),
        "stack": hnp.array_shapes(min_dims=3, max_dims=3, min_side=2, max_side=max_side),
        "odd": hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
    }[kind])
    # Hypothesis fills most of an array with one value by default (constant images: refused);
    # half the time draw every element, so that most pairs are valid and their results checked.
    # (then without NaN and infinity, which are refused too).
    varied = draw(st.booleans())

    def array(shape):
        dtype = np.dtype(draw(st.sampled_from(API_DTYPES)))
        if not varied:
            return draw(hnp.arrays(dtype, shape))
        elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False) if dtype.kind == "f" else None
        return draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing()))

    first = array(shape)
    mismatched = draw(st.sampled_from([False] * 9 + [True]))
    second_shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)) if mismatched else shape
    return first, array(second_shape)


def _expected_unit(array: np.ndarray) -> np.ndarray:
    """The documented scaling, written out independently: per image, min-max unless float in [0, 1]."""
    stack = array.astype(np.float64)
    stack = stack[..., 0] if stack.ndim == 4 else stack
    stack = stack[None] if stack.ndim == 2 else stack
    out = []
    for image in stack:
        if np.issubdtype(array.dtype, np.floating) and image.min() >= 0 and image.max() <= 1:
            out.append(image.astype(np.float32))
        else:
            low, high = image.min(), image.max()
            if not np.isfinite(high - low):  # a range wider than float64: halve first, as documented
                image, low, high = image / 2, low / 2, high / 2
            out.append(((image - low) / (high - low)).astype(np.float32))
    return np.stack(out)


def check_api(pair, method="average"):
    mri, pet = pair
    fused = _outcome(f"api:{method}", lambda: fusion.fuse(mri, pet, method=method))
    if fused is None:
        return
    assert fused.dtype == np.float32 and np.all(np.isfinite(fused))
    expected_shape = mri.shape[:-1] if mri.ndim == 4 else mri.shape
    assert fused.shape == expected_shape
    if method == "average":
        expected = (_expected_unit(mri) + _expected_unit(pet)) / 2
        np.testing.assert_allclose(fused.reshape(expected.shape), expected, rtol=1e-6, atol=1e-6)
    else:
        assert -1.0 - 1e-6 <= fused.min() and fused.max() <= 1.0 + 1e-6  # tanh / convex combination


# -- metrics -------------------------------------------------------------------------------------


def _all_metrics():
    from funfusean_tf.metrics.presets import get_preset

    return [(f"{p.name}.{m.name}", m.func) for p in get_preset("all") for m in p.metrics]


METRICS = _all_metrics()


@st.composite
def metric_triple(draw):
    """A metric and (fused, A, B) grey images as read (0-255, integer levels or not), constant possible."""
    name, func = draw(st.sampled_from(METRICS))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24))
    kind = draw(st.sampled_from(["levels", "float", "constant"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(3):
        if kind == "levels":
            images.append(rng.integers(0, 256, shape).astype(np.float64))
        elif kind == "float":
            images.append(rng.random(shape) * 255.0)
        else:
            images.append(np.full(shape, float(rng.integers(0, 256))))
    if draw(st.booleans()):  # one image constant among varied ones
        images[draw(st.integers(0, 2))][...] = float(rng.integers(0, 256))
    return name, func, images


def check_metric(triple):
    name, func, (fused, a, b) = triple
    value = _outcome(f"metric:{name}", lambda: func(fused, a, b))
    if value is not None:
        value = float(value)
        assert np.isfinite(value), f"{name} returned {value} on {fused.shape} images"


# -- the default, derandomized sample ------------------------------------------------------------

SAMPLE = settings(max_examples=60, derandomize=True, **_QUIET)


@SAMPLE
@given(file_bytes)
def test_fuzz_loaders_sample(case):
    check_loader(case)


@SAMPLE
@given(api_pair())
def test_fuzz_api_sample(pair):
    check_api(pair, "average")


@settings(max_examples=8, derandomize=True, **_QUIET)
@given(api_pair(max_side=8))
def test_fuzz_api_gff_sample(pair):
    check_api(pair, "gff")


@settings(max_examples=4, derandomize=True, **_QUIET)
@given(api_pair(max_side=12))
def test_fuzz_api_funfusean_sample(pair):
    check_api(pair, "funfusean")


@SAMPLE
@given(metric_triple())
def test_fuzz_metrics_sample(triple):
    check_metric(triple)


# -- the long run --------------------------------------------------------------------------------

LONG = int(os.environ.get("FUNFUSEAN_FUZZ_EXAMPLES", "10000"))
SHARES = {"loaders": 0.35, "average": 0.3, "gff": 0.05, "funfusean": 0.02, "metrics": 0.28}


@pytest.mark.fuzz
@pytest.mark.slow
def test_fuzz_long():
    """At least FUNFUSEAN_FUZZ_EXAMPLES (10,000) inputs over all targets, randomized."""
    COUNTS.clear()

    def run(strategy, check, share):
        n = max(1, int(round(LONG * share)))
        settings(max_examples=n, **_QUIET)(given(strategy)(check))()

    run(file_bytes, check_loader, SHARES["loaders"])
    run(api_pair(), lambda p: check_api(p, "average"), SHARES["average"])
    run(api_pair(max_side=8), lambda p: check_api(p, "gff"), SHARES["gff"])
    run(api_pair(max_side=12), lambda p: check_api(p, "funfusean"), SHARES["funfusean"])
    run(metric_triple(), check_metric, SHARES["metrics"])
    per_target = {target: dict(counter) for target, counter in sorted(COUNTS.items())}
    total = sum(sum(c.values()) for c in COUNTS.values())
    report = {"total": total, "per_target": per_target}
    print(json.dumps(report, indent=1))
    if os.environ.get("FUNFUSEAN_FUZZ_REPORT"):
        Path(os.environ["FUNFUSEAN_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1) + "\n")
    assert total >= LONG * 0.95  # Hypothesis may stop a target early once its space is exhausted
