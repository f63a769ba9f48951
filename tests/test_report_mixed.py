"""Mixed precision under an mIoU budget: the search logic and a real selective conversion."""

from __future__ import annotations

import numpy as np
import pytest

from edge_deeplab.bench.mixed_precision import fewest_layers


def _drops(first_ok: int):
    """A drop curve that meets a 1-point budget from `first_ok` float layers on."""
    return lambda k: 0.5 if k >= first_ok else 3.0 - k * 0.01


@pytest.mark.parametrize("first_ok", [0, 1, 2, 3, 5, 8, 13, 20])
def test_fewest_layers_finds_the_smallest_k(first_ok):
    calls = []

    def drop_for(k):
        calls.append(k)
        return _drops(first_ok)(k)

    k, met, trials = fewest_layers(drop_for, 1.0, total=20)
    assert (k, met) == (first_ok, True)
    assert [t[0] for t in trials] == calls and len(set(calls)) == len(calls)  # no repeats
    assert len(calls) <= 2 + 2 * int(np.ceil(np.log2(20)))


def test_fewest_layers_reports_an_unmet_budget():
    k, met, trials = fewest_layers(lambda k: 5.0, 1.0, total=6)
    assert (k, met) == (6, False) and [t[0] for t in trials] == [0, 1, 2, 4, 6]
    assert fewest_layers(lambda k: 5.0, 1.0, total=0)[:2] == (0, False)


@pytest.mark.slow
def test_search_keeps_the_chosen_layers_in_float(tiny_run, tmp_path):
    pytest.importorskip("tensorflow")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    from edge_deeplab.bench.mixed_precision import search
    from edge_deeplab.data.calibration import calibration_batches
    from edge_deeplab.metadata import ArtifactMetadata

    meta = ArtifactMetadata.from_json((tiny_run / "metadata.json").read_text())
    calibration = calibration_batches("synthetic", meta, 8)
    counts = []

    def score(path):
        # Pretend accuracy returns once any layer computes in float: the first trial (k=0,
        # full int8) sets the baseline count of float32 tensors.
        counts.append(_float_tensors(litert, path.read_bytes()))
        return 0.0 if counts[-1] > counts[0] else 2.0

    result = search(tiny_run / "model.keras", score, 1.0, tmp_path / "m.tflite", calibration)
    assert result.met and len(result.float_layers) == 1 and result.ranked > 20
    assert [k for k, _ in result.trials] == [0, 1] and result.trials[0][1] == 2.0
    assert _float_tensors(litert, (tmp_path / "m.tflite").read_bytes()) > counts[0]


def _float_tensors(litert, content: bytes) -> int:
    interpreter = litert.Interpreter(model_content=content)
    return sum(1 for t in interpreter.get_tensor_details() if t["dtype"] == np.float32)
