"""Resume survives a damaged newest checkpoint; a run whose every checkpoint is damaged fails in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A tiny synthetic run with checkpoints after epochs 1 and 2, made through the CLI."""
    out = tmp_path_factory.mktemp("damaged") / "run"
    _cli("--epochs", "2", "--out", str(out), check=True)
    return out


def _cli(*args, check=False):
    tiny = ["--input-size", "64x64", "--alpha", "0.35", "--no-decoder", "--num-classes", "3",
            "--steps-per-epoch", "2", "--batch-size", "4", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "edge_deeplab.cli.main", "train", *tiny, *args],
                          capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def _copy(run, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_resume_falls_back_to_the_newest_readable_checkpoint(two_epoch_run, tmp_path, damage):
    run = _copy(two_epoch_run, tmp_path)
    newest = run / "checkpoints" / "epoch_0002.keras"
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    else:
        newest.write_bytes(data[:1000] + bytes(b ^ 0x5A for b in data[1000:3000]) + data[3000:])
    done = _cli("--out", str(run), "--resume", "--epochs", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipping damaged checkpoint" in done.stderr and "epoch_0002.keras" in done.stderr
    assert "resuming from epoch_0001.keras (epoch 1) instead" in done.stderr
    assert (run / "checkpoints" / "epoch_0003.keras").is_file() and (run / "model.keras").is_file()


def test_every_checkpoint_damaged_is_a_one_line_error(two_epoch_run, tmp_path):
    run = _copy(two_epoch_run, tmp_path)
    for path in (run / "checkpoints").glob("epoch_*.keras"):
        path.write_bytes(path.read_bytes()[:500])
    done = _cli("--out", str(run), "--resume", "--epochs", "3")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "every checkpoint is damaged" in last and "epoch_0001.keras" in last
    assert not (run / "checkpoints" / "epoch_0003.keras").exists()


def test_weights_file_keras_refuses_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    done = _cli("--weights", str(bad), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "broken.keras" in done.stderr.strip().splitlines()[-1]


def test_absurd_input_size_is_refused_before_allocating(tmp_path):
    done = _cli("--input-size", "10000x10000", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "GB of memory" in last and "--memory-limit" in last
    assert not (tmp_path / "run").exists()


def test_memory_limit_flag_overrides_the_estimate():
    from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig
    from edge_deeplab.errors import InvalidInputError
    from edge_deeplab.training.memory import GB, check_training_memory

    model, data, train = ModelConfig(input_size=(512, 512)), DataConfig(), TrainConfig(batch_size=64)
    with pytest.raises(InvalidInputError, match="limit is 4.0 GB"):
        check_training_memory(model, data, train, limit_gb=4)
    assert check_training_memory(model, data, train, limit_gb=4096) > 4 * GB
    with pytest.raises(InvalidInputError, match="positive"):
        check_training_memory(model, data, train, limit_gb=float("nan"))


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"sky\x00road\n"])
def test_binary_labels_file_is_a_one_line_error(tmp_path, content):
    from edge_deeplab.errors import InvalidInputError
    from edge_deeplab.metadata import read_labels_file

    path = tmp_path / "labels.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match="labels file .*labels.bin"):
        read_labels_file(str(path))


def test_stale_convert_staging_is_removed_and_live_staging_kept(tmp_path):
    import os

    from edge_deeplab.converters.api import STAGING_PREFIX, remove_stale_staging

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{STAGING_PREFIX}{int(dead.stdout)}-abc"
    legacy = tmp_path / f"{STAGING_PREFIX}x1y2z3"  # before staging folders carried a pid
    live = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-def"
    for folder in (stale, legacy, live):
        (folder / "saved_model").mkdir(parents=True)
    said = []
    assert remove_stale_staging(tmp_path, said.append) == 2
    assert live.is_dir() and not stale.exists() and not legacy.exists()
    assert len(said) == 2 and "killed" in said[0]


def test_full_disk_on_an_atomic_write_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from edge_deeplab.errors import OutputError
    from edge_deeplab.imageio import atomic_write_text

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OutputError, match=r"report.html: cannot write \(No space left on device\)"):
        atomic_write_text(tmp_path / "report.html", "<html>")
    assert list(tmp_path.iterdir()) == []


def test_convert_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_run, tmp_path):
    """A real full disk: a 300 KB tmpfs (root can mount one; elsewhere the test skips)."""
    import os

    small = tmp_path / "small"
    small.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(small)], capture_output=True
    ).returncode == 0
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edge_deeplab.cli.main", "convert", str(tiny_run), "--to", "tflite",
             "--precision", "fp32", "--calib-data", "synthetic", "--out", str(small / "art")],
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "no space left on device" in done.stderr.strip().splitlines()[-1]
        assert list((small / "art").iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
