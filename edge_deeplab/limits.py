"""What a file or a request may cost, decided once: the limits against hostile input.

An edge box reads model files, image folders and camera URLs made by other people and serves
a stream on a network. Each limit below bounds what one such input can make the process
allocate or wait for, with the reason beside it. The ones a legitimate input can exceed (a
huge panorama) are read from an environment variable when checked, and the error that
refuses an input says which variable raises the limit:

    EDGE_DEEPLAB_MAX_IMAGE_PIXELS=200000000 edge-deeplab predict model.tflite pano.png

Standard library only: the edge install (no TensorFlow) checks these on every read.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Type

from .errors import EdgeDeeplabError, InvalidInputError


@dataclass(frozen=True)
class Limit:
    """A bound with a default, the environment variable that overrides it, and its unit."""

    default: int
    env: str
    unit: str = "bytes"

    @property
    def value(self) -> int:
        """The limit in force: the environment's, else the default."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise InvalidInputError(f"{self.env}={text!r}: expected a positive whole number")
        return value

    def message(self, what: str, amount: int) -> str:
        """'WHAT is AMOUNT, over the limit of N UNIT; if it is legitimate, set ENV=...'."""
        return (f"{what} is {_human(amount, self.unit)}, over the limit of {_human(self.value, self.unit)}; "
                f"if the file is legitimate, raise the limit with the environment variable {self.env}="
                f"{amount}")

    def check(self, what: str, amount: int, error: Type[EdgeDeeplabError] = InvalidInputError) -> None:
        """Raise `error` (one line, naming the override) when `amount` is over the limit."""
        if amount > self.value:
            raise error(self.message(what, amount))


def _human(amount: int, unit: str) -> str:
    if unit == "bytes":
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if amount >= size:
                return f"{amount / size:.1f} {name}"
        return f"{amount} bytes"
    if unit == "pixels" and amount >= 1_000_000:
        return f"{amount / 1e6:.1f} megapixels"
    return f"{amount} {unit}"


# --- images (predict, datasets, bench --image, demo --background, folder sources) ---------
# 64 megapixels (8192 x 8192) holds every camera photo but the 100+ MP sensors; decoded it is
# 192 MB as BGR, and the RGB copy and the resize for the model make about three times that,
# which an 8 GB edge box affords. A 0.4 MB PNG can declare 12000 x 12000 (a 432 MB decode,
# gigabytes once converted): the header is checked before anything is decoded.
MAX_IMAGE_PIXELS = Limit(64_000_000, "EDGE_DEEPLAB_MAX_IMAGE_PIXELS", "pixels")
# An uncompressed 64 MP BMP is 192 MB; no image file we can decode needs more bytes.
MAX_IMAGE_BYTES = Limit(256 << 20, "EDGE_DEEPLAB_MAX_IMAGE_BYTES")

# --- metadata embedded in artifacts (TFLite associated files, ONNX props, sidecar JSON) ---
# Ours is about 40 KB with the self-test (selftest.INPUTS thumbnails of 96 pixels a side);
# 8 MiB leaves room for long label lists and provenance, and bounds a zip bomb in a .tflite.
MAX_METADATA_BYTES = Limit(8 << 20, "EDGE_DEEPLAB_MAX_METADATA_BYTES")
# A self-test array (zlib in base64) is decompressed no further than the bytes of its declared
# shape, itself at most a 96-pixel thumbnail (27 KB): `selftest._unpack` through
# `bounded_decompress` below.

# --- model inputs (metadata `input_size`, `synthetic?size=` of the demo sources) -----------
# A side past 8192 pixels is a mistake or an attack: one float32 8192 x 8192 x 3 input is
# 800 MB before the network's activations (tens of times more) are allocated.
MAX_INPUT_SIDE = Limit(8192, "EDGE_DEEPLAB_MAX_INPUT_SIDE", "pixels a side")

# --- the stream server (demo --serve) -----------------------------------------------------
# Viewers served at once: each costs a thread and one JPEG in flight; a handful of browsers
# is the use, so past this the rest get "503 busy" at once, before a thread is started.
MAX_CONNECTIONS = Limit(16, "EDGE_DEEPLAB_MAX_CONNECTIONS", "connections")
# The whole request head (request line and headers) must arrive within this many seconds:
# a per-read timeout lets a client trickle one byte at a time and hold a thread forever.
REQUEST_HEAD_SECONDS = 5.0
# A request head past this is not a browser's GET (Chrome's are under 2 KB).
MAX_REQUEST_HEAD_BYTES = 16 << 10


def bounded_decompress(data: bytes, limit: int, what: str, error: Type[EdgeDeeplabError] = InvalidInputError) -> bytes:
    """zlib-decompress `data`, refusing (one `error` line naming `what`) past `limit` bytes.

    Never holds more than `limit` + 1 decompressed bytes, whatever the input declares or
    claims: the self-test's stored arrays go through here.
    """
    inflater = zlib.decompressobj()
    try:
        # With room left in max_length zlib has consumed all the input and written all it
        # can, so a shorter output is the whole stream (or a truncated one: `eof` tells).
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise error(f"{what} is damaged (zlib: {exc})") from None
    if len(out) > limit:
        raise error(f"{what} inflates past {_human(limit, 'bytes')}: refused as a decompression bomb")
    if not inflater.eof:
        raise error(f"{what} is damaged (the compressed data is truncated)")
    return out
