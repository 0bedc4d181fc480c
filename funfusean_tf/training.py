"""The one training loop for every fusion network in the package.

It reproduces the originals' loop: Adam, a fixed (natural-sorted) order without shuffling,
the lambda-weighted SSIM + l2 loss, BatchNorm in training mode. Around it: a progress bar, a
per-epoch CSV of the total loss and its two unweighted parts (L_SSIM, L_l2; the paper's Fig. 3),
TensorBoard scalars, a checkpoint per epoch, resuming from the last checkpoint, and a seed that
makes a CPU run repeatable (op determinism on).

A run folder is bound to its configuration: resuming with a config that differs in anything that
can change the weights (config.RUN_NEUTRAL_KEYS lists what may change: epochs, checkpointing,
logging) or on other data is refused, naming the differences, unless a new run is asked for
(``resume=False``, ``funfusean train --restart``). config.toml is written only together with the
weights it describes (with each checkpoint and the final weights), never ahead of them.

Every file is written atomically (a temporary name, then a rename); a checkpoint folder that is
incomplete or unreadable (a torn write, a truncated file) is skipped on resume with a warning, and
the previous complete one is used.

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
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .config import RUN_NEUTRAL_KEYS, ExperimentConfig, config_differences, config_from_dict, to_toml
from .data.io import atomic_path
from .data.sources import load_arrays
from .models.registry import build_model, get_network

__all__ = ["TrainResult", "RunConfigMismatch", "train", "fit_arrays", "fusion_objective", "make_train_step", "epoch_learning_rate", "EPOCH_COLUMNS", "read_history"]

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


class RunConfigMismatch(ValueError):
    """A run folder holds weights trained under other settings than the ones asked for."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path, suffix=path.suffix) as tmp:
        tmp.write_text(text)


