"""Hostile files and requests: bounded memory, bounded time, one clear line, nothing leaked.

Every input here is made at test time (no bomb is committed). The CLI cases run
`edge-deeplab predict` in a child process and hold it to: exit status non-zero, within
TIME_BOUND_S, a peak RSS (the child's own VmHWM, see CHILD) under MEMORY_BOUND_MB, exactly one
`edge-deeplab ...: error:` line on stderr and no traceback, and nothing in --out.

    case                      what it is                                      before this    after
    png-12000x12000           0.4 MB PNG declaring 144 megapixels             13.3 GB, ok     ~100 MB, refused
    jpeg-sof-60000x60000      small JPEG whose frame header claims 3.6 GP     (decoder)       refused by header
    bmp-header-huge           BMP header claiming 50000x50000                 (decoder)       refused by header
    fifo.png                  a FIFO with an image suffix                     hangs           refused
    dev-zero.png              a symlink to /dev/zero                          eats memory     refused
    tflite-zip-bomb           .tflite whose metadata member inflates 256 MB   ~2 GB           refused (declared)
    tflite-lying-size         the same, declaring 1 KB                        -               refused (cap/CRC)
    tflite-not-utf8           metadata JSON in Latin-1 bytes                  traceback       one line
    tflite-bzip2              metadata member compressed with bzip2           traceback       one line
    tflite-version-99         unknown schema version                          silently used   refused, names 1
    tflite-head-argmax        head "argmax" on a 21-score output              garbage         refused
    tflite-mean-nan           "mean": NaN                                     garbage         refused
    tflite-empty-selftest     "selftest": {"inputs": []}                      verify "ok"     refused
    cli-std-nan               --std nan                                       exit 0          usage error

Limits and how to raise them: `edge_deeplab/limits.py` (EDGE_DEEPLAB_MAX_IMAGE_PIXELS, ...).
The in-process tests below the table cover the rest: metadata fields, the self-test cap,
camera URIs, models that hold code, reports, the run-folder lock and the stream server.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from edge_deeplab.errors import InvalidInputError, ModelLoadError, SourceError

cv2 = pytest.importorskip("cv2")

TIME_BOUND_S = 60.0  # a refused input ends in seconds; the bound leaves room for a loaded CI box
MEMORY_BOUND_MB = 400  # python + OpenCV + LiteRT is ~100 MB; the bombs took 2 to 13 GB before
ANCHOR = "anchors/pascal/deeplabv3_257_mv_gpu.tflite"  # 21 VOC classes, 257x257, float


# ---------------------------------------------------------------- inputs, made here

def png_bomb(path: Path, width: int = 12000, height: int = 12000) -> Path:
    """A valid RGB PNG of zeros: ~0.4 MB on disk, width*height*3 bytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate, row = zlib.compressobj(9), b"\0" * (1 + width * 3)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def jpeg_claiming(path: Path, width: int = 60000, height: int = 60000) -> Path:
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def bmp_claiming(path: Path, width: int = 50000, height: int = 50000) -> Path:
    data = bytearray(cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def dev_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def anchor_metadata(shared: Path, **changes) -> dict:
    labels = (shared / "anchors/pascal/labels.txt").read_text().split()
    meta = {"labels": labels, "input_size": [257, 257], "mean": [127.5] * 3, "std": [127.5] * 3,
            "format": "tflite", "version": 1}
    return {**meta, **changes}


def tflite_with(shared: Path, path: Path, member: bytes = b"", *, method=zipfile.ZIP_STORED,
                inflated: int = 0, claim: int = 0) -> Path:
    """The anchor model with `member` (or `inflated` bytes of spaces) appended as its
    edge_deeplab.json; `claim` rewrites the member's declared size in both zip headers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        with archive.open("edge_deeplab.json", "w", force_zip64=bool(inflated)) as handle:
            handle.write(member)
            for _ in range(inflated >> 20):
                handle.write(b" " * (1 << 20))
    archive_bytes = bytearray(buffer.getvalue())
    if claim:
        _rewrite_declared_size(archive_bytes, claim)
    path.write_bytes((shared / ANCHOR).read_bytes() + bytes(archive_bytes))
    return path


def _rewrite_declared_size(data: bytearray, size: int) -> None:
    """Set the uncompressed size in the local and central headers (and zip64 extras)."""
    for signature, offset, extra_len_at in ((b"PK\x03\x04", 22, 28), (b"PK\x01\x02", 24, 30)):
        at = data.index(signature)
        data[at + offset: at + offset + 4] = struct.pack("<I", size)
        name_len = struct.unpack("<H", data[at + extra_len_at - 2: at + extra_len_at])[0]
        extra_at = at + (30 if signature == b"PK\x03\x04" else 46) + name_len
        if data[extra_at: extra_at + 2] == b"\x01\x00":  # zip64: the real sizes live here
            data[at + offset: at + offset + 4] = b"\xff\xff\xff\xff"
            data[extra_at + 4: extra_at + 12] = struct.pack("<Q", size)


def _json(shared: Path, **changes) -> bytes:
    return json.dumps(anchor_metadata(shared, **changes)).encode()


# ---------------------------------------------------------------- the table

# id -> (make(tmp, shared) -> (model, input, extra flags), text the error line must hold)
CLI_CASES = {
    "png-12000x12000": (lambda t, s: (s / ANCHOR, png_bomb(t / "bomb.png"), ["--preset", "pascal-voc"]),
                        "EDGE_DEEPLAB_MAX_IMAGE_PIXELS"),
    "jpeg-sof-60000x60000": (lambda t, s: (s / ANCHOR, jpeg_claiming(t / "x.jpg"), ["--preset", "pascal-voc"]),
                             "60000x60000"),
    "bmp-header-huge": (lambda t, s: (s / ANCHOR, bmp_claiming(t / "x.bmp"), ["--preset", "pascal-voc"]),
                        "50000x50000"),
    "fifo.png": (lambda t, s: (s / ANCHOR, fifo(t / "cam.png"), ["--preset", "pascal-voc"]), "not a regular file"),
    "dev-zero.png": (lambda t, s: (s / ANCHOR, dev_zero(t / "zero.png"), ["--preset", "pascal-voc"]),
                     "not a regular file"),
    "tflite-zip-bomb": (lambda t, s: (tflite_with(s, t / "m.tflite", method=zipfile.ZIP_DEFLATED,
                                                  inflated=256 << 20), None, []), "EDGE_DEEPLAB_MAX_METADATA_BYTES"),
    "tflite-lying-size": (lambda t, s: (tflite_with(s, t / "m.tflite", method=zipfile.ZIP_DEFLATED,
                                                    inflated=64 << 20, claim=1024), None, []), "edge_deeplab.json"),
    "tflite-not-utf8": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s).replace(b'"tflite"', b'"\xe9"')),
                                      None, []), "not UTF-8"),
    "tflite-bzip2": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s), method=zipfile.ZIP_BZIP2), None, []),
                     "compression method 12"),
    "tflite-version-99": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s, version=99)), None, []),
                          "supported: 1"),
    "tflite-head-argmax": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s, head="argmax")), None, []),
                           "head"),
    "tflite-mean-nan": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s, mean=[float("nan")] * 3)),
                                      None, []), "mean"),
    "tflite-empty-selftest": (lambda t, s: (tflite_with(s, t / "m.tflite", _json(s, selftest={"inputs": []})),
                                            None, []), "selftest"),
    "cli-std-nan": (lambda t, s: (s / ANCHOR, None, ["--preset", "pascal-voc", "--std", "nan"]), "--std"),
}


# The CLI, reporting its peak resident memory at exit. /proc/self/status's VmHWM is the high
# water mark of this program's own memory since exec; the rusage ru_maxrss that os.wait4
# returns is not: Linux carries the parent's peak into a forked child across exec, so a test
# runner that had grown to 1.4 GB saw every child "peak" at 1.4 GB.
CHILD = """
import atexit, os, sys
def report_peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(kb)
atexit.register(report_peak)
from edge_deeplab.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_child(args, cwd: Path):
    """(exit status, stderr lines, peak RSS in MB, seconds) of the CLI in a child process,
    killed at TIME_BOUND_S (a killed child reports no peak: infinity)."""
    peak_file = cwd / "peak-kb.txt"
    start = time.monotonic()
    env = {**os.environ, "PEAK_FILE": str(peak_file)}
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIME_BOUND_S)
    except subprocess.TimeoutExpired as exc:
        return -9, (exc.stderr or b"").decode(errors="replace").splitlines(), float("inf"), TIME_BOUND_S
    peak_mb = int(peak_file.read_text()) / 1024 if peak_file.is_file() else float("inf")
    peak_file.unlink(missing_ok=True)
    return proc.returncode, proc.stderr.decode(errors="replace").splitlines(), peak_mb, time.monotonic() - start


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_hostile_file_is_one_line_in_bounded_time_and_memory(case, tmp_path, shared_dir):
    make, expected = CLI_CASES[case]
    model, image, flags = make(tmp_path, shared_dir)
    if image is None:
        image = tmp_path / "photo.png"
        cv2.imwrite(str(image), np.full((40, 60, 3), 120, np.uint8))
    out = tmp_path / "out"
    status, err, peak_mb, seconds = run_child(["predict", model, image, "--out", out, *flags], tmp_path)
    assert status not in (0, -9), (case, status, err[-5:])  # -9: killed at the time bound
    assert seconds < TIME_BOUND_S and peak_mb < MEMORY_BOUND_MB, (case, seconds, peak_mb)
    errors = [line for line in err if line.startswith("edge-deeplab")]
    assert len(errors) == 1 and expected in errors[0], (case, err[-5:])
    assert not any("Traceback" in line for line in err), err
    assert not out.exists() or not any(out.iterdir())  # nothing written


