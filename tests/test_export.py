"""SavedModel export: a fresh process that never imports funfusean_tf reloads it, outputs equal."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from funfusean_tf.cli import main
from funfusean_tf.data.datasets import named_pairs
from funfusean_tf.data.io import load_pair
from funfusean_tf.fusion import NetworkMethod
from funfusean_tf.models.funfusean import build_funfusean
from funfusean_tf.visualize import contribution_maps

pytestmark = pytest.mark.slow

RELOAD = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    folder, inputs, out = sys.argv[1:4]
    assert "funfusean_tf" not in sys.modules
    loaded = tf.saved_model.load(folder)
    data = np.load(inputs)
    results = {}
    for i in range(len(data["mri"])):
        mri, pet = data["mri"][i:i + 1, ..., None], data["pet"][i:i + 1, ..., None]
        served = loaded.signatures["serve"](mri=tf.constant(mri), pet=tf.constant(pet))
        contributions = loaded.signatures["contributions"](mri=tf.constant(mri), pet=tf.constant(pet))
        results[f"serve_{i}"] = served["fused"].numpy()
        for key in ("fused", "grad_mri", "grad_pet"):
            results[f"{key}_{i}"] = contributions[key].numpy()
    assert "funfusean_tf" not in sys.modules, "the SavedModel must load without the package"
    np.savez(out, **results)
""")


def test_saved_model_reloads_in_a_fresh_process_and_matches(shared_data, tmp_path):
    model = build_funfusean(hf_rule="guarded")
    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    (tmp_path / "w.toml").write_text('[model]\nname = "funfusean"\nhf_rule = "guarded"\n')
    folder = tmp_path / "saved"
    assert main(["export", "--model", "funfusean", "--weights", str(weights), "--out", str(folder)]) == 0

    pairs = named_pairs("funfusean_test", root=shared_data)[:2]
    loaded = [load_pair(p.mri, p.pet) for p in pairs]
    mri, pet = np.stack([m for m, _ in loaded]), np.stack([p for _, p in loaded])
    np.savez(tmp_path / "inputs.npz", mri=mri, pet=pet)
    subprocess.run([sys.executable, "-c", RELOAD, str(folder), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
                   check=True, cwd=tmp_path, capture_output=True)
    got = np.load(tmp_path / "out.npz")

    method = NetworkMethod(model, "funfusean")
    maps = contribution_maps(method, mri, pet)
    for i in range(len(mri)):
        np.testing.assert_allclose(got[f"serve_{i}"][0, ..., 0], method(mri[i], pet[i]), atol=1e-5)
        np.testing.assert_allclose(got[f"fused_{i}"][0, ..., 0], maps.fused[i], atol=1e-5)
        scale = np.abs(maps.mri[i]).max()
        np.testing.assert_allclose(got[f"grad_mri_{i}"][0, ..., 0] / scale, maps.mri[i] / scale, atol=1e-5)
        np.testing.assert_allclose(got[f"grad_pet_{i}"][0, ..., 0] / scale, maps.pet[i] / scale, atol=1e-5)

    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).with_name("saved_model_cli"))
    shown = subprocess.run([cli, "show", "--dir", str(folder), "--all"], capture_output=True, text=True, check=True).stdout
    assert "signature_def['serve']" in shown and "signature_def['contributions']" in shown


def test_export_refuses_a_classical_method_and_a_used_folder(tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert main(["export", "--model", "gff", "--out", str(tmp_path / "a")]) == 2
    model = build_funfusean(hf_rule="guarded")
    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "used")]) != 0
    assert "not empty" in capsys.readouterr().err


