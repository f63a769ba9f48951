"""Remote targets: the parts alone, then end to end against a real sshd on loopback whose
"device" is a separate venv holding only the edge install (tests/sshd_device.py).

The device's figures must equal the host's for the same artifact on this machine (agreement
and mIoU exactly; latency only present and positive: timing is never asserted).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from sshd_device import SSHD, LoopbackSSHD, device_venv, install_tree

from edge_deeplab.cli.main import main
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.targets import pick
from edge_deeplab.targets.cache import Bundle, artifact_bundle
from edge_deeplab.targets.spec import Target, load_targets_file, parse_target
from edge_deeplab.targets.ssh import ConnectionLostError, explain

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "edge_deeplab" / "targets" / "device_agent.py"


# ---------------------------------------------------------------- the parts alone


def test_ssh_urls_and_bad_targets():
    target = parse_target("ssh://pi@10.0.0.7:2222")
    assert (target.user, target.host, target.port, target.python) == ("pi", "10.0.0.7", 2222, "python3")
    assert parse_target("ssh://jetson").destination == "jetson"
    for bad in ("ssh://host/path", "ssh://u:secret@host", "ssh://host:99999", "http://host", "no such;name"):
        with pytest.raises(InvalidInputError):
            parse_target(bad)


def test_a_targets_file_entry_becomes_a_target(tmp_path, monkeypatch):
    path = tmp_path / "targets.toml"
    path.write_text('[pi5]\nhost = "pi.local"\nuser = "pi"\nport = 22\npython = "~/edge/bin/python"\n'
                    'ssh_options = ["ProxyJump=bastion"]\n')
    monkeypatch.setenv("EDGE_DEEPLAB_TARGETS", str(path))
    target = parse_target("pi5")
    assert target == Target("pi5", "pi.local", "pi", 22, "~/edge/bin/python", ssh_options=("ProxyJump=bastion",))
    with pytest.raises(InvalidInputError, match="known: pi5"):
        parse_target("jetson")
    path.write_text('[lab]\nhost = "x"\nssh_options = ["StrictHostKeyChecking=no"]\n')
    with pytest.raises(InvalidInputError, match="host-key checking cannot be turned off"):
        load_targets_file(path)
    path.write_text('[lab]\nhost = "x"\npasword = "typo"\n')
    with pytest.raises(InvalidInputError, match="unknown keys"):
        load_targets_file(path)


def test_ssh_failures_are_one_line_each():
    target = Target("pi5", "pi.local", port=2200)
    cases = {
        "ssh: connect to host pi.local port 2200: Connection refused": "cannot reach",
        "pi@pi.local: Permission denied (publickey).": "refused authentication",
        "No ED25519 host key is known for pi.local and you have requested strict checking.\n"
        "Host key verification failed.": "ssh-keyscan -p 2200 pi.local >> ~/.ssh/known_hosts",
    }
    for stderr, expected in cases.items():
        message = str(explain(target, 255, stderr, connected=False))
        assert expected in message and "\n" not in message
    assert isinstance(explain(target, 255, "Connection to pi.local closed by remote host.", True), ConnectionLostError)
    assert "disk of pi5 is full" in str(explain(target, 3, "OSError: [Errno 28] No space left on device", True))
    assert explain(target, 1, "the remote command's own failure", True) is None


def test_bundles_are_keyed_by_content(tmp_path):
    (tmp_path / "m.xml").write_text("graph")
    (tmp_path / "m.bin").write_bytes(b"\0" * 10)
    bundle, ref = artifact_bundle(tmp_path / "m.xml")
    assert [name for name, _ in bundle.files] == ["m.bin", "m.xml"] and ref == {"blob": bundle.key, "path": "m.xml"}
    assert artifact_bundle(tmp_path / "m.xml")[0].key == bundle.key
    (tmp_path / "m.bin").write_bytes(b"\1" * 10)
    assert artifact_bundle(tmp_path / "m.xml")[0].key != bundle.key
    (tmp_path / "m.bin").unlink()
    with pytest.raises(InvalidInputError, match="m.bin"):
        artifact_bundle(tmp_path / "m.xml")


def _agent(request: dict, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", AGENT.read_text(), json.dumps(request)], input=stdin,
                          capture_output=True, timeout=60)


def test_agent_stores_uploads_whole_or_not_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    bundle = Bundle.of([("a.txt", tmp_path / "a.txt")])
    stream = io.BytesIO()
    bundle.write_tar(stream)
    cache = tmp_path / "cache"
    done = _agent({"mode": "receive", "cache": str(cache), "keys": [bundle.key]}, stream.getvalue())
    assert done.returncode == 0, done.stderr
    assert (cache / "blobs" / bundle.key / "a.txt").read_text() == "a"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        tar.add(str(tmp_path / "a.txt"), arcname=f"{'0' * 64}/../../escape.txt")
    done = _agent({"mode": "receive", "cache": str(cache), "keys": ["0" * 64]}, evil.getvalue())
    assert done.returncode != 0 and b"refusing tar member" in done.stderr
    (tmp_path / "b.bin").write_bytes(os.urandom(20000))
    second = Bundle.of([("b.bin", tmp_path / "b.bin")])
    whole = io.BytesIO()
    second.write_tar(whole)
    done = _agent({"mode": "receive", "cache": str(cache), "keys": [second.key]}, whole.getvalue()[:9000])
    assert done.returncode != 0  # the connection dropped mid-upload: a truncated stream
    assert not (cache / "blobs" / ("0" * 64)).exists() and not (cache / "blobs" / second.key).exists()
    assert list((cache / "tmp").iterdir()) == []  # no temp files left
    probe = json.loads(_agent({"mode": "probe", "cache": str(cache), "want": [bundle.key, "2" * 64]}).stdout)
    assert probe["have"] == [bundle.key] and probe["edge_deeplab"]


def _row(ident, latency, delta, classes=None, status="ok", target="pi5"):
    return {"id": ident, "runtime": "tflite", "status": status, "target": target, "latency_p50_ms": latency,
            "miou": 0.5 + delta / 100, "delta_miou": delta, "delta_per_class_iou": classes or {}}


def test_pick_is_the_fastest_within_budget_on_the_device():
    rows = [
        _row("keras:fp32", None, 0.0, target=None),
        _row("tflite:int8", 5.0, -1.5),  # fastest, over the mIoU budget
        _row("openvino:int8", 6.0, -0.4, {"road": -3.0}),  # a class over the per-class budget
        _row("onnx:int8", 7.0, -0.2, {"road": -0.5}),
        _row("tflite:fp32", 9.0, 0.0),
        _row("tflite:fp16", 1.0, 0.0, status="run failed"),
    ]
    assert pick.choose(rows, max_drop=1.0)[0] == 2
    index, verdicts = pick.choose(rows, max_drop=1.0, max_class_drop=1.0)
    assert index == 3
    assert "mIoU points" in verdicts[1]["why_not"] and "a class loses 3.00" in verdicts[2]["why_not"]
    assert verdicts[0]["why_not"] == "not measured on the device" and verdicts[5]["within_budget"] is False
    assert pick.choose(rows, max_drop=2.0)[0] == 1


# ---------------------------------------------------------------- the loopback device

needs_sshd = pytest.mark.skipif(not (Path(SSHD).is_file() and shutil.which("ssh")),
                                reason="OpenSSH's sshd/ssh not installed (make test-deps)")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not (Path(SSHD).is_file() and shutil.which("ssh")):
        pytest.skip("OpenSSH's sshd/ssh not installed (make test-deps)")
    server = LoopbackSSHD(tmp_path_factory.mktemp("sshd")).setup().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def device_python(tmp_path_factory):
    """The device venv's python with this tree installed (deps cached across sessions)."""
    return install_tree(device_venv(), tmp_path_factory.mktemp("device-tree"))


