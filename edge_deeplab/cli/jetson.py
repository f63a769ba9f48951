"""The Jetson demo: `python -m edge_deeplab.cli.jetson MODEL` (see docs/jetson.md).

`edge-deeplab demo` with Jetson defaults (`edge_deeplab.demos.jetson.jetson_defaults`): the
CSI camera `csi://0`, and the GPU: a TensorRT engine runs on TensorRT, an .onnx model on ONNX
Runtime's TensorRT execution provider in FP16. `--stats` records the power mode and clocks.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from edge_deeplab.demos.jetson import jetson_defaults

from .demo_cmd import standalone_main


def main(argv: Optional[List[str]] = None) -> int:
    return standalone_main(argv, prog="python -m edge_deeplab.cli.jetson", description=__doc__.splitlines()[0],
                           source="csi://0", configure=jetson_defaults)


if __name__ == "__main__":
    sys.exit(main())
