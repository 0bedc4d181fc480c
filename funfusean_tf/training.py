"""The one training loop for every fusion network in the package.

It reproduces the originals' loop: Adam, a fixed (natural-sorted) order without shuffling,
the lambda-weighted SSIM + l2 loss, BatchNorm in training mode. Around it: a progress bar, a
per-epoch CSV of the total loss and its two unweighted parts (L_SSIM, L_l2; the paper's Fig. 3),
TensorBoard scalars, a checkpoint per epoch, resuming from the last checkpoint, and a seed that
makes a CPU run repeatable (op determinism on).

Output folder layout (``train.out_dir``)::

    config.toml            the exact configuration of the run
    epochs.csv             epoch, loss, l_ssim, l_l2, ssim_mri, ssim_pet, mse_mri, mse_pet, seconds
                           (+ learning_rate when train.lr_decay_every > 0)
    checkpoints/epoch_NNNN/ model.weights.h5, optimizer.npz, state.json (last few kept)
    tensorboard/           scalars per epoch
    final.weights.h5       weights after the last epoch
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .config import ExperimentConfig, to_toml
from .data.io import atomic_path
from .data.sources import load_arrays
from .models.registry import build_model, get_network

__all__ = ["TrainResult", "train", "fit_arrays", "fusion_objective", "make_train_step", "epoch_learning_rate", "EPOCH_COLUMNS", "read_history"]

#: The columns of epochs.csv for the fusion networks (other objectives log their own keys).
EPOCH_COLUMNS = ("epoch", "loss", "l_ssim", "l_l2", "ssim_mri", "ssim_pet", "mse_mri", "mse_pet", "seconds")


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict]
    weights: Path
    model: keras.Model


def seed_everything(seed: int, deterministic: bool = True) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(handle)]


def _write_history(path: Path, history: list[dict]) -> None:
    columns = list(history[0]) if history else list(EPOCH_COLUMNS)
    with atomic_path(path, suffix=".csv") as tmp:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in history:
                writer.writerow({k: row[k] for k in columns})


class _Checkpoints:
    """Model weights + optimizer variables + epoch, written atomically, the last few kept."""

    def __init__(self, folder: Path, keep: int):
        self.folder = folder
        self.keep = max(1, keep)

    def latest(self) -> Path | None:
        done = sorted(p for p in self.folder.glob("epoch_*") if (p / "state.json").is_file())
        return done[-1] if done else None

    def save(self, model, optimizer, epoch: int) -> Path:
        target = self.folder / f"epoch_{epoch:04d}"
        staging = self.folder / f".staging_epoch_{epoch:04d}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_weights(staging / "model.weights.h5")
        np.savez(staging / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        (staging / "state.json").write_text(json.dumps({"epoch": epoch}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        for old in sorted(self.folder.glob("epoch_*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    @staticmethod
    def restore(path: Path, model, optimizer) -> int:
        model.load_weights(path / "model.weights.h5")
        with np.load(path / "optimizer.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(optimizer.variables):
            raise ValueError(f"{path}: checkpoint optimizer state does not match this model")
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)
        return int(json.loads((path / "state.json").read_text())["epoch"])


def epoch_learning_rate(train_config, epoch: int) -> float:
    """The learning rate of ``epoch`` (counted from 1) under the config's step decay.

    SESF-Fuse's ``adjust_learning_rate`` sets ``lr * 0.8 ** (epoch // 2)`` with epochs counted
    from 0, which is ``lr_decay = 0.8``, ``lr_decay_every = 2`` here.
    """
    if epoch < 1:
        raise ValueError(f"epochs count from 1, got {epoch}")
    every = train_config.lr_decay_every
    if every < 0 or train_config.lr_decay <= 0:
        raise ValueError(f"train.lr_decay_every must be >= 0 and train.lr_decay > 0, got "
                         f"{every} and {train_config.lr_decay}")
    if every == 0:
        return float(train_config.learning_rate)
    return float(train_config.learning_rate * train_config.lr_decay ** ((epoch - 1) // every))


def fusion_objective(loss):
    """The objective of the two-input fusion networks: fuse, then the loss's parts against both sources.

    An *objective* is ``objective(model, mri, pet) -> dict`` of per-batch tensors with a
    ``"total"`` key, computed in training mode; every other key is logged unweighted. A network
    trained differently (an auto-encoder on single images, say) brings its own objective.
    """

    def objective(model, mri, pet):
        fused = model([mri, pet], training=True)
        return loss.parts(fused, mri, pet)

    return objective


#: Column names of epochs.csv for the fusion objective's keys (the paper's L_SSIM and L_l2).
_COLUMN_NAMES = {"total": "loss", "ssim": "l_ssim", "l2": "l_l2"}


def make_train_step(model, objective, optimizer):
    spec = tf.TensorSpec(shape=(None, None, None, 1), dtype=tf.float32)

    @tf.function(input_signature=[spec, spec], reduce_retracing=True)
    def step(mri, pet):
        with tf.GradientTape() as tape:
            parts = objective(model, mri, pet)
            total = tf.reduce_mean(parts["total"])
        gradients = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return {key: tf.reduce_mean(value) for key, value in parts.items()}

    return step


def fit_arrays(
    model: keras.Model,
    loss,
    mri: np.ndarray,
    pet: np.ndarray,
    train_config,
    out_dir=None,
    resume: bool = True,
    progress: bool = True,
    config_text: str | None = None,
) -> TrainResult:
    """Train ``model`` on (N, H, W) stacks with the loop described in the module docstring.

    ``loss`` is a FusionLoss (trained through :func:`fusion_objective`) or an objective callable.
    """
    objective = loss if not hasattr(loss, "parts") else fusion_objective(loss)
    out = Path(out_dir or train_config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config_text is not None:
        with atomic_path(out / "config.toml") as tmp:
            tmp.write_text(config_text)
    mri = np.asarray(mri, np.float32)[..., None]
    pet = np.asarray(pet, np.float32)[..., None]
    if mri.shape != pet.shape:
        raise ValueError(f"MRI stack {mri.shape[:-1]} and PET stack {pet.shape[:-1]} differ in shape")
    if len(mri) == 0:
        raise ValueError("no training pairs")

    epoch_learning_rate(train_config, 1)  # a bad schedule fails before any work
    optimizer = keras.optimizers.Adam(
        learning_rate=train_config.learning_rate,
        beta_1=train_config.beta_1,
        beta_2=train_config.beta_2,
        epsilon=train_config.epsilon,
    )
    optimizer.build(model.trainable_variables)
    checkpoints = _Checkpoints(out / "checkpoints", train_config.keep_checkpoints)
    history_path = out / "epochs.csv"
    start_epoch = 0
    latest = checkpoints.latest() if resume else None
    if latest is not None:
        start_epoch = _Checkpoints.restore(latest, model, optimizer)
        history = [row for row in read_history(history_path) if row["epoch"] <= start_epoch]
        print(f"resuming from {latest} (epoch {start_epoch} of {train_config.epochs})")
    else:
        history = []
        if not resume:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)

    step = make_train_step(model, objective, optimizer)
    writer = tf.summary.create_file_writer(str(out / "tensorboard")) if train_config.tensorboard else None
    batch = train_config.batch_size
    steps_per_epoch = math.ceil(len(mri) / batch)
    order_rng = np.random.default_rng(train_config.seed)
    for _ in range(start_epoch):  # keep shuffled orders identical across a resume
        if train_config.shuffle:
            order_rng.permutation(len(mri))

    from tqdm.auto import tqdm

    for epoch in range(start_epoch + 1, train_config.epochs + 1):
        order = order_rng.permutation(len(mri)) if train_config.shuffle else np.arange(len(mri))
        # Set from the epoch number, so a resumed run continues the same schedule.
        optimizer.learning_rate = epoch_learning_rate(train_config, epoch)
        sums: dict[str, float] = {}
        started = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{train_config.epochs}", unit="step",
                   disable=not progress, leave=False)
        for index in bar:
            chosen = order[index * batch : (index + 1) * batch]
            values = {k: float(v) for k, v in step(tf.constant(mri[chosen]), tf.constant(pet[chosen])).items()}
            if not math.isfinite(values["total"]):
                raise FloatingPointError(
                    f"the loss became {values['total']} at epoch {epoch}, step {index + 1}: with "
                    "model.hf_rule = 'exact' the max/sum rule divides by a vanishing sum; "
                    "retrain with model.hf_rule = 'guarded' (FIDELITY.md, 'High-frequency rule')"
                )
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            if index % 10 == 0:
                bar.set_postfix({_COLUMN_NAMES.get(k, k): f"{v:.4f}" for k, v in list(values.items())[:3]})
        bar.close()
        means = {k: v / steps_per_epoch for k, v in sums.items()}
        named = {_COLUMN_NAMES.get(k, k): v for k, v in means.items()}
        ordered = [k for k in EPOCH_COLUMNS if k in named] + [k for k in named if k not in EPOCH_COLUMNS]
        row = {"epoch": epoch, **{k: named[k] for k in ordered}, "seconds": time.perf_counter() - started}
        if train_config.lr_decay_every:
            row["learning_rate"] = epoch_learning_rate(train_config, epoch)
        history.append(row)
        _write_history(history_path, history)
        if writer is not None:
            with writer.as_default(step=epoch):
                for key, value in row.items():
                    if key not in ("epoch", "seconds"):
                        tf.summary.scalar(key, value)
            writer.flush()
        if progress:
            shown = "  ".join(f"{k} {v:.5f}" for k, v in row.items() if k not in ("epoch", "seconds"))
            print(f"epoch {epoch}/{train_config.epochs}: {shown}  ({row['seconds']:.1f} s)")
        if epoch % train_config.checkpoint_every == 0 or epoch == train_config.epochs:
            checkpoints.save(model, optimizer, epoch)

    weights = out / "final.weights.h5"
    with atomic_path(weights, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return TrainResult(out_dir=out, history=history, weights=weights, model=model)


def train(config: ExperimentConfig, resume: bool = True, progress: bool = True) -> TrainResult:
    """Build the configured network, load the configured data and train it."""
    tc = config.train
    seed_everything(tc.seed, tc.deterministic)
    spec = get_network(config.model.name)
    mri, pet, names = load_arrays(config.data, progress=progress)
    if progress:
        print(f"training {spec.name} on {len(names)} pairs of {mri.shape[1]}x{mri.shape[2]} "
              f"({config.data.source}{': ' + config.data.pair_set if config.data.pair_set else ''}), "
              f"lambda {tc.lambda_}, {tc.epochs} epochs, batch {tc.batch_size} -> {tc.out_dir}")
    model = build_model(config.model)
    loss = spec.loss(tc.lambda_)  # a FusionLoss, or an objective callable for non-fusion training
    return fit_arrays(model, loss, mri, pet, tc, out_dir=tc.out_dir, resume=resume, progress=progress,
                      config_text=to_toml(config))
