"""train(): run folder contents, resume (epoch count and optimizer step), SIGKILL safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.metadata import ArtifactMetadata

pytest.importorskip("tensorflow")

STEPS = 2


def configs(epochs=1):
    model = ModelConfig(
        num_classes=3, input_size=(32, 32), alpha=0.35, head_filters=8, decoder=False, dropout=0.0
    )
    data = DataConfig(num_classes=3, synthetic_train=16, synthetic_val=4, synthetic_size=(32, 32))
    train = TrainConfig(epochs=epochs, batch_size=4, steps_per_epoch=STEPS, learning_rate=1e-3)
    return model, data, train


def _history_rows(run: Path):
    return (run / "logs" / "history.csv").read_text().strip().splitlines()[1:]


def test_loss_ignores_the_ignore_label():
    from edge_deeplab.training.losses import MaskedSparseCrossEntropy

    logits = np.random.default_rng(0).normal(size=(1, 2, 2, 3)).astype(np.float32)
    labels = np.array([[[1, 9], [9, 9]]])
    loss = float(MaskedSparseCrossEntropy(ignore_label=9)(labels, logits))
    z = logits[0, 0, 0]
    expected = -(z[1] - np.log(np.exp(z).sum()))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_train_writes_a_run_folder_and_resumes(tmp_path):
    from edge_deeplab.training import train
    from edge_deeplab.training.checkpoints import latest_checkpoint, load_checkpoint

    model_cfg, data_cfg, train_cfg = configs(epochs=1)
    run = train(model_cfg, data_cfg, train_cfg, tmp_path / "run", verbose=0)
    for name in ("model.keras", "metadata.json", "config.json", "labels.txt", "history.json"):
        assert (run / name).is_file(), name
    meta = ArtifactMetadata.from_json((run / "metadata.json").read_text())
    assert meta.labels == ("background", "disk", "box") and meta.input_size == (32, 32)
    assert meta.format == "keras" and meta.precision == "fp32" and meta.mean == (127.5,) * 3
    assert json.loads((run / "config.json").read_text())["model"]["num_classes"] == 3
    assert latest_checkpoint(run / "checkpoints")[0] == 1
    assert len(_history_rows(run)) == 1

    with pytest.raises(InvalidInputError, match="--resume"):
        train(model_cfg, data_cfg, train_cfg, run, verbose=0)
    with pytest.raises(InvalidInputError, match="different model config"):
        train(
            model_cfg.replace(head_filters=16),
            data_cfg,
            train_cfg.replace(epochs=2),
            run,
            resume=True,
            verbose=0,
        )

    train(model_cfg, data_cfg, train_cfg.replace(epochs=3), run, resume=True, verbose=0)
    epoch, path = latest_checkpoint(run / "checkpoints")
    assert epoch == 3
    resumed = load_checkpoint(path)
    assert int(resumed.optimizer.iterations.numpy()) == 3 * STEPS
    # The poly schedule was re-planned for 3 epochs, not left at its 1-epoch end (lr 0).
    schedule = resumed.optimizer.get_config()["learning_rate"]
    assert schedule["config"]["decay_steps"] == 3 * STEPS
    assert [row.split(",")[0] for row in _history_rows(run)] == ["0", "1", "2"]
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 3 and state["optimizer_step"] == 3 * STEPS


_CHILD = """
import sys
from edge_deeplab.training import train
sys.path.insert(0, {tests!r})
from test_training import configs
model, data, cfg = configs(epochs=40)
train(model, data, cfg, {out!r}, verbose=0)
"""


@pytest.mark.slow
def test_sigkill_loses_at_most_the_epoch_in_flight(tmp_path):
    from edge_deeplab.training import train
    from edge_deeplab.training.checkpoints import latest_checkpoint, load_checkpoint

    run = tmp_path / "run"
    code = _CHILD.format(tests=str(Path(__file__).parent), out=str(run))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    try:
        while (
            latest_checkpoint(run / "checkpoints") is None
            or latest_checkpoint(run / "checkpoints")[0] < 2
        ):
            if child.poll() is not None:
                pytest.fail(f"training child exited early: {child.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("no checkpoint within 240 s")
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    done, path = latest_checkpoint(run / "checkpoints")
    assert done >= 2
    # The newest checkpoint is complete and consistent: it loads, and its step is epochs * steps.
    assert int(load_checkpoint(path).optimizer.iterations.numpy()) == done * STEPS
    model_cfg, data_cfg, train_cfg = configs(epochs=done + 1)
    train(model_cfg, data_cfg, train_cfg, run, resume=True, verbose=0)
    epoch, path = latest_checkpoint(run / "checkpoints")
    assert epoch == done + 1
    assert int(load_checkpoint(path).optimizer.iterations.numpy()) == (done + 1) * STEPS
    assert (run / "model.keras").is_file()


def test_cli_configs_from_flags(tmp_path):
    from edge_deeplab.cli.main import build_parser
    from edge_deeplab.cli.train_cmd import build_configs

    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--data",
            str(tmp_path),
            "--format",
            "folder",
            "--labels",
            "camvid",
            "--input-size",
            "64x96",
            "--out",
            str(tmp_path / "r"),
            "--no-decoder",
        ]
    )
    model, data, train, out = build_configs(args)
    assert model.num_classes == 11 and model.input_size == (64, 96) and not model.decoder
    assert data.ignore_label == 11 and data.labels[0] == "sky" and data.format == "folder"
    args = parser.parse_args(["train", "--data", str(tmp_path), "--format", "folder"])
    with pytest.raises(InvalidInputError, match="--num-classes"):
        build_configs(args)
    args = parser.parse_args(
        ["train", "--epochs", "2", "--num-classes", "3", "--out", str(tmp_path / "s")]
    )
    model, data, train, _ = build_configs(args)
    assert model.num_classes == 3 and data.num_classes == 3 and train.epochs == 2
