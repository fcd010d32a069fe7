"""Keras 3 -> rnnkit import: the imported model gives Keras's outputs (within 1e-5).

Keras models are built with random (non-default) weights, including biases, so that every
weight block and gate reordering is exercised.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras 3 is not installed (pip install 'rnnkit[keras]'); Keras interop tests skipped")

from rnnkit.errors import UserError  # noqa: E402
from rnnkit.nn import Recurrent  # noqa: E402
from rnnkit.nn import GRU, LSTM, RNN  # noqa: E402
from rnnkit.nn.interop import KerasGRUCell, from_keras, to_keras  # noqa: E402

# Keras variables trip a numpy-2 copy= DeprecationWarning on every get_weights(); not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TOL = 1e-5
B, T, I, H = 3, 7, 4, 5
L = keras.layers


def randomize(model: "keras.Model", seed: int = 0) -> None:
    """Replace every weight with N(0, 0.5²) so biases and all gate blocks matter."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ws])


def keras_out(model, x: np.ndarray) -> np.ndarray:
    y = model(x, training=False)
    return keras.ops.convert_to_numpy(y)


def check(model, seed: int = 0, lengths_free: bool = True) -> torch.nn.Module:
    randomize(model, seed)
    x = np.random.default_rng(seed + 1).normal(size=(B, T, I)).astype("float32")
    ours = from_keras(model)
    with torch.no_grad():
        y = ours(torch.from_numpy(x)).numpy()
    expected = keras_out(model, x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=TOL, rtol=0)
    return ours


def seq(*layers):
    return keras.Sequential([keras.Input((T, I)), *layers])


RNN_LAYERS = {
    "simple_tanh": lambda **kw: L.SimpleRNN(H, **kw),
    "simple_relu": lambda **kw: L.SimpleRNN(H, activation="relu", **kw),
    "lstm": lambda **kw: L.LSTM(H, **kw),
    "gru_reset_after": lambda **kw: L.GRU(H, reset_after=True, **kw),
    "gru_reset_before": lambda **kw: L.GRU(H, reset_after=False, **kw),
}


