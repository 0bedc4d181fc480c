"""TOML configs: round trip, overrides, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from funfusean_tf.config import ExperimentConfig, apply_overrides, load_config, to_toml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*/config.toml")), ids=lambda p: p.parent.name)
def test_every_pinned_experiment_loads_and_round_trips(path, tmp_path):
    config = load_config(path)
    copy = tmp_path / "config.toml"
    copy.write_text(to_toml(config))
    assert load_config(copy) == config


def test_overrides_and_lambda_alias():
    config = apply_overrides(ExperimentConfig(), ["train.lambda=0.5", "data.max_pairs=8", "model.hf_rule=guarded",
                                                  "data.phantom.fwhm_mm=8"])
    assert config.train.lambda_ == 0.5 and config.data.max_pairs == 8 and config.model.hf_rule == "guarded"
    assert config.data.phantom == {"fwhm_mm": 8}
    with pytest.raises(ValueError, match="table.key=value"):
        apply_overrides(ExperimentConfig(), ["lambda=0.5"])
    with pytest.raises(ValueError, match="expected float"):
        apply_overrides(ExperimentConfig(), ["train.lambda=high"])


def test_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlamda = 0.8\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*'lamda'"):
        load_config(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(broken)


def test_unset_bn_statistics_take_each_networks_own_default():
    from funfusean_tf.config import ModelConfig
    from funfusean_tf.models.layers import uses_batch_statistics
    from funfusean_tf.models.registry import build_model, resolve_model_config

    assert resolve_model_config(ModelConfig(name="funfusean")).bn_statistics == "batch"  # FunFuseAn's code
    assert resolve_model_config(ModelConfig(name="mdafuse")).bn_statistics == "moving"  # MdAFuse's eval()
    assert resolve_model_config(ModelConfig(name="mdafuse", bn_statistics="batch")).bn_statistics == "batch"
    assert uses_batch_statistics(build_model(ModelConfig(name="funfusean", hf_rule="guarded")))


def test_config_differences_name_weight_relevant_settings_only():
    from funfusean_tf.config import RUN_NEUTRAL_KEYS, config_differences

    base = ExperimentConfig()
    changed = apply_overrides(base, ["train.lambda=0.5", "model.options.depth=3", "data.phantom.fwhm_mm=8",
                                     "train.epochs=999", "train.tensorboard=false", "train.checkpoint_every=5",
                                     "train.keep_checkpoints=1", 'train.out_dir="elsewhere"', "sweep.omega=0.1"])
    assert config_differences(base, changed) == [
        ("data.phantom.fwhm_mm", None, 8), ("model.options.depth", None, 3), ("train.lambda", 0.8, 0.5)]
    assert config_differences(base, base) == []
    assert "train.lambda" not in RUN_NEUTRAL_KEYS and "train.seed" not in RUN_NEUTRAL_KEYS
    assert config_differences(base, changed, ignore=())[-1][0] == "train.tensorboard"
