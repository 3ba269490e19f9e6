"""Canaries for the private Keras internals catdog relies on.

Each test pins one assumption catdog makes about a Keras internal (a name
with a leading underscore, or the layout of a value Keras does not document).
When a Keras release changes one, its test fails with a message that says
which catdog feature breaks, instead of training going silently wrong.
pyproject.toml bounds Keras at the newest release these canaries passed on.
"""

import numpy as np
import pytest

import keras
from keras import ops


def canary(condition, internal, used_by):
    assert condition, (
        f"Keras {keras.__version__} changed {internal}, which catdog relies on in {used_by}. "
        "Pin keras to the version in pyproject.toml's bound or update catdog."
    )


def test_random_zoom_get_zoom_matrix():
    """ImageAugmentation composes RandomZoom's own output->input matrix."""
    layer = keras.layers.RandomZoom(0.2)
    canary(hasattr(layer, "_get_zoom_matrix"), "RandomZoom._get_zoom_matrix", "catdog/layers/augmentation.py")
    zooms = np.array([[1.0, 1.0], [0.5, 2.0]], np.float32)
    matrix = ops.convert_to_numpy(layer._get_zoom_matrix(ops.convert_to_tensor(zooms), 11, 21))
    canary(matrix.shape == (2, 8), "the shape of RandomZoom._get_zoom_matrix's result", "catdog/layers/augmentation.py")
    # zoom 1 is the identity; zoom (0.5, 2) scales about the image centre.
    np.testing.assert_allclose(matrix[0], [1, 0, 0, 0, 1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(matrix[1], [0.5, 0, 5.0, 0, 2.0, -5.0, 0, 0], atol=1e-6)


@pytest.mark.parametrize(
    "layer, keys",
    [
        (keras.layers.RandomRotation(0.1, seed=1), {"rotation_matrix"}),
        (keras.layers.RandomZoom(0.1, seed=1), {"width_zoom", "height_zoom"}),
        (keras.layers.RandomFlip("horizontal", seed=1), {"flips"}),
    ],
    ids=["rotation", "zoom", "flip"],
)
def test_random_layers_transformation_keys(layer, keys):
    """ImageAugmentation reads these keys of each layer's drawn transformation."""
    drawn = layer.get_random_transformation(np.zeros((3, 8, 8, 3), np.float32), training=True)
    canary(
        isinstance(drawn, dict) and keys <= set(drawn),
        f"{type(layer).__name__}.get_random_transformation's keys (now {sorted(drawn) if isinstance(drawn, dict) else drawn})",
        "catdog/layers/augmentation.py",
    )


def _functional():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")
    bn = keras.layers.BatchNormalization(name="bn")
    outputs = keras.layers.ReLU()(bn(conv(inputs)))
    return keras.Model(inputs, outputs), conv, bn


def test_functional_graph_nodes():
    """BatchNorm folding walks the graph through these private attributes."""
    model, conv, bn = _functional()
    for layer in (conv, bn):
        canary(hasattr(layer, "_inbound_nodes") and hasattr(layer, "_outbound_nodes"), "Layer._inbound_nodes/_outbound_nodes", "catdog/folding.py")
    canary(len(bn._inbound_nodes) == 1 and len(conv._outbound_nodes) == 1, "the number of nodes a layer called once keeps", "catdog/folding.py")
    tensor = bn._inbound_nodes[0].input_tensors[0]
    history = getattr(tensor, "_keras_history", None)
    canary(history is not None and history[0] is conv, "KerasTensor._keras_history[0] (the producing layer)", "catdog/folding.py")


def test_run_through_graph_with_operation_fn():
    """The folded forward pass replaces layers through _run_through_graph."""
    model, conv, bn = _functional()
    canary(hasattr(model, "_run_through_graph"), "Functional._run_through_graph", "catdog/folding.py")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    seen = []

    def operation_fn(operation):
        seen.append(operation.name)
        return lambda *args, **kwargs: operation(*args, **kwargs)

    out = model._run_through_graph(ops.convert_to_tensor(x), operation_fn=operation_fn)
    canary({"conv", "bn"} <= set(seen), "the operation_fn argument of _run_through_graph", "catdog/folding.py")
    np.testing.assert_allclose(ops.convert_to_numpy(out), ops.convert_to_numpy(model(x)), atol=1e-6)


def test_jax_trainer_state_sync():
    """FineTuneSwitch writes JAX's in-epoch training state back before unfreezing."""
    pytest.importorskip("jax")
    from keras.src.backend.jax.trainer import JAXTrainer

    canary(callable(getattr(JAXTrainer, "jax_state_sync", None)), "JAXTrainer.jax_state_sync", "catdog/callbacks.py (FineTuneSwitch on JAX)")
