"""Camera demos: sources, the capture/infer/render pipeline, rendering."""
