"""The rnnkit.nn API beyond torch parity: registry, Recurrent/I2HCell, dropout, state helpers,
and the `rnnkit bench` command's discovery and error handling."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import rnnkit.nn as rnn
from rnnkit.cli import main as cli_main
from rnnkit.nn.registry import cell_names, make_layer

B, T, I, H = 2, 5, 3, 4


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_make_layer_is_batch_first_with_state(cell, bidirectional):
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=bidirectional)
    y, state = layer(torch.randn(B, T, I), lengths=torch.tensor([T, 2]))
    D = 2 if bidirectional else 1
    assert y.shape == (B, T, D * H)
    assert torch.all(y[1, 2:] == 0)
    h = state[0] if isinstance(state, tuple) else state
    assert h.shape == (2 * D, B, H)


def test_make_layer_unknown_cell_lists_choices():
    assert {"lstm", "gru", "rnn"} <= set(cell_names())
    with pytest.raises(ValueError, match="lstm"):
        make_layer("transformer", I, H)


def test_simple_rnn_is_keras_alias():
    assert rnn.SimpleRNN is rnn.RNN


def test_layers_are_torch_modules():
    assert isinstance(rnn.LSTM(I, H), nn.LSTM) and isinstance(rnn.GRU(I, H), nn.GRU) and isinstance(rnn.RNN(I, H), nn.RNN)


def test_i2h_cell_matches_tutorial_loop():
    """The classic tutorial module, written out by hand, equals I2HCell run by Recurrent."""
    torch.manual_seed(0)
    cell = rnn.I2HCell(I, H, 6, log_softmax=True, nonlinearity=None)
    layer = rnn.Recurrent(cell, batch_first=True)
    x = torch.randn(B, T, I)
    y, h_last = layer(x)
    h = torch.zeros(B, H)
    for t in range(T):
        combined = torch.cat((x[:, t], h), 1)
        out = torch.log_softmax(cell.i2o(combined), 1)
        h = cell.i2h(combined)
        torch.testing.assert_close(y[:, t], out)
    torch.testing.assert_close(h_last[0], h)
    assert torch.allclose(y.exp().sum(-1), torch.ones(B, T), atol=1e-6)


def test_i2h_step_equals_sequence_and_lengths_freeze_state():
    torch.manual_seed(1)
    layer = rnn.Recurrent(rnn.I2HCell(I, H, 2), batch_first=True)
    x = torch.randn(B, T, I)
    y, s = layer(x)
    state, ys = None, []
    for t in range(T):
        y_t, state = layer.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y)
    torch.testing.assert_close(state, s)
    y_l, s_l = layer(x, lengths=torch.tensor([3, T]))
    y_3, s_3 = layer(x[:1, :3])
    torch.testing.assert_close(s_l[:, :1], s_3)
    assert torch.all(y_l[0, 3:] == 0)


def test_recurrent_argument_errors():
    with pytest.raises(ValueError, match="factory"):
        rnn.Recurrent(rnn.GRUCell(I, H), num_layers=2)
    with pytest.raises(ValueError, match="input_size"):
        rnn.Recurrent(lambda i: rnn.GRUCell(i, H), num_layers=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNNCell(I, H, nonlinearity="sigmoid")


@pytest.mark.parametrize("fused", [True, False])
def test_dropout_only_in_training(fused):
    torch.manual_seed(0)
    layer = rnn.LSTM(I, 32, num_layers=2, dropout=0.5, batch_first=True, fused=fused)
    ref = rnn.LSTM(I, 32, num_layers=2, batch_first=True, fused=fused)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(B, T, I)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], ref(x)[0])
    layer.train()
    assert not torch.allclose(layer(x)[0], ref(x)[0])


def test_init_state_and_return_state_false():
    lstm = rnn.LSTM(I, H, num_layers=3, bidirectional=True, proj_size=2, return_state=False)
    h, c = lstm.init_state(B)
    assert h.shape == (6, B, 2) and c.shape == (6, B, H)
    out = lstm(torch.randn(T, B, I))
    assert isinstance(out, torch.Tensor) and out.shape == (T, B, 4)
    assert rnn.GRU(I, H).init_state(B).shape == (1, B, H)


def test_dtype_is_preserved_and_repr_names_options():
    layer = rnn.GRU(I, H, batch_first=True, go_backwards=True, return_sequences=False, fused=False).double()
    y, _ = layer(torch.randn(B, T, I, dtype=torch.float64))
    assert y.dtype == torch.float64 and y.shape == (B, H)
    text = repr(layer)
    assert "go_backwards" in text and "return_sequences=False" in text and "fused=False" in text


def test_step_generic_equals_fused_step_with_projection():
    torch.manual_seed(0)
    a = rnn.LSTM(I, H, num_layers=2, proj_size=2)
    b = rnn.LSTM(I, H, num_layers=2, proj_size=2, fused=False)
    b.load_state_dict(a.state_dict())
    x_t = torch.randn(B, I)
    ya, sa = a.step(x_t)
    yb, sb = b.step(x_t)
    torch.testing.assert_close(ya, yb)
    assert ya.shape == (B, 2) and sa[0].shape == (2, B, 2) and sa[1].shape == (2, B, H)


# ------------------------------------------------------------------------- rnnkit bench CLI
def _toy_bench(tmp_path, body: str):
    d = tmp_path / "bench"
    d.mkdir()
    (d / "common.py").write_text("")
    (d / "_helper.py").write_text("raise RuntimeError('helpers must not run')\n")
    (d / "script.py").write_text("def main(argv=None):\n    raise RuntimeError('not a protocol main')\n")
    (d / "toy.py").write_text(textwrap.dedent(body))
    return d


def test_bench_cli_runs_discovered_modules(tmp_path, capsys):
    d = _toy_bench(tmp_path, """
        def main(quick: bool) -> dict:
            return {"rows": [{"case": "a", "quick": quick, "ms": 1.25}]}
    """)
    assert cli_main(["bench", "--quick", "--bench-dir", str(d)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "skipping script.py" in captured.err
    assert "## toy" in out and "| case | quick | ms |" in out and "| a | True | 1.25 |" in out
    assert cli_main(["bench", "--list", "--bench-dir", str(d)]) == 0
    assert capsys.readouterr().out.split() == ["script", "toy"]


def test_bench_cli_errors_exit_2(tmp_path, capsys):
    d = _toy_bench(tmp_path, """
        def main(quick: bool) -> dict:
            raise RuntimeError("boom")
    """)
    assert cli_main(["bench", "--bench-dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert "toy failed: RuntimeError: boom" in err and "rnnkit: error: benchmarks failed: toy" in err
    assert cli_main(["bench", "--only", "nope", "--bench-dir", str(d)]) == 2
    assert "no benchmark named nope" in capsys.readouterr().err
    assert cli_main(["bench", "--bench-dir", str(tmp_path)]) == 2
    assert "not a bench folder" in capsys.readouterr().err


def test_bench_missing_optional_package_is_skipped_not_failed(tmp_path, capsys):
    d = _toy_bench(tmp_path, """
        def main(quick: bool) -> dict:
            import rnnkit_no_such_package  # noqa: F401  (like bench/export.py without the [export] extra)
    """)
    (d / "other.py").write_text("import rnnkit_other_missing_package\n")
    assert cli_main(["bench", "--quick", "--bench-dir", str(d)]) == 0
    err = capsys.readouterr().err
    assert "skipping toy: it needs the package 'rnnkit_no_such_package'" in err
    assert "skipping other: it needs the package 'rnnkit_other_missing_package'" in err
    assert "skipped for missing packages: other (rnnkit_other_missing_package), toy (rnnkit_no_such_package)" in err


def test_bench_cli_finds_repository_bench_folder(capsys):
    assert cli_main(["bench", "--list"]) == 0
    assert "layers" in capsys.readouterr().out.split()


def test_lengths_may_be_a_list():
    layer = rnn.GRU(I, H, batch_first=True)
    y, _ = layer(torch.randn(B, T, I), lengths=[T, 2])
    assert torch.all(y[1, 2:] == 0) and not torch.all(y[0, 2:] == 0)
