"""funfusean_tf: anatomical-functional brain image fusion in TensorFlow 2 / Keras 3.

The public API, a handful of names (imported lazily, so ``import funfusean_tf`` is cheap):

- ``fuse(mri, pet, method="funfusean")`` and ``load_method(name, weights=...)``
- ``available_methods()``
- ``train(config)`` and ``load_config(path)``
- ``contribution_maps(model, mri, pet)`` and ``colour_code(grad_mri, grad_pet, omega)``
- ``evaluate(...)``
"""

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

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'funfusean_tf' has no attribute {name!r}")
