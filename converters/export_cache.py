"""The SavedModel and ONNX exports of a model, kept between conversions.

Exporting is most of a float conversion's time (the tiny test model's ONNX fp32: SavedModel
7.6 s and tf2onnx 5.7 s of 18 s), and `convert`, `report`, `int8-mixed` and `calib-curve`
of one model export the same head placements again and again. A job copies an export from
here when everything it depends on is the same, and keeps each one it makes:

- the key: the model's architecture and weights, what the export was asked for (head,
  resolution, pixel input with the normalisation it puts in the graph, class-map dtype), the
  versions of the exporting libraries and the export code itself (a changed savedmodel.py or
  job.py is a new key, never a stale export);
- entries are built aside and renamed in whole, so a killed run leaves none half written;
  the oldest beyond MAX_ENTRIES are removed;
- in $EDGE_DEEPLAB_EXPORT_CACHE, else `$EDGE_DEEPLAB_CACHE/exports` (default
  ~/.cache/edge_deeplab/exports); EDGE_DEEPLAB_EXPORT_CACHE=0 turns it off. A cache that
  cannot be read or written is skipped (logged), never an error.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from edge_deeplab.cache import cache_root
from edge_deeplab.errors import OutputError, first_line

log = logging.getLogger(__name__)

MAX_ENTRIES = 24  # a SavedModel of the default model is ~10 MB: a bounded few hundred MB
LIBRARIES = ("tensorflow", "keras", "tf2onnx", "onnx")
EXPORT_CODE = ("savedmodel.py", "job.py")  # this folder's files that decide what an export holds
STAGING = ".incoming-"


def cache_folder() -> Optional[Path]:
    """The export cache: $EDGE_DEEPLAB_EXPORT_CACHE, else $EDGE_DEEPLAB_CACHE/exports; None
    where EDGE_DEEPLAB_EXPORT_CACHE=0 turns it off."""
    setting = os.environ.get("EDGE_DEEPLAB_EXPORT_CACHE", "").strip()
    if setting == "0":
        return None
    return Path(setting) if setting else cache_root() / "exports"


def model_fingerprint(model) -> str:
    """A digest of a Keras model's architecture and weights."""
    digest = hashlib.sha256(json.dumps(model.to_json(), sort_keys=True).encode())
    for weight in model.weights:
        value = weight.numpy()
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in EXPORT_CODE:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _versions(names) -> dict:
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


class ExportCache:
    """The exports of one source model (`fingerprint`), by what each was asked for."""

    def __init__(self, fingerprint: str, folder: Optional[Path] = None):
        self.folder = folder if folder is not None else cache_folder()
        self._base = {"model": fingerprint, "libraries": _versions(LIBRARIES), "code": _code_digest()}

    def key(self, **asked) -> str:
        text = json.dumps({**self._base, **asked}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def restore(self, key: str, dest: Path) -> bool:
        """Copy the entry `key` to `dest` (a file or a folder); False where there is none."""
        entry = self._entry(key)
        if entry is None:
            return False
        try:
            _copy(entry, dest)
        except OSError as exc:
            _remove(dest)
            if exc.errno == errno.ENOSPC:  # the job's folder is full, as the export itself would be
                raise OutputError(f"{dest.parent}: cannot write the export (no space left on device)") from None
            log.debug("export cache: cannot copy %s (%s); exporting again", entry, first_line(exc))
            return False
        try:
            os.utime(entry)  # recently used: the last to be removed
        except OSError:  # a read-only cache still serves its entries
            pass
        return True

    def keep(self, key: str, made: Path) -> None:
        """Store a copy of the export `made` (a file or a folder) as `key`."""
        if self.folder is None or self._entry(key) is not None:
            return
        staging = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=self.folder))
            _copy(made, staging / made.name)
            os.replace(staging / made.name, self.folder / key)  # whole, or not at all
            self._prune()
        except OSError as exc:  # a full or read-only cache, or another run kept it first
            log.debug("export cache: cannot keep %s (%s)", made, first_line(exc))
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def _entry(self, key: str) -> Optional[Path]:
        path = None if self.folder is None else self.folder / key
        return path if path is not None and path.exists() else None

    def _prune(self) -> None:
        """Remove the least recently used entries beyond MAX_ENTRIES, and what killed runs left
        half copied (staging folders older than an hour)."""
        now = time.time()
        entries = []
        for path in self.folder.iterdir():
            if not path.name.startswith(STAGING):
                entries.append(path)
            elif now - path.stat().st_mtime > 3600:
                _remove(path)
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            _remove(old)


def _copy(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest)
    else:
        shutil.copyfile(source, dest)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
