"""Training: `train(model_cfg, data_cfg, train_cfg, out_dir)` writes a run folder.

Needs TensorFlow (pip install 'edge-deeplab[train]'), which is imported only when `train`
runs: importing this package stays light.
"""

from .train import train

__all__ = ["train"]
