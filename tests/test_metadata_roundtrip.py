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
