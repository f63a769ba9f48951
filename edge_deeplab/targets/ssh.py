"""The transport: the system's OpenSSH client, one shared connection per command.

Using `ssh` itself (not a Python SSH library) means ~/.ssh/config, agents, jump hosts and
known_hosts behave exactly as the user expects. Options that are always set, and why:

- `BatchMode=yes`: nothing ever prompts (no password, no "accept this host key?"); a
  missing key or an unknown host key is an error that says what to do.
- a ControlMaster started once (`-f -N`, ControlPersist) with its socket in a private 0700
  folder: every later call (probe, uploads, the run) reuses the one authenticated
  connection; `close()` ends it with `ssh -O exit`.
- ServerAliveInterval: a dropped connection is noticed in seconds, not hours.

Host-key checking is never weakened: StrictHostKeyChecking stays the user's own setting.
Remote commands get a stdin that is held open for their whole life: when this side dies or
gives up, the channel closes, the device side sees end-of-file and stops (see device_agent).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, List, Optional

from ..errors import EdgeDeeplabError
from .spec import Target

CONNECT_TIMEOUT_S = 15
PERSIST_S = 300  # the master outlives a crashed host process by at most this long


class TargetError(EdgeDeeplabError):
    """The device could not be reached, refused us, or failed; the message says what to do."""


class ConnectionLostError(TargetError):
    """The connection dropped while a command ran: nothing of that command was used."""


@dataclass(frozen=True)
class Completed:
    """What a remote command returned."""

    returncode: int
    stdout: bytes
    stderr: str


def explain(target: Target, returncode: int, stderr: str, connected: bool) -> Optional[TargetError]:
    """The one-line error for an ssh failure (None when the remote command itself failed).

    Args:
        returncode: ssh's exit status (255: ssh's own failure, else the remote command's).
        stderr: ssh's standard error.
        connected: whether a connection had already been made (a failure then is a drop).
    """
    text = stderr.lower()
    where = f"{target.destination}" + (f" port {target.port}" if target.port else "")
    if "no space left on device" in text:
        return TargetError(f"the disk of {target.name} is full (No space left on device): free space "
                           f"in its cache folder {target.cache} or point `cache` elsewhere")
    if returncode != 255:
        return None
    if "host key verification failed" in text or "remote host identification has changed" in text:
        port = f"-p {target.port} " if target.port else ""
        return TargetError(
            f"the host key of {target.host} is unknown or has changed (Host key verification failed): "
            f"check the device's key, then add it with `ssh-keyscan {port}{target.host} >> ~/.ssh/known_hosts` "
            "(or connect once with plain ssh); host-key checking is never turned off")
    if "permission denied" in text or "too many authentication failures" in text:
        return TargetError(f"{where} refused authentication (Permission denied): load your key into "
                           "ssh-agent or set IdentityFile for it in ~/.ssh/config (no password prompts here)")
    for pattern in ("connection refused", "no route to host", "could not resolve hostname",
                    "network is unreachable", "connection timed out", "operation timed out"):
        if pattern in text and not connected:
            return TargetError(f"cannot reach {where}: {_last_line(stderr)}")
    if connected:
        return ConnectionLostError(f"the connection to {target.name} dropped mid-run ({_last_line(stderr) or 'closed'})"
                                   ": nothing from that run was used")
    return TargetError(f"ssh to {where} failed: {_last_line(stderr) or f'exit status {returncode}'}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def remote_word(text: str) -> str:
    """`text` quoted for the device's POSIX shell; a leading `~/` still means its home."""
    if text == "~" or text.startswith("~/"):
        return '"$HOME"' + (shlex.quote(text[1:]) if len(text) > 1 else "")
    return shlex.quote(text)


class SSHSession:
    """One connection to a target, reused by every call; use as a context manager.

    Args:
        target: the device.
    """

    def __init__(self, target: Target):
        self.target = target
        self._folder: Optional[Path] = None
        self.connected = False

    def __enter__(self) -> SSHSession:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _base(self) -> List[str]:
        argv = ["ssh"]
        if self.target.ssh_config:
            argv += ["-F", self.target.ssh_config]
        options = [
            "BatchMode=yes", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "ServerAliveInterval=5",
            "ServerAliveCountMax=3", f"ControlPath={self._folder / 'control'}", *self.target.ssh_options,
        ]
        for option in options:
            argv += ["-o", option]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        return argv

    def open(self) -> None:
        """Authenticate once and leave a master connection for the later calls."""
        if shutil.which("ssh") is None:
            raise TargetError("no `ssh` client on this machine: install OpenSSH (e.g. apt install openssh-client)")
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        base = runtime if runtime and os.path.isdir(runtime) else None
        self._folder = Path(tempfile.mkdtemp(prefix="edge-ssh-", dir=base))  # 0700: mkdtemp's mode
        log = self._folder / "master.log"
        argv = self._base() + ["-o", "ControlMaster=yes", "-o", f"ControlPersist={PERSIST_S}", "-f", "-N",
                               "--", self.target.destination]
        with open(log, "wb") as stderr:
            status = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr).returncode
        if status != 0:
            text = log.read_text(errors="replace")
            self.close()
            raise explain(self.target, 255, text, False) or TargetError(f"ssh failed: {_last_line(text)}")
        self.connected = True

    def close(self) -> None:
        """End the master connection and remove the private folder."""
        if self._folder is None:
            return
        if self.connected:
            subprocess.run(self._base() + ["-O", "exit", "--", self.target.destination], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
            self.connected = False
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None

    def run(self, words: List[str], feed: Optional[Callable[[BinaryIO], None]] = None) -> Completed:
        """Run `words` (quoted one by one) on the device through the shared connection.

        Args:
            words: the remote command line; each word is quoted (see `remote_word`).
            feed: writes the command's stdin (e.g. a tar stream) then returns; without it,
                stdin stays open, unwritten, until the command ends, so the device side sees
                end-of-file exactly when this side goes away.

        Raises:
            TargetError / ConnectionLostError: ssh's own failures, one line each.
            KeyboardInterrupt: after the remote side was told to stop (its stdin closed).
        """
        if self._folder is None:
            raise RuntimeError("SSHSession.run before open()")
        argv = self._base() + ["-o", "ControlMaster=no", "--", self.target.destination,
                               " ".join(remote_word(w) for w in words)]
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            os.close(read_end)
        writer = os.fdopen(write_end, "wb")
        feeder = threading.Thread(target=_feed, args=(feed, writer), daemon=True) if feed else None
        try:
            if feeder:
                feeder.start()
            stdout, stderr = proc.communicate()
        except BaseException:  # Ctrl-C: closing our end tells the device to stop
            writer.close()
            proc.terminate()
            proc.wait(timeout=10)
            raise
        finally:
            if feeder:
                feeder.join(timeout=10)
            if not writer.closed:
                writer.close()
        text = stderr.decode(errors="replace")
        problem = explain(self.target, proc.returncode, text, self.connected)
        if problem is not None:
            raise problem
        return Completed(proc.returncode, stdout, text)


def _feed(feed: Callable[[BinaryIO], None], writer: BinaryIO) -> None:
    try:
        feed(writer)
    except (BrokenPipeError, ValueError, OSError):
        pass  # the remote side stopped reading; its exit status and stderr say why
    finally:
        try:
            writer.close()
        except OSError:
            pass
