"""`edge-deeplab doctor`: CPU features, emulation, Jetson, engines and install lines, read from
fake system files and fake distributions, and one real run on this machine."""

from __future__ import annotations

import json
import platform
import struct

import pytest

from edge_deeplab import cpu_features, doctor, nvidia
from edge_deeplab.bench import machine
from edge_deeplab.cli.main import main

PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
PI5_CPUINFO = PI4_CPUINFO.replace("fp asimd evtstrm crc32 cpuid",
                                  "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                                  "lrcpc dcpop asimddp").replace("0xd08", "0xd0b").replace("4 Model B Rev 1.4",
                                                                                           "5 Model B Rev 1.0")
X86_CPUINFO = ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
               "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n")


def _auxv(words) -> bytes:
    """An auxiliary vector of this machine's word size: (type, value) pairs, then AT_NULL."""
    fmt = "QQ" if struct.calcsize("P") == 8 else "II"
    return b"".join(struct.pack(fmt, kind, value) for kind, value in [*words, (0, 0)])


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    """Point every file the doctor reads at `tmp_path`; returns a writer for them."""
    paths = {"cpuinfo": tmp_path / "cpuinfo", "auxv": tmp_path / "auxv", "arch": tmp_path / "arch",
             "tasks": tmp_path / "task", "meminfo": tmp_path / "meminfo", "tegra": tmp_path / "nv_tegra_release"}
    monkeypatch.setattr(cpu_features, "CPUINFO", paths["cpuinfo"])
    monkeypatch.setattr(cpu_features, "AUXV", paths["auxv"])
    monkeypatch.setattr(cpu_features, "KERNEL_ARCH", paths["arch"])
    monkeypatch.setattr(cpu_features, "TASKS", paths["tasks"])
    monkeypatch.setattr(doctor, "MEMINFO", paths["meminfo"])
    monkeypatch.setattr(nvidia, "TEGRA_RELEASE", paths["tegra"])
    monkeypatch.setattr(nvidia, "DEVICE_TREE", tmp_path / "device-tree")
    monkeypatch.setattr(nvidia, "JETSON_GPU_NODES", ())

    def write(name, content):
        path = paths[name]
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return write


def test_x86_features_come_from_cpuinfo_flags(fake_proc):
    fake_proc("cpuinfo", X86_CPUINFO)
    features = cpu_features.isa_features("x86_64")
    assert features["avx2"] and features["avx512f"] and features["avx512_vnni"]
    assert not features["amx_int8"] and not features["avx_vnni"]


def test_arm_features_come_from_hwcap_before_cpuinfo(fake_proc):
    fake_proc("cpuinfo", PI4_CPUINFO)  # a Pi 4 (no dot product) in cpuinfo...
    hwcap = 1 << 1 | 1 << 10 | 1 << 20  # ...but the process's HWCAP says asimd, asimdhp, asimddp
    fake_proc("auxv", _auxv([(6, 4096), (cpu_features.AT_HWCAP, hwcap), (cpu_features.AT_HWCAP2, 1 << 13)]))
    features = cpu_features.isa_features("arm64")
    assert features["asimd"] and features["asimddp"] and features["asimdhp"] and features["i8mm"]
    assert not features["sve"] and not features["fphp"]


@pytest.mark.parametrize("cpuinfo, dotprod, fp16, core",
                         [(PI4_CPUINFO, False, False, "Cortex-A72"), (PI5_CPUINFO, True, True, "Cortex-A76")])
def test_raspberry_pi_features_without_auxv(fake_proc, cpuinfo, dotprod, fp16, core):
    fake_proc("cpuinfo", cpuinfo)  # no auxv file: cpuinfo's Features decide
    features = cpu_features.isa_features("aarch64")
    assert features["asimd"] and features["asimddp"] is dotprod and features["asimdhp"] is fp16
    assert not features["i8mm"]
    assert cpu_features.arm_core() == core
    assert machine.cpu_model(str(cpu_features.CPUINFO)).startswith("Raspberry Pi")


def test_native_is_not_emulated(fake_proc):
    fake_proc("arch", "aarch64\n")
    assert cpu_features.emulation("aarch64") == (False, [])


