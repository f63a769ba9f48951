"""An emulated aarch64 device for the tests: a Debian 12 arm64 userland run through qemu-user.

What it is, from the bottom up (each layer cached under `CACHE`, keyed by what it holds):
- a root filesystem made with `mmdebstrap --variant=extract` (about 10 s: no maintainer
  script runs, so the little they would do, users and ld.so's cache, is done here by hand),
  set up and packed as a tarball;
- the edge install's aarch64 wheels (ai-edge-litert, onnxruntime, openvino, OpenCV, numpy),
  installed FROM THE HOST with pip's cross-platform options (natively, in seconds, where
  pip inside the emulator would take minutes), in two sets: numpy 2 with the host's OpenCV
  release, and numpy 1.26 (which pulls an OpenCV 4);
- this tree's edge-deeplab, installed fresh each session (it is the code under test).

The device runs sshd on 127.0.0.1 inside the chroot (emulated, like everything there) with
a host key and a user key made for the session; the client config it writes checks the host
key (`StrictHostKeyChecking yes`, the key in its own known_hosts). `/proc` and a read-only
`/sys` are mounted inside for the engines' CPU probes and unmounted at `stop()`.

Needs root, `mmdebstrap`, QEMU 10's qemu-user (Debian 12's QEMU 7.2 crashes inside LiteRT)
registered with binfmt_misc, and OpenSSH: `tests/devices/install_host_packages.sh` installs
them. `unavailable_reason()` says what is missing, for the tests to skip with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGE_DEEPLAB_DEVICE_CACHE", Path.home() / ".cache" / "edge-deeplab" / "devices"))
HOST_ALIAS = "arm64-device"
USER, UID = "edge", 1000
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# Essential packages are not pulled in as dependencies: name the shell, coreutils, users and ldconfig.
PACKAGES = ("base-files", "base-passwd", "dash", "coreutils", "libc-bin", "python3", "openssh-server", "libgomp1",
            "libstdc++6")
QEMU_HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
PYTHON_VERSION = "3.11"  # Debian 12's python3
# Debian 12 has glibc 2.36: every manylinux tag up to it (pip does not expand them itself).
PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)))
ENGINES = ("ai-edge-litert==2.3.0", "onnxruntime==1.31.1", "openvino==2026.4.1")
WHEEL_SETS: Dict[str, Tuple[str, ...]] = {
    # numpy 2 with the OpenCV release of the host's `demo` extra, so only the CPU differs.
    "numpy2": (*ENGINES, "numpy>=2", "opencv-python-headless==5.0.0.93"),
    # numpy 1.26 (old boards, JetPack-style images): pip picks the OpenCV that supports it.
    "numpy1": (*ENGINES, "numpy==1.26.4", "opencv-python-headless"),
}
VENVS = "/opt/edge/venv-"  # + a WHEEL_SETS key: one Python environment per wheel set (inside the chroot)
SITES = "/opt/edge/site-"  # + the key: that set's cached wheels, on its venv's path through a .pth file
PROJECT = "/opt/edge/project"  # this tree, installed each session
SHARED = "/srv/shared"  # a folder the tests copy files into (the device sees it here)
ROOTFS_RECIPE = 2  # bump when `_setup_root` changes: the cached tarball is keyed by it
RUNNING = CACHE / "running"  # one note per started device, for `_reap_stale`


def run(cmd, *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a host command; a failure raises with its output (the build's steps must all work)."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} failed ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def _qemu_major() -> int:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "qemu-user-static"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    version = out.split(":", 1)[-1]
    return int(version.split(".")[0]) if version[:1].isdigit() else 0


def unavailable_reason() -> str:
    """Why the device cannot be built here ("" when it can)."""
    if os.geteuid() != 0:
        return "the emulated aarch64 device needs root (chroot, mounts)"
    missing = [tool for tool in ("mmdebstrap", "ssh", "ssh-keygen", "chroot", "mount") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}: run tests/devices/install_host_packages.sh"
    if _qemu_major() < 10:
        return "needs qemu-user-static >= 10 (bookworm-backports): run tests/devices/install_host_packages.sh"
    if not QEMU_HANDLER.is_file() or "enabled" not in QEMU_HANDLER.read_text():
        return "no qemu-aarch64 handler in binfmt_misc: run tests/devices/install_host_packages.sh"
    return ""


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _atomic_dir(final: Path, build) -> Path:
    """`build(tmp)` fills a temporary folder beside `final`, which then becomes `final`."""
    if final.is_dir():
        return final
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    tmp.rename(final)
    return final


# -- the root filesystem ------------------------------------------------------------------------
def _setup_root(root: Path) -> None:
    """What the skipped maintainer scripts would do, and the device's own venv."""
    shared = root / "usr/share/base-passwd"
    passwd = (shared / "passwd.master").read_text() + f"{USER}:x:{UID}:{UID}::/home/{USER}:/bin/sh\n"
    passwd += "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
    (root / "etc/passwd").write_text(passwd)
    (root / "etc/group").write_text((shared / "group.master").read_text() + f"{USER}:x:{UID}:\n")
    home = root / "home" / USER
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, UID, UID)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)
    (root / "opt/edge").mkdir(parents=True, exist_ok=True)
    run(["chroot", root, "/sbin/ldconfig"])
    for name in WHEEL_SETS:
        _make_venv(root, name)


