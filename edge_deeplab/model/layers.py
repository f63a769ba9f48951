"""Custom Keras layers of the DeepLab graph, registered so `.keras` files reload.

`ResizeBilinear` replaces `keras.layers.Resizing` on purpose: a Resizing layer upstream of
a BatchNormalization makes that BN run in training mode whenever the model is called with
`training=None` (model.export, tf.function, openvino.convert_model), which silently broke
every exported artifact (see ../shared/PITFALLS.md).
"""

from __future__ import annotations

from .. import deps

keras = deps.keras()


@keras.saving.register_keras_serializable(package="edge_deeplab")
class ResizeBilinear(keras.layers.Layer):
    """Bilinear resize of NHWC features to a fixed (height, width)."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(v) for v in size)

    def call(self, inputs):
        return keras.ops.image.resize(inputs, self.size, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}
