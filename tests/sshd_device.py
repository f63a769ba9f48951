"""A loopback "device" for the remote-target tests: a real OpenSSH sshd on 127.0.0.1 and a
separate virtual environment holding only the edge install (no TensorFlow).

Nothing of the system's SSH setup is touched: the server gets its own config, host key,
authorized key, PID file and log in a temp folder, listens on a free port of 127.0.0.1 and
is stopped by its PID; the client side is an ssh config file that the target passes as
`ssh -F`. The device venv's dependencies (`edge-deeplab[tflite,onnx,openvino,demo]`) are
cached under ~/.cache/edge-deeplab/devices/loopback-venv-<key of the dependency spec>; the project
itself, the code under test, is installed from the current tree once per test module into a
small venv layered over the cached one (non-editable, `--no-deps`), never into the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
SSHD = "/usr/sbin/sshd"
DEVICE_EXTRAS = "tflite,onnx,openvino,demo"
BUILD_TOOLS = ("setuptools>=77", "wheel")  # to install the tree each session without fetching them
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-deeplab" / "devices"


def _dependency_spec() -> str:
    """The device venv's requirements as text: its key in the cache."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in DEVICE_EXTRAS.split(","):
        lines += project["optional-dependencies"][extra]
    return f"python {sys.version_info[0]}.{sys.version_info[1]}\n" + "\n".join(sorted(lines) + list(BUILD_TOOLS))


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1800, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def device_venv() -> Path:
    """The cached device venv (built on first use), with the current tree installed: its python."""
    spec = _dependency_spec()
    folder = CACHE / f"loopback-venv-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
    python = folder / "bin" / "python"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(folder)
        _run([python, "-m", "pip", "install", "-q", f"{REPO}[{DEVICE_EXTRAS}]", *BUILD_TOOLS])
        (folder / "spec.txt").write_text(spec)
        (folder / ".complete").write_text("")
    return python


def install_tree(python: Path, scratch: Path) -> Path:
    """The device's python for this session: a small venv in `scratch` over the cached one (its
    packages reached through a .pth file) holding the current tree, non-editable, without its
    dependencies.

    The cached venv itself is never changed: sessions of other checkouts sharing the cache at
    the same time each run their own tree. A copy of the tree is built, so no build/ folder
    is left in the checkout."""
    copy = scratch / "tree"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "runs", "quickstart")
    shutil.copytree(REPO, copy, ignore=ignore)
    overlay = scratch / "venv"
    venv.EnvBuilder(with_pip=False).create(overlay)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([overlay / "bin" / "python", "-c", purelib]).stdout.strip())
    (site / "device-venv.pth").write_text(_run([python, "-c", purelib]).stdout.strip() + "\n")  # after `site`
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, copy])
    return overlay / "bin" / "python"


if __name__ == "__main__":  # build the cached venv ahead of a test run
    print(device_venv())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LoopbackSSHD:
    """An sshd on 127.0.0.1 with its own keys and config, and the client config to reach it."""

    folder: Path
    port: int = 0
    process: Optional[subprocess.Popen] = None

    @property
    def client_config(self) -> Path:
        return self.folder / "client_config"

    def setup(self) -> LoopbackSSHD:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.port = free_port()
        for name in ("host_key", "user_key", "other_host_key"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", self.folder / name])
        (self.folder / "authorized_keys").write_text((self.folder / "user_key.pub").read_text())
        os.chmod(self.folder / "authorized_keys", 0o600)
        self.trust(self.folder / "host_key.pub")
        (self.folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.folder / 'host_key'}\n"
            f"PidFile {self.folder / 'sshd.pid'}\nAuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nAllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n"
            "MaxSessions 50\nMaxStartups 50\n"
        )
        self.client_config.write_text(
            f"Host loopback-device\n  HostName 127.0.0.1\n  Port {self.port}\n  User {_user()}\n"
            f"  IdentityFile {self.folder / 'user_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.folder / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            "  IdentityAgent none\n"
        )
        return self

    def trust(self, host_pub: Path) -> None:
        """known_hosts of the client: this host key for [127.0.0.1]:port."""
        key = " ".join(host_pub.read_text().split()[:2])
        (self.folder / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {key}\n")

    def start(self) -> LoopbackSSHD:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation folder
        self.process = subprocess.Popen(
            [SSHD, "-D", "-f", self.folder / "sshd_config", "-E", self.folder / "sshd.log"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("sshd did not start listening in 20 s")

    def sessions(self) -> List[int]:
        """PIDs of the per-connection sshd processes below this server's PID: what a dropped
        network kills. The commands they run are left alone, as a real drop leaves them."""
        if self.process is None:
            return []
        return [pid for pid in _descendants(self.process.pid) if _command_name(pid).startswith("sshd")]

    def stop(self, drop_sessions: bool = True) -> None:
        """Stop the server by its PID and, with `drop_sessions`, its live connections too."""
        if self.process is None:
            return
        children = self.sessions() if drop_sessions else []
        self.process.terminate()
        self.process.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process = None


def _descendants(pid: int) -> List[int]:
    """Every process below `pid`, found through /proc's parent links."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