def _make_venv(root: Path, name: str) -> None:
    """A venv without pip (no python3-venv needed) whose path holds the project and the wheel set."""
    venv = VENVS + name
    run(["chroot", root, "/usr/bin/python3", "-m", "venv", "--without-pip", venv], timeout=300)
    site = root / venv.lstrip("/") / "lib" / f"python{PYTHON_VERSION}" / "site-packages"
    (site / "edge-deeplab-device.pth").write_text(f"{PROJECT}\n{SITES}{name}\n")
    script = root / venv.lstrip("/") / "bin" / "edge-deeplab"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom edge_deeplab.cli.main import main\nsys.exit(main())\n")
    script.chmod(0o755)


def rootfs_tarball() -> Path:
    """The set-up arm64 root filesystem as a cached tarball (built on first use)."""
    recipe = (ROOTFS_RECIPE, SUITE, MIRROR, PACKAGES, sorted(WHEEL_SETS), VENVS, SITES, PROJECT, USER, UID)
    tarball = CACHE / f"arm64-rootfs-{_key(*recipe)}.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"rootfs-build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw.tar"
    work.mkdir()
    try:
        run(["mmdebstrap", "--quiet", "--variant=extract", "--architectures=arm64",
             f"--include={','.join(PACKAGES)}", SUITE, raw, MIRROR], timeout=900)
        root = work / "root"
        root.mkdir()
        run(["tar", "-xpf", raw, "-C", root])
        _setup_root(root)
        run(["tar", "-cpf", work / "root.tar", "-C", root, "."])
        os.replace(work / "root.tar", tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


# -- the wheels and the project -----------------------------------------------------------------
def wheel_dir(name: str = "numpy2") -> Path:
    """The aarch64 wheels of `WHEEL_SETS[name]`, installed into a cached folder from the host."""
    requirements = WHEEL_SETS[name]
    final = CACHE / f"wheels-{name}-{_key(requirements, PLATFORMS, PYTHON_VERSION, 'compiled')}"

    def build(tmp: Path) -> None:
        platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
        # Compiled here (the .pyc of CPython 3.11 is the same on every platform) so the device
        # does not compile them under emulation each session.
        run([shutil.which("python3") or "python3", "-m", "pip", "install", "-q", "--target", tmp,
             *platforms, "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi",
             f"cp{PYTHON_VERSION.replace('.', '')}", "--only-binary=:all:", *requirements], timeout=1800)

    return _atomic_dir(final, build)


def install_project(dest: Path, tmp: Path) -> None:
    """This tree (tracked and untracked, not ignored files) installed into `dest` with pip,
    built from a copy so the build leaves nothing in the tree."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO).stdout.split("\0")
    copy = tmp / "tree"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    run([shutil.which("python3") or "python3", "-m", "pip", "install", "-q", "--no-deps",
         "--target", dest, copy], timeout=600)


# -- the running device -------------------------------------------------------------------------
@dataclass(frozen=True)
class Device:
    """A running emulated aarch64 device.

    root: its root folder on the host. port: its sshd's port on 127.0.0.1.
    ssh_config: a client config file: `ssh -F ssh_config arm64-device CMD`.
    python: the device's Python with the edge install of numpy 2 (a path inside the device).
    pythons: {wheel set: its Python} for every `WHEEL_SETS` key (numpy 1.26 and OpenCV 4 in "numpy1").
    shared: a folder of the host that the device sees at `SHARED`.
    pid: sshd's PID (a host PID).
    """

    root: Path
    port: int
    ssh_config: Path
    python: str
    pythons: Dict[str, str]
    shared: Path
    pid: int
    host: str = HOST_ALIAS

    def inside(self, host_path: Path) -> str:
        """The device's path of a file under `root`."""
        return "/" + str(Path(host_path).resolve().relative_to(self.root.resolve()))

    def ssh(self, command: str, *, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run a shell command line on the device through its sshd (not checked)."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), self.host, command], capture_output=True,
                              text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keys(root: Path, client: Path) -> Tuple[Path, str]:
    """A session's host key (inside the device) and user key (on the host)."""
    host_key = root / "etc/ssh/edge_host_ed25519_key"
    for key in (host_key, client / "id_ed25519"):
        key.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-deeplab-test", "-f", key])
    authorized = root / "etc/ssh/edge_authorized_keys"
    authorized.write_text((client / "id_ed25519.pub").read_text())
    authorized.chmod(0o644)
    return client / "id_ed25519", host_key.with_suffix(".pub").read_text().split()[:2]


def _write_configs(root: Path, client: Path, port: int) -> Path:
    identity, (kind, blob) = _keys(root, client)
    (root / "etc/ssh/edge_sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey /etc/ssh/edge_host_ed25519_key\n"
        "PidFile /run/edge_sshd.pid\nAuthorizedKeysFile /etc/ssh/edge_authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\n"
        f"AllowUsers {USER}\nSubsystem sftp /usr/lib/openssh/sftp-server\n")
    known = client / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {kind} {blob}\n")
    config = client / "ssh_config"
    config.write_text(
        f"Host {HOST_ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {USER}\n  IdentityFile {identity}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 60\n"
        f"  ControlMaster auto\n  ControlPath {client}/cm-%C\n  ControlPersist 120\n")
    return config


def _mount(root: Path) -> None:
    run(["mount", "-t", "proc", "proc", root / "proc"])
    run(["mount", "-t", "sysfs", "-o", "ro", "sysfs", root / "sys"])


def _unmount(root: Path) -> None:
    for point in ("sys", "proc"):
        if os.path.ismount(root / point):
            subprocess.run(["umount", "-l", str(root / point)], capture_output=True, timeout=60, check=False)


def _hardlink_tree(source: Path, dest: Path) -> None:
    """A copy of `source` at `dest` made of hard links (same file system), else a plain copy."""
    try:
        run(["cp", "-al", source, dest])
    except RuntimeError:
        shutil.copytree(source, dest, symlinks=True)


def start(workdir: Path) -> Device:
    """Build (or unpack from the cache) the device in `workdir` and start its sshd.

    Raises RuntimeError when a step fails (its output in the message); call `stop(workdir)` after,
    also when it failed.
    """
    _reap_stale()
    _record(workdir)
    root, client = workdir / "root", workdir / "client"
    client.mkdir(parents=True)
    client.chmod(0o700)
    root.mkdir()
    run(["tar", "-xpf", rootfs_tarball(), "-C", root])
    for name in WHEEL_SETS:
        _hardlink_tree(wheel_dir(name), root / (SITES + name).lstrip("/"))
    install_project(root / PROJECT.lstrip("/"), workdir)
    shared = root / SHARED.lstrip("/")
    shared.mkdir(parents=True)
    shared.chmod(0o1777)
    port = _free_port()
    config = _write_configs(root, client, port)
    _mount(root)
    run(["chroot", root, "/usr/sbin/sshd", "-f", "/etc/ssh/edge_sshd_config", "-E", "/var/log/edge_sshd.log"],
        timeout=120)
    pid = _daemon_pid(root / "run/edge_sshd.pid")
    pythons = {name: f"{VENVS}{name}/bin/python" for name in WHEEL_SETS}
    device = Device(root=root, port=port, ssh_config=config, python=pythons["numpy2"], pythons=pythons,
                    shared=shared, pid=pid)
    _wait_ready(device)
    return device


def _record(workdir: Path) -> None:
    """Note the running device, so a session killed before its teardown is cleaned up by the next."""
    RUNNING.mkdir(parents=True, exist_ok=True)
    (RUNNING / f"{_key(str(workdir))}.json").write_text(json.dumps({"workdir": str(workdir), "owner": os.getpid()}))


def _reap_stale() -> None:
    """Stop the devices of sessions that died without stopping them (sshd left running, /proc mounted)."""
    for note in RUNNING.glob("*.json") if RUNNING.is_dir() else ():
        record = json.loads(note.read_text())
        try:
            os.kill(record["owner"], 0)
            continue  # its session is alive
        except ProcessLookupError:
            stop(Path(record["workdir"]))
        except PermissionError:
            continue


def _daemon_pid(pid_file: Path, seconds: float = 60) -> int:
    """The PID a daemon writes after it forks (a moment after its parent has exited)."""
    deadline = time.monotonic() + seconds
    while not pid_file.is_file() or not pid_file.read_text().strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd wrote no {pid_file.name} in {seconds:.0f} s")
        time.sleep(0.2)
    return int(pid_file.read_text().split()[0])


def _wait_ready(device: Device, seconds: float = 120) -> None:
    """Wait for the emulated sshd to let the session's key in."""
    deadline = time.monotonic() + seconds
    while True:
        result = device.ssh("true", timeout=seconds)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            log = (device.root / "var/log/edge_sshd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the device's sshd did not let us in: {result.stderr.strip()}\n{log}")
        time.sleep(1)


def stop(workdir: Path) -> None:
    """Stop the device started in `workdir`, even half-started: the client's shared
    connection, sshd (by the PID it wrote), then the mounts."""
    config = workdir / "client" / "ssh_config"
    if config.is_file():
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", HOST_ALIAS], capture_output=True, timeout=30,
                       check=False)
    pid_file = workdir / "root" / "run" / "edge_sshd.pid"
    if pid_file.is_file() and pid_file.read_text().strip():
        try:
            os.kill(int(pid_file.read_text().split()[0]), 15)
        except ProcessLookupError:
            pass
    _unmount(workdir / "root")
    (RUNNING / f"{_key(str(workdir))}.json").unlink(missing_ok=True)

