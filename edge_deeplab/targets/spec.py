"""What a TARGET names: `ssh://[user@]host[:port]` or an entry of the targets file.

The targets file is TOML, by default `~/.config/edge-deeplab/targets.toml` (the environment
variable `EDGE_DEEPLAB_TARGETS` names another). One table per device; every key is optional
except `host`::

    [pi5]
    host = "192.168.1.40"              # or a Host alias of ~/.ssh/config
    user = "pi"
    port = 22
    python = "/home/pi/edge/bin/python"   # the device's python with edge-deeplab installed (default python3)
    cache = "~/.cache/edge_deeplab/uploads"  # where artifacts and data are cached on the device (default)
    ssh_config = "~/.ssh/config-lab"      # passed as `ssh -F` (default: ssh's own)
    ssh_options = ["ProxyJump=bastion"]   # more `ssh -o` options

Reading it needs `tomllib` (Python 3.11+) or, on older Pythons, the `tomli` package.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple
from urllib.parse import urlsplit

from ..errors import InvalidInputError

DEFAULT_PYTHON = "python3"
DEFAULT_CACHE = "~/.cache/edge_deeplab/uploads"  # beside the TensorRT engine cache: one root, as doctor reports
TARGETS_ENV = "EDGE_DEEPLAB_TARGETS"
KEYS = ("host", "user", "port", "python", "cache", "ssh_config", "ssh_options")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Target:
    """A device reached over SSH.

    Attributes:
        name: how the user named it (the targets file's table, or the ssh:// text).
        host: host name, address or ~/.ssh/config alias.
        user: login name (None: ssh's own choice). port: SSH port (None: ssh's own choice).
        python: the device's python that has edge-deeplab installed.
        cache: the cache folder on the device (`~` is the device user's home).
        ssh_config: a client config file passed as `ssh -F` (None: ~/.ssh/config as usual).
        ssh_options: extra `-o KEY=VALUE` options.
    """

    name: str
    host: str
    user: Optional[str] = None
    port: Optional[int] = None
    python: str = DEFAULT_PYTHON
    cache: str = DEFAULT_CACHE
    ssh_config: Optional[str] = None
    ssh_options: Tuple[str, ...] = ()

    def __post_init__(self):
        if not self.host or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise InvalidInputError(f"target {self.name}: bad host {self.host!r}")
        if self.user is not None and (not self.user or self.user.startswith("-")):
            raise InvalidInputError(f"target {self.name}: bad user {self.user!r}")
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise InvalidInputError(f"target {self.name}: port must be 1..65535, got {self.port!r}")
        for option in self.ssh_options:
            if not isinstance(option, str) or "=" not in option:
                raise InvalidInputError(f"target {self.name}: ssh_options entries are KEY=VALUE, got {option!r}")
        if _disables_host_keys(self.ssh_options):
            raise InvalidInputError(f"target {self.name}: host-key checking cannot be turned off "
                                    "(add the device's key to known_hosts instead)")

    @property
    def destination(self) -> str:
        """`user@host` or `host`, as ssh takes it."""
        return f"{self.user}@{self.host}" if self.user else self.host


def _disables_host_keys(options) -> bool:
    lowered = [o.replace(" ", "").lower() for o in options]
    return any(o in ("stricthostkeychecking=no", "stricthostkeychecking=off") or
               o.startswith("userknownhostsfile=/dev/null") for o in lowered)


def parse_target(text: str, targets_file: Optional[Path] = None) -> Target:
    """The Target that `text` names: an `ssh://` URL or a name of the targets file."""
    if text.startswith("ssh://"):
        return _from_url(text)
    if "://" in text:
        raise InvalidInputError(f"--target {text}: only ssh:// targets are supported")
    if not _NAME.match(text):
        raise InvalidInputError(f"--target {text}: not an ssh://[user@]host[:port] URL nor a target name")
    path = targets_file or targets_path()
    entries = load_targets_file(path)
    if text not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise InvalidInputError(f"--target {text}: no such target in {path} (known: {known}); "
                                "or give ssh://[user@]host[:port]")
    return entries[text]


def _from_url(text: str) -> Target:
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise InvalidInputError(f"--target {text}: {exc}") from exc
    if not url.hostname or url.path not in ("", "/") or url.query or url.password:
        raise InvalidInputError(f"--target {text}: expected ssh://[user@]host[:port]")
    return Target(name=text, host=url.hostname, user=url.username, port=port)


def targets_path() -> Path:
    """The targets file: $EDGE_DEEPLAB_TARGETS, else ~/.config/edge-deeplab/targets.toml."""
    if os.environ.get(TARGETS_ENV):
        return Path(os.environ[TARGETS_ENV]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "edge-deeplab" / "targets.toml"


def load_targets_file(path: Path) -> dict:
    """name -> Target for every table of the targets file (a missing file: no targets)."""
    path = Path(path)
    if not path.is_file():
        return {}
    toml = _toml_module()
    try:
        data = toml.loads(path.read_text(encoding="utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not valid TOML: {exc}") from exc
    return {name: _from_table(path, name, table) for name, table in data.items()}


def _from_table(path: Path, name: str, table) -> Target:
    if not isinstance(table, dict):
        raise InvalidInputError(f"{path}: [{name}] must be a table with host = ...")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise InvalidInputError(f"{path}: [{name}] has unknown keys {unknown} (known: {', '.join(KEYS)})")
    if "host" not in table:
        raise InvalidInputError(f"{path}: [{name}] has no host")
    options = table.get("ssh_options", [])
    if not isinstance(options, list):
        raise InvalidInputError(f"{path}: [{name}] ssh_options must be a list of \"KEY=VALUE\"")
    config = table.get("ssh_config")
    return Target(
        name=name, host=str(table["host"]), user=table.get("user"), port=table.get("port"),
        python=str(table.get("python", DEFAULT_PYTHON)), cache=str(table.get("cache", DEFAULT_CACHE)),
        ssh_config=str(Path(config).expanduser()) if config else None, ssh_options=tuple(options),
    )


def _toml_module():
    try:
        import tomllib
    except ImportError:  # Python 3.9/3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise InvalidInputError("reading the targets file needs Python 3.11+ or the tomli package "
                                    "(pip install tomli); or give the target as ssh://[user@]host[:port]") from exc
    return tomllib
