"""Run a frozen-BatchNorm backbone with each BatchNorm folded into its convolution.

In inference mode a BatchNormalization is a per-channel affine map, so
`BN(conv(x, W))` equals `conv(x, W * s) + b` with `s = gamma / sqrt(var + eps)`
and `b = beta - mean * s`. Computing `W * s` on every call (a few kilobytes
per layer) instead of normalising every activation (megabytes per image)
makes a MobileNetV2 forward pass cheaper on CPU, where BatchNorm is a large
share of it (`make levers` measures how much). Because the folded kernel is
recomputed from the live `W`, gradients reach `W` exactly as through the
unfolded layers: the function, its gradients and the saved model are unchanged,
only the arithmetic is cheaper. BatchNorm statistics are never updated (catdog
never trains them), so folding is always valid for catdog's backbone.
"""

import keras
from keras import ops


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def _foldable_conv(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        pass
    elif isinstance(layer, keras.layers.Conv2D):
        if getattr(layer, "groups", 1) != 1:
            return False
    else:
        return False
    return (
        layer.data_format == "channels_last"
        and layer.activation in (None, keras.activations.linear)
        and len(layer._inbound_nodes) == 1
        and len(layer._outbound_nodes) == 1
    )


def conv_batchnorm_pairs(model):
    """{conv layer: its BatchNorm} for every BN fed only by a foldable conv."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.axis not in (-1, 3, [3], [-1]) or len(layer._inbound_nodes) != 1:
            continue
        conv = _producer(layer._inbound_nodes[0].input_tensors[0])
        if conv is not None and _foldable_conv(conv):
            pairs[conv] = layer
    return pairs


def _scale_and_shift(bn, dtype):
    variance = ops.cast(bn.moving_variance, dtype)
    scale = ops.rsqrt(variance + bn.epsilon)
    if bn.scale:
        scale = scale * ops.cast(bn.gamma, dtype)
    shift = -ops.cast(bn.moving_mean, dtype) * scale
    if bn.center:
        shift = shift + ops.cast(bn.beta, dtype)
    return scale, shift


def _folded_conv(conv, bn):
    def call(inputs, **kwargs):
        dtype = conv.compute_dtype
        inputs = ops.cast(inputs, dtype)
        scale, shift = _scale_and_shift(bn, dtype)
        kernel = ops.cast(conv.kernel, dtype)
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            kernel = kernel * ops.reshape(scale, kernel.shape[2:])
            outputs = ops.depthwise_conv(
                inputs, kernel, strides=conv.strides, padding=conv.padding,
                dilation_rate=conv.dilation_rate, data_format=conv.data_format,
            )
        else:
            outputs = conv.convolution_op(inputs, kernel * scale)
        if conv.use_bias:
            shift = shift + ops.cast(conv.bias, dtype) * scale
        return outputs + shift

    return call


def _passthrough(inputs, **kwargs):
    return inputs


class FoldedBatchNormForward:
    """Callable running `model` (a Functional network) with BatchNorm folded.

    A plain object, not a Layer: Keras neither tracks nor saves it; the
    variables it reads belong to `model`'s own layers.
    """

    def __init__(self, model):
        self.model = model
        self.pairs = conv_batchnorm_pairs(model)
        self._replacements = {}
        for conv, bn in self.pairs.items():
            self._replacements[id(conv)] = _folded_conv(conv, bn)
            self._replacements[id(bn)] = _passthrough

    def _operation(self, operation):
        replacement = self._replacements.get(id(operation))
        if replacement is not None:
            return replacement
        return lambda *args, **kwargs: operation(*args, **kwargs)

    def __call__(self, inputs):
        return self.model._run_through_graph(inputs, operation_fn=self._operation)


def folded_forward(model):
    """A `FoldedBatchNormForward` for `model`, or None if it cannot be folded."""
    if not hasattr(model, "_run_through_graph"):
        return None  # a Keras without the graph runner: use the model as is
    forward = FoldedBatchNormForward(model)
    return forward if forward.pairs else None