BATCH_EXACT = textwrap.dedent("""
    import os, sys, numpy as np, tensorflow as tf
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    from funfusean_tf.config import DataConfig
    from funfusean_tf.data.sources import load_arrays
    from funfusean_tf.export import export_saved_model
    from funfusean_tf.fusion import load_method
    from funfusean_tf.visualize import contribution_maps
    method = load_method("funfusean")  # the shipped weights, exact rule, per-batch statistics
    mri, pet, _ = load_arrays(DataConfig(source="phantom", crop=96), split="test")
    mri, pet = mri[:3, ..., None], pet[:3, ..., None]
    pet[1] *= 0.05  # a dark PET next to bright ones: shared statistics would move it most
    worst = {}
    def record(key, batch, singles):
        worst[key] = float(np.max(np.abs(np.asarray(batch) - np.concatenate([np.asarray(s) for s in singles]))))
    model = method.model
    record("keras", model([mri, pet], training=False), [model([mri[i:i+1], pet[i:i+1]], training=False) for i in range(3)])
    loaded = tf.saved_model.load(export_saved_model(method, sys.argv[1]))
    serve, contrib = loaded.signatures["serve"], loaded.signatures["contributions"]
    call = lambda f, a, b: f(mri=tf.constant(a), pet=tf.constant(b))
    record("saved_model", call(serve, mri, pet)["fused"], [call(serve, mri[i:i+1], pet[i:i+1])["fused"] for i in range(3)])
    both = call(contrib, mri, pet)
    for key in ("grad_mri", "grad_pet"):
        record("saved_model_" + key, both[key], [call(contrib, mri[i:i+1], pet[i:i+1])[key] for i in range(3)])
    batch = contribution_maps(model, mri[..., 0], pet[..., 0], batch_size=3)
    single = contribution_maps(model, mri[..., 0], pet[..., 0], batch_size=1)
    record("maps_mri", batch.mri, [single.mri])
    record("maps_pet", batch.pet, [single.pet])
    record("maps_fused", batch.fused, [single.fused])
    print(worst)
    assert all(v <= 1e-5 for v in worst.values()), worst
""")


def test_batch_of_three_equals_three_single_calls_keras_and_saved_model(tmp_path):
    """Issue 15, case 4: per-example BatchNorm statistics at inference make a batch exact.

    Run without oneDNN's batch-size-dependent convolution kernels (TF_ENABLE_ONEDNN_OPTS=0): then
    the only thing a batch can change is the statistics, and the outputs and contribution maps of
    a batch of 3 equal those of 3 single calls (within 1e-5; 0.0 is measured). Before the change
    the batch shared its statistics and the dark PET's image moved by ~0.1-0.4.
    """
    import os

    script = tmp_path / "batch_exact.py"
    script.write_text(BATCH_EXACT)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "saved")], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_failed_export_leaves_no_partial_saved_model(tmp_path, monkeypatch):
    """Atomic writes (issue 15): the SavedModel is written beside the target and renamed onto it;
    an export that fails half-way leaves neither the folder nor its staging copy behind."""
    import keras

    archive_class = type(keras.export.ExportArchive())  # the backend's class
    real = archive_class.write_out

    def half_then_fail(self, path, **kwargs):
        real(self, path, **kwargs)
        (Path(path) / "variables").rename(Path(path) / "lost")
        raise OSError("disk full")

    model = build_funfusean(hf_rule="guarded")
    monkeypatch.setattr(archive_class, "write_out", half_then_fail)
    from funfusean_tf.export import export_saved_model

    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, tmp_path / "saved")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    (tmp_path / "empty").mkdir()  # an empty folder may be the target
    assert (export_saved_model(model, tmp_path / "empty") / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_saved_model_signature_names_a_missing_channel_axis(tmp_path):
    """Issue 15, case 6: calling the exported `serve` signature with (N, H, W) images (no channel
    axis) must raise an error that says what shape is expected. Before, oneDNN's convolution
    aborted the whole process (a C++ check failure, no Python error at all)."""
    out = tmp_path / "saved"
    model = build_funfusean(hf_rule="guarded")
    from funfusean_tf.export import export_saved_model

    export_saved_model(NetworkMethod(model, "funfusean"), out)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(out)!r})
        x = tf.constant(np.random.default_rng(0).random((1, 32, 32)), tf.float32)
        for name in ("serve", "contributions"):
            try:
                loaded.signatures[name](mri=x, pet=x)
            except tf.errors.InvalidArgumentError as exc:
                said = [line for line in exc.message.splitlines() if "must be" in line]
                print(name, "refused:", said[0] if said else " ".join(exc.message.split()))
            else:
                print(name, "accepted")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if "refused" in line or "accepted" in line]
    assert len(lines) == 2 and all("refused" in line and "(N, H, W, 1)" in line for line in lines), run.stdout
