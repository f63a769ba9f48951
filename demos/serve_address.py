"""Where `demo --serve` listens, and the token that guards it off the loopback interface."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Optional

from edge_deeplab.errors import InvalidInputError

LOOPBACK = "127.0.0.1"
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{8,}")  # URL-safe as is, and not guessable in a few tries


@dataclass(frozen=True)
class ServeAddress:
    """host, port (0: any free port) and the access token (None: none needed, loopback only)."""

    host: str
    port: int
    token: Optional[str] = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

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
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


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
        token = secrets.token_urlsafe(18)
    return ServeAddress(host, port, token)


def _split(text: str):
    if text.startswith("["):  # [::1]:8080
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if ":" not in text:
        return LOOPBACK, text
    host, _, port = text.rpartition(":")
    return host or LOOPBACK, port