class _Checkpoints:
    """Model weights + optimizer variables + state, written atomically, the last few kept.

    A checkpoint is written in a staging folder (files synced) and renamed to ``epoch_NNNN`` in one
    step, so a folder of that name is complete unless the disk lost it; :meth:`restore_latest`
    still checks it and falls back to the previous one when it cannot be read.
    """

    FILES = ("model.weights.h5", "optimizer.npz", "state.json")

    def __init__(self, folder: Path, keep: int):
        self.folder = folder
        self.keep = max(1, keep)

    def candidates(self) -> list[Path]:
        """Checkpoint folders, newest first (staging folders of an interrupted save excluded)."""
        return sorted((p for p in self.folder.glob("epoch_*") if p.is_dir()), reverse=True)

    def latest(self) -> Path | None:
        done = [p for p in self.candidates() if (p / "state.json").is_file()]
        return done[0] if done else None

    def save(self, model, optimizer, epoch: int, state: dict | None = None,
             config_text: str | None = None) -> Path:
        target = self.folder / f"epoch_{epoch:04d}"
        staging = self.folder / f".staging_epoch_{epoch:04d}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_weights(staging / "model.weights.h5")
        np.savez(staging / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        (staging / "state.json").write_text(json.dumps({"epoch": epoch, **(state or {})}))
        for name in self.FILES:
            _fsync(staging / name)
        if config_text is not None:  # the config goes with the weights it describes
            _write_text_atomic(self.folder.parent / "config.toml", config_text)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        for old in sorted(self.folder.glob("epoch_*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    @staticmethod
    def read_state(path: Path) -> dict:
        state = json.loads((path / "state.json").read_text())
        if int(state["epoch"]) != int(path.name.split("_")[-1]):
            raise ValueError(f"state.json says epoch {state['epoch']}")
        return state

    @staticmethod
    def restore(path: Path, model, optimizer) -> int:
        state = _Checkpoints.read_state(path)
        for name in _Checkpoints.FILES:
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} is missing")
        with np.load(path / "optimizer.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(optimizer.variables) or any(
                tuple(v.shape) != tuple(value.shape) for v, value in zip(optimizer.variables, values)):
            raise ValueError(f"{path}: checkpoint optimizer state does not match this model")
        model.load_weights(path / "model.weights.h5")
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)
        return int(state["epoch"])

    def restore_latest(self, model, optimizer) -> tuple[Path, dict] | None:
        """Load the newest readable checkpoint; skip torn ones with a warning. None: there is none.

        A checkpoint that fails half-way may have loaded some weights: the model and optimizer are
        put back as they were before each next try (and before a start from scratch).
        """
        before_model = [np.array(v.numpy()) for v in model.weights]
        before_optimizer = [np.array(v.numpy()) for v in optimizer.variables]
        for path in self.candidates():
            try:
                self.restore(path, model, optimizer)
                return path, self.read_state(path)
            except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is skipped
                print(f"warning: skipping the incomplete or unreadable checkpoint {path} "
                      f"({type(exc).__name__}: {exc})", file=sys.stderr)
                for variable, value in zip(model.weights, before_model):
                    variable.assign(value)
                for variable, value in zip(optimizer.variables, before_optimizer):
                    variable.assign(value)
        return None


def _run_binding(train_config, mri: np.ndarray, pet: np.ndarray) -> dict:
    """What a checkpoint's weights depend on besides the model: the weight-relevant training
    settings and a fingerprint of the training data (stored in state.json, checked on resume)."""
    train = {}
    if dataclasses.is_dataclass(train_config):
        for key, value in dataclasses.asdict(train_config).items():
            name = "lambda" if key == "lambda_" else key
            if f"train.{name}" not in RUN_NEUTRAL_KEYS:
                train[name] = value
    digest = hashlib.sha256()
    for array in (mri, pet):
        digest.update(repr((array.shape, str(array.dtype))).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return {"train": train, "data_sha256": digest.hexdigest()}


def _describe(differences) -> str:
    return "; ".join(f"{key}: {old!r} in the folder, {new!r} now" for key, old, new in differences)


def _refuse(out: Path, what: str) -> RunConfigMismatch:
    return RunConfigMismatch(
        f"{out} holds a run trained with other settings, so its weights cannot be resumed under these: "
        f"{what}. Start a new run in this folder with --restart (API: resume=False), which discards "
        "the old one, or choose another output folder (--out)."
    )


def _has_run(out: Path) -> bool:
    return (out / "final.weights.h5").is_file() or any(
        (p / "state.json").is_file() for p in (out / "checkpoints").glob("epoch_*"))


def check_run_config(out, config_text: str | None) -> None:
    """Refuse (RunConfigMismatch) when ``out`` holds a run whose config.toml differs from
    ``config_text`` in a setting that can change the weights. Nothing to compare: no refusal."""
    out = Path(out)
    saved_path = out / "config.toml"
    if config_text is None or not saved_path.is_file() or not _has_run(out):
        return
    new = config_from_dict(tomllib.loads(config_text), where="the new config")
    try:
        saved = config_from_dict(tomllib.loads(saved_path.read_text()), where=str(saved_path))
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise _refuse(out, f"its config.toml cannot be read ({exc})") from exc
    differences = config_differences(saved, new)
    if differences:
        raise _refuse(out, _describe(differences))


def _clear_run(out: Path) -> None:
    """Remove what a previous run left in ``out`` (a new run was asked for)."""
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("final.weights.h5", "config.toml", "epochs.csv"):
        (out / name).unlink(missing_ok=True)


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
    mri = np.asarray(mri, np.float32)[..., None]
    pet = np.asarray(pet, np.float32)[..., None]
    if mri.shape != pet.shape:
        raise ValueError(f"MRI stack {mri.shape[:-1]} and PET stack {pet.shape[:-1]} differ in shape")
    if len(mri) == 0:
        raise ValueError("no training pairs")
    if resume:
        check_run_config(out, config_text)  # before any work or any write
    out.mkdir(parents=True, exist_ok=True)

    epoch_learning_rate(train_config, 1)  # a bad schedule fails before any work
    optimizer = keras.optimizers.Adam(
        learning_rate=train_config.learning_rate,
        beta_1=train_config.beta_1,
        beta_2=train_config.beta_2,
        epsilon=train_config.epsilon,
    )
    optimizer.build(model.trainable_variables)
    checkpoints = _Checkpoints(out / "checkpoints", train_config.keep_checkpoints)
    for staging in (out / "checkpoints").glob(".staging_epoch_*"):  # a save that was interrupted
        shutil.rmtree(staging, ignore_errors=True)
    history_path = out / "epochs.csv"
    binding = _run_binding(train_config, mri, pet)
    start_epoch = 0
    restored = checkpoints.restore_latest(model, optimizer) if resume else None
    if restored is not None:
        latest, state = restored
        start_epoch = int(state["epoch"])
        differences = [(f"train.{key}", state["train"].get(key), value) for key, value in binding["train"].items()
                       if "train" in state and state["train"].get(key, value) != value]
        if differences:
            raise _refuse(out, _describe(differences))
        if state.get("data_sha256", binding["data_sha256"]) != binding["data_sha256"]:
            raise _refuse(out, f"the training data differ ({len(mri)} pairs of {mri.shape[1]}x{mri.shape[2]} "
                               f"now, data fingerprint {binding['data_sha256'][:12]} against "
                               f"{state['data_sha256'][:12]} in the folder)")
        if start_epoch > train_config.epochs:
            raise _refuse(out, f"it holds {start_epoch} epochs and {train_config.epochs} are asked for")
        history = [row for row in read_history(history_path) if row["epoch"] <= start_epoch]
        print(f"resuming from {latest} (epoch {start_epoch} of {train_config.epochs})")
    else:
        history = []
        _clear_run(out)  # nothing to resume (or a new run asked for): no stale weights or config

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
            checkpoints.save(model, optimizer, epoch, state=binding, config_text=config_text)

    weights = out / "final.weights.h5"
    with atomic_path(weights, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
        _fsync(tmp)
    if config_text is not None:
        _write_text_atomic(out / "config.toml", config_text)
    return TrainResult(out_dir=out, history=history, weights=weights, model=model)


def train(config: ExperimentConfig, resume: bool = True, progress: bool = True) -> TrainResult:
    """Build the configured network, load the configured data and train it.

    ``resume=True`` continues the run in ``train.out_dir`` if there is one, and refuses
    (RunConfigMismatch) when it was trained with other weight-relevant settings; ``resume=False``
    starts a new run there, discarding the old one.
    """
    tc = config.train
    config_text = to_toml(config)
    if resume:
        check_run_config(tc.out_dir, config_text)  # before the data are loaded
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
                      config_text=config_text)
