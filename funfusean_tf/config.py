"""Settings as small dataclasses, read from and written to TOML.

One experiment = one TOML file with the tables ``[model]``, ``[data]`` and ``[train]``. The
CLI, experiments/ and the notebooks all load it through :func:`load_config` and change it
through :func:`apply_overrides`, so a run is described the same way everywhere.

Example::

    [model]
    name = "funfusean"
    wiring = "paper"

    [data]
    source = "pair_set"
    pair_set = "harvard_pet_mri"
    split = "train"

    [train]
    lambda = 0.8
    epochs = 4
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "SweepConfig",
    "ExperimentConfig",
    "load_config",
    "apply_overrides",
    "to_toml",
    "RUN_NEUTRAL_KEYS",
    "config_differences",
]


@dataclass
class ModelConfig:
    """Which network, and its fidelity options (each one is a row of FIDELITY.md)."""

    name: str = "funfusean"
    #: FunFuseAn: "paper" (MRI -> 9x9 / 3-3-3, as the paper and the first code) or "shipped"
    #: (the released code's swapped call network(mri, pet) against def network(pet, mri)).
    wiring: str = "paper"
    #: "batch": BatchNorm always uses the current batch's statistics (FunFuseAn's code);
    #: "moving": moving averages at inference (MdAFuse's and SESF's test code);
    #: "" = the network's own default, as its original code does it.
    bn_statistics: str = ""
    #: FunFuseAn high-frequency rule max(a,b)/(a+b): "exact" (no epsilon) or "guarded".
    hf_rule: str = "exact"
    hf_eps: float = 1e-3
    #: Extra keyword options for other architectures (MdAFuse, DILRAN, ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where training pairs come from.

    source = "phantom" (the embedded simulated pairs, no download), "pair_set" (a named set of
    real pairs under the data root, see funfusean_tf.data.datasets), "folders" (mri_dir and
    pet_dir) or "manifest" (a data_manifests/*.toml file).
    """

    source: str = "phantom"
    pair_set: str = ""
    split: str = "train"
    mri_dir: str = ""
    pet_dir: str = ""
    manifest: str = ""
    root: str = ""
    #: Use only the first N pairs (0 = all), in the fixed order.
    max_pairs: int = 0
    #: Centre crop size in pixels (0 = whole images). Crops trade fidelity for CPU time.
    crop: int = 0
    #: Phantom settings passed to funfusean_tf.data.phantom.PhantomConfig.
    phantom: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """The optimisation. Defaults are FunFuseAn's (train.py / init_param.py)."""

    lambda_: float = 0.8
    epochs: int = 200
    batch_size: int = 1
    learning_rate: float = 0.002
    #: Step decay: the rate of epoch e (from 1) is learning_rate * lr_decay ** ((e - 1) // lr_decay_every).
    #: 0 = constant (FunFuseAn, MdAFuse, DILRAN). SESF-Fuse: 0.8 every 2 epochs.
    lr_decay_every: int = 0
    lr_decay: float = 1.0
    beta_1: float = 0.9
    beta_2: float = 0.999
    #: TF1's Adam default; Keras' own default is 1e-7 (see FIDELITY.md).
    epsilon: float = 1e-8
    #: False = the fixed natural-sorted order of the original.
    shuffle: bool = False
    seed: int = 0
    deterministic: bool = True
    out_dir: str = "runs/funfusean"
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    tensorboard: bool = True


@dataclass
class SweepConfig:
    """A sweep over one setting (experiments/*_sweep): one point per value.

    kind = "train": every value of ``parameter`` (a dotted config key, e.g. "train.lambda")
    trains its own network from the base config; kind = "omega": no training, the colour coding
    of one set of weights is redrawn for every Omega in ``values``.
    """

    kind: str = "train"
    parameter: str = "train.lambda"
    values: list = field(default_factory=list)
    #: Pairs the points are scored and shown on: a pair-set name, or "phantom" (its test split).
    eval_pairs: str = "funfusean_test"
    eval_split: str = ""
    #: Phantom test slices written for evaluation when eval_pairs = "phantom".
    eval_count: int = 10
    metrics: str = "table1"
    #: Pairs shown in the image grids.
    grid_pairs: int = 2
    #: Weights for an omega sweep ("" = the shipped weights).
    weights: str = ""
    omega: float = 0.6
    out_dir: str = ""


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    description: str = ""


