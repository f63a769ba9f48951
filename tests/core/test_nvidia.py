"""Recognising a Jetson and its power state from fake system files: device nodes, the device
tree, JetPack's release file, sysfs CPU frequencies and an `nvpmodel` on PATH."""

from __future__ import annotations

import stat

import pytest

from edge_deeplab import nvidia

ORIN = "NVIDIA Jetson Orin Nano Developer Kit"


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """An empty system: no release file, no device tree, no GPU nodes, no nvidia-smi."""
    monkeypatch.setattr(nvidia, "TEGRA_RELEASE", tmp_path / "etc/nv_tegra_release")
    monkeypatch.setattr(nvidia, "DEVICE_TREE", tmp_path / "proc/device-tree")
    nodes = (tmp_path / "dev/nvhost-ctrl-gpu", tmp_path / "dev/nvgpu/igpu0/ctrl")
    monkeypatch.setattr(nvidia, "JETSON_GPU_NODES", nodes)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return tmp_path


def _write(path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_no_gpu_and_a_desktop_gpu_by_nvidia_smi(fake_root):
    assert not nvidia.is_jetson() and nvidia.gpu_name() == ""
    _write(fake_root / "bin/nvidia-smi", "#!/bin/sh\necho 'NVIDIA H200'\necho 'NVIDIA H200'\n", executable=True)
    assert nvidia.gpu_name() == "NVIDIA H200" and not nvidia.is_jetson()
    _write(fake_root / "bin/nvidia-smi", "#!/bin/sh\necho 'no driver' >&2\nexit 9\n", executable=True)
    assert nvidia.gpu_name() == ""


@pytest.mark.parametrize("evidence", ["jetpack5-node", "orin-node", "release", "compatible"])
def test_a_jetson_is_recognised_by_any_of_its_marks(fake_root, evidence):
    if evidence == "jetpack5-node":
        _write(fake_root / "dev/nvhost-ctrl-gpu", "")
    elif evidence == "orin-node":  # JetPack 6 on Orin: /dev/nvhost-ctrl-gpu is gone
        _write(fake_root / "dev/nvgpu/igpu0/ctrl", "")
    elif evidence == "release":
        _write(fake_root / "etc/nv_tegra_release", "# R36 (release), REVISION: 4.0\n")
    else:
        _write(fake_root / "proc/device-tree/compatible", "nvidia,p3768-0000+p3767-0005\x00nvidia,tegra234\x00")
    assert nvidia.is_jetson()
    assert nvidia.gpu_name() == "NVIDIA Jetson"  # no model file: a generic name, not ""
    _write(fake_root / "proc/device-tree/model", ORIN + "\x00")  # the kernel NUL-terminates it
    assert nvidia.gpu_name() == ORIN


def test_power_state_reads_nvpmodel_and_pinned_clocks(fake_root, monkeypatch):
    from edge_deeplab.demos import jetson_power

    freq = fake_root / "sys/cpu0/cpufreq"
    monkeypatch.setattr(jetson_power, "CPU_FREQ", freq)
    assert jetson_power.power_state() is None  # not a Jetson

    _write(fake_root / "proc/device-tree/model", ORIN + "\x00")
    assert jetson_power.power_state() == {"model": ORIN, "nvpmodel": None, "jetson_clocks": None}

    script = "#!/bin/sh\n[ \"$1\" = -q ] || exit 2\necho 'NV Fan Mode:quiet'\necho 'NV Power Mode: MAXN'\necho 0\n"
    _write(fake_root / "bin/nvpmodel", script, executable=True)
    _write(freq / "scaling_min_freq", "729600\n")
    _write(freq / "scaling_max_freq", "1510400\n")
    assert jetson_power.power_state() == {"model": ORIN, "nvpmodel": "MAXN", "jetson_clocks": False}
    _write(freq / "scaling_min_freq", "1510400\n")  # what `sudo jetson_clocks` sets
    assert jetson_power.power_state()["jetson_clocks"] is True

    _write(fake_root / "bin/nvpmodel", "#!/bin/sh\necho 'NVPM ERROR: failed to read' >&2\nexit 1\n", executable=True)
    assert jetson_power.power_state()["nvpmodel"] is None


def test_rtsp_on_a_jetson_copies_hardware_decoded_frames_out_of_nvmm(fake_root, monkeypatch):
    from edge_deeplab.demos import sources

    monkeypatch.setattr(sources, "gstreamer_available", lambda cv2=None: True)
    desktop = sources.parse_source("rtsp://cam.local/live").target
    assert "nvvidconv" not in desktop
    _write(fake_root / "etc/nv_tegra_release", "# R36 (release)\n")
    jetson = sources.parse_source("rtsp://cam.local/live").target
    assert "! decodebin ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR !" in jetson