# ---------------------------------------------------------------- images in-process

def test_image_limit_can_be_raised_for_a_legitimate_file(tmp_path, monkeypatch):
    from edge_deeplab.imageio import read_image

    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.full((100, 300, 3), 7, np.uint8))
    monkeypatch.setenv("EDGE_DEEPLAB_MAX_IMAGE_PIXELS", "20000")
    with pytest.raises(InvalidInputError, match="EDGE_DEEPLAB_MAX_IMAGE_PIXELS=30000"):
        read_image(path)
    monkeypatch.setenv("EDGE_DEEPLAB_MAX_IMAGE_PIXELS", "30000")
    assert read_image(path).shape == (100, 300, 3)
    monkeypatch.setenv("EDGE_DEEPLAB_MAX_IMAGE_BYTES", "100")
    with pytest.raises(InvalidInputError, match="EDGE_DEEPLAB_MAX_IMAGE_BYTES"):
        read_image(path)


def test_declared_sizes_of_every_format_read_before_decoding():
    from edge_deeplab.image_header import declared_size

    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".webp", ".ppm"):
        assert declared_size(cv2.imencode(suffix, image)[1].tobytes()) == (53, 37), suffix
    assert declared_size(b"\x89PNG\r\n\x1a\n") is None  # cut short: the decoder refuses it


