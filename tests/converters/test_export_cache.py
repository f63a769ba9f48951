"""The export cache: a second conversion of the same model copies its SavedModel/ONNX export
instead of exporting again; anything else it depends on is a new key; it is bounded, written
whole or not at all, and a cache that cannot be written never fails a conversion."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edge_deeplab.converters import export_cache
from edge_deeplab.converters.export_cache import ExportCache


def _made(tmp_path, name="made", files=2):
    folder = tmp_path / name
    folder.mkdir()
    for index in range(files):
        (folder / f"part{index}").write_bytes(os.urandom(64))
    return folder


def test_an_entry_comes_back_whole_and_every_input_is_part_of_the_key(tmp_path):
    cache = ExportCache("model-a", tmp_path / "cache")
    key = cache.key(export="saved_model", placement="argmax/full", pixels=None)
    assert not cache.restore(key, tmp_path / "nothing")
    made = _made(tmp_path)
    cache.keep(key, made)
    assert cache.restore(key, tmp_path / "back")
    assert sorted(p.read_bytes() for p in (tmp_path / "back").iterdir()) == sorted(p.read_bytes() for p in made.iterdir())
    assert key != cache.key(export="saved_model", placement="argmax/full", pixels=(127.5, 127.5))
    assert key != ExportCache("model-b", tmp_path / "cache").key(export="saved_model", placement="argmax/full",
                                                                  pixels=None)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(export_cache.STAGING)]


def test_the_least_recently_used_entries_go_beyond_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(export_cache, "MAX_ENTRIES", 2)
    cache = ExportCache("model", tmp_path / "cache")
    keys = [cache.key(n=n) for n in range(3)]
    for age, key in enumerate(keys[:2]):
        cache.keep(key, _made(tmp_path, f"m{age}"))
        os.utime(tmp_path / "cache" / key, (1000 + age, 1000 + age))
    assert cache.restore(keys[0], tmp_path / "used")  # used now: the newest
    cache.keep(keys[2], _made(tmp_path, "m2"))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([keys[0], keys[2]])


def test_an_unwritable_cache_or_one_turned_off_keeps_nothing_and_fails_nothing(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = ExportCache("model", blocked / "cache")  # its parent is a file: mkdir fails
    cache.keep(cache.key(n=1), _made(tmp_path))
    assert not cache.restore(cache.key(n=1), tmp_path / "back")
    monkeypatch.setenv("EDGE_DEEPLAB_EXPORT_CACHE", "0")
    assert export_cache.cache_folder() is None
    off = ExportCache("model")
    off.keep(off.key(n=1), _made(tmp_path, "other"))
    assert not off.restore(off.key(n=1), tmp_path / "back")


def test_a_second_job_reuses_the_export_and_other_weights_do_not(tiny_run, tmp_path, monkeypatch, logged):
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters.job import ConversionJob, HeadPlacement, Progress
    from edge_deeplab.converters.savedmodel import load_source

    monkeypatch.setenv("EDGE_DEEPLAB_EXPORT_CACHE", str(tmp_path / "cache"))
    source = load_source(tiny_run)
    placement = HeadPlacement("argmax", "full")

    def export(name):
        (tmp_path / name).mkdir()
        job = ConversionJob(source, tmp_path / name, lambda: None, Progress(True))
        return job.saved_model(placement)

    first, second = export("a"), export("b")
    assert sum("reused" in line for line in logged) == 1 and second.parent.name == "b"
    assert (second / "saved_model.pb").read_bytes() == (first / "saved_model.pb").read_bytes()
    fingerprint = export_cache.model_fingerprint(source.model)
    weights = source.model.get_weights()
    source.model.set_weights([w + np.ones_like(w) * (i == 0) for i, w in enumerate(weights)])
    try:
        assert export_cache.model_fingerprint(source.model) != fingerprint
    finally:
        source.model.set_weights(weights)
    assert export_cache.model_fingerprint(source.model) == fingerprint
