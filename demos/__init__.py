"""Camera demos: URI sources, the capture -> inference -> render pipeline, views and stats.

Run them as `edge-deeplab demo MODEL --source SRC`, `python -m edge_deeplab.cli.webcam`
or, on a Jetson, `python -m edge_deeplab.cli.jetson` (docs/jetson.md).
"""
