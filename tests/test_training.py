"""The training loop on the embedded phantom: losses fall, a seed repeats, a resume continues."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from funfusean_tf.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from funfusean_tf.training import epoch_learning_rate, read_history, train

pytestmark = pytest.mark.slow


#: The recipe of these tests: six 64x64 phantom crops, batch 1, the notebook's learning rate.
#: At the paper's 0.002 the loss on so few small crops oscillates from epoch 2 on (it rose
#: again at epoch 6 on one CPU family and not on another); at 0.0002 both parts fall steadily.
#: Checked once under seeds 0, 1, 2, 3, 4 and 7 (2026-12-03, AMD EPYC with AVX-512): after six
#: epochs L_SSIM fell from 1.85-1.98 to 1.00-1.26 (by 0.72 at least) and L_l2 from 0.48-0.64
#: to 0.067-0.11 (by 0.38 at least), so the assertions below keep a wide margin.
RECIPE = {"learning_rate": 2e-4, "seed": 7}


def _config(tmp_path, name, epochs=6, **train_changes):
    settings = {**RECIPE, **train_changes}
    return ExperimentConfig(
        model=ModelConfig(hf_rule="guarded"),
        data=DataConfig(source="phantom", split="train", max_pairs=6, crop=64),
        train=TrainConfig(epochs=epochs, out_dir=str(tmp_path / name), tensorboard=False, **settings),
    )


def test_both_loss_parts_fall_and_logs_are_written(tmp_path):
    result = train(_config(tmp_path, "run"), progress=False)
    history = result.history
    assert [row["epoch"] for row in history] == list(range(1, 7))
    first, last = history[0], history[-1]
    assert last["l_ssim"] < 0.85 * first["l_ssim"] and last["l_l2"] < 0.5 * first["l_l2"]
    logged = read_history(result.out_dir / "epochs.csv")
    assert [row["loss"] for row in logged] == pytest.approx([row["loss"] for row in history], rel=1e-12)
    assert result.weights.is_file() and (result.out_dir / "config.toml").is_file()
    assert len(list((result.out_dir / "checkpoints").glob("epoch_*"))) == 3  # keep_checkpoints


def test_same_seed_same_final_loss_and_resume_matches(tmp_path):
    one = train(_config(tmp_path, "one", epochs=4), progress=False).history
    two = train(_config(tmp_path, "two", epochs=4), progress=False).history
    assert one[-1]["loss"] == two[-1]["loss"]  # bitwise: op determinism on, same seed, CPU
    partial = _config(tmp_path, "resumed", epochs=2)
    train(partial, progress=False)
    resumed = train(dataclasses.replace(partial, train=dataclasses.replace(partial.train, epochs=4)), progress=False)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.history[-1]["loss"], one[-1]["loss"], rtol=1e-6)


def test_a_different_seed_gives_different_weights(tmp_path):
    """The seed reaches the initialisation: two seeds, two networks; the same seed, the same one."""
    import h5py

    def weights(name, seed):
        path = train(_config(tmp_path, name, epochs=1, seed=seed), progress=False).weights
        with h5py.File(path, "r") as handle:
            arrays = []
            handle.visititems(lambda key, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
        return arrays

    seven, again, eight = weights("seven", 7), weights("again", 7), weights("eight", 8)
    assert len(seven) == len(eight) > 0
    assert all(np.array_equal(a, b) for a, b in zip(seven, again))
    assert sum(not np.array_equal(a, b) for a, b in zip(seven, eight)) >= len(seven) // 2


def test_lambda_changes_what_is_optimised(tmp_path):
    only_l2 = train(_config(tmp_path, "l2", epochs=3, lambda_=0.0), progress=False).history
    only_ssim = train(_config(tmp_path, "ssim", epochs=3, lambda_=1.0), progress=False).history
    assert only_l2[-1]["loss"] == pytest.approx(only_l2[-1]["l_l2"], rel=1e-6)
    assert only_ssim[-1]["loss"] == pytest.approx(only_ssim[-1]["l_ssim"], rel=1e-6)


def test_sesf_step_decay_by_hand():
    """SESF-Fuse's adjust_learning_rate: lr * 0.8 ** (epoch // 2), epochs from 0 there, from 1 here."""
    sesf = TrainConfig(learning_rate=1e-4, lr_decay=0.8, lr_decay_every=2)
    assert [epoch_learning_rate(sesf, e) for e in range(1, 6)] == pytest.approx([1e-4, 1e-4, 8e-5, 8e-5, 6.4e-5])
    assert epoch_learning_rate(TrainConfig(learning_rate=0.002), 50) == 0.002  # constant by default
    with pytest.raises(ValueError, match="lr_decay"):
        epoch_learning_rate(TrainConfig(lr_decay=0.0, lr_decay_every=1), 1)
    with pytest.raises(ValueError, match="from 1"):
        epoch_learning_rate(sesf, 0)


def test_step_decay_is_applied_logged_and_survives_a_resume(tmp_path):
    decay = {"lr_decay": 0.5, "lr_decay_every": 1, "learning_rate": 0.001}
    full = train(_config(tmp_path, "full", epochs=3, **decay), progress=False)
    assert [row["learning_rate"] for row in full.history] == pytest.approx([0.001, 0.0005, 0.00025])
    constant = train(_config(tmp_path, "constant", epochs=3, learning_rate=0.001), progress=False)
    assert "learning_rate" not in constant.history[-1]
    assert full.history[-1]["loss"] != constant.history[-1]["loss"]  # the decay changed the steps
    partial = _config(tmp_path, "resumed", epochs=2, **decay)
    train(partial, progress=False)
    resumed = train(dataclasses.replace(partial, train=dataclasses.replace(partial.train, epochs=3)), progress=False)
    assert resumed.history[-1]["learning_rate"] == pytest.approx(0.00025)
    np.testing.assert_allclose(resumed.history[-1]["loss"], full.history[-1]["loss"], rtol=1e-6)