def test_selftest_cap_refuses_a_zlib_bomb_without_inflating_it():
    from edge_deeplab.limits import bounded_decompress

    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # 64 KB that inflate to 64 MB
    with pytest.raises(InvalidInputError, match="decompression bomb"):
        bounded_decompress(bomb, 96 * 96 * 3, "the self-test image")  # a thumbnail's bytes
    with pytest.raises(ModelLoadError, match="truncated"):
        bounded_decompress(zlib.compress(b"x" * 100)[:-4], 1000, "it", ModelLoadError)
    assert bounded_decompress(zlib.compress(b"x" * 100), 100, "it") == b"x" * 100


# ---------------------------------------------------------------- metadata fields

BASE = {"labels": ["bg", "cat"], "input_size": [64, 64]}
METADATA_CASES = {
    "version": ({"version": 2}, "supported: 1"),
    "version-bool": ({"version": True}, "version"),
    "input_size-text": ({"input_size": "64x64"}, "input_size"),
    "input_size-float": ({"input_size": [64.5, 64]}, "input_size"),
    "input_size-huge": ({"input_size": [100000, 64]}, "input_size"),
    "labels-duplicate": ({"labels": ["bg", "bg"]}, "unique"),
    "labels-not-a-list": ({"labels": "bg"}, "labels"),
    "labels-escape": ({"labels": ["bg", "\x1b]0;pwned\x07"]}, "control"),
    "mean-inf": ({"mean": [1e999, 0, 0]}, "mean"),
    "mean-text": ({"mean": ["a", "b", "c"]}, "mean"),
    "std-negative": ({"std": [-1, 1, 1]}, "std"),
    "palette-out-of-range": ({"palette": [[0, 0, 0], [256, 0, 0]]}, "palette"),
    "selftest-empty": ({"selftest": {"bar": 0.9, "inputs": []}}, "selftest"),
    "selftest-bar-nan": ({"selftest": {"bar": float("nan"), "inputs": [{}]}}, "bar"),
    "source-not-object": ({"source": [1]}, "source"),
}


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_malformed_metadata_is_one_model_load_error_naming_file_and_field(case):
    from edge_deeplab.metadata_io import parse_metadata

    changes, field = METADATA_CASES[case]
    with pytest.raises(ModelLoadError) as info:
        parse_metadata(json.dumps({**BASE, **changes}), "model.onnx")
    message = str(info.value)
    assert message.startswith("model.onnx:") and field in message and "\n" not in message


