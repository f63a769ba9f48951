"""The seams the README promises, each shown by a test.

- A format is one converter file and one runtime file: a fake format dropped into the two
  packages at test time is picked up by `convert --to`, `formats`, `predict`, `bench`,
  `report --variants` and the metadata read/write, with no other edit.
- The edge path loads only the edge: opening a TFLite artifact through the Segmenter
  imports no converter, training, evaluation or bench module, and not TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

FAKE_CONVERTER = '''
"""A fake target: a TFLite flatbuffer under another suffix, metadata in the JSON sidecar."""
from edge_deeplab.converters.base import CONVERTERS, Converter


@CONVERTERS.register
class FakeConverter(Converter):
    name = "fake"
    suffix = ".fake"
    precisions = ("fp32",)
    extra = "fake"
    runtime = "fakert"
    default_head = "logits"

    def convert(self, job, precision, variant, dest):
        CONVERTERS.get("tflite")().convert(job, precision, variant, dest)
'''

FAKE_RUNTIME = '''
"""The fake format's engine: LiteRT on the .fake file; metadata from the default sidecar."""
from edge_deeplab.runtimes.base import RUNTIMES, Runtime
from edge_deeplab.runtimes.tflite_runtime import TFLiteRuntime


@RUNTIMES.register
class FakeRuntime(TFLiteRuntime):
    name = "fakert"
    suffixes = (".fake",)
    extra = "fake"
    read_metadata = Runtime.__dict__["read_metadata"]  # the base's: the JSON beside the file
'''


@pytest.fixture
def fake_format(tmp_path):
    """Drop fake.py into converters/ and fake_runtime.py into runtimes/, then discover."""
    from edge_deeplab import converters, runtimes

    added = []
    for package, module, source in (
        (converters, "fake", FAKE_CONVERTER),
        (runtimes, "fake_runtime", FAKE_RUNTIME),
    ):
        folder = tmp_path / "plugins" / package.__name__.rsplit(".", 1)[-1]
        folder.mkdir(parents=True)
        (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        package.__path__.append(str(folder))
        added.append((package, str(folder), f"{package.__name__}.{module}"))
    try:
        converters.CONVERTERS.discover(converters.__name__)
        runtimes.RUNTIMES.discover(runtimes.__name__)
        yield
    finally:
        converters.CONVERTERS.unregister("fake")
        runtimes.RUNTIMES.unregister("fakert")
        for package, folder, module in added:
            package.__path__.remove(folder)
            sys.modules.pop(module, None)


@pytest.mark.slow
def test_a_new_format_is_two_files(fake_format, tiny_run, tiny_data, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from edge_deeplab.cli.main import main
    from edge_deeplab.imageio import write_image
    from edge_deeplab.runtimes import read_metadata

    assert main(["formats", "--json"]) == 0
    rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["fake"]["suffix"] == ".fake" and rows["fake"]["runtime"] == "fakert"

    art = tmp_path / "art"
    convert = ["convert", str(tiny_run), "--to", "fake", "--precision", "fp32", "--out", str(art)]
    assert main([*convert, "--calib-data", "synthetic", "--parity-images", "4"]) == 0
    model = art / "model_fp32.fake"
    assert model.is_file() and (art / "model_fp32.fake.json").is_file()
    meta = read_metadata(model)  # written by the base converter, read by the base runtime
    assert (meta.format, meta.precision) == ("fake", "fp32") and meta.parity["passed"]

    image = tmp_path / "scene.png"
    write_image(image, tiny_data[0][0])
    assert main(["predict", str(model), str(image), "--out", str(tmp_path / "masks")]) == 0
    assert (tmp_path / "masks" / "scene_mask.png").is_file()
    assert main(["bench", str(model), "--min-time", "0.1", "--max-runs", "5"]) == 0
    assert "fakert" in capsys.readouterr().out

    out = tmp_path / "report"
    report = ["report", str(tiny_run), "--out", str(out), "--variants", "fake", "--limit", "2"]
    assert main([*report, "--min-time", "0.1", "--max-runs", "3", "--quiet"]) == 0
    rows = json.loads((out / "report.json").read_text())["rows"]
    fake = [row for row in rows if row["format"] == "fake"]
    assert [(row["runtime"], row["status"]) for row in fake] == [("fakert", "ok")]


EDGE_ONLY = """
import sys
from edge_deeplab.runtimes import load_runtime
from edge_deeplab.segmenter import Segmenter
import numpy as np

with Segmenter(load_runtime(sys.argv[1])) as segmenter:
    labels = segmenter(np.zeros((40, 60, 3), np.uint8))
assert labels.shape == (40, 60), labels.shape
heavy = ("converters", "training", "evaluation", "bench")
loaded = sorted(m for m in sys.modules if m.split(".")[1:2] and m.split(".")[1] in heavy
                and m.startswith("edge_deeplab."))
assert not loaded, loaded
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print(len([m for m in sys.modules if m.startswith("edge_deeplab")]), "edge_deeplab modules")
"""


def test_the_edge_path_loads_only_the_edge(shared_dir, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from edge_deeplab.converters import CONVERTERS
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.presets import PRESETS

    anchor = shared_dir / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite"
    if not anchor.is_file():
        pytest.skip(f"{anchor} not found")
    model = tmp_path / "model.tflite"
    model.write_bytes(anchor.read_bytes())
    meta = ArtifactMetadata(**PRESETS.get("pascal-voc"), input_size=(257, 257), format="tflite")
    CONVERTERS.get("tflite")().embed_metadata(model, meta)
    # A fresh interpreter: this test process has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", EDGE_ONLY, str(model)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_broken_module_is_an_error_not_a_missing_engine(tmp_path):
    from edge_deeplab import runtimes

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "typo_runtime.py").write_text("from edge_deeplab.runtimes.base import RUNTIMEZ\n")
    runtimes.__path__.append(str(folder))
    try:
        with pytest.raises(ImportError, match="RUNTIMEZ"):
            runtimes.RUNTIMES.discover(runtimes.__name__)
    finally:
        runtimes.__path__.remove(str(folder))
        sys.modules.pop("edge_deeplab.runtimes.typo_runtime", None)


def test_a_class_registers_under_its_own_name_once():
    from edge_deeplab.registry import Registry

    registry = Registry("runtime")
    engine = registry.register(type("Engine", (), {"name": "engine", "order": 2}))
    first = registry.register(type("First", (), {"name": "first", "order": 1}))
    assert registry.get("engine") is engine and registry.names() == ["first", "engine"]
    registry.register(first)  # found again by a second discovery: the same class, no error
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(type("Other", (), {"name": "engine"}))
