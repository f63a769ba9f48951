"""Session fixtures: the real data in ../shared, and one tiny trained model for all tests.

The tiny model (alpha 0.35, 64x64 input, 3 classes) is trained once per session on the
synthetic dataset, long enough for its logits to have margins (so argmax parity between
formats means something), short enough for two cores.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
TINY_SIZE = (64, 64)
TINY_CLASSES = 3
# The parity bar tests hold the tiny model's int8 artifacts to. Its own int8 agreement with
# Keras spreads 96.2-99.1% between training runs on this machine (5 runs measured, stop 11):
# barely trained, it has many near-tied logits that int8 flips. Real models meet the
# product's 0.97 with room (CamVid: 98.8-98.9%).
TINY_INT8_AGREEMENT = 0.95
# A pixel the float model decides: its softmax top-1 leads the runner-up by this much. Two
# engines (or two calibrations) that round differently flip near-tied pixels of the barely
# trained tiny model, a share that changes with every training run; a wrong kernel or a lost
# normalisation flips decided pixels too. Tests that compare class maps between two quantized
# artifacts judge them on these pixels.
DECIDED_MARGIN = 0.2


def _shared_path() -> Path:
    return Path(os.environ.get("EDGE_DEEPLAB_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory):
    """One export cache for the session (converters/export_cache.py): the many conversions of
    the tiny model export each head placement once, and nothing outside the session's
    temporary folder is read or written. Subprocesses (the CLI, the devices) inherit it."""
    folder = tmp_path_factory.mktemp("export_cache")
    previous = os.environ.get("EDGE_DEEPLAB_EXPORT_CACHE")
    os.environ["EDGE_DEEPLAB_EXPORT_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("EDGE_DEEPLAB_EXPORT_CACHE", None)
    else:
        os.environ["EDGE_DEEPLAB_EXPORT_CACHE"] = previous


@pytest.fixture
def logged():
    """The messages logged under `edge_deeplab` (INFO and up) while the test runs, as a list.

    On the package's logger itself, so it holds whether or not a CLI run made that logger
    stop propagating (`edge_deeplab.logs.setup_logging`)."""
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("edge_deeplab")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $EDGE_DEEPLAB_SHARED); tests that need it skip where it is absent."""
    path = _shared_path()
    if not (path / "DATA.md").is_file():
        pytest.skip(f"real data not found at {path} (set EDGE_DEEPLAB_SHARED)")
    return path


def tiny_configs():
    from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig

    model = ModelConfig(num_classes=TINY_CLASSES, input_size=TINY_SIZE, alpha=0.35,
                        head_filters=32, decoder=False, bn_momentum=0.9, dropout=0.0)
    data = DataConfig(format="synthetic", num_classes=TINY_CLASSES, synthetic_train=192,
                      synthetic_val=16, synthetic_size=TINY_SIZE, seed=0)
    train = TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, seed=0)
    return model, data, train


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder with a tiny model trained briefly on synthetic 64x64 scenes."""
    pytest.importorskip("tensorflow")
    from edge_deeplab.training import train

    model, data, train_cfg = tiny_configs()
    out = tmp_path_factory.mktemp("tiny") / "run"
    return Path(train(model, data, train_cfg, out, verbose=0))


@pytest.fixture(scope="session")
def tiny_converted(tiny_run, tmp_path_factory):
    """({(target, precision): ConversionResult}, folder): every target and precision this
    machine makes from the tiny run, converted once for the converter, runtime and host-path
    tests (minutes of conversion each when every module made its own)."""
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters import convert

    out = tmp_path_factory.mktemp("converted")
    # 64 calibration images: 16 leave the tiny model's int8 ranges loose (agreement near 97%).
    results = convert(tiny_run, "all", "all", out, calib_size=64, parity_images=16, progress=False,
                      int8_agreement=TINY_INT8_AGREEMENT)
    return {(r.target, r.precision): r for r in results}, out


@pytest.fixture(scope="session")
def tiny_data():
    """(images uint8 (16,64,64,3), masks uint8 (16,64,64)): synthetic val-like scenes."""
    from edge_deeplab.data import synthetic

    return synthetic.generate(16, size=TINY_SIZE, seed=1234, num_classes=TINY_CLASSES)


def float_margins(run, images) -> np.ndarray:
    """(N, H, W): how far the float Keras model's softmax top-1 leads its runner-up."""
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with Segmenter(load_runtime(run)) as segmenter:
        scores = np.stack([segmenter.predict(image, probabilities=True).probabilities for image in images])
    top = np.sort(scores, axis=-1)
    return top[..., -1] - top[..., -2]


def decided_agreement(first: np.ndarray, second: np.ndarray, margins: np.ndarray) -> float:
    """The share of decided pixels (margin >= DECIDED_MARGIN) on which two class maps agree;
    fails the calling test where the model decides too few pixels to judge anything on."""
    decided = margins >= DECIDED_MARGIN
    assert first.shape == second.shape == decided.shape
    assert decided.mean() > 0.5, f"the tiny model decides only {decided.mean():.1%} of the pixels"
    return float((first[decided] == second[decided]).mean())


def default_sigint() -> None:
    """In the child: Ctrl-C's default action, even where the test runner was started in the
    background (a shell without job control starts background jobs with SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler)."""
    import signal as signals

    signals.signal(signals.SIGINT, signals.default_int_handler)


@pytest.fixture(scope="session")
def arm64_device(tmp_path_factory):
    """A running emulated aarch64 device (tests/devices/arm64.py): its `root`, sshd `port`,
    `ssh_config` (`ssh -F CONFIG arm64-device`, host key checked), `python` (the device's,
    with the edge install and this tree's edge-deeplab) and `shared` (a host folder it sees at
    `devices.arm64.SHARED`). Skips where it cannot be built (not root, no QEMU 10, ...)."""
    from devices import arm64

    reason = arm64.unavailable_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("arm64")
    started = time.monotonic()
    try:
        device = arm64.start(work)
        print(f"arm64 device ready in {time.monotonic() - started:.0f} s")  # cold build or cache: CI's cost
        yield device
    finally:
        arm64.stop(work)
