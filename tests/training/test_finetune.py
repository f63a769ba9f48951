"""The fine-tuning recipe's parts: LR multipliers, frozen BatchNorm, warm-up, crop-size training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from edge_deeplab.errors import InvalidInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(num_classes=3, input_size=(64, 64), alpha=0.35, head_filters=16, decoder=False, dropout=0.0)


def _batch(size=(64, 64)):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, *size, 3)).astype(np.float32)
    y = rng.integers(0, 3, (4, *size)).astype(np.int32)
    return x, y


def _weights_by_group(model):
    from edge_deeplab.training.optimizers import layer_group

    return {v.path: (layer_group(v.path), v.numpy().copy()) for v in model.trainable_variables}


def test_lr_multiplier_zero_freezes_a_group_and_one_trains_it():
    from edge_deeplab.training.setup import compile_model

    train_cfg = TrainConfig(epochs=2, learning_rate=1e-2, lr_multipliers={"backbone": 0.0, "head": 0.5})
    model = compile_model(TINY.replace(decoder=True), train_cfg, steps=10, ignore_label=255)
    before = _weights_by_group(model)
    assert {group for group, _ in before.values()} == {"backbone", "head", "decoder", "classifier"}
    model.train_on_batch(*_batch())
    model.train_on_batch(*_batch())
    moved = {"backbone": [], "head": [], "decoder": [], "classifier": []}
    for v in model.trainable_variables:
        group, old = before[v.path]
        moved[group].append(float(np.abs(v.numpy() - old).max()))
    assert max(moved["backbone"]) == 0.0
    assert min(max(moved[group]) for group in ("head", "decoder", "classifier")) > 0.0


def test_group_optimizer_survives_a_checkpoint(tmp_path):
    from edge_deeplab.training.checkpoints import load_checkpoint
    from edge_deeplab.training.setup import compile_model

    train_cfg = TrainConfig(epochs=2, lr_multipliers={"backbone": 0.25}, warmup_epochs=1)
    model = compile_model(TINY, train_cfg, steps=5, ignore_label=255)
    model.train_on_batch(*_batch())
    model.save(tmp_path / "ckpt.keras")
    again = load_checkpoint(tmp_path / "ckpt.keras")
    assert type(again.optimizer).__name__ == "GroupAdam"
    assert again.optimizer.lr_multipliers == {"backbone": 0.25}
    assert int(again.optimizer.iterations.numpy()) == 1


def test_warmup_then_poly_decay():
    from edge_deeplab.training.optimizers import make_schedule

    schedule = make_schedule(TrainConfig(epochs=10, learning_rate=1.0, warmup_epochs=2), steps_per_epoch=10)
    lr = [float(schedule(step)) for step in (0, 9, 19, 20, 60, 100)]
    assert lr[0] == pytest.approx(0.05) and lr[1] == pytest.approx(0.5)
    assert lr[2] == pytest.approx(1.0) and lr[3] == pytest.approx(1.0)
    assert 0.0 < lr[4] < 1.0 and lr[5] == pytest.approx(0.0)


def test_frozen_batch_norm_keeps_its_statistics_but_a_new_decoder_learns_its_own():
    from edge_deeplab.training.setup import compile_model

    model_cfg = TINY.replace(decoder=True, decoder_filters=8)
    model = compile_model(model_cfg, TrainConfig(epochs=2, freeze_bn=True), steps=10, ignore_label=255)
    bn, decoder_bn = model.get_layer("block_3_expand_BN"), model.get_layer("decoder_conv0_BN")
    before = (bn.moving_mean.numpy().copy(), bn.gamma.numpy().copy(), decoder_bn.moving_mean.numpy().copy())
    model.train_on_batch(*_batch())
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.gamma.numpy(), before[1])
    assert model.get_layer("block_3_expand").trainable
    assert model.get_layer("decoder_conv1").kernel.shape[-1] == 8
    assert np.abs(decoder_bn.moving_mean.numpy() - before[2]).max() > 0


def test_crop_training_validates_and_saves_at_the_input_size(tmp_path):
    from edge_deeplab.training import train
    from edge_deeplab.training.checkpoints import latest_checkpoint, load_checkpoint

    data = DataConfig(format="synthetic", num_classes=3, synthetic_train=16, synthetic_val=4,
                      synthetic_size=(80, 96))
    model_cfg = TINY.replace(input_size=(80, 96))
    train_cfg = TrainConfig(epochs=2, batch_size=8, crop_size=(48, 64), val_every=2)
    run = train(model_cfg, data, train_cfg, tmp_path / "run", verbose=0)
    final = load_checkpoint(run / "model.keras")
    assert tuple(final.input_shape[1:3]) == (80, 96)
    _, ckpt = latest_checkpoint(run / "checkpoints")
    assert tuple(load_checkpoint(ckpt).input_shape[1:3]) == (48, 64)  # resume continues on crops
    history = json.loads((run / "history.json").read_text())["history"]
    assert "val_miou" not in history[0] and "val_miou" in history[1]  # every 2 epochs, and the last


@pytest.mark.parametrize("changes, message", [
    ({"lr_multipliers": {"neck": 0.1}}, "learning-rate group"),
    ({"lr_multipliers": {"backbone": float("nan")}}, "multiplier"),
    ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"),
    ({"crop_size": (8, 8)}, "crop_size"),
])
def test_bad_finetune_settings_are_refused(changes, message):
    with pytest.raises(InvalidInputError, match=message):
        TrainConfig(**changes)


def test_cli_recipe_flags_reach_the_configs(tmp_path, shared_dir):
    from edge_deeplab.cli.main import build_parser
    from edge_deeplab.cli.train_cmd import build_configs

    weights = shared_dir / "anchors" / "pascal" / "deeplabv3_mnv2_pascal_quant.tflite"
    if not weights.is_file():
        pytest.skip(f"{weights} not found")
    args = build_parser().parse_args([
        "train", "--data", str(tmp_path), "--format", "folder", "--labels", "camvid", "--weights", str(weights),
        "--input-size", "360x480", "--crop-size", "256x320", "--lr-mult", "backbone=0.2,head=0.2",
        "--freeze-bn", "--warmup-epochs", "1", "--val-every", "4", "--scale-range", "0.5,1.5", "--jitter", "0.2",
        "--blur", "0.3", "--blur-sigma", "0.5,2", "--out", str(tmp_path / "r"),
    ])
    model, data, train, _ = build_configs(args)
    assert (model.alpha, model.output_stride, model.head, model.head_filters) == (1.0, 16, "lite", 256)
    assert model.align_corners and not model.decoder and model.num_classes == 11
    assert train.crop_size == (256, 320) and train.freeze_bn and train.val_every == 4
    assert dict(train.lr_multipliers) == {"backbone": 0.2, "head": 0.2}
    assert train.augment.scale_range == (0.5, 1.5) and train.augment.saturation == 0.2
    assert (train.augment.blur, train.augment.blur_sigma) == (0.3, (0.5, 2.0))
    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--format", "folder", "--labels", "camvid",
                                      "--weights", str(weights), "--output-stride", "8"])
    with pytest.raises(InvalidInputError, match="output-stride 8 contradicts"):
        build_configs(args)


def test_recipe_script_builds_the_readme_command_and_train_keeps_its_decoder(tmp_path, shared_dir):
    """benchmarks/train_camvid.py's defaults = the `train` command the README shows, decoder included."""
    import importlib.util

    from edge_deeplab.cli.main import build_parser
    from edge_deeplab.cli.train_cmd import build_configs
    from edge_deeplab.training.setup import resolve_weights

    weights = shared_dir / "anchors" / "pascal" / "deeplabv3_mnv2_pascal_quant.tflite"
    if not weights.is_file():
        pytest.skip(f"{weights} not found")
    spec = importlib.util.spec_from_file_location("train_camvid", ROOT / "benchmarks" / "train_camvid.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    script = recipe.parse_args(["--out", str(tmp_path / "r"), "--weights", str(weights), "--data", str(tmp_path)])
    budget_s = script.budget_min * 60 - recipe.FINAL_EVAL_S
    model, _, train = recipe.configs(script, budget_s)
    cli = build_parser().parse_args([
        "train", "--data", str(tmp_path), "--format", "folder", "--labels", "camvid", "--weights", str(weights),
        "--decoder", "--decoder-filters", "96", "--input-size", "360x480", "--crop-size", "256x320",
        "--batch-size", "8", "--lr", "1e-3", "--lr-mult", "backbone=0.2,head=0.2", "--freeze-bn",
        "--warmup-epochs", "1", "--scale-range", "0.5,1.5", "--jitter", "0.2",
        "--class-balance", "0.5", "--time-budget", f"{budget_s:g}s", "--out", str(tmp_path / "r"),
    ])
    cli_model, _, cli_train, _ = build_configs(cli)
    assert model.decoder and model.decoder_filters == 96 and model.head == "lite"
    assert cli_model == model
    assert cli_train == train
    assert resolve_weights(model, tmp_path / "r", resume=False) == model  # train() resolves again
