"""`demo --serve`: the web stream's server (tokens, 404/403, viewers that stall, closing) and
the page in a real headless Chromium, served by a demo on a video file."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from chromium_cdp import Chromium
from conftest import default_sigint

from edge_deeplab.cli.demo_cmd import options_from_args
from edge_deeplab.cli.main import build_parser
from edge_deeplab.demos.serve_address import parse_serve
from edge_deeplab.demos.stream import StreamServer
from edge_deeplab.demos.stream_client import iter_jpegs
from edge_deeplab.errors import InvalidInputError

cv2 = pytest.importorskip("cv2")


PERSON_RGB = (192, 128, 128)  # the VOC palette's person


def get(url: str, timeout: float = 10.0):
    """(status, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def refused(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except ConnectionRefusedError:
        return True
    return False


def picture(value: int, shape=(120, 160)) -> np.ndarray:
    out = np.zeros((*shape, 3), np.uint8)
    out[:, : shape[1] // 2] = value
    return out


# ---------------------------------------------------------------- the address


def test_serve_address_is_loopback_unless_a_host_is_given_and_then_needs_a_token():
    assert parse_serve("8080") == parse_serve(":8080")
    local = parse_serve("8080")
    assert (local.host, local.port, local.token) == ("127.0.0.1", 8080, None)
    assert parse_serve("localhost:0").token is None and parse_serve("[::1]:9000").host == "::1"
    lan = parse_serve("0.0.0.0:8080")
    assert lan.token and len(lan.token) >= 16 and f"?token={lan.token}" in lan.url()
    assert parse_serve("0.0.0.0:8080").token != lan.token  # generated afresh each start
    assert parse_serve("0.0.0.0:1", token="my-secret-1").token == "my-secret-1"
    for bad in ("80a", "host:", "1:99999", "-1"):
        with pytest.raises(InvalidInputError, match="PORT"):
            parse_serve(bad)
    with pytest.raises(InvalidInputError, match="--token"):
        parse_serve("8080", token="a b")


# ---------------------------------------------------------------- the server


def test_server_routes_and_encodes_only_while_watched():
    with StreamServer(parse_serve("127.0.0.1:0")) as server:
        base = f"http://127.0.0.1:{server.port}"
        for _ in range(5):
            server.offer(picture(200))
        time.sleep(0.3)
        assert server.frames.encoded == 0  # nobody watches: no JPEG made
        status, page = get(base + "/")
        assert status == 200 and b"stream.mjpg" in page and b"http" not in page  # self-contained
        assert get(base + "/nope")[0] == 404 and get(base + "/stream.mjpg/x")[0] == 404
        rebound = urllib.request.Request(base + "/stats.json", headers={"Host": "evil.example:80"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(rebound, timeout=10)  # DNS rebinding: a foreign name, refused
        server.publish({"frames": 7})
        assert json.loads(get(base + "/stats.json")[1]) == {"frames": 7}
        threading.Timer(0.3, server.offer, (picture(200),)).start()
        status, jpeg = get(base + "/frame.jpg")
        # The picture offered before the request is encoded too (a stream viewer gets it at
        # once) but /frame.jpg waits for the one offered after the request arrived.
        assert status == 200 and server.frames.encoded == 2
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert abs(int(decoded[60, 20, 0]) - 200) < 8 and int(decoded[60, 140, 0]) < 8
        port = server.port
        with pytest.raises(InvalidInputError, match="cannot listen"):
            StreamServer(parse_serve(f"127.0.0.1:{port}"))  # in use
    assert refused(port)


def test_token_goes_with_serve_and_a_lan_bind_gets_one():
    parser = build_parser()
    with pytest.raises(InvalidInputError, match="--serve"):
        options_from_args(parser.parse_args(["demo", "m.tflite", "--token", "abcdefgh12"]))
    served = options_from_args(parser.parse_args(["demo", "m.tflite", "--serve", "0.0.0.0:0"]))
    assert served.serve.host == "0.0.0.0" and served.serve.token
    assert options_from_args(parser.parse_args(["demo", "m.tflite"])).serve is None


def test_non_loopback_bind_needs_the_token():
    address = parse_serve("0.0.0.0:0", token="right-token-42")
    with StreamServer(address) as server:
        base = f"http://127.0.0.1:{server.port}"
        server.publish({"frames": 1})
        assert get(base + "/stats.json")[0] == 403
        assert get(base + "/stats.json?token=wrong-token-42")[0] == 403
        assert get(base + "/?token=")[0] == 403
        assert get(base + "/stats.json?token=right-token-42")[0] == 200
        assert get(base + "/?token=right-token-42")[0] == 200
        port = server.port
    assert refused(port)


class StreamReader(threading.Thread):
    """A viewer that reads the MJPEG stream and counts the JPEGs it gets."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.frames, self.last = url, 0, None

    def run(self) -> None:
        try:
            for jpeg in iter_jpegs(self.url):
                self.last, self.frames = jpeg, self.frames + 1
        except OSError:
            return


def test_stalled_viewer_neither_blocks_the_pipeline_nor_holds_up_other_viewers():
    psutil = pytest.importorskip("psutil")
    with StreamServer(parse_serve("127.0.0.1:0")) as server:
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        reader = StreamReader(f"http://127.0.0.1:{server.port}/stream.mjpg")
        reader.start()
        noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)  # big JPEGs
        rss, slowest = [], 0.0
        for i in range(2000):
            t0 = time.perf_counter()
            server.offer(np.roll(noise, i, axis=1))
            slowest = max(slowest, time.perf_counter() - t0)
            if i % 500 == 499:
                rss.append(psutil.Process().memory_info().rss)
            time.sleep(0.001)
        time.sleep(0.5)
        assert slowest < 0.05, slowest  # offer never waits for a viewer
        assert server.frames.encoded > 50 and reader.frames > 50, (server.frames.encoded, reader.frames)
        last = cv2.imdecode(np.frombuffer(reader.last, np.uint8), cv2.IMREAD_COLOR)
        assert last.shape == (240, 320, 3)  # whole JPEGs, cut at the right places
        assert rss[-1] - rss[0] < 20e6, [r / 1e6 for r in rss]  # flat: no frame queue per viewer
        port = server.port
    # Closing does not wait for the stalled viewer's send to time out.
    assert refused(port)
    stalled.close()


# ---------------------------------------------------------------- the demo, in a browser


def pan_video(path, photo, frames: int = 120, size=(320, 240)):
    """A video panning across a photo: people in every frame, a different picture each frame."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    height = size[1] * image.shape[1] // size[0]
    image = cv2.resize(image, (size[0] * 2, height * 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        x = (i * 3) % (image.shape[1] - size[0])
        writer.write(np.ascontiguousarray(image[: size[1], x : x + size[0]]))
    writer.release()
    return path


def serving_demo(args, log_lines: queue.Queue[str]) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-m", "edge_deeplab.cli.main", "demo", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )
    threading.Thread(target=lambda: [log_lines.put(line) for line in child.stderr], daemon=True).start()
    return child


def served_url(child, log_lines, timeout=120.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline and child.poll() is None:
        try:
            line = log_lines.get(timeout=0.5)
        except queue.Empty:
            continue
        found = re.search(r"serving the demo at (http://\S+)", line)
        if found:
            return found.group(1)
    child.kill()
    pytest.fail("the demo never said where it serves")


@pytest.mark.slow
def test_browser_shows_the_live_view_and_stats_and_ctrl_c_closes_the_port(shared_dir, tmp_path):
    from chromium_cdp import CHROMIUM

    anchor = shared_dir / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite"
    photo = shared_dir / "media" / "grace_hopper.bmp"
    if CHROMIUM is None or not anchor.is_file() or not photo.is_file():
        pytest.skip("needs chromium and ../shared's pascal anchor and grace_hopper.bmp")
    pytest.importorskip("ai_edge_litert")
    video = pan_video(tmp_path / "pan.avi", photo)
    stats_path, log_lines = tmp_path / "stats.json", queue.Queue()
    child = serving_demo(
        [str(anchor), "--preset", "pascal-voc", "--source", str(video), "--realtime", "--no-show",
         "--alpha", "1.0", "--serve", "127.0.0.1:0", "--stats", str(stats_path),
         "--output", str(tmp_path / "demo.mp4")], log_lines)
    try:
        url = served_url(child, log_lines)
        port = int(re.search(r":(\d+)/", url).group(1))
        with Chromium(CHROMIUM, tmp_path / "profile") as chromium:
            chromium.open(url)
            time.sleep(2.0)
            first = (chromium.screenshot(), chromium.evaluate(STATS_JS))
            time.sleep(1.0)
            second = (chromium.screenshot(), chromium.evaluate(STATS_JS))
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=60)
    assert child.returncode == 130  # Ctrl-C: the demo's own ending, stats written
    stats = json.loads(stats_path.read_text())
    assert stats["end"] == "interrupted" and stats["output"]  # the recording beside the stream
    assert (tmp_path / "demo.mp4").stat().st_size > 0
    assert refused(port)
    shots = [cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) for png, _ in (first, second)]
    view = [shot[16:248, 16:328].astype(np.int16) for shot in shots]  # where the <img> is
    assert np.abs(view[0] - view[1]).mean() > 3.0  # the picture moved between the two
    person = np.all(np.abs(view[1][..., ::-1] - np.array(PERSON_RGB)) <= 24, axis=-1)
    assert person.mean() > 0.05, person.mean()  # the overlay is painted in the person colour
    (updates0, frames0, _), (updates1, frames1, text) = first[1], second[1]
    assert updates1 > updates0 >= 2 and frames1 > frames0, (first[1], second[1])
    assert "FPS" in text and "person" in text and "infer" in text


STATS_JS = """(() => { const s = document.getElementById("stats");
  return [Number(s.dataset.updates), Number(s.dataset.frames), s.innerText]; })()"""
