"""The CPU features that decide int8 speed, and whether this process runs emulated.

Read from files, never from an engine: `/proc/cpuinfo` ("Features" on ARM, "flags" on x86)
and, on ARM, the HWCAP words the kernel hands every process in its auxiliary vector
(`/proc/self/auxv`), which is what XNNPACK, ONNX Runtime and OpenVINO consult through
`getauxval` when they pick their int8 kernels. Under qemu-user both are the emulated CPU's,
so the features are the ones the engines will see. The paths are module attributes so tests
can point them at fake files.
"""

from __future__ import annotations

import os
import platform
import struct
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

CPUINFO = Path("/proc/cpuinfo")
AUXV = Path("/proc/self/auxv")
# The architecture the kernel runs (Linux 6.1+). qemu-user fakes uname() for the guest but
# not this file, so an aarch64 process that reads "x86_64" here is emulated.
KERNEL_ARCH = Path("/proc/sys/kernel/arch")
# The per-thread view of the process image, which qemu-user does not rewrite (it rewrites
# /proc/self/exe and /proc/self/maps to show the guest's).
TASKS = Path("/proc/self/task")

AT_HWCAP, AT_HWCAP2 = 16, 26

# arch/arm64/include/uapi/asm/hwcap.h: bit -> the name /proc/cpuinfo's "Features" uses.
ARM64_HWCAP = {0: "fp", 1: "asimd", 9: "fphp", 10: "asimdhp", 12: "asimdrdm", 20: "asimddp", 22: "sve",
               23: "asimdfhm"}
ARM64_HWCAP2 = {1: "sve2", 9: "svei8mm", 13: "i8mm", 14: "bf16"}

# The features worth naming, per architecture, with what each buys an int8 or fp16 model.
INT8_FEATURES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "aarch64": (
        ("asimd", "NEON (Advanced SIMD): every ARM int8 kernel's baseline"),
        ("asimddp", "dot product SDOT/UDOT: about 2-4x int8 throughput over plain NEON"),
        ("i8mm", "int8 matrix multiply SMMLA: faster int8 GEMM again"),
        ("asimdhp", "fp16 arithmetic: fp16 inference at twice fp32's width"),
        ("fphp", "fp16 scalar arithmetic"),
        ("bf16", "bfloat16 dot products"),
        ("sve", "Scalable Vector Extension"),
        ("sve2", "SVE2"),
    ),
    "x86_64": (
        ("avx2", "AVX2: the baseline of fast int8 and fp32 kernels"),
        ("fma", "fused multiply-add"),
        ("avx512f", "AVX-512"),
        ("avx512_vnni", "AVX-512 VNNI: int8 dot products in one instruction"),
        ("avx_vnni", "AVX-VNNI: int8 dot products on 256-bit vectors"),
        ("avx512_bf16", "AVX-512 bfloat16"),
        ("amx_tile", "AMX tiles"),
        ("amx_int8", "AMX int8 matrix multiply"),
    ),
}
MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


def normalize_machine(name: str) -> str:
    """One spelling per architecture ("arm64" -> "aarch64", "AMD64" -> "x86_64")."""
    name = (name or "").strip().lower()
    return MACHINE_ALIASES.get(name, name)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpuinfo_fields(text: Optional[str] = None) -> Dict[str, str]:
    """The first value of each key of /proc/cpuinfo (one CPU's block is enough here)."""
    found: Dict[str, str] = {}
    for line in (_read(CPUINFO) if text is None else text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found.setdefault(key.strip(), value.strip())
    return found


def cpuinfo_flags(fields: Optional[Dict[str, str]] = None) -> Set[str]:
    """The feature words of /proc/cpuinfo: "Features" (ARM) or "flags" (x86)."""
    fields = cpuinfo_fields() if fields is None else fields
    return set((fields.get("Features") or fields.get("flags") or "").split())


def auxv_words(path: Optional[Path] = None) -> Dict[int, int]:
    """This process's auxiliary vector (type -> value), {} where it cannot be read."""
    try:
        data = (path or AUXV).read_bytes()
    except OSError:
        return {}
    word = struct.calcsize("P")
    fmt = "QQ" if word == 8 else "II"
    step = 2 * word
    words: Dict[int, int] = {}
    for offset in range(0, len(data) - step + 1, step):
        kind, value = struct.unpack_from(fmt, data, offset)
        if kind == 0:  # AT_NULL ends the vector
            break
        words.setdefault(kind, value)
    return words


def arm64_hwcap_features(words: Dict[int, int]) -> Set[str]:
    """The features named by the HWCAP and HWCAP2 words of an aarch64 auxiliary vector."""
    hwcap, hwcap2 = words.get(AT_HWCAP, 0), words.get(AT_HWCAP2, 0)
    found = {name for bit, name in ARM64_HWCAP.items() if hwcap >> bit & 1}
    return found | {name for bit, name in ARM64_HWCAP2.items() if hwcap2 >> bit & 1}


def isa_features(machine: Optional[str] = None) -> Dict[str, bool]:
    """{feature: present} for the features of `INT8_FEATURES` of this architecture ({}
    for another), from the HWCAP words on aarch64 (cpuinfo where they cannot be read) and
    from cpuinfo's flags on x86."""
    machine = normalize_machine(machine or platform.machine())
    names = [name for name, _ in INT8_FEATURES.get(machine, ())]
    if machine == "aarch64":
        have = arm64_hwcap_features(auxv_words()) or cpuinfo_flags()
    else:
        have = cpuinfo_flags()
    return {name: name in have for name in names}


def _thread_images() -> List[str]:
    """Where each thread's process image really is (not qemu-user's rewritten view)."""
    images = []
    try:
        tasks = sorted(TASKS.iterdir())
    except OSError:
        return images
    for task in tasks[:1]:  # every thread runs the same image
        try:
            images.append(os.readlink(task / "exe"))
        except OSError:
            pass
    return images


def emulation(machine: Optional[str] = None) -> Tuple[bool, List[str]]:
    """(emulated, evidence): whether this process runs under a user-mode emulator (qemu-user
    through binfmt_misc), and the lines that show it.

    Two independent signs, either enough: the kernel's own architecture (not faked by
    qemu-user) differs from the one this process was built for, or the image its threads
    run is a QEMU binary.
    """
    machine = normalize_machine(machine or platform.machine())
    evidence = []
    kernel = normalize_machine(_read(KERNEL_ARCH))
    if kernel and machine and kernel != machine:
        evidence.append(f"the kernel runs {kernel}, this process is {machine}")
    evidence += [f"the process image is {image}" for image in _thread_images() if "qemu" in image.lower()]
    return bool(evidence), evidence


# ARM Ltd.'s (implementer 0x41) "CPU part" numbers of the cores edge boards carry.
ARM_CORES = {
    0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72",
    0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD42: "Cortex-A78AE", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510",
    0xD47: "Cortex-A710", 0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4F: "Neoverse-V2", 0xD80: "Cortex-A520",
    0xD81: "Cortex-A720", 0xD82: "Cortex-X4",
}


def arm_core(fields: Optional[Dict[str, str]] = None) -> str:
    """The ARM core's name from cpuinfo's "CPU implementer"/"CPU part" ("Cortex-A76"), or ""."""
    fields = cpuinfo_fields() if fields is None else fields
    try:
        implementer = int(fields.get("CPU implementer", ""), 0)
        part = int(fields.get("CPU part", ""), 0)
    except ValueError:
        return ""
    if implementer != 0x41:
        return ""
    return ARM_CORES.get(part, f"ARM part {part:#x}")
