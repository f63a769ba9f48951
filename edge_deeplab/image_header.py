"""An image's width and height from its header, read before anything is decoded.

A compressed image declares its size up front and a decoder allocates what it declares: a
0.4 MB PNG can declare 12000 x 12000. `declared_size` reads the declaration of the formats
people hand us (PNG IHDR, JPEG SOF, BMP, WebP, PPM/PGM) so `imageio` can refuse it against
`limits.MAX_IMAGE_PIXELS` first. Other formats (TIFF) are bounded by OpenCV's own
OPENCV_IO_MAX_IMAGE_PIXELS, which `deps.cv2` sets to the same limit.
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple

Size = Tuple[int, int]  # (width, height)

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC
# share the range but are other segments (Huffman tables, reserved, arithmetic coding).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # markers without a length field (TEM, RSTn, SOI)


def declared_size(data: bytes) -> Optional[Size]:
    """(width, height) the image in `data` declares, or None for a format not read here or
    a header too damaged to say (the decoder then refuses it, or OpenCV's limit holds)."""
    try:
        for sniff, parse in _PARSERS:
            if data.startswith(sniff):
                return parse(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png(data: bytes) -> Optional[Size]:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> Optional[Size]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5: pos + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        pos += 2 + struct.unpack(">H", data[pos + 2: pos + 4])[0]
    return None


def _bmp(data: bytes) -> Optional[Size]:
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(data: bytes) -> Optional[Size]:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _netpbm(data: bytes) -> Optional[Size]:
    tokens = []
    for line in data[2:256].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[0]), int(tokens[1])
    return None


_PARSERS = (
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"RIFF", _webp),
    (b"P5", _netpbm),
    (b"P6", _netpbm),
)
