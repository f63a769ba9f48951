"""The one guard every entry point runs its command in (the CLI and the `python -m` demos).

A user's error (EdgeDeeplabError) becomes one line on stderr and exit status 2; Ctrl-C
is status 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

from .errors import EdgeDeeplabError


def guarded(prog: str, call: Callable[[], Optional[int]]) -> int:
    """Run a command: a user's error is one line and status 2, Ctrl-C is status 130."""
    try:
        return int(call() or 0)
    except EdgeDeeplabError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
