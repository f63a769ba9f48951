"""Content-addressed uploads: what goes to the device is keyed by what it contains.

A Bundle is a set of files that must sit together (an OpenVINO .xml and its .bin, a
dataset's images and masks). Its key is the SHA-256 over each file's relative name and
content hash; on the device it lives in `<cache>/blobs/<key>/<relative name>`, original
names and suffixes kept (engines choose by suffix, an .xml finds its .bin by stem). An entry
that exists is complete (uploads are extracted into a temp folder and renamed), so one
probe says what to skip and a second run copies nothing.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Iterable, Sequence, Tuple

from ..errors import InvalidInputError

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """Files uploaded and cached together.

    Attributes:
        files: (relative name on the device, local path) pairs.
        key: SHA-256 of the names and contents (the cache entry's folder name).
    """

    files: Tuple[Tuple[str, Path], ...]
    key: str

    @classmethod
    def of(cls, files: Iterable[Tuple[str, Path]]) -> Bundle:
        pairs = tuple(sorted((str(name), Path(path)) for name, path in files))
        if not pairs:
            raise InvalidInputError("nothing to upload")
        digest = hashlib.sha256()
        for name, path in pairs:
            if not path.is_file():
                raise InvalidInputError(f"{path}: no such file")
            digest.update(f"{name}\0{file_sha256(path)}\n".encode())
        return cls(pairs, digest.hexdigest())

    def ref(self, name: str) -> dict:
        """The device path of `name` in this bundle, as the device agent fills it in."""
        if name not in dict(self.files):
            raise KeyError(name)
        return {"blob": self.key, "path": name}

    def root_ref(self) -> dict:
        """The device path of the bundle's folder (a dataset root)."""
        return {"blob": self.key, "path": "."}

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for _, path in self.files)

    def write_tar(self, stream: BinaryIO) -> None:
        """The bundle as an uncompressed tar stream of `<key>/<name>` (see `write_tar`)."""
        write_tar([self], stream)


def write_tar(bundles: Sequence[Bundle], stream: BinaryIO) -> None:
    """Bundles as one uncompressed tar stream (artifacts barely compress), each file as
    `<key>/<name>`: one upload call for everything the device lacks."""
    with tarfile.open(fileobj=stream, mode="w|") as tar:
        for bundle in bundles:
            for name, path in bundle.files:
                tar.add(str(path), arcname=f"{bundle.key}/{name}", recursive=False)


def artifact_bundle(path) -> Tuple[Bundle, dict]:
    """The bundle of an artifact and every file it needs (OpenVINO: the .xml and its .bin),
    and the device path of the artifact itself."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such artifact (a remote target needs a converted model file)")
    files = [path]
    try:
        from edge_deeplab.converters import CONVERTERS

        for name in CONVERTERS.names():
            converter = CONVERTERS.get(name)
            if converter.suffix == path.suffix.lower():
                files = [Path(f) for f in converter().files(path)]
                break
    except ImportError:  # an install without the converters' registry: the file alone
        pass
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise InvalidInputError(f"{path}: needs {', '.join(missing)} beside it")
    bundle = Bundle.of((f.name, f) for f in files)
    return bundle, bundle.ref(path.name)


def folder_bundle(root) -> Bundle:
    """Every file under `root` (a dataset folder), by its path relative to `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: no such folder")
    files = [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file()]
    if not files:
        raise InvalidInputError(f"{root}: the folder is empty")
    return Bundle.of(files)


def keys(bundles: Iterable[Bundle]) -> Dict[str, Bundle]:
    return {b.key: b for b in bundles}
