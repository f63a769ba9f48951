"""`edge-deeplab quickstart` end to end on a reduced budget: every promised artifact exists."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")
cv2 = pytest.importorskip("cv2")


@pytest.mark.slow
def test_quickstart_smoke_makes_every_artifact(tmp_path, capsys):
    from edge_deeplab.cli.main import main

    out = tmp_path / "qs"
    assert main(["quickstart", "--plan", "smoke", "--out", str(out), "--threads", "2"]) == 0

    assert (out / "run" / "model.keras").is_file()
    assert (out / "run" / "metadata.json").is_file()
    for name in ("model_int8.tflite", "model_fp32.onnx", "model_fp32.xml", "model_fp32.bin",
                 "model_int8.xml", "model_int8.bin"):
        assert (out / "artifacts" / name).stat().st_size > 10_000, name

    report = json.loads((out / "report.json").read_text())
    rows = {(r["format"], r["precision"]): r for r in report["rows"]}
    assert ("keras", "fp32") in rows
    for key in (("tflite", "int8"), ("openvino", "int8")):
        row = rows[key]
        assert row["status"] == "ok", row
        assert 0.0 <= row["miou"] <= 1.0
        assert row["latency_p50_ms"] > 0 and row["fps"] > 0
    assert (out / "report.md").read_text().count("|") > 20
    assert (out / "report.html").stat().st_size > 5_000

    video = cv2.VideoCapture(str(out / "demo.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    video.release()
    assert frames >= 10
    stats = json.loads((out / "demo_stats.json").read_text())
    assert stats["frames"] >= 10

    printed = capsys.readouterr().out
    assert "report.md" in printed or "| " in printed
