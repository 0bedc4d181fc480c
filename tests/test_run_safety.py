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
