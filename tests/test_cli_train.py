"""`macos-lite train`: its flags are the fields of TrainConfig, and presets merge into the config in one step."""

import argparse
import dataclasses

import pytest

from macos_lite import train_cli
from macos_lite.presets import PRESETS, get_preset
from macos_lite.train_config import TrainConfig, official_recipe, recipe_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return parser


def _options(parser) -> dict:
    return {opt: action for action in parser._actions for opt in action.option_strings}


def test_every_config_field_has_a_flag():
    options = _options(_parser())
    for f in dataclasses.fields(TrainConfig):
        flag = train_cli.HAND_WRITTEN.get(f.name, "--" + f.name.replace("_", "-")).split(",")[0]
        assert flag in options or flag.startswith("--losses"), f"no flag for TrainConfig.{f.name}"


def test_no_options_give_the_dataclass_defaults():
    """Compared with `dataclasses.fields` itself: parsing nothing must leave every field at its declared default."""
    cfg = train_cli.config_from_args(_parser().parse_args([]))
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("loss", "progress"):
            continue
        declared = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert getattr(cfg, f.name) == declared, f.name


def test_help_shows_the_declared_defaults():
    options = _options(_parser())
    assert "default: 3" in options["--prior-rounds"].help
    assert "smoke 96, demo 128, full 240" in options["--image-size"].help
    epochs = options["--epochs"].type  # TrainConfig.epochs declares minimum=0
    assert (epochs("0"), epochs("7")) == (0, 7)
    for bad in ("-1", "nan", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            epochs(bad)
    assert options["--feature-stride"].choices == (16, 8) and options["--feature-stride"].type is int


def test_flags_reach_the_config():
    args = _parser().parse_args(["--image-size", "64", "--lr", "0.5", "--augment", "--feature-stride", "8",
                                 "--prior-momentum", "0.25", "--val-dataset", "none", "--seed", "0",
                                 "--weight-decay", "0.01", "--pretrain-images", "a+b"])
    cfg = train_cli.config_from_args(args)
    assert (cfg.image_size, cfg.lr, cfg.augment, cfg.feature_stride) == (64, 0.5, True, 8)
    assert (cfg.prior_momentum, cfg.val_dataset, cfg.seed, cfg.weight_decay) == (0.25, "none", 0, 0.01)
    assert cfg.pretrain_images == "a+b"


def test_official_recipe_then_explicit_options(capsys):
    cfg = train_cli.config_from_args(_parser().parse_args(["--recipe", "official", "--lr", "1e-3"]))
    assert "warning" in capsys.readouterr().out
    expected = dict(official_recipe(), lr=1e-3)
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_merge_equals_the_explicit_config(name):
    explicit = TrainConfig(preset=name, out="-", tuple_size=3, **PRESETS[name].settings)  # triplets: λ_trans > 0
    assert TrainConfig(preset=name, out="-").resolved() == explicit
    assert TrainConfig(preset=name, out="-", image_size=32).resolved().image_size == 32


def test_preset_settings_are_config_fields_and_read_as_attributes():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for preset in PRESETS.values():
        assert set(preset.settings) <= names
        assert preset.batch_size == preset.settings["batch_size"]
        assert preset.num_val_pairs == preset.settings["val_pairs"]
    assert get_preset("smoke", num_val_pairs=3, image_size=48).to_dict()["val_pairs"] == 3
    with pytest.raises(AttributeError, match="no setting"):
        PRESETS["demo"].colour


def test_recipe_table_renders_resolved_values():
    table = recipe_table({"a": TrainConfig(preset="smoke", out="-"), "b": TrainConfig(**official_recipe())},
                         ("image_size", "lr"))
    assert "| `image_size` | 96 | 240 |" in table and "| `lr` | 0.0001 | 5e-08 |" in table


@pytest.mark.parametrize("setting, value, words", [
    ("lr", float("nan"), ["--lr", "above 0"]),
    ("grad_clip", 0.0, ["--grad-clip", "above 0"]),
    ("val_fraction", 1.0, ["--val-fraction", "below 1"]),
    ("prior_momentum", -0.5, ["--prior-momentum", "from 0 to 1"]),
    ("epochs", -1, ["--epochs", "whole number of at least 0"]),
])
def test_a_config_built_in_python_keeps_the_flags_bounds(setting, value, words):
    with pytest.raises(ValueError) as info:
        TrainConfig(preset="smoke", out="unused", **{setting: value}).resolved()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_bounds_accept_the_edges_they_include():
    cfg = TrainConfig(preset="smoke", out="unused", val_fraction=0.0, prior_momentum=1.0, epochs=0).resolved()
    assert (cfg.val_fraction, cfg.prior_momentum, cfg.epochs) == (0.0, 1.0, 0)


def test_the_notebooks_budgets_are_declared_for_every_preset_and_grow_with_it():
    keys = set(PRESETS["smoke"].budgets)
    assert {"matching_steps", "cycle_steps", "decoder_steps", "objective_schedule", "sweep"} <= keys
    for name in ("predictor_steps", "matching_steps", "cycle_steps", "decoder_steps", "decoder_set_size"):
        assert PRESETS["smoke"].budgets[name] <= PRESETS["demo"].budgets[name] <= PRESETS["full"].budgets[name]
    assert all(set(p.budgets) == keys for p in PRESETS.values())
    assert get_preset("demo", image_size=48).budgets == PRESETS["demo"].budgets  # overrides keep the budgets


def test_feature_stages_flag_takes_strides_joined_by_plus(capsys):
    cfg = train_cli.config_from_args(_parser().parse_args(["--feature-stages", "16+32"]))
    assert cfg.feature_stages == "16+32"
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--feature-stages", "24"])
    assert exc.value.code == 2 and "--feature-stages" in capsys.readouterr().err


def test_pretrain_backbone_mode_takes_the_two_modes_with_fixed_bn(capsys):
    """Pre-training keeps BN statistics fixed: only "frozen" and "last_stage" (backbones.PRETRAIN_MODES) are
    accepted; the other encoder modes are refused with exit 2, naming the choices."""
    import argparse

    from macos_lite import train_cli

    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    for mode in ("frozen", "last_stage"):
        assert parser.parse_args(["--pretrain-backbone-mode", mode]).pretrain_backbone_mode == mode
    for mode in ("finetune", "frozen_bn"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["--pretrain-backbone-mode", mode])
        assert info.value.code == 2
        assert "'frozen', 'last_stage'" in capsys.readouterr().err
