"""Custom Keras layers of the DeepLab graph, registered so `.keras` files reload.

`ResizeBilinear` replaces `keras.layers.Resizing` on purpose: a Resizing layer upstream of
a BatchNormalization makes that BN run in training mode whenever the model is called with
`training=None` (model.export, tf.function, openvino.convert_model), which silently broke
every exported artifact (see ../shared/PITFALLS.md).
"""

from __future__ import annotations

from . import deps

keras = deps.keras()


@keras.saving.register_keras_serializable(package="edge_deeplab")
class ResizeBilinear(keras.layers.Layer):
    """Bilinear resize of NHWC features to a fixed (height, width).

    Args:
        size: (height, width) of the output.
        align_corners: map the corner pixels of input and output onto each other, as
            TF-slim DeepLab does (its published models were trained that way); False uses
            half-pixel centres (Keras' and OpenCV's convention).
    """

    def __init__(self, size, align_corners: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(v) for v in size)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        if self.align_corners:
            # keras.ops has no align_corners; the TF op converts to TFLite RESIZE_BILINEAR
            # (align_corners=True) and to ONNX Resize (coordinate mode align_corners).
            tf = deps.tensorflow()
            return tf.raw_ops.ResizeBilinear(
                images=inputs, size=self.size, align_corners=True, half_pixel_centers=False
            )
        return keras.ops.image.resize(inputs, self.size, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "align_corners": self.align_corners}
