"""Export a fusion network as a TensorFlow SavedModel (and optionally ONNX) for serving.

The SavedModel is written with Keras 3's ``keras.export.ExportArchive`` and has two signatures,
both with dynamic batch and spatial size, float32, inputs named ``mri`` and ``pet`` (N, H, W, 1)
in [0, 1]:

- ``serve(mri, pet) -> {"fused"}``: the network's output;
- ``contributions(mri, pet) -> {"fused", "grad_mri", "grad_pet"}``: the output and the two
  contribution maps d sum(F) / d I (funfusean_tf.visualize, the same GradientTape computation).

The archive needs nothing from this package to load: ``tf.saved_model.load(path)`` in any
TensorFlow process (the custom layers are traced into the graph). With per-batch BatchNorm
statistics (the originals' behaviour, FIDELITY.md F2) each image of a batch is normalised with its
own statistics at inference, as the originals' batch-1 calls were, so a batch of N gives the N
single-call results (and the N single-image contribution maps).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["export_saved_model", "export_onnx"]


def _signature_functions(model):
    import tensorflow as tf

    from .visualize import contribution_tensors

    spec = tf.TensorSpec((None, None, None, 1), tf.float32)

    def checked(mri, pet):
        # A concrete signature does not enforce its TensorSpec's rank: a (N, H, W) tensor would
        # reach oneDNN's convolution, which aborts the process. Refuse it first, with a message.
        checks = []
        for name, image in (("mri", mri), ("pet", pet)):
            message = f"{name} must be a float32 batch of shape (N, H, W, 1) (images in [0, 1]): wrong rank or channel count"
            checks.append(tf.debugging.assert_rank(image, 4, message=message))
            with tf.control_dependencies(checks[-1:]):
                checks.append(tf.debugging.assert_equal(tf.shape(image)[-1], 1, message=message))
        with tf.control_dependencies(checks):
            return tf.identity(mri), tf.identity(pet)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32, name="mri"),
                                  tf.TensorSpec((None, None, None, 1), tf.float32, name="pet")])
    def serve(mri, pet):
        mri, pet = checked(mri, pet)
        return {"fused": model([mri, pet], training=False)}

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32, name="mri"),
                                  tf.TensorSpec((None, None, None, 1), tf.float32, name="pet")])
    def contributions(mri, pet):
        mri, pet = checked(mri, pet)
        grad_mri, grad_pet, fused = contribution_tensors(model, mri, pet)
        return {"fused": fused, "grad_mri": grad_mri, "grad_pet": grad_pet}

    del spec
    return serve, contributions


def export_saved_model(method_or_model, out_dir) -> Path:
    """Write a SavedModel with the ``serve`` and ``contributions`` signatures to ``out_dir``."""
    import keras

    model = getattr(method_or_model, "model", method_or_model)
    if not isinstance(model, keras.Model) or len(model.inputs) != 2:
        raise ValueError("export needs a Keras fusion network with two inputs [mri, pet]")
    import shutil
    import tempfile

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: the folder exists and is not empty")
    serve, contributions = _signature_functions(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve)
    archive.add_endpoint("contributions", contributions)
    # Written beside the target and renamed onto it when complete: an interrupted or failed
    # export leaves no half-written SavedModel under the asked-for name.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial.", dir=out.parent))
    try:
        archive.write_out(str(staging / "saved"), verbose=False)
        if out.exists():
            out.rmdir()  # empty, checked above
        (staging / "saved").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def export_onnx(method_or_model, out_path, opset: int = 17) -> Path:
    """Write the ``serve`` computation as ONNX with tf2onnx (an optional dependency)."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs tf2onnx: pip install tf2onnx onnxruntime") from exc
    import tensorflow as tf

    model = getattr(method_or_model, "model", method_or_model)
    serve, _ = _signature_functions(model)
    spec = (tf.TensorSpec((None, None, None, 1), tf.float32, name="mri"),
            tf.TensorSpec((None, None, None, 1), tf.float32, name="pet"))
    from .data.io import atomic_path

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".onnx") as tmp:  # no half-written file under the asked-for name
        _convert_function(tf2onnx, serve, spec, opset, str(tmp))
    return out


def _convert_function(tf2onnx, function, input_signature, opset: int, output_path: str):
    """tf2onnx.convert.from_function without tf2onnx's ReshapeOptimizer, the output ranks checked.

    The ReshapeOptimizer (tf2onnx 1.17) rewrites the dynamic Reshape that replaces the final
    NCHW->NHWC Transpose as Reshape([1, -1, 0, 0, 1]) + Squeeze(axis 0), inserting the Squeeze with
    ``insert_node_on_output``, which does not move a graph output: when that Reshape already feeds
    the graph output, the Squeeze is left dangling and dropped, and the ONNX model returns
    (1, N, H, W, 1). Whether it does depends on the process (it happened in about 1 export in 4
    in one process), so it is left out here: the dynamic Reshape it would have simplified is
    correct as it is. Same arguments and conversion as from_function otherwise.
    """
    from collections import OrderedDict

    import tensorflow as tf
    from tf2onnx import optimizer, tf_loader
    from tf2onnx.convert import _convert_common, tensor_names_from_structed

    concrete = function.get_concrete_function(*input_signature)
    input_names = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    tensors_to_rename = tensor_names_from_structed(concrete, input_names, output_names)
    optimizers = OrderedDict((name, factory) for name, factory in optimizer._get_optimizers().items()
                             if name != "reshape_optimizer")
    with tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, input_names, output_names)
        model_proto, _ = _convert_common(
            frozen, name=concrete.name, continue_on_error=True, opset=opset, input_names=input_names,
            output_names=output_names, tensors_to_rename=tensors_to_rename, optimizers=optimizers,
            output_path=output_path)
    # Never a silently wrong file: each ONNX output has the rank of the function's output.
    wanted = {tensors_to_rename.get(t.name, t.name): t.shape.rank for t in concrete.outputs
              if t.dtype != tf.dtypes.resource}
    for output in model_proto.graph.output:
        if not output.type.tensor_type.HasField("shape"):
            continue  # rank unknown to ONNX: nothing to compare
        rank = len(output.type.tensor_type.shape.dim)
        if output.name in wanted and wanted[output.name] is not None and rank != wanted[output.name]:
            raise RuntimeError(f"ONNX export: output {output.name!r} has rank {rank}, the TensorFlow function's "
                               f"has rank {wanted[output.name]} (a tf2onnx graph rewrite went wrong)")
    return model_proto