def _wrapper(folder: Path, python: Path, pythonpath: Path) -> Path:
    """A "python" for the device that puts `pythonpath` first (hides or replaces packages)."""
    script = folder / f"python-{pythonpath.name}"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{pythonpath}" exec "{python}" "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def targets(sshd, tmp_path_factory, device_python):
    """A targets file: `loop` (the device), `noov` (its openvino hidden), `oldver` (another
    edge-deeplab version first on its path), `bare` (a python without edge-deeplab)."""
    folder = tmp_path_factory.mktemp("targets")
    cache = folder / "device-cache"
    hidden = folder / "no-openvino"
    (hidden / "openvino").mkdir(parents=True)
    (hidden / "openvino" / "__init__.py").write_text('raise ImportError("openvino hidden for this test")\n')
    other = folder / "other-version"
    shutil.copytree(REPO / "edge_deeplab", other / "edge_deeplab", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "edge_deeplab" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9-'))
    pythons = {"loop": device_python, "noov": _wrapper(folder, device_python, hidden),
               "oldver": _wrapper(folder, device_python, other), "bare": "/usr/bin/python3"}
    text = "".join(f'[{name}]\nhost = "loopback-device"\npython = "{python}"\ncache = "{cache}"\n'
                   f'ssh_config = "{sshd.client_config}"\n\n' for name, python in pythons.items())
    path = folder / "targets.toml"
    path.write_text(text)
    previous = os.environ.get("EDGE_DEEPLAB_TARGETS")
    os.environ["EDGE_DEEPLAB_TARGETS"] = str(path)
    yield {"file": path, "cache": cache}
    if previous is None:
        os.environ.pop("EDGE_DEEPLAB_TARGETS", None)
    else:
        os.environ["EDGE_DEEPLAB_TARGETS"] = previous


def _artifact(tiny_converted, target, precision):
    results, _ = tiny_converted
    result = results.get((target, precision))
    if result is None or not result.path:
        pytest.skip(f"no {target} {precision} artifact on this machine")
    return Path(result.path)


def _cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


@needs_sshd
def test_wrong_host_key_is_one_line(sshd, tmp_path, capsys):
    config = tmp_path / "client_config"
    config.write_text(sshd.client_config.read_text().replace(str(sshd.folder / "known_hosts"),
                                                             str(tmp_path / "known_hosts")))
    key = " ".join((sshd.folder / "other_host_key.pub").read_text().split()[:2])
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {key}\n")  # someone else's key
    (tmp_path / "m.tflite").write_bytes(b"x")
    (tmp_path / "t.toml").write_text(f'[dev]\nhost = "loopback-device"\nssh_config = "{config}"\n')
    os.environ["EDGE_DEEPLAB_TARGETS"] = str(tmp_path / "t.toml")
    try:
        status, _, err = _cli(capsys, "verify", tmp_path / "m.tflite", "--target", "dev")
    finally:
        os.environ.pop("EDGE_DEEPLAB_TARGETS")
    assert status == 2 and err.count("\n") == 1  # nothing uploaded: the connection comes first
    assert "Host key verification failed" in _one_error(err) and "ssh-keyscan" in err


@pytest.mark.slow
def test_verify_bench_eval_on_the_device_match_the_host(targets, tiny_converted, capsys, tmp_path):
    tflite = _artifact(tiny_converted, "tflite", "int8")
    openvino = _artifact(tiny_converted, "openvino", "int8")

    status, out, err = _cli(capsys, "verify", tflite, "--target", "loop", "--json", tmp_path / "remote.json")
    assert status == 0 and "@ loop" in out
    _cli(capsys, "verify", tflite, "--json", tmp_path / "local.json")
    remote, local = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("remote", "local"))
    assert remote["agreements"] == local["agreements"] and remote["passed"] == local["passed"]
    assert remote["target"] == "loop" and remote["machine"]["libraries"]["edge-deeplab"]

    status, out, err = _cli(capsys, "bench", tflite, openvino, "--target", "loop", "--min-time", "0.1",
                            "--max-runs", "5", "--json", tmp_path / "bench.json")
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert status == 0 and [r["model"] for r in rows] == [str(tflite), str(openvino)]
    assert all(r["latency_p50_ms"] > 0 and r["device"].endswith("@loop") for r in rows)
    assert "uploaded 1 of 2" in err  # the .tflite came with verify: only the .xml + .bin bundle is copied

    for where in (["--target", "loop"], []):
        _cli(capsys, "eval", openvino, "--limit", "6", "--json", tmp_path / f"eval{len(where)}.json", *where)
    remote, local = (json.loads((tmp_path / f"eval{n}.json").read_text()) for n in (2, 0))
    assert remote["miou"] == local["miou"] and remote["per_class_iou"] == local["per_class_iou"]