# TOML keys that are Python keywords.
_KEY_ALIASES = {"lambda": "lambda_"}
_KEY_ALIASES_BACK = {v: k for k, v in _KEY_ALIASES.items()}


def _build(cls, table: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        name = _KEY_ALIASES.get(key, key)
        if name not in known:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KEY_ALIASES_BACK.get(k, k) for k in known))})")
        kwargs[name] = _coerce(known[name], value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(fld: dataclasses.Field, value, where: str):
    default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, dict) and isinstance(value, dict):
        return dict(value)
    if isinstance(default, list) and isinstance(value, list):
        return list(value)
    raise ValueError(f"{where}: expected {type(default).__name__}, got {value!r}")


def config_from_dict(data: dict, where: str = "config") -> ExperimentConfig:
    unknown = set(data) - {"model", "data", "train", "sweep", "description"}
    if unknown:
        raise ValueError(f"{where}: unknown table(s) {sorted(unknown)} (known: model, data, train, sweep, description)")
    return ExperimentConfig(
        model=_build(ModelConfig, data.get("model", {}), f"{where} [model]"),
        data=_build(DataConfig, data.get("data", {}), f"{where} [data]"),
        train=_build(TrainConfig, data.get("train", {}), f"{where} [train]"),
        sweep=_build(SweepConfig, data.get("sweep", {}), f"{where} [sweep]"),
        description=str(data.get("description", "")),
    )


def load_config(path) -> ExperimentConfig:
    """Read an experiment TOML file; unknown keys are errors naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    return config_from_dict(data, where=str(path))


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``table.key=value`` overrides (TOML values; bare words are strings)."""
    data = to_dict(config)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r}: expected table.key=value, e.g. train.lambda=0.5")
        dotted, text = item.split("=", 1)
        table, key = dotted.strip().split(".", 1)
        if table not in ("model", "data", "train", "sweep"):
            raise ValueError(f"override {item!r}: unknown table {table!r} (model, data, train, sweep)")
        target = data.setdefault(table, {})
        if "." in key:  # e.g. data.phantom.fwhm_mm=8
            head, sub = key.split(".", 1)
            target.setdefault(head, {})[sub] = _parse_value(text.strip())
        else:
            target[key] = _parse_value(text.strip())
    return config_from_dict(data, where="overrides")


def to_dict(config: ExperimentConfig) -> dict:
    out = {}
    for table in ("model", "data", "train", "sweep"):
        values = dataclasses.asdict(getattr(config, table))
        out[table] = {_KEY_ALIASES_BACK.get(k, k): v for k, v in values.items()}
    if config.description:
        out["description"] = config.description
    return out


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: ExperimentConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config."""
    data = to_dict(config)
    lines = []
    if "description" in data:
        lines.append(f"description = {_toml_value(data.pop('description'))}\n")
    for table, values in data.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


#: Settings that cannot change the weights of a run, so a run folder may be resumed with them
#: changed: when and how much to checkpoint and log, where the folder is, and the number of
#: epochs (more epochs continue the same run; training.fit_arrays refuses fewer than it holds).
#: The [sweep] table and the description never reach the training. Everything else (lambda,
#: learning rate, seed, batch size, determinism, every model option, every data setting) does.
RUN_NEUTRAL_KEYS = frozenset({
    "train.epochs",
    "train.out_dir",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.tensorboard",
})


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def config_differences(old: ExperimentConfig, new: ExperimentConfig,
                       ignore=RUN_NEUTRAL_KEYS) -> list[tuple[str, Any, Any]]:
    """The settings of the [model], [data] and [train] tables that differ between two configs, as
    ``(dotted key, old value, new value)`` sorted by key; keys in ``ignore`` are left out. Nested
    tables (``model.options``, ``data.phantom``) are compared key by key; a key missing on one
    side is shown as ``None`` there."""
    flat: list[dict] = []
    for config in (old, new):
        data = to_dict(config)
        values: dict = {}
        for table in ("model", "data", "train"):
            _flatten(table, data[table], values)
        flat.append(values)
    keys = sorted(set(flat[0]) | set(flat[1]))
    return [(key, flat[0].get(key), flat[1].get(key)) for key in keys
            if key not in ignore and flat[0].get(key) != flat[1].get(key)]
