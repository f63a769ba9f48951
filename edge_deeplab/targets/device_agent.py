"""The device side of a remote target, sent as `python -c SOURCE REQUEST` over ssh.

Standard library only, and it never imports edge-deeplab at module level: it must run (and
say so) on a device where edge-deeplab is missing or another version. One JSON request in
argv[1], one JSON answer on stdout. Modes:

- probe: the device's edge-deeplab version (or the import error), machine description,
  cache folder, and which of the wanted cache entries already exist.
- receive: a tar stream on stdin becomes `<cache>/blobs/<key>/...` for each key: extracted into
  `<cache>/tmp/`, then renamed into place, so a partial upload is never used and nothing
  is left behind on failure.
- run: `python -m edge_deeplab.cli.main COMMAND ARGS` with cache paths filled in and a
  private temp folder for its JSON output (`{"built": NAME}` is `<cache>/built/NAME`: a file
  the command leaves on the device for the host to fetch, e.g. a TensorRT engine). Stdin
  is watched: when the host's side closes (Ctrl-C, a dropped connection), the command's
  process group is killed and the temp folder removed.
- send: the raw bytes of `<cache>/built/NAME` on stdout (nothing else), refused above
  `max_bytes`: how the host brings back what a command built there.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading

KEY = re.compile(r"^[0-9a-f]{64}$")
BUILT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")  # a plain file name, no path


def _folders(cache):
    cache = os.path.abspath(os.path.expanduser(cache))
    blobs, tmp = os.path.join(cache, "blobs"), os.path.join(cache, "tmp")
    os.makedirs(blobs, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    return cache, blobs, tmp


def probe(request):
    cache, blobs, _ = _folders(request["cache"])
    answer = {"python": sys.version.split()[0], "executable": sys.executable, "cache": cache}
    answer["have"] = [k for k in request.get("want", []) if KEY.match(k) and os.path.isdir(os.path.join(blobs, k))]
    try:
        import edge_deeplab

        answer["edge_deeplab"] = edge_deeplab.__version__
    except Exception as exc:  # noqa: BLE001 - whatever the import raised, the host prints it
        answer["edge_deeplab"], answer["import_error"] = None, f"{type(exc).__name__}: {exc}"
        return answer
    try:
        from edge_deeplab.bench.machine import describe_machine

        answer["machine"] = describe_machine()
    except Exception as exc:  # noqa: BLE001 - another version may lack it; the version check says so
        answer["machine"] = {"error": str(exc)}
    return answer


def receive(request):
    """One tar stream of `<key>/<name>` members: each key's files are extracted into its own
    staging folder and renamed into place once the whole stream has arrived."""
    keys = request["keys"]
    if not keys or not all(KEY.match(k) for k in keys):
        raise ValueError(f"bad cache keys {keys!r}")
    _, blobs, tmp = _folders(request["cache"])
    staging = {key: tempfile.mkdtemp(prefix="up-", dir=tmp) for key in keys}
    try:
        with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as stream:
            for member in stream:
                key, _, name = member.name.partition("/")
                name = os.path.normpath(name)
                if key not in staging or not member.isfile() or name.startswith(("/", "..")) or name == ".":
                    raise ValueError(f"refusing tar member {member.name!r}")
                target = os.path.join(staging[key], name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as out:
                    shutil.copyfileobj(stream.extractfile(member), out)
        for key, folder in staging.items():
            if not os.path.isdir(os.path.join(blobs, key)):
                os.rename(folder, os.path.join(blobs, key))  # atomic: an entry appears whole or not at all
    finally:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
    return {"stored": keys}


def _built(cache, name):
    if not isinstance(name, str) or not BUILT.match(name):
        raise ValueError(f"bad built-file name {name!r}")
    folder = os.path.join(cache, "built")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


def _argument(item, blobs, out):
    if isinstance(item, str):
        return item
    if "out" in item:
        return out
    if "built" in item:
        return _built(os.path.dirname(blobs), item["built"])
    if not KEY.match(item["blob"]) or ".." in item["path"].split("/"):
        raise ValueError(f"bad cache reference {item!r}")
    return os.path.join(blobs, item["blob"], item["path"])


def run(request):
    _, blobs, tmp = _folders(request["cache"])
    workdir = tempfile.mkdtemp(prefix="run-", dir=tmp)
    try:
        out = os.path.join(workdir, "result.json")
        args = [_argument(item, blobs, out) for item in request["command"]]
        child = subprocess.Popen([sys.executable, "-m", "edge_deeplab.cli.main", *args], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, start_new_session=True)
        threading.Thread(target=_stop_when_host_leaves, args=(child, workdir), daemon=True).start()
        stdout, stderr = child.communicate()
        answer = {"returncode": child.returncode, "stdout": stdout.decode(errors="replace"),
                  "stderr": stderr.decode(errors="replace"), "result": None}
        if os.path.isfile(out):
            with open(out, encoding="utf-8") as handle:
                answer["result"] = json.load(handle)
        return answer
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def send(request):
    """`<cache>/built/NAME` to stdout, whole, or an error before the first byte."""
    cache, _, _ = _folders(request["cache"])
    path = _built(cache, request["built"])
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > int(request["max_bytes"]):
            raise ValueError(f"{request['built']} is {size} bytes, more than the {request['max_bytes']} asked for")
        shutil.copyfileobj(handle, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return None


def _stop_when_host_leaves(child, workdir):
    """Stdin is never written: its end-of-file means the host's side went away."""
    sys.stdin.buffer.read()
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
        child.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        os._exit(1)


def main():
    request = json.loads(sys.argv[1])
    modes = {"probe": probe, "receive": receive, "run": run, "send": send}
    try:
        answer = modes[request["mode"]](request)
    except Exception as exc:  # noqa: BLE001 - the host turns this into one line
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        sys.exit(3)
    if answer is not None:  # send wrote its bytes already
        sys.stdout.write(json.dumps(answer))
        sys.stdout.flush()
    os._exit(0)  # not a normal exit: the stdin watcher thread may still be blocked in read()


if __name__ == "__main__":
    main()
