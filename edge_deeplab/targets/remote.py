"""Running an edge-deeplab subcommand on a device and bringing its JSON back.

    with Device(parse_target("pi5")) as device:
        model, = device.upload([artifact_bundle("model_int8.tflite")])   # skipped when cached
        answer = device.run("verify", [ref, "--json", JSON_OUT])
        answer.result  # the device's `verify --json` output

`Device` opens one SSH connection, checks that the device's edge-deeplab is this version
(else one line with the install line), uploads what its cache lacks and runs the command
through the device agent (`device_agent.py`). Any subcommand that writes `--json FILE`
works this way (e.g. `doctor`: `run_subcommand(target, "doctor", ["--json", JSON_OUT])`;
`Device(target, check_version=False).info` is the probe alone: the device's Python, its
edge-deeplab version or import error, and its machine description).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Union

from .. import __version__
from .cache import Bundle, write_tar
from .spec import Target, parse_target
from .ssh import SSHSession, TargetError

JSON_OUT = {"out": "json"}  # in a command's arguments: the file the device writes its JSON to
_log = logging.getLogger(__name__)  # progress: uploads, downloads


def built(name: str) -> dict:
    """In a command's arguments: `<cache>/built/NAME` on the device, a file the command leaves
    there for `Device.download` (a plain file name)."""
    return {"built": name}
AGENT_SOURCE = (Path(__file__).with_name("device_agent.py")).read_text(encoding="utf-8")


def install_line(version: str = __version__) -> str:
    return f'pip install "edge-deeplab[tflite]=={version}" (or [onnx], [openvino]: the engines you ship)'


@dataclass
class RemoteResult:
    """A subcommand's outcome on the device: its exit status, output and JSON (None if none)."""

    returncode: int
    stdout: str
    stderr: str
    result: object = None


@dataclass
class UploadStats:
    """What the uploads of one session copied (the content cache skips the rest)."""

    uploaded: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    cached: int = 0
    names: List[str] = field(default_factory=list)


