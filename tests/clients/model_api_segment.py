"""Runs in model_api's own venv (openvino-model-api + opencv-python-headless), as its users do.

    python model_api_segment.py MODEL.xml|MODEL.onnx IMAGES.npz OUT.npz

IMAGES.npz holds RGB uint8 images (keys img0, img1, ...); each goes to
`Model.create_model(...)` (the wrapper named by the model's model_info: the rt_info of an IR,
the metadata_props of an ONNX model through model_api's ONNXRuntimeAdapter) as OpenCV reads
images, BGR; OUT.npz gets its class maps under the same keys, the wrapper's class name
under "wrapper" and the labels it read under "labels".
"""

import sys

import numpy as np
from model_api.models import Model


def main(model_path, images, out):
    if model_path.endswith(".onnx"):
        from model_api.adapters import ONNXRuntimeAdapter

        model = Model.create_model(ONNXRuntimeAdapter(model_path))
    else:
        model = Model.create_model(model_path, device="CPU")
    masks = {}
    for key, image in np.load(images).items():
        result = model(np.ascontiguousarray(image[..., ::-1]))
        masks[key] = np.asarray(getattr(result, "resultImage", result))
    np.savez(out, wrapper=type(model).__name__, labels=np.array(model.params.labels or []), **masks)


if __name__ == "__main__":
    main(*sys.argv[1:4])
