"""SequenceClassifier(ensemble=K): K seeds averaged in one network, one model folder, one ONNX graph."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.cli import main
from rnnkit.errors import UserError
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.classify.ensemble import EnsembleNet
from rnnkit.tasks.classify.network import ClassifierNetConfig

FAST = dict(progress=False, device="cpu", hidden_size=8, epochs=6, lr=1e-2, patience=0, batch_size=16)


def _data(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b", "c"] * (n // 3))
    X = rng.normal(size=(n, 6, 2)).astype(np.float32)
    X[:, :, 0] += np.select([y == "a", y == "b"], [1.0, -1.0], 0.0)[:, None]
    return X, y


def test_ensemble_averages_member_probabilities():
    """The ensemble's output is exactly the mean of its members' softmax (plus a zero adjustment)."""
    torch.manual_seed(0)
    cfg = ClassifierNetConfig(n_classes=3, input_kind="numeric", n_features=2, hidden_size=4)
    net = EnsembleNet(cfg, 3).eval()
    x, lengths = torch.randn(5, 7, 2), torch.tensor([7, 1, 3, 5, 2])
    mean = torch.stack([torch.softmax(m(x, lengths), -1) for m in net.members]).mean(0)
    torch.testing.assert_close(torch.softmax(net(x, lengths), -1), mean)
    assert sorted(net.state_dict())[0].startswith("adjust") and "members.2.head.bias" in net.state_dict()
    with pytest.raises(ValueError):
        EnsembleNet(cfg, 1)


def test_ensemble_fit_save_load(tmp_path):
    """Member 0 is the single model of the same seed; save -> load gives the same probabilities;
    the folder is one config.json + one model.safetensors with member-prefixed keys."""
    X, y = _data(0)
    Xv, yv = _data(1, 60)
    single = SequenceClassifier(seed=3, **FAST).fit(X, y, val=(Xv, yv))
    ens = SequenceClassifier(seed=3, ensemble=3, logit_adjust="auto", **FAST).fit(X, y, val=(Xv, yv))
    assert isinstance(ens.network, EnsembleNet) and len(ens.histories) == 3
    for a, b in zip(single.network.state_dict().values(), ens.network.members[0].state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not torch.equal(ens.network.members[0].head.weight, ens.network.members[1].head.weight)
    assert ens.evaluate(Xv, yv)["accuracy"] > 0.6  # three well-separated classes (chance 0.33)
    ens.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["options"]["ensemble"] == 3
    keys = load_file(str(tmp_path / "m" / "model.safetensors")).keys()
    assert {k.split(".")[0] for k in keys} == {"members", "adjust"} and "members.2.rnn.weight_ih_l0" in keys
    again = SequenceClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(Xv), ens.predict_proba(Xv), atol=1e-6)
    assert again.predict(Xv) == ens.predict(Xv)


def test_bad_ensemble_size():
    X, y = _data(0, 30)
    with pytest.raises(UserError, match="ensemble"):
        SequenceClassifier(ensemble=0, **FAST).fit(X, y)


def test_cli_ensemble_train_and_onnx_export(tmp_path):
    """`rnnkit classify train --ensemble 2` writes one model folder; ONNX export gives the same
    averaged probabilities in onnxruntime."""
    pytest.importorskip("onnxruntime")
    from rnnkit.onnx_runtime import load_onnx

    names = ["anna", "marco", "giulia", "paolo", "francesca", "smith", "john", "william", "elizabeth",
             "thompson", "hans", "schmidt", "wolfgang", "krueger", "baecker", "sophie", "lena", "mario"]
    langs = ["it"] * 5 + ["en"] * 5 + ["de"] * 5 + ["de", "de", "it"]
    csv = tmp_path / "d.csv"
    csv.write_text("name,label\n" + "".join(f"{n},{l}\n" for n, l in zip(names, langs)))
    model = tmp_path / "m"
    assert main(["classify", "train", "--data", str(csv), "--out", str(model), "--ensemble", "2", "--epochs", "2",
                 "--hidden-size", "8", "--embed-size", "8", "--bidirectional", "--conv-kernel", "3", "--val-fraction", "0.3",
                 "--logit-adjust", "auto", "--batch-size", "4", "--quiet", "--device", "cpu"]) == 0
    assert (model / "member-1" / "metrics.csv").is_file()  # each member's training log
    assert main(["classify", "train", "--data", str(csv), "--out", str(tmp_path / "bad"), "--ensemble", "0",
                 "--quiet"]) == 2
    assert not (tmp_path / "bad" / "config.json").exists()
    assert main(["export", "--model", str(model), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    clf = SequenceClassifier.load(model)
    fast = load_onnx(model, tmp_path / "m.onnx")
    probe = ["anna", "x", "wolfgang", "giuseppina"]
    np.testing.assert_allclose(fast.predict_proba(probe), clf.predict_proba(probe), atol=1e-4)
