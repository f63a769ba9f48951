"""Runs in MediaPipe's own venv (mediapipe + opencv-contrib-python + numpy), as its users do.

    python mediapipe_segment.py MODEL.tflite IMAGES.npz OUT.npz

IMAGES.npz holds RGB uint8 images (keys img0, img1, ...); OUT.npz gets each image's
category mask from `vision.ImageSegmenter` (IMAGE mode) under the same key, and the
labels MediaPipe read from the model under "labels".
"""

import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks import python as mp_tasks
from mediapipe.tasks.python import vision


def main(model, images, out):
    options = vision.ImageSegmenterOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=model), output_category_mask=True
    )
    masks = {}
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        for key, image in np.load(images).items():
            frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
            mask = segmenter.segment(frame).category_mask.numpy_view()
            masks[key] = mask.reshape(mask.shape[:2]).copy()
        labels = segmenter.labels
    np.savez(out, labels=np.array(labels), **masks)


if __name__ == "__main__":
    main(*sys.argv[1:4])
