"""`convert --to tensorrt --target T`: engines built on the loopback device by its TensorRT.

The device is test_targets.py's (a real sshd on 127.0.0.1, a venv holding only the edge
install). Its "TensorRT" is tests/fake_tensorrt.py, made importable there as real modules
(`tensorrt`, `cuda.bindings.runtime`) by a folder first on the device python's PYTHONPATH,
and its GPU a `nvidia-smi` first on PATH: so the device process builds and runs engines
with the same fakes test_tensorrt.py uses in-process, and this host has no `tensorrt` at all.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY_INT8_AGREEMENT
from test_targets import _agent, _cli, _one_error, _wrapper, device_python, sshd  # noqa: F401 - fixtures

HERE = Path(__file__).resolve().parents[1]  # tests/
MAGIC = b"FAKE-TRT-ENGINE\n"  # fake_tensorrt's engine header
INSTALL_FAKE = '''"""The fake TensorRT {version} (tests/fake_tensorrt.py) as an importable module."""
import os

import fake_tensorrt


class _Modules:  # install()'s monkeypatch: here the fakes stay for the life of the process
    @staticmethod
    def setitem(mapping, key, value):
        mapping[key] = value


fake_tensorrt.install(_Modules(), {version!r}, builder_starts=os.environ.get("FAKE_TRT_BUILDER") != "fails")
'''


def test_agent_sends_only_a_built_file_and_no_more_than_asked(tmp_path):
    cache = tmp_path / "cache"
    (cache / "built").mkdir(parents=True)
    (cache / "built" / "a.engine").write_bytes(b"engine bytes")
    request = {"mode": "send", "cache": str(cache), "built": "a.engine", "max_bytes": 12}
    done = _agent(request)
    assert done.returncode == 0 and done.stdout == b"engine bytes"
    done = _agent({**request, "max_bytes": 11})
    assert done.returncode != 0 and done.stdout == b"" and b"more than the 11" in done.stderr
    for name in ("../blobs", "/etc/passwd", ".hidden", "a/b"):
        done = _agent({**request, "built": name})
        assert done.returncode != 0 and done.stdout == b"" and b"bad built-file name" in done.stderr


def _fake_tensorrt_folder(root: Path, name: str, version: str) -> Path:
    """A PYTHONPATH folder whose `tensorrt` and `cuda` are the fakes of `version`, and a bin/ with nvidia-smi."""
    folder = root / name
    (folder / "cuda").mkdir(parents=True)
    shutil.copy(HERE / "fake_tensorrt.py", folder / "fake_tensorrt.py")
    (folder / "tensorrt.py").write_text(INSTALL_FAKE.format(version=version))
    (folder / "cuda" / "__init__.py").write_text("import tensorrt  # noqa: F401 - installs the fake cuda modules\n")
    (folder / "bin").mkdir()
    (folder / "bin" / "nvidia-smi").write_text('#!/bin/sh\necho "Fake GPU"\n')
    (folder / "bin" / "nvidia-smi").chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def trt_targets(sshd, tmp_path_factory, device_python):  # noqa: F811 - the imported fixtures
    """A targets file: `trt10` and `trt11` (the device with a fake TensorRT and GPU), `trt10broken`
    (whose builder cannot start, as without a driver), `plain` (no TensorRT)."""
    folder = tmp_path_factory.mktemp("trt-targets")
    cache = folder / "device-cache"
    pythons = {"plain": device_python}
    for name, version, env in (("trt10", "10.3.0", ""), ("trt11", "11.4.0", ""),
                               ("trt10broken", "10.3.0", "FAKE_TRT_BUILDER=fails ")):
        fakes = _fake_tensorrt_folder(folder, name, version)
        script = _wrapper(folder, device_python, fakes)
        script.write_text(script.read_text().replace("exec", f'{env}PATH="{fakes / "bin"}:$PATH" exec'))
        pythons[name] = script
    text = "".join(f'[{name}]\nhost = "loopback-device"\npython = "{python}"\ncache = "{cache}"\n'
                   f'ssh_config = "{sshd.client_config}"\n\n' for name, python in pythons.items())
    (folder / "targets.toml").write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_DEEPLAB_TARGETS", str(folder / "targets.toml"))
        yield cache


def _convert(capsys, run, out, target, precisions, *more):
    return _cli(capsys, "convert", str(run), "--to", "tensorrt", "--precision", precisions, "--target", target,
                "--out", str(out), "--calib-size", "64", "--parity-images", "16",
                "--int8-agreement", str(TINY_INT8_AGREEMENT), "--quiet", *more)


@pytest.mark.slow
def test_engines_are_built_on_the_device_and_come_back_checked_there(trt_targets, tiny_run, tmp_path, capsys):
    assert importlib.util.find_spec("tensorrt") is None  # this host could not build one itself
    out = tmp_path / "engines"
    code, stdout, err = _convert(capsys, tiny_run, out, "trt10", "fp16,int8")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f"model_{p}.engine{s}" for p in ("fp16", "int8") for s in ("", ".json", ".parity.json")]
    for precision, bar in (("fp16", 0.99), ("int8", TINY_INT8_AGREEMENT)):
        engine = out / f"model_{precision}.engine"
        header = engine.read_bytes()[len(MAGIC):].split(b"\n", 1)[0]
        assert engine.read_bytes().startswith(MAGIC) and json.loads(header) == {"typing": "weak"}
        parity = json.loads((out / f"model_{precision}.engine.parity.json").read_text())
        figures = parity["parity"]
        assert parity["status"] == "ok" and figures["passed"] and figures["agreement"] >= bar, figures
        assert (figures["measured_on"], figures["tensorrt"], figures["gpu"]) == ("trt10", "10.3.0", "Fake GPU")
        assert figures["engine"] == "tensorrt" and figures["miou"] is None  # only the self-test ran there
        meta = json.loads((out / f"model_{precision}.engine.json").read_text())
        assert meta["selftest"]["at_conversion"] == figures["agreement"] and meta["parity"] == figures
        assert figures["images"] == len(meta["selftest"]["inputs"]) > 0
        assert "self-test on trt10" in stdout
    built = trt_targets / "built"
    assert len(list(built.glob("*.engine"))) == 2
    assert [p.read_bytes() for p in built.glob("*.calib")] == [b"fake calibration table"]  # calibrated there
    assert list((trt_targets / "tmp").iterdir()) == []

    # What came back runs there as the conversion said: verify on the device agrees exactly.
    code, stdout, err = _cli(capsys, "verify", str(out / "model_int8.engine"), "--target", "trt10", "--json", "-")
    record = json.loads(stdout)
    assert code == 0 and record["agreement"] == figures["agreement"] and record["engine"] == "tensorrt", err


@pytest.mark.slow
def test_tensorrt11_on_the_device_gets_the_strongly_typed_int8_onnx(trt_targets, tiny_run, tmp_path, capsys):
    out = tmp_path / "engines11"
    code, _, err = _convert(capsys, tiny_run, out, "trt11", "int8")
    assert code == 0, err
    data = (out / "model_int8.engine").read_bytes()
    assert json.loads(data[len(MAGIC):].split(b"\n", 1)[0]) == {"typing": "strong"}  # the Q/DQ ONNX: no calibrator
    figures = json.loads((out / "model_int8.engine.parity.json").read_text())["parity"]
    assert figures["tensorrt"] == "11.4.0" and figures["agreement"] >= TINY_INT8_AGREEMENT, figures


def test_a_device_without_tensorrt_says_what_to_install(trt_targets, tmp_path, capsys):
    out, run = tmp_path / "none", tmp_path / "run"  # the device is asked first: the model is not even read
    code, _, err = _convert(capsys, run, out, "plain", "fp16")
    line = _one_error(err)
    assert code == 2 and "on plain: no TensorRT here" in line, err
    assert "JetPack" in line and 'pip install "edge-deeplab[tensorrt]"' in line
    assert not out.exists() or not list(out.iterdir())  # nothing made, nothing left
    code, _, err = _convert(capsys, run, out, "trt10", "fp16", "--to", "tflite")
    assert code == 2 and "--target builds TensorRT engines on the device" in _one_error(err)


@pytest.mark.slow
def test_a_build_that_fails_on_the_device_leaves_nothing(trt_targets, tiny_run, tmp_path, capsys):
    out = tmp_path / "broken"
    engines = set((trt_targets / "built").glob("*.engine"))
    code, _, err = _convert(capsys, tiny_run, out, "trt10broken", "fp16")
    line = _one_error(err)
    assert code == 2 and "on trt10broken: TensorRT cannot start a builder" in line, err
    assert sorted(p.name for p in out.iterdir()) == []  # no engine, no sidecar, no staging folder
    assert set((trt_targets / "built").glob("*.engine")) == engines and list((trt_targets / "tmp").iterdir()) == []
