"""ONNX export: onnxruntime equals PyTorch within 1e-4 on both graphs (sequence with
variable lengths and dynamic batch/time, streaming step with explicit state), and the
CLI writes nothing on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit.cli import main  # noqa: E402
from rnnkit.export import export, layer_specs, run_onnx, save_layer  # noqa: E402
from rnnkit.nn import I2HCell, Recurrent  # noqa: E402
from rnnkit.nn.registry import make_layer  # noqa: E402


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_graphs_match_pytorch(cell, bidirectional, tmp_path):
    torch.manual_seed(0)
    layer = make_layer(cell, 3, 6, num_layers=2, bidirectional=bidirectional, batch_first=True)
    specs = layer_specs(layer)
    assert ("step" in specs) == (not bidirectional)
    for name, spec in specs.items():
        diffs = export(spec, tmp_path / f"{name}.onnx")  # checks (B=2,T=5) and (B=3,T=8)
        assert max(diffs.values()) < 1e-4, (name, diffs)


def test_sequence_graph_lengths_and_dynamic_shapes(tmp_path):
    """Run the exported LSTM graph on a new batch size and time with padded sequences:
    outputs equal rnnkit's lengths-aware forward and the padded steps do not leak."""
    torch.manual_seed(1)
    layer = make_layer("lstm", 4, 8, num_layers=2, batch_first=True).eval()
    export(layer_specs(layer)["sequence"], tmp_path / "seq.onnx")
    x = torch.randn(4, 13, 4)
    lengths = torch.tensor([13, 1, 7, 10])
    h0 = torch.zeros(2, 4, 8)
    got = run_onnx(tmp_path / "seq.onnx", {"x": x, "lengths": lengths, "h0": h0, "c0": h0})
    with torch.no_grad():
        y, (h, c) = layer(x, lengths=lengths)
    np.testing.assert_allclose(got["y"], y.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["hn"], h.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["cn"], c.numpy(), atol=1e-5)


def test_step_graph_streams_like_forward(tmp_path):
    torch.manual_seed(2)
    layer = make_layer("mingru", 3, 5, num_layers=2, batch_first=True).eval()
    export(layer_specs(layer)["step"], tmp_path / "step.onnx")
    x = torch.randn(1, 9, 3)
    with torch.no_grad():
        y_ref, _ = layer(x)
    h = np.zeros((2, 1, 5), dtype=np.float32)
    for t in range(9):
        out = run_onnx(tmp_path / "step.onnx", {"x_t": x[:, t], "h": h})
        h = out["h_out"]
        np.testing.assert_allclose(out["y_t"], y_ref[:, t].numpy(), atol=1e-5)


def test_custom_cell_step_graph(tmp_path):
    torch.manual_seed(3)
    rec = Recurrent(I2HCell(3, 6, 4, log_softmax=True), batch_first=True)
    specs = layer_specs(rec)
    assert list(specs) == ["step"]  # a generic cell's sequence loop is not exported
    assert export(specs["step"], tmp_path / "i2h.onnx")["y_t"] < 1e-4


def test_cli_export_layer_folder(tmp_path, capsys):
    save_layer(tmp_path / "m", "gru", 3, 7, num_layers=2)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tmp_path / "m"), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and capsys.readouterr().out.strip() == str(out)
    assert main(["export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "s.onnx"), "--graph", "step"]) == 0
    got = run_onnx(tmp_path / "s.onnx", {"x_t": np.ones((2, 3), np.float32), "h": np.zeros((2, 2, 7), np.float32)})
    assert got["y_t"].shape == (2, 7)


def test_cli_export_bad_input_exit_2_and_no_output(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "rnnkit: error:" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"task": "layer", "cell": "gru"}))
    assert main(["export", "--model", str(bad), "--out", str(out)]) == 2
    save_layer(tmp_path / "m", "lstm", 2, 3, bidirectional=True)
    assert main(["export", "--model", str(tmp_path / "m"), "--out", str(out), "--graph", "step"]) == 2
    assert main(["export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "nodir" / "x.onnx")]) == 2
    assert not out.exists() and not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


class _TaskNet(torch.nn.Module):
    """A task-style network: its layer gets the graph's lengths; output at the last real step."""

    def __init__(self, cell: str, bidirectional: bool):
        super().__init__()
        self.rnn = make_layer(cell, 3, 6, num_layers=2, bidirectional=bidirectional, batch_first=True)
        self.head = torch.nn.Linear(6 * (2 if bidirectional else 1), 2)

    def forward(self, x, lengths):
        y, _ = self.rnn(x, lengths=lengths)
        return self.head(y[torch.arange(x.shape[0]), lengths - 1])


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_task_network_with_lengths_exports(cell, bidirectional, tmp_path):
    """What a task's ``onnx_specs`` returns: its network, with lengths wired into the RNN nodes."""
    from rnnkit.export import ExportSpec

    torch.manual_seed(5)
    net = _TaskNet(cell, bidirectional).eval()
    axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
    spec = ExportSpec(net, (torch.randn(3, 9, 3), torch.tensor([9, 4, 6])), ["x", "lengths"], ["logits"], axes,
                      check_inputs=(torch.randn(5, 12, 3), torch.tensor([12, 1, 6, 7, 3])), lengths_input="lengths")
    assert export(spec, tmp_path / "net.onnx")["logits"] < 1e-4
