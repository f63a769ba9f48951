"""The output folder of `convert`: proven writable before any work, and cleared of what killed
runs left behind (their private staging folders)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge_deeplab.errors import InvalidInputError


def prepare_out_dir(out_dir) -> Path:
    """Create the output folder and prove it is writable (before any work)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".edge-deeplab-probe-", dir=out_dir)
        os.rmdir(probe)
    except OSError as exc:
        raise InvalidInputError(f"--out {out_dir}: cannot write there ({exc.strerror})") from None
    return out_dir


STAGING_PREFIX = ".edge-deeplab-convert-"  # + the pid of the run that owns the folder


def remove_stale_staging(out_dir: Path, say=print) -> int:
    """Delete staging folders that killed runs left in `out_dir`; returns how many.

    A folder belongs to a dead run when the pid in its name is not running. Folders of live
    runs (concurrent converts into one folder) are left alone.
    """
    import shutil

    removed = 0
    for folder in out_dir.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-")[0]
        if not folder.is_dir() or (pid.isdigit() and _alive(int(pid))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
        say(f"removed {folder.name}, left by a conversion that was killed")
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
