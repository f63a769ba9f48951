"""The MobileNetV2 DeepLab v3 network (needs TensorFlow: pip install 'edge-deeplab[train]')."""

from .deeplab import LOGITS, UPSAMPLED, build_deeplab_v3, load_full_weights

__all__ = ["build_deeplab_v3", "load_full_weights", "LOGITS", "UPSAMPLED"]
