"""funfusean_tf: anatomical-functional brain image fusion in TensorFlow 2 / Keras 3.

The public API, a handful of names (imported lazily, so ``import funfusean_tf`` is cheap):

- ``fuse(mri, pet, method="funfusean")`` and ``load_method(name, weights=...)``
- ``available_methods()``
- ``train(config)`` and ``load_config(path)``
- ``contribution_maps(model, mri, pet)`` and ``colour_code(grad_mri, grad_pet, omega)``
- ``evaluate(...)``

TensorFlow starts quietly: when this package is the first to import it (through one of the names
above or the ``funfusean`` command), its start-up lines on stderr (oneDNN and CPU-feature notes,
"Could not find cuda drivers", "failed call to cuInit" on a machine without a GPU) are dropped, and
``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (C++ errors only) unless already set. To see everything, set
``FUNFUSEAN_VERBOSE_TF=1`` or ``TF_CPP_MIN_LOG_LEVEL=0`` (or run ``funfusean --verbose ...``).
"""

import os
import sys
import threading

__version__ = "0.1.0"

_LAZY = {
    "fuse": ("funfusean_tf.fusion", "fuse"),
    "load_method": ("funfusean_tf.fusion", "load_method"),
    "available_methods": ("funfusean_tf.fusion", "available_methods"),
    "train": ("funfusean_tf.training", "train"),
    "load_config": ("funfusean_tf.config", "load_config"),
    "contribution_maps": ("funfusean_tf.visualize", "contribution_maps"),
    "colour_code": ("funfusean_tf.visualize", "colour_code"),
    "evaluate": ("funfusean_tf.evaluation", "evaluate"),
}
#: The API names that run TensorFlow (the others are NumPy only and stay cheap).
_USES_TENSORFLOW = {"fuse", "load_method", "available_methods", "train", "contribution_maps"}

#: Set to 1 to keep TensorFlow's start-up and C++ log lines (``funfusean --verbose`` sets it).
VERBOSE_ENV_VAR = "FUNFUSEAN_VERBOSE_TF"

__all__ = ["__version__", *_LAZY]

_devices_probed = False
_start_lock = threading.Lock()


def _tensorflow_logs_wanted() -> bool:
    """True when the user asked for TensorFlow's own log lines: FUNFUSEAN_VERBOSE_TF set to a
    true-ish value, or TF_CPP_MIN_LOG_LEVEL set to 0 (everything) by hand."""
    flag = os.environ.get(VERBOSE_ENV_VAR, "").strip().lower()
    return flag not in ("", "0", "false", "no", "off") or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"


def _start_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with their stderr chatter dropped (once per process).

    Those lines are written by C++ before TF_CPP_MIN_LOG_LEVEL takes effect (the import) or at
    ERROR level (cuInit failing on a machine without a GPU, when the devices are first listed), so
    only silencing file descriptor 2 during these two steps removes them. Nothing is configured:
    listing physical devices creates no logical device, so thread, visible-device and
    memory-growth settings can still be made afterwards. If either step raises, what it wrote is
    put back on stderr before the error propagates. Does nothing when the user asked for the
    logs (:func:`_tensorflow_logs_wanted`). Thread-safe: one thread probes, the others wait.
    """
    global _devices_probed
    if _devices_probed or _tensorflow_logs_wanted():
        return
    with _start_lock:  # two threads swapping fd 2 at once could leave it pointing at a temp file
        if _devices_probed:
            return
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _stderr_fd_dropped():
            import tensorflow as tf

            tf.config.list_physical_devices()
        _devices_probed = True


class _stderr_fd_dropped:
    """Point file descriptor 2 at a temporary file for the block; replay it if the block raises."""

    def __enter__(self):
        import tempfile

        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            self._saved = os.dup(2)
        except OSError:  # no usable stderr: nothing to silence
            self._saved = None
            return self
        try:
            self._capture = tempfile.TemporaryFile()
        except OSError:  # no writable temp folder: drop the lines outright
            self._capture = open(os.devnull, "w+b")
        os.dup2(self._capture.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._saved is None:
            return False
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        with self._capture:
            if exc_type is not None and sys.stderr is not None:
                self._capture.seek(0)
                sys.stderr.write(self._capture.read().decode(errors="replace"))
                sys.stderr.flush()
        return False


def __getattr__(name):
    if name in _LAZY:
        import importlib

        if name in _USES_TENSORFLOW:
            _start_tensorflow_quietly()
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'funfusean_tf' has no attribute {name!r}")