def test_metadata_json_nested_deeply_is_refused():
    from edge_deeplab.metadata_io import parse_metadata

    with pytest.raises(ModelLoadError, match="nested"):
        parse_metadata("[" * 100000 + "]" * 100000, "m.xml")


# ---------------------------------------------------------------- camera URIs

def test_rtsp_url_is_quoted_and_credentials_leave_the_location():
    from edge_deeplab.demos.sources import rtsp_pipeline

    pipeline = rtsp_pipeline("rtsp://admin:p%40ss%20word@cam:554/live?ch=1")
    assert 'location="rtsp://cam:554/live?ch=1"' in pipeline
    assert 'user-id="admin" user-pw="p@ss word"' in pipeline
    assert pipeline.count("!") == rtsp_pipeline("rtsp://cam/x").count("!")


@pytest.mark.parametrize("url", [
    "rtsp://cam/x ! filesrc location=/etc/passwd ! fakesink",
    'rtsp://cam/x"latency=0',
    "rtsp://u:a%22b@cam/x",  # a quote in the password, percent-encoded
    "rtsp://cam/x\nrtspsrc",
])
def test_rtsp_url_that_cannot_be_quoted_is_refused_without_the_password(url):
    from edge_deeplab.demos.sources import rtsp_pipeline

    with pytest.raises(SourceError) as info:
        rtsp_pipeline(url)
    assert "\n" not in str(info.value) and "a%22b" not in str(info.value)


def test_credentials_are_masked_wherever_a_source_is_shown():
    from edge_deeplab.demos.sources import parse_source
    from edge_deeplab.demos.uri_safety import redact_uri

    assert redact_uri("rtsp://user:secret@cam:554/s") == "rtsp://user:***@cam:554/s"
    assert redact_uri("clip.mp4") == "clip.mp4"
    source = parse_source("rtsp://user:secret@cam/s")
    assert "secret" not in source.uri and "secret" not in repr(source)
    for uri in ("rtspx://user:secret@cam/s", "rtsp://user:secret@cam/s\x01"):
        with pytest.raises(SourceError) as info:
            parse_source(uri)
        assert "secret" not in str(info.value)


# ---------------------------------------------------------------- models that hold code

def test_saved_model_folder_needs_trust(tmp_path):
    from edge_deeplab.runtimes import load_runtime

    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ModelLoadError, match="read and write files.*--trust-model"):
        load_runtime(folder)


def test_keras_model_with_a_lambda_layer_is_refused(tmp_path):
    pytest.importorskip("tensorflow")
    from edge_deeplab import deps
    from edge_deeplab.trust import load_keras_model

    keras = deps.keras()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match="Python code"):
        load_keras_model(keras, tmp_path / "lambda.keras")


# ---------------------------------------------------------------- reports, run folders

def test_labels_with_dollars_render_and_a_failed_render_writes_nothing(tmp_path, monkeypatch):
    from report_rows import hand_report, hand_row

    from edge_deeplab.bench import report as report_module

    rows = [dict(hand_row("tflite", "int8", "tflite", 0.5, 9.0), delta_per_class_iou={"$x": 1.0, "a$b$c": -2.0}),
            hand_row("keras", "fp32", "keras", 0.6, 20.0)]
    paths = report_module.write_report(hand_report(rows), tmp_path / "ok")
    assert all(p.is_file() for p in paths.values())

    def broken(*args, **kwargs):
        raise RuntimeError("chart failed")

    monkeypatch.setattr(report_module, "render_html", broken)
    with pytest.raises(RuntimeError):
        report_module.write_report(hand_report(rows), tmp_path / "broken")
    assert not (tmp_path / "broken").exists() or not any((tmp_path / "broken").iterdir())