def test_emulated_by_kernel_arch(fake_proc):
    fake_proc("arch", "x86_64\n")
    emulated, evidence = cpu_features.emulation("aarch64")
    assert emulated and "kernel runs x86_64" in evidence[0]


def test_emulated_by_the_threads_image(fake_proc, tmp_path):
    task = tmp_path / "task" / "123"
    task.mkdir(parents=True)
    (task / "exe").symlink_to("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    emulated, evidence = cpu_features.emulation("aarch64")  # no kernel arch file (an old kernel)
    assert emulated and "qemu" in evidence[0]


def test_jetson_release_and_jetpack(fake_proc, monkeypatch):
    fake_proc("tegra", "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)  # no dpkg-query: from the L4T table
    board = doctor.jetson()
    assert board == {"model": "NVIDIA Jetson", "l4t": "36.4.0", "jetpack": "6.1/6.2"}
    assert doctor.l4t_release("garbage") is None


def test_memory_and_disk(fake_proc, tmp_path):
    fake_proc("meminfo", "MemTotal:        8047608 kB\nMemFree:  100 kB\nMemAvailable:    6291456 kB\n")
    assert doctor.memory() == {"total_mb": 7858, "available_mb": 6144}
    found = doctor.disk(tmp_path / "not" / "yet" / "made")
    assert found["path"].endswith("made") and found["free_mb"] > 0


def _fake_install(monkeypatch, installed: dict):
    """Distributions and importable modules as on a device with only `installed`."""
    from importlib import metadata

    def version(name):
        if name in installed:
            return installed[name]
        raise metadata.PackageNotFoundError(name)

    modules = {"ai-edge-litert": "ai_edge_litert", "onnxruntime": "onnxruntime", "openvino": "openvino"}
    importable = {modules[name] for name in installed if name in modules}
    monkeypatch.setattr(machine._metadata, "version", version)
    monkeypatch.setattr("edge_deeplab.deps.available", lambda module: module in importable)


def test_formats_say_what_is_missing_and_how_to_install_it(fake_proc, monkeypatch):
    _fake_install(monkeypatch, {"numpy": "1.26.4", "ai-edge-litert": "2.3.0"})
    rows = {row["format"]: row for row in doctor.collect()["formats"]}
    assert rows["tflite"]["available"] and rows["tflite"]["engine"] == "ai-edge-litert 2.3.0"
    assert rows["tflite"]["install"] == ""
    assert not rows["onnx"]["available"] and rows["onnx"]["install"] == 'pip install "edge-deeplab[onnx]"'
    assert rows["onnx"]["missing"] == "onnxruntime"
    assert rows["openvino"]["install"] == 'pip install "edge-deeplab[openvino]"'
    assert rows["tensorrt"]["install"] == 'pip install "edge-deeplab[tensorrt]"'


def test_on_a_jetson_tensorrt_comes_from_jetpack(fake_proc, monkeypatch):
    fake_proc("tegra", "# R35 (release), REVISION: 4.1, GCID: 1\n")
    _fake_install(monkeypatch, {"numpy": "1.24.4"})
    found = doctor.collect()
    rows = {row["format"]: row for row in found["formats"]}
    assert found["jetson"]["l4t"] == "35.4.1"
    assert "python3-libnvinfer" in rows["tensorrt"]["install"]


def test_doctor_on_this_machine_prints_every_key_of_its_schema(capsys):
    """The real thing on this machine: one JSON object with every key of the schema."""
    assert main(["doctor", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["schema"] == doctor.SCHEMA
    assert set(found) >= {"host", "cpu", "emulated", "emulation", "jetson", "gpu", "memory", "disk", "libraries",
                          "opencv", "formats"}
    assert found["cpu"]["arch"] == cpu_features.normalize_machine(platform.machine())
    assert found["emulated"] is False  # the tests run natively
    assert found["libraries"]["numpy"] and found["cpu"]["cores"] >= 1
    assert {row["format"] for row in found["formats"]} >= {"tflite", "onnx", "openvino", "tensorrt"}
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "features" in text and "emulated   no" in text and "tflite" in text
