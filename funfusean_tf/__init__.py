"""funfusean_tf: anatomical-functional brain image fusion in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