def test_second_training_into_a_locked_run_folder_is_refused(tmp_path):
    from edge_deeplab.training.run_folder import run_folder_lock

    with run_folder_lock(tmp_path / "run"):
        with pytest.raises(InvalidInputError, match="another training"):
            with run_folder_lock(tmp_path / "run"):
                pass
    assert not (tmp_path / "run").exists()  # made for the lock, left empty: removed again


def test_atomic_writes_take_the_umask_without_changing_it(tmp_path):
    from edge_deeplab.imageio import atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert os.umask(0o027) == 0o027  # nobody changed it in between
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------- the stream server

def _get(url: str, timeout: float = 10.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_flood_of_idle_connections_keeps_threads_bounded_and_a_viewer_is_served():
    from edge_deeplab.demos.serve_address import parse_serve
    from edge_deeplab.demos.stream import StreamServer
    from edge_deeplab.limits import MAX_CONNECTIONS, REQUEST_HEAD_SECONDS

    before = threading.active_count()
    with StreamServer(parse_serve("127.0.0.1:0")) as server:
        server.publish({"frames": 3})
        flood = []
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /stats.json HTTP/1.1\r\n")  # and never finishes the head
            flood.append(sock)
        time.sleep(0.5)
        assert threading.active_count() <= before + 2 + MAX_CONNECTIONS.value  # serve + jpeg + slots
        deadline, status = time.monotonic() + REQUEST_HEAD_SECONDS + 10, None
        while time.monotonic() < deadline and status != 200:
            status, _, body = _get(f"http://127.0.0.1:{server.port}/stats.json", timeout=5)
            time.sleep(0.2)
        assert status == 200 and json.loads(body) == {"frames": 3}
        for sock in flood:
            sock.close()


def test_a_trickled_request_head_is_cut_at_the_deadline():
    from edge_deeplab.demos.serve_address import parse_serve
    from edge_deeplab.demos.stream import StreamServer
    from edge_deeplab.limits import REQUEST_HEAD_SECONDS

    with StreamServer(parse_serve("127.0.0.1:0")) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=REQUEST_HEAD_SECONDS + 10)
        start = time.monotonic()
        closed = False
        for byte in b"GET /stats.json HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.25)
            if time.monotonic() - start > REQUEST_HEAD_SECONDS + 2:
                break
        if not closed:
            sock.settimeout(5)
            closed = sock.recv(100) == b""
        assert closed and time.monotonic() - start < REQUEST_HEAD_SECONDS + 5
        sock.close()


def test_security_headers_and_no_stale_frame(monkeypatch):
    from edge_deeplab.demos import stream
    from edge_deeplab.demos.serve_address import parse_serve

    monkeypatch.setattr(stream, "FRAME_WAIT_S", 0.5)
    with stream.StreamServer(parse_serve("127.0.0.1:0")) as server:
        base = f"http://127.0.0.1:{server.port}"
        status, headers, _ = _get(base + "/")
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer" and "default-src 'none'" in headers[
            "Content-Security-Policy"]
        assert headers["Server"] == "edge-deeplab"  # no Python version
        threading.Timer(0.2, server.offer, (np.zeros((24, 32, 3), np.uint8),)).start()
        assert _get(base + "/frame.jpg")[0] == 200
        assert _get(base + "/frame.jpg")[0] == 503  # nothing new since: not the old frame again


def test_token_from_a_file_or_the_environment_and_never_logged_off_a_terminal(tmp_path, monkeypatch):
    from edge_deeplab.demos.serve_address import announce, is_loopback, parse_serve, read_token

    (tmp_path / "token").write_text("file-token-1234\n")
    assert read_token(None, str(tmp_path / "token")) == "file-token-1234"
    monkeypatch.setenv("EDGE_DEEPLAB_SERVE_TOKEN", "env-token-1234")
    assert read_token(None, None) == "env-token-1234"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    generated = parse_serve("0.0.0.0:8080")
    line = announce(generated, 8080, tty=False)
    assert generated.token not in line and str(tmp_path / "serve-token") in line
    assert (tmp_path / "serve-token").read_text().strip() == generated.token
    assert (tmp_path / "serve-token").stat().st_mode & 0o777 == 0o600
    assert generated.token in announce(generated, 8080, tty=True)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "localhost", "::ffff:127.0.0.1"))
    assert parse_serve("127.0.0.2:0").token is None and not is_loopback("10.0.0.1")

