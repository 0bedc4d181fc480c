"""Issue 15: a run folder is bound to its config, and a training killed anywhere resumes to the
same weights (atomic writes, torn checkpoints skipped)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from funfusean_tf.cli import main
from funfusean_tf.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig, load_config, to_toml
from funfusean_tf.training import RunConfigMismatch, fit_arrays, train


def _config(out, epochs=1, **train_changes) -> ExperimentConfig:
    return ExperimentConfig(
        model=ModelConfig(hf_rule="guarded"),
        data=DataConfig(source="phantom", split="train", max_pairs=2, crop=32),
        train=TrainConfig(epochs=epochs, out_dir=str(out), tensorboard=False, learning_rate=2e-4, seed=3,
                          **train_changes),
    )


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replace(config, table, **changes):
    return dataclasses.replace(config, **{table: dataclasses.replace(getattr(config, table), **changes)})


def test_cli_refuses_to_resume_a_run_with_another_lambda(tmp_path, capsys):
    """Issue 15, case 3: before, the rerun printed "resuming", kept the weights and rewrote
    config.toml to the new lambda; now it exits 2 naming the setting and both values, and the
    folder is untouched until --restart asks for a new run."""
    out = tmp_path / "run"
    config_path = tmp_path / "config.toml"
    config_path.write_text(to_toml(_config(out)))
    assert main(["train", "--config", str(config_path), "--quiet"]) == 0
    weights, saved = out / "final.weights.h5", out / "config.toml"
    before = (_digest(weights), saved.read_text())
    capsys.readouterr()

    assert main(["train", "--config", str(config_path), "--quiet", "--lambda", "0.5"]) == 2
    message = capsys.readouterr().err
    assert "train.lambda" in message and "0.8" in message and "0.5" in message and "--restart" in message
    assert "resuming" not in message
    assert (_digest(weights), saved.read_text()) == before

    assert main(["train", "--config", str(config_path), "--quiet", "--lambda", "0.5", "--restart"]) == 0
    assert load_config(saved).train.lambda_ == 0.5
    assert _digest(weights) != before[0]


def test_weight_relevant_changes_are_refused_and_neutral_ones_resume(tmp_path, capsys):
    out = tmp_path / "run"
    base = _config(out, epochs=1)
    train(base, progress=False)
    refused = {
        "train.learning_rate": _replace(base, "train", learning_rate=1e-3),
        "train.seed": _replace(base, "train", seed=4),
        "train.batch_size": _replace(base, "train", batch_size=2),
        "model.wiring": _replace(base, "model", wiring="shipped"),
        "model.hf_rule": _replace(base, "model", hf_rule="exact"),
        "data.max_pairs": _replace(base, "data", max_pairs=3),
        "data.crop": _replace(base, "data", crop=48),
    }
    for key, config in refused.items():
        with pytest.raises(RunConfigMismatch, match=key.replace(".", r"\.")):
            train(config, progress=False)
    assert load_config(out / "config.toml") == base  # never rewritten by a refused run

    # more epochs, with other checkpointing and logging: the same run continues
    capsys.readouterr()
    longer = _replace(base, "train", epochs=2, checkpoint_every=2, keep_checkpoints=1, tensorboard=True)
    result = train(longer, progress=False)
    assert "resuming from" in capsys.readouterr().out
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert load_config(out / "config.toml").train.epochs == 2
    # fewer epochs than the folder holds cannot be honoured
    with pytest.raises(RunConfigMismatch, match="holds 2 epochs and 1 are asked for"):
        train(base, progress=False)
    # a new run on request
    restarted = train(refused["model.wiring"], resume=False, progress=False)
    assert [row["epoch"] for row in restarted.history] == [1]
    assert load_config(out / "config.toml").model.wiring == "shipped"


def test_fit_arrays_binds_checkpoints_to_their_data_and_settings(tmp_path, rng):
    from funfusean_tf.models.registry import build_model, get_network

    config = _config(tmp_path / "api")
    mri, pet = rng.random((2, 32, 32)).astype(np.float32), rng.random((2, 32, 32)).astype(np.float32)

    def fit(m, p, tc, **kw):
        return fit_arrays(build_model(config.model), get_network("funfusean").loss(tc.lambda_), m, p, tc,
                          out_dir=tmp_path / "api", progress=False, **kw)

    fit(mri, pet, config.train)
    with pytest.raises(RunConfigMismatch, match="training data differ"):
        fit(mri[::-1], pet[::-1], config.train)
    with pytest.raises(RunConfigMismatch, match=r"train\.learning_rate"):
        fit(mri, pet, dataclasses.replace(config.train, learning_rate=1e-3))
    fit(mri[::-1], pet[::-1], config.train, resume=False)  # a new run on request


def test_config_is_written_only_with_the_weights_it_describes(tmp_path):
    """Before, config.toml was written when training started: a run that failed before its
    first checkpoint left a folder claiming a configuration with no weights of it."""
    from funfusean_tf.models.registry import build_model

    config = _config(tmp_path / "early")
    mri = np.random.default_rng(0).random((2, 32, 32)).astype(np.float32)

    def failing(model, a, b):
        fused = model([a, b], training=True)
        import tensorflow as tf

        return {"total": tf.reduce_mean(fused) * math.nan}

    with pytest.raises(FloatingPointError):
        fit_arrays(build_model(config.model), failing, mri, mri, config.train, out_dir=tmp_path / "early",
                   progress=False, config_text=to_toml(config))
    assert not (tmp_path / "early" / "config.toml").exists()
    assert not (tmp_path / "early" / "final.weights.h5").exists()


# --------------------------------------------------------------------------------------------
# Torn checkpoints and kills
# --------------------------------------------------------------------------------------------


def _weights(path) -> list[np.ndarray]:
    import h5py

    arrays = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda key, item: arrays.append((key, item[()])) if hasattr(item, "shape") else None)
    return arrays


def _same_weights(a, b) -> bool:
    one, two = _weights(a), _weights(b)
    return len(one) == len(two) > 0 and all(k1 == k2 and np.array_equal(v1, v2) for (k1, v1), (k2, v2) in zip(one, two))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", ["truncated_h5", "missing_optimizer", "garbled_state", "empty_folder"])
def test_a_torn_newest_checkpoint_is_skipped_with_a_warning(tmp_path, capsys, damage):
    """A newest checkpoint that cannot be read (a torn write) is skipped: the run resumes from the
    previous complete one, with a warning, and ends bit-identical to an uninterrupted run. Before,
    a truncated h5 or garbled state.json stopped the resume with an error."""
    full = train(_config(tmp_path / "full", epochs=2), progress=False)
    config = _config(tmp_path / "torn", epochs=2)
    train(config, progress=False)
    newest = tmp_path / "torn" / "checkpoints" / "epoch_0002"
    if damage == "truncated_h5":
        _truncate(newest / "model.weights.h5")
    elif damage == "missing_optimizer":
        (newest / "optimizer.npz").unlink()
    elif damage == "garbled_state":
        (newest / "state.json").write_text('{"epo')
    else:
        for item in newest.iterdir():
            item.unlink()
    capsys.readouterr()
    resumed = train(config, progress=False)
    captured = capsys.readouterr()
    if damage != "empty_folder":  # an empty folder is no checkpoint at all: nothing to warn about
        assert "skipping the incomplete or unreadable checkpoint" in captured.err and "epoch_0002" in captured.err
    assert "resuming from" in captured.out and "epoch_0001" in captured.out
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert _same_weights(resumed.weights, full.weights)


CHILD = '''
import os, pathlib, shutil, signal, sys
point, _, nth = os.environ.get("KILL_AT", "").partition(":")
calls = {"n": 0}

def hit():
    calls["n"] += 1
    return calls["n"] == int(nth)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "save_weights":  # the h5 half written, then killed (checkpoint or final weights)
    import keras
    real_save = keras.Model.save_weights
    def save_weights(self, path, *a, **k):
        real_save(self, path, *a, **k)
        if hit():
            data = pathlib.Path(path).read_bytes()
            pathlib.Path(path).write_bytes(data[: len(data) // 2])
            die()
    keras.Model.save_weights = save_weights
elif point == "savez":  # the optimizer state half written
    import numpy as np
    real_savez = np.savez
    def savez(path, *arrays):
        real_savez(path, *arrays)
        if hit():
            data = pathlib.Path(path).read_bytes()
            pathlib.Path(path).write_bytes(data[: len(data) // 2])
            die()
    np.savez = savez
elif point == "rename":  # the staging folder complete, not yet renamed
    real_rename = pathlib.Path.rename
    def rename(self, target):
        if self.name.startswith(".staging") and hit():
            die()
        return real_rename(self, target)
    pathlib.Path.rename = rename
elif point == "prune":  # an old checkpoint half deleted
    real_rmtree = shutil.rmtree
    def rmtree(path, *a, **k):
        path = pathlib.Path(path)
        if path.name.startswith("epoch_") and (path / "state.json").exists() and hit():
            (path / "model.weights.h5").unlink()
            die()
        return real_rmtree(path, *a, **k)
    shutil.rmtree = rmtree

from funfusean_tf.cli import main
sys.exit(main(["train", "--config", sys.argv[1], "--quiet"]))
'''


def _kill_config(tmp_path, out):
    config = ExperimentConfig(
        model=ModelConfig(hf_rule="guarded"),
        data=DataConfig(source="phantom", split="train", max_pairs=6, crop=32),
        train=TrainConfig(epochs=3, out_dir=str(out), tensorboard=False, learning_rate=2e-4, seed=5,
                          keep_checkpoints=1),
    )
    path = tmp_path / f"{out.name}.toml"
    path.write_text(to_toml(config))
    return path


@pytest.mark.slow
def test_training_killed_at_random_points_resumes_bit_identical(tmp_path):
    """Issue 15: SIGKILL a training (6 phantom 32x32 crops, 3 epochs, a checkpoint per epoch, one
    kept) at 5 fixed points inside the checkpoint and final-weight writes and after 15 random
    delays (seeded), 20 kills in all, rerunning after each kill; every run that completes must end with weights
    bit-identical to an uninterrupted run's."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def start(config_path, kill_at=""):
        return subprocess.Popen([sys.executable, str(script), str(config_path)], env={**env, "KILL_AT": kill_at},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    started = time.perf_counter()
    reference = start(_kill_config(tmp_path, tmp_path / "reference"))
    output = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, output[-3000:]
    duration = time.perf_counter() - started
    expected = tmp_path / "reference" / "final.weights.h5"

    out = tmp_path / "killed"
    config_path = _kill_config(tmp_path, out)
    kills, completions, where = 0, 0, {}

    def finish_and_check():
        nonlocal completions
        done = start(config_path)
        text = done.communicate(timeout=300)[0]
        assert done.returncode == 0, text[-3000:]
        assert _same_weights(out / "final.weights.h5", expected), "resumed weights differ from the reference"
        completions += 1
        shutil.rmtree(out)

    import shutil

    # fixed points inside the writes (each process counts its own calls)
    for kill_at in ["save_weights:1", "savez:1", "rename:2", "prune:1", "save_weights:2"]:
        child = start(config_path, kill_at)
        text = child.communicate(timeout=300)[0]
        assert child.returncode == -9, f"{kill_at}: not killed (exit {child.returncode}): {text[-2000:]}"
        kills += 1
    finish_and_check()

    # random delays over the whole run (start-up, epochs, checkpoints, the final write)
    rng = np.random.default_rng(15)
    random_kills = 0
    while random_kills < 15:
        delay = float(rng.uniform(0.3, 0.9) * duration)
        child = start(config_path)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            stage = ("staging" if any(out.glob("checkpoints/.staging_*")) else
                     "after a checkpoint" if any(out.glob("checkpoints/epoch_*")) else "before a checkpoint")
            child.kill()
            child.wait()
            where[stage] = where.get(stage, 0) + 1
            random_kills += 1
            kills += 1
            continue
        assert child.returncode == 0, child.stdout.read()[-3000:]
        assert _same_weights(out / "final.weights.h5", expected)
        completions += 1
        shutil.rmtree(out)
    finish_and_check()
    print(f"{kills} kills ({where} of the random ones), {completions} completed runs, all bit-identical; "
          f"uninterrupted run {duration:.1f} s")
    assert kills >= 20 and completions >= 2