@pytest.mark.slow
def test_a_second_run_copies_nothing(targets, tiny_converted, tmp_path):
    from edge_deeplab.targets.cli import Uploads
    from edge_deeplab.targets.remote import Device

    copy = tmp_path / "fresh.tflite"  # new bytes: not in the device's cache yet
    copy.write_bytes(_artifact(tiny_converted, "tflite", "fp32").read_bytes() + b"\0")
    counts = []
    for _ in range(2):
        uploads = Uploads()
        uploads.artifact(copy)
        with Device("loop") as device:
            device.upload(uploads.bundles.values())
            counts.append((device.stats.uploaded, device.stats.cached))
    assert counts == [(1, 0), (0, 1)]


@pytest.mark.slow
def test_report_on_the_device_picks_by_its_measurements(targets, tiny_run, tiny_converted, tmp_path, capsys):
    out = tmp_path / "report"
    (out / "artifacts").mkdir(parents=True)
    for precision in ("fp32", "int8"):  # the conversions the session already made, reused
        shutil.copy(_artifact(tiny_converted, "tflite", precision), out / "artifacts")
    status, stdout, err = _cli(capsys, "report", tiny_run, "--out", out, "--variants", "tflite:fp32,tflite:int8",
                               "--limit", "8", "--min-time", "0.1", "--max-runs", "5", "--examples", "0",
                               "--target", "loop", "--target-accuracy", "--pick", "--max-miou-drop", "5")
    assert status == 0, err
    data = json.loads((out / "report.json").read_text())
    assert data["machine"]["target"]["target"] == "loop"
    assert "Measured on device loop" in (out / "report.md").read_text()
    reference, *converted = data["rows"]
    assert reference["target"] is None and reference["host"]["latency_p50_ms"] > 0
    for row in converted:
        assert row["target"] == "loop" and row["latency_p50_ms"] > 0 and row["host"]["latency_p50_ms"] > 0
        assert row["miou"] == row["host"]["miou"]  # same engine, same images: the same figures
    chosen = json.loads((out / "pick.json").read_text())["chosen"]
    fastest = min(converted, key=lambda r: r["latency_p50_ms"])
    assert chosen["id"] == fastest["id"] and chosen["latency_p50_ms"] == fastest["latency_p50_ms"]
    assert f"pick for loop: {chosen['format']} {chosen['precision']}" in stdout


