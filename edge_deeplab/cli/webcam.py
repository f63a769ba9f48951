"""The camera demo: `python -m edge_deeplab.cli.webcam MODEL --source 0`.

The same flags as `edge-deeplab demo` (defined in `edge_deeplab.cli.demo_cmd`). Keys in the
window: v switch view, +/- alpha, space pause, s snapshot, q or Esc quit.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from .demo_cmd import standalone_main


def main(argv: Optional[List[str]] = None) -> int:
    return standalone_main(argv, prog="python -m edge_deeplab.cli.webcam", description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
