"""Every format's metadata: what its converter embeds is what its runtime reads (one round trip
per registered converter, on the artifacts the suite converts once)."""

from __future__ import annotations

import shutil

import pytest

from edge_deeplab.converters import CONVERTERS

pytest.importorskip("tensorflow")


def test_each_format_reads_back_the_metadata_its_converter_embeds(tiny_converted, tmp_path):
    from edge_deeplab.runtimes import RUNTIMES, read_metadata

    results, _ = tiny_converted
    checked = []
    for name, cls in CONVERTERS.items():
        made = [r for (target, _), r in sorted(results.items()) if target == name and r.path]
        if not cls.available()[0] or not made:
            continue
        converter, original = cls(), made[0].path
        folder = tmp_path / name
        folder.mkdir()
        for path in converter.files(original):
            shutil.copy2(path, folder / path.name)
        copy = folder / original.name
        before = read_metadata(copy)
        assert before is not None and before.format == name, name
        changed = before.replace(labels=("sky", "road", "car"), parity={"agreement": 0.5, "passed": False},
                                 source={**before.source, "note": "round trip"})
        converter.embed_metadata(copy, changed)
        assert read_metadata(copy) == changed, f"{name}: the runtime reads what the converter wrote"
        assert RUNTIMES.get(cls.runtime).read_metadata(copy) == changed
        converter.embed_metadata(copy, before)  # embedding again replaces, never appends
        assert read_metadata(copy) == before
        checked.append(name)
    missing = [n for n, c in CONVERTERS.items() if c.available()[0] and n not in checked]
    assert not missing, f"converters without a round trip here: {missing}"
    assert {"tflite", "onnx", "openvino"} <= set(checked)


def test_an_artifact_is_embedded_once_with_its_parity_result(tiny_run, tmp_path, monkeypatch):
    """Checked as the engine will read it (`load_runtime(metadata=)`), then embedded once:
    the ONNX logits artifact's model_api layout (NCHW, from metadata_props) included."""
    from edge_deeplab.converters import convert
    from edge_deeplab.runtimes import read_metadata

    pytest.importorskip("onnxruntime")
    cls = CONVERTERS.get("onnx")
    embedded = []
    original = cls.embed_metadata
    monkeypatch.setattr(cls, "embed_metadata", lambda self, path, meta: (embedded.append(meta),
                                                                         original(self, path, meta)))
    (result,) = convert(tiny_run, "onnx", "fp32", tmp_path, head="logits", parity_images=4, progress=False)
    assert result.status == "ok" and result.parity["agreement"] > 0.999, result.reason
    assert len(embedded) == 1 and embedded[0].parity == result.parity and embedded[0].selftest
    meta = read_metadata(result.path)
    assert meta.parity == result.parity and meta.selftest == embedded[0].selftest
