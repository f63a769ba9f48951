"""`--target` for the subcommands: the flag, and turning the host's arguments into the
device's (files uploaded through the content cache, the rest passed as written).

Each subcommand's `run` starts with `if args.target: return run_remote(args)`; the remote
part uploads what the command reads, runs the same subcommand with `--json` there, and
gives the JSON back to the subcommand's own printing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from ..errors import InvalidInputError
from .cache import Bundle, artifact_bundle

Word = Union[str, dict]
TARGET_HELP = ("run on this device over SSH: ssh://[user@]host[:port] or a name from the targets file "
               "(~/.config/edge-deeplab/targets.toml or $EDGE_DEEPLAB_TARGETS)")

# Flags every MODEL command shares (cli.common), passed to the device as written.
RUNTIME_FLAGS = ("runtime", "threads", "device", "preset", "mean", "std", "size")


def add_target_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None, metavar="TARGET", help=TARGET_HELP)


def flag_words(args: argparse.Namespace, names: Sequence[str]) -> List[str]:
    """`--name value` for each flag set on the host (lists joined with commas, sizes as HxW)."""
    words: List[str] = []
    for name in names:
        value = getattr(args, name, None)
        if value is None or value is False or (name == "runtime" and value == "auto"):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif name == "size":
            words += [flag, "x".join(str(int(v)) for v in value)]
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return words


class Uploads:
    """The files a remote command reads: each becomes a cached bundle and a device path."""

    def __init__(self):
        self.bundles: Dict[str, Bundle] = {}

    def artifact(self, path) -> dict:
        """A model: its file and what it needs beside it. A run folder's artifact is refused
        (its .keras needs TensorFlow, which the device's edge install has not)."""
        path = Path(path)
        if path.is_dir() or path.suffix == ".keras":
            raise InvalidInputError(f"{path}: a remote target runs converted artifacts (.tflite, .onnx, .xml, ...), "
                                    "not the Keras model (the device's edge install has no TensorFlow)")
        bundle, ref = artifact_bundle(path)
        self.bundles[bundle.key] = bundle
        return ref

    def file(self, path) -> dict:
        path = Path(path)
        bundle = Bundle.of([(path.name, path)])
        self.bundles[bundle.key] = bundle
        return bundle.ref(path.name)

    def folder(self, path) -> dict:
        from .cache import folder_bundle

        bundle = folder_bundle(path)
        self.bundles[bundle.key] = bundle
        return bundle.root_ref()


def model_source_words(args: argparse.Namespace, uploads: Uploads) -> List[Word]:
    """The runtime and model-source flags, with --labels uploaded."""
    words: List[Word] = flag_words(args, RUNTIME_FLAGS)
    if getattr(args, "labels", None):
        words += ["--labels", uploads.file(args.labels)]
    return words


def run_on_target(target: str, command: str, words: List[Word], uploads: Uploads) -> Tuple[object, dict]:
    """Upload, run `edge-deeplab COMMAND WORDS` on the target; (its JSON, the device's description)."""
    from .remote import Device

    with Device(target) as device:
        device.upload(uploads.bundles.values())
        answer = device.run(command, words)
        if answer.result is None:
            raise InvalidInputError(f"on {device.name}: `{command}` wrote no JSON")
        return answer.result, device.describe()


def write_json(record, out: str) -> None:
    """`--json OUT`: the record to OUT (atomically), or to stdout for `-`."""
    text = json.dumps(record, indent=2) + "\n"
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..imageio import atomic_write_text

    atomic_write_text(Path(out), text)
