"""tf.distribute strategies: multiworker (two local worker processes on 127.0.0.1) and mirrored."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_run(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    args = [
        "--data",
        "synthetic",
        "--num-classes",
        "3",
        "--input-size",
        "32x32",
        "--alpha",
        "0.35",
        "--no-decoder",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "4",
        "--batch-size",
        "4",
        "--strategy",
        "multiworker",
        "--quiet",
    ]
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
        }
        out = tmp_path / f"worker{index}"  # each "machine" has its own disk
        cmd = [sys.executable, "-m", "edge_deeplab.cli.main", "train", *args, "--out", str(out)]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=420)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    chief = tmp_path / "worker0"
    assert (chief / "model.keras").is_file() and (chief / "metadata.json").is_file()
    state = json.loads((chief / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and state["optimizer_step"] == 4
    assert not (tmp_path / "worker1" / "model.keras").exists()  # only the chief writes the run


@pytest.mark.slow
def test_mirrored_strategy_trains(tmp_path):
    from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig
    from edge_deeplab.training import train

    model = ModelConfig(num_classes=3, input_size=(32, 32), head_filters=8, decoder=False)
    data = DataConfig(num_classes=3, synthetic_train=8, synthetic_val=2, synthetic_size=(32, 32))
    cfg = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2, strategy="mirrored")
    run = train(model, data, cfg, tmp_path / "run", verbose=0)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["optimizer_step"] == 2 and (run / "model.keras").is_file()
