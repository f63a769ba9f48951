"""Where `demo --serve` listens, and the token that guards it off the loopback interface."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edge_deeplab.errors import InvalidInputError

LOOPBACK = "127.0.0.1"
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{8,}")  # URL-safe as is, and not guessable in a few tries
# The token off the command line, where `ps` shows it to every user of the machine.
TOKEN_ENV = "EDGE_DEEPLAB_SERVE_TOKEN"
MAX_TOKEN_FILE_BYTES = 4096


@dataclass(frozen=True)
class ServeAddress:
    """host, port (0: any free port) and the access token (None: none needed, loopback only)."""

    host: str
    port: int
    token: Optional[str] = None
    generated: bool = False  # the token was made here (the user learns it only from us)

    def url(self, port: Optional[int] = None) -> str:
        """The page's URL for a browser, token included."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "<this-machine's-address>"
        elif ":" in host:
            host = f"[{host}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port if port is None else port}/{query}"


def is_loopback(host: str) -> bool:
    """localhost, any of 127.0.0.0/8, ::1, and 127.x written as an IPv4-mapped IPv6 address."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: it may resolve to any interface
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def read_token(given: Optional[str] = None, token_file: Optional[str] = None) -> Optional[str]:
    """The access token from --token, else --token-file, else $EDGE_DEEPLAB_SERVE_TOKEN."""
    if given is not None:
        return given
    if token_file is not None:
        try:
            with open(token_file, "rb") as handle:
                data = handle.read(MAX_TOKEN_FILE_BYTES)
            return data.decode("ascii").strip()
        except OSError as exc:
            raise InvalidInputError(f"--token-file {token_file}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise InvalidInputError(f"--token-file {token_file}: not a token (letters, digits, . _ ~ -)") from None
    return os.environ.get(TOKEN_ENV) or None


def announce(address: ServeAddress, port: int, tty: bool) -> str:
    """The line the demo prints: the URL with its token only on a terminal. A log file or
    journal keeps what it is given, so elsewhere a generated token goes to a file only the
    user can read, and a token the user gave is not repeated."""
    url = address.url(port)
    if address.token is None or tty:
        return f"serving the demo at {url}"
    bare = ServeAddress(address.host, address.port).url(port)
    if not address.generated:
        return f"serving the demo at {bare} (add ?token= with the token you gave)"
    saved = save_token(address.token)
    return f"serving the demo at {bare} (add ?token= with the token in {saved})"


def save_token(token: str) -> Path:
    """Write a generated token where only this user can read it (mode 0600)."""
    path = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache" / "edge-deeplab") / "serve-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file may have had another mode
        handle.write(token + "\n")
    return path


def parse_serve(text: str, token: Optional[str] = None) -> ServeAddress:
    """'8080', ':8080', 'HOST:8080' or '[IPv6]:8080' -> ServeAddress.

    Only 127.0.0.1 is used unless a host is given; any other host needs a token, generated
    here when none is given (the demo prints it in the URL).
    """
    host, port_text = _split(text.strip())
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise InvalidInputError(f"--serve {text!r}: expected [HOST:]PORT with a port in 0..65535")
    if token is not None and not _TOKEN.fullmatch(token):
        raise InvalidInputError("--token must be 8 or more letters, digits or . _ ~ -")
    if token is None and not is_loopback(host):
        return ServeAddress(host, port, secrets.token_urlsafe(18), generated=True)
    return ServeAddress(host, port, token)


def _split(text: str):
    if text.startswith("["):  # [::1]:8080
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if ":" not in text:
        return LOOPBACK, text
    host, _, port = text.rpartition(":")
    return host or LOOPBACK, port