def _one_error(err: str) -> str:
    """The one error line of a failed command (progress lines aside); no traceback."""
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.slow
def test_device_faults_are_one_line(targets, tiny_converted, capsys):
    openvino = _artifact(tiny_converted, "openvino", "int8")
    status, _, err = _cli(capsys, "verify", openvino, "--target", "noov")
    assert status == 2 and "pip install 'edge-deeplab[openvino]'" in _one_error(err)
    status, _, err = _cli(capsys, "verify", openvino, "--target", "oldver")
    line = _one_error(err)
    assert status == 2 and "edge-deeplab 9.9.9-" in line and 'pip install "edge-deeplab[tflite]==' in line
    status, _, err = _cli(capsys, "bench", openvino, "--target", "bare")
    assert status == 2 and "edge-deeplab is not installed" in _one_error(err)


def _tmp_entries(cache: Path) -> list:
    return sorted(p.name for p in (cache / "tmp").iterdir()) if (cache / "tmp").is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["sshd stopped", "ctrl-c"])
def test_a_run_cut_short_leaves_nothing(fault, sshd, targets, tiny_converted, tmp_path):
    from conftest import default_sigint

    model = _artifact(tiny_converted, "tflite", "int8")
    out = tmp_path / "bench.json"
    proc = subprocess.Popen([sys.executable, "-m", "edge_deeplab.cli.main", "bench", str(model), "--target", "loop",
                             "--min-time", "60", "--max-runs", "100000000", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not any(n.startswith("run-") for n in _tmp_entries(targets["cache"])):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)  # the device is timing now
        if fault == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        else:
            sshd.stop(drop_sessions=True)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if sshd.process is None:
            sshd.start()
    assert "Traceback" not in err and not out.exists()
    if fault == "ctrl-c":
        assert proc.returncode == 130
    else:
        assert proc.returncode == 2 and "dropped mid-run" in err.strip().splitlines()[-1]
    deadline = time.monotonic() + 30  # the device side notices the closed channel and cleans up
    while _tmp_entries(targets["cache"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _tmp_entries(targets["cache"]) == []


@needs_sshd
def test_doctor_on_the_device_and_on_a_device_without_this_version(targets, capsys):
    """`doctor --target`: the device's own doctor (its engines, its CPU); where its
    edge-deeplab is missing or another version, what it has and the line that fixes it."""
    status, out, _ = _cli(capsys, "doctor", "--target", "loop")
    assert status == 0 and out.startswith("on loop (loopback-device):")
    assert "tflite" in out and "yes (ai-edge-litert" in out and "features" in out
    status, out, _ = _cli(capsys, "doctor", "--target", "loop", "--json")
    assert status == 0 and json.loads(out)["schema"] == 1
    for name, have in (("oldver", "edge-deeplab 9.9.9-"), ("bare", "no edge-deeplab")):
        status, out, _ = _cli(capsys, "doctor", "--target", name)
        assert status == 1 and have in out and 'install it there with pip install "edge-deeplab[tflite]==' in out
