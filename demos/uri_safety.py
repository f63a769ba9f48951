"""Camera URIs from users and files, made safe to print and to paste into a pipeline string.

A GStreamer pipeline is one string parsed by `gst_parse_launch`: an `rtsp://` URL pasted in
unquoted lets a `!` in it add elements of the URL's choosing, and a space in a password
breaks it. Here every value that goes into a pipeline is double-quoted, the credentials
travel in rtspsrc's own `user-id` / `user-pw` properties (not in the location), and the
characters no quoting passes safely (quotes, backslashes, control characters) are refused
with one line. `redact_uri` is what every message, stats file and served page shows.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from edge_deeplab.errors import SourceError

# Inside gst_parse_launch's double quotes a quote or backslash would end or escape the
# value, and control characters (a newline included) have no business in a URL.
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')
_UNSAFE_LOCATION = re.compile(r'["\\\s\x00-\x1f\x7f]')  # a URL holds no raw whitespace


def redact_uri(uri: str) -> str:
    """`rtsp://user:secret@cam/x` -> `rtsp://user:***@cam/x`; other text unchanged."""
    text = str(uri)
    try:
        parts = urlsplit(text)
    except ValueError:  # an unbalanced [ in a host: show nothing of what may be a password
        return "<unparsable URI>"
    if not parts.scheme or "@" not in parts.netloc:
        return text
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"))


def quoted(value: str, what: str, uri: str) -> str:
    """`value` double-quoted for a pipeline string; refused when it holds what cannot be."""
    if _UNSAFE.search(value):
        raise SourceError(
            f"{redact_uri(uri)}: the {what} holds a quote, backslash or control character, which "
            "cannot be passed to a GStreamer pipeline safely"
        )
    return f'"{value}"'


def check_characters(text: str, uri: str) -> None:
    """Refuse control characters anywhere in a URI (urlsplit drops some, FFmpeg and
    GStreamer would take others), and quotes and backslashes, which no quoting passes."""
    if _UNSAFE.search(text):
        raise SourceError(
            f"{redact_uri(uri)!r}: the URI holds a control character, quote or backslash; refused"
        )


def split_credentials(url: str, uri: str):
    """(location without user:password, user or None, password or None), percent-decoded,
    with the location checked safe for a pipeline."""
    check_characters(url, uri)
    parts = urlsplit(url)
    user = password = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        user, password = unquote(user), unquote(password) if password else None
    location = urlunsplit(parts._replace(netloc=netloc))
    if _UNSAFE_LOCATION.search(location):
        raise SourceError(
            f"{redact_uri(uri)}: the URL holds a space, quote, backslash or control character; "
            "percent-encode it (a space is %20)"
        )
    return location, user, password


def check_plain_url(url: str, uri: str) -> str:
    """A URL handed to FFmpeg as it is: no control characters or whitespace."""
    if _UNSAFE_LOCATION.search(url):
        raise SourceError(
            f"{redact_uri(uri)}: the URL holds a space, quote, backslash or control character; "
            "percent-encode it (a space is %20)"
        )
    return url