@pytest.mark.parametrize("kind", list(RNN_LAYERS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_single_layer_matches_keras(kind, return_sequences):
    check(seq(RNN_LAYERS[kind](return_sequences=return_sequences)))


@pytest.mark.parametrize("kind", list(RNN_LAYERS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_matches_keras(kind, return_sequences):
    check(seq(L.Bidirectional(RNN_LAYERS[kind](return_sequences=return_sequences))), seed=2)


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_before", "simple_tanh"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_go_backwards_matches_keras(kind, return_sequences):
    check(seq(RNN_LAYERS[kind](return_sequences=return_sequences, go_backwards=True)), seed=3)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave"])
def test_bidirectional_merge_modes(merge_mode):
    check(seq(L.Bidirectional(L.GRU(H, return_sequences=True), merge_mode=merge_mode)), seed=4)


def test_stack_with_dense_heads_and_no_bias():
    model = seq(
        L.Bidirectional(L.LSTM(H, return_sequences=True)),
        L.Dropout(0.3),
        L.GRU(H, return_sequences=True, reset_after=False, use_bias=False),
        L.SimpleRNN(H),
        L.Dense(6, activation="relu"),
        L.Dense(3, activation="softmax"),
    )
    ours = check(model, seed=5)
    assert not ours.training


def test_functional_chain_and_per_step_dense():
    inp = keras.Input((T, I))
    x = L.GRU(H, return_sequences=True)(inp)
    x = L.Dense(2, activation="tanh")(x)  # Dense on every time step
    out = L.Activation("sigmoid")(x)
    check(keras.Model(inp, out), seed=6)


def test_saved_keras_file_round_trip(tmp_path):
    model = seq(L.Bidirectional(L.GRU(H, return_sequences=True, reset_after=False)), L.LSTM(H), L.Dense(2))
    randomize(model, 7)
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.random.default_rng(8).normal(size=(B, T, I)).astype("float32")
    ours = from_keras(str(path))
    with torch.no_grad():
        y = ours(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, keras_out(keras.saving.load_model(path), x), atol=TOL, rtol=0)
    np.testing.assert_allclose(y, keras_out(model, x), atol=TOL, rtol=0)


def test_imported_model_trains_and_streams():
    """The import is an ordinary torch module: gradients flow, and its LSTM can stream."""
    model = seq(L.LSTM(H, return_sequences=True))
    randomize(model, 9)
    ours = from_keras(model)
    x = torch.randn(B, T, I)
    ours.train()
    ours(x).square().mean().backward()
    assert all(p.grad is not None for p in ours.parameters())
    lstm = ours[0]
    state, ys = None, []
    with torch.no_grad():
        for t in range(T):
            y_t, state = lstm.step(x[:, t], state)
            ys.append(y_t)
        torch.testing.assert_close(torch.stack(ys, 1), lstm(x), atol=TOL, rtol=0)


def test_keras_gru_cell_differs_from_reset_after():
    """Sanity: the reset-before cell is a different function from torch's GRU (so the test above means something)."""
    torch.manual_seed(0)
    layer = Recurrent(lambda i: KerasGRUCell(i, H), input_size=I, batch_first=True)
    gru = torch.nn.GRU(I, H, batch_first=True)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, f"{n}_l0").copy_(getattr(layer.cells[0], n))
    x = torch.randn(B, T, I)
    assert (layer(x)[0] - gru(x)[0]).abs().max() > 1e-3


def test_unsupported_layers_and_files_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="Conv1D"):
        from_keras(seq(L.Conv1D(2, 3)))
    with pytest.raises(UserError, match="recurrent_activation"):
        from_keras(seq(L.LSTM(H, recurrent_activation="relu")))
    with pytest.raises(UserError, match="not found"):
        from_keras(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read"):
        from_keras(bad)
    inp = keras.Input((T, I))
    a, b = L.GRU(H)(inp), L.LSTM(H)(inp)
    with pytest.raises(UserError, match="chains of layers|one input and one output"):
        from_keras(keras.Model(inp, L.Add()([a, b])))


# ------------------------------------------------------------------------------- to_keras
def test_to_keras_round_trip_of_imported_model():
    """Keras -> rnnkit -> Keras gives the original outputs (every layer type, merge modes)."""
    model = seq(
        L.Bidirectional(L.LSTM(H, return_sequences=True)),
        L.Bidirectional(L.GRU(H, return_sequences=True, reset_after=False), merge_mode="ave"),
        L.GRU(H, return_sequences=True, go_backwards=True),
        L.SimpleRNN(H, activation="relu"),
        L.Dense(3, activation="softmax"),
    )
    randomize(model, 10)
    x = np.random.default_rng(11).normal(size=(B, T, I)).astype("float32")
    back = to_keras(from_keras(model))
    np.testing.assert_allclose(keras_out(back, x), keras_out(model, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("make", [
    lambda: LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, return_state=False),
    lambda: GRU(I, H, num_layers=3, batch_first=True, return_sequences=False, return_state=False),
    lambda: RNN(I, H, nonlinearity="relu", batch_first=True, go_backwards=True, return_state=False),
], ids=["lstm_2layer_bidir", "gru_3layer_last", "rnn_relu_backwards"])
def test_to_keras_of_rnnkit_layers_sums_torch_biases(make):
    torch.manual_seed(0)
    layer = make().eval()
    x = torch.randn(B, T, I)
    with torch.no_grad():
        expected = layer(x).numpy()
    np.testing.assert_allclose(keras_out(to_keras(layer), x.numpy()), expected, atol=TOL, rtol=0)


def test_to_keras_refuses_what_keras_cannot_hold():
    with pytest.raises(UserError, match="proj_size"):
        to_keras(LSTM(I, H, proj_size=2, batch_first=True))
    with pytest.raises(UserError, match="batch_first"):
        to_keras(GRU(I, H))
