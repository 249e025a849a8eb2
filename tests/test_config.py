"""Config loading from YAML/TOML into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lesiondx.config import ConfigError, config_from_mapping, load_config


@dataclass(frozen=True)
class DemoConfig:
    epochs: int = 3
    lr: float = 1e-3
    backbone: str = "efficientnet_lite0"
    augment: bool = True
    sizes: tuple[int, ...] = (224,)


def test_yaml_and_toml_override_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 5\nlr: 1\nsizes: [128, 160]\n")
    config = load_config(DemoConfig, tmp_path / "c.yaml", backbone="resnet18")
    assert config == DemoConfig(epochs=5, lr=1.0, backbone="resnet18", sizes=(128, 160))
    (tmp_path / "c.toml").write_text("augment = false\n")
    assert load_config(DemoConfig, tmp_path / "c.toml").augment is False


def test_unknown_keys_and_wrong_types_are_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("epoch: 5\n")
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config(DemoConfig, tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("epochs: many\n")
    with pytest.raises(ConfigError, match="epochs must be a number"):
        load_config(DemoConfig, tmp_path / "bad2.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(DemoConfig, tmp_path / "missing.yaml")


def test_a_misspelt_key_is_given_the_nearest_known_one():
    from lesiondx.us_liver.config import UsLiverConfig

    with pytest.raises(ConfigError, match=r"unknown key\(s\) epoch \('epoch' → did you mean 'epochs'\?\); known:"):
        config_from_mapping(UsLiverConfig, {"epoch": 3}, source="config.yaml")