class Device:
    """A target opened for work: connection, version check, content cache, runs.

    Args:
        target: a Target or the --target text.
        check_version: refuse a device whose edge-deeplab is missing or another version
            (False for a command that reports exactly that, e.g. a doctor: `info` then
            holds "edge_deeplab" (None when missing) and "import_error").
    """

    def __init__(self, target: Union[Target, str], check_version: bool = True):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.check_version = check_version
        self.session = SSHSession(self.target)
        self.info: dict = {}
        self.stats = UploadStats()

    def __enter__(self) -> Device:
        self.session.open()
        try:
            self.info = self._probe([])
            if self.check_version:
                self._check_version()
        except BaseException:
            self.session.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    @property
    def name(self) -> str:
        return self.target.name

    def describe(self) -> dict:
        """The device for a report's machine section: its own description and the target."""
        machine = dict(self.info.get("machine") or {})
        return {"target": self.name, "host": self.target.host, **machine}

    def _agent(self, request: dict, feed=None):
        request = {"cache": self.target.cache, **request}
        words = [self.target.python, "-c", AGENT_SOURCE, json.dumps(request)]
        done = self.session.run(words, feed=feed)
        if done.returncode == 127 or (done.returncode != 0 and "not found" in done.stderr and not done.stdout):
            raise TargetError(f"{self.name}: no {self.target.python} there: install Python 3 and edge-deeplab "
                              f"({install_line()}) or set `python` for the target")
        if done.returncode != 0:
            raise TargetError(f"{self.name}: {_last(done.stderr) or f'device agent exit status {done.returncode}'}")
        try:
            return json.loads(done.stdout.decode())
        except ValueError as exc:
            raise TargetError(f"{self.name}: the device's answer was not JSON ({_last(done.stderr)})") from exc

    def _probe(self, want: List[str]) -> dict:
        return self._agent({"mode": "probe", "want": want})

    def _check_version(self) -> None:
        remote = self.info.get("edge_deeplab")
        if remote is None:
            raise TargetError(f"edge-deeplab is not installed for {self.target.python} on {self.name} "
                              f"({self.info.get('import_error', 'not importable')}): there, {install_line()}")
        if remote != __version__:
            raise TargetError(f"{self.name} has edge-deeplab {remote}, this machine {__version__}: "
                              f"on the device, {install_line()}")

    def upload(self, bundles: Iterable[Bundle]) -> None:
        """Copy the bundles the device's cache lacks (one probe says which)."""
        wanted = {b.key: b for b in bundles}
        have = set(self._probe(list(wanted)).get("have", []))
        sent = [bundle for key, bundle in wanted.items() if key not in have]
        if sent:  # one call, one tar stream, whatever the number of bundles
            self._agent({"mode": "receive", "keys": [b.key for b in sent]},
                        feed=functools.partial(write_tar, sent))
        self.stats.uploaded += len(sent)
        self.stats.uploaded_files += sum(len(b.files) for b in sent)
        self.stats.uploaded_bytes += sum(b.size for b in sent)
        self.stats.names += [b.files[0][0] for b in sent]
        self.stats.cached += len(wanted) - len(sent)
        size = sum(b.size for b in sent) / 2**20
        _log.info(f"{self.name}: uploaded {len(sent)} of {len(wanted)} (files: {sum(len(b.files) for b in sent)}, "
                  f"{size:.2f} MiB); {len(wanted) - len(sent)} already in the device's cache")

    def download(self, name: str, dest: Path, size: int, sha256: str) -> Path:
        """Bring back `<cache>/built/NAME` (see `built`) to `dest`, written atomically.

        Args:
            size, sha256: what the command that built it reported: the device refuses to send
                more than `size` bytes, and anything else than exactly this file is refused here.

        Raises:
            TargetError: the file is missing there, or what came back is not that file.
        """
        request = {"cache": self.target.cache, "mode": "send", "built": name, "max_bytes": int(size)}
        done = self.session.run([self.target.python, "-c", AGENT_SOURCE, json.dumps(request)])
        if done.returncode != 0:
            raise TargetError(f"{self.name}: cannot send {name}: {_last(done.stderr) or done.returncode}")
        data = done.stdout
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise TargetError(f"{self.name}: {name} came back as {len(data)} bytes, not the {size} bytes built "
                              "there (or with other content): nothing was written")
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        _log.info(f"{self.name}: brought back {name} ({size / 2**20:.2f} MiB)")
        return dest

    def run(self, command: str, args: List[Union[str, dict]]) -> RemoteResult:
        """Run `edge-deeplab COMMAND ARGS` on the device (cache refs and JSON_OUT filled in there).

        Raises:
            TargetError: the command failed with a user error on the device (its one line).
        """
        answer = self._agent({"mode": "run", "command": [command, *args]})
        result = RemoteResult(answer["returncode"], answer["stdout"], answer["stderr"], answer.get("result"))
        if result.returncode == 2 or (result.returncode != 0 and result.result is None):
            raise TargetError(f"on {self.name}: {_device_error(result.stderr, command) or f'exit {result.returncode}'}")
        return result


def _last(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _device_error(stderr: str, command: str) -> str:
    """The device's one-line error, without its `edge-deeplab CMD: error:` prefix."""
    prefix = f"edge-deeplab {command}: error: "
    for line in reversed(stderr.splitlines()):
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return _last(stderr)


def run_subcommand(target: Union[Target, str], command: str, args: List[Union[str, dict]],
                   bundles: Optional[Iterable[Bundle]] = None) -> RemoteResult:
    """Open the target, upload `bundles`, run one subcommand; the JSON is `.result`.

    Example (a command with `--json FILE`): `run_subcommand("pi5", "doctor", ["--json", JSON_OUT]).result`.
    """
    with Device(target) as device:
        if bundles:
            device.upload(bundles)
        return device.run(command, args)
