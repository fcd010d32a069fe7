"""SequenceClassifier options: the conv front-end and validation-chosen logit adjustment."""
import numpy as np
import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig

FAST = dict(progress=False, device="cpu", seed=0)


def test_conv_front_end_ignores_padding():
    """Padded steps are zeroed before the conv, so they never reach a real step's n-gram."""
    torch.manual_seed(0)
    for pooling in ("last", "mean", "max"):
        net = ClassifierNet(ClassifierNetConfig(n_classes=3, input_kind="numeric", n_features=4, cell="lstm",
                                                bidirectional=True, pooling=pooling, conv_kernel=3)).eval()
        x = torch.randn(3, 6, 4)
        lengths = torch.tensor([6, 2, 4])
        padded = torch.cat([x, torch.randn(3, 5, 4)], dim=1)
        garbage = x.clone()
        garbage[1, 2:] = 7.0  # junk after the real steps of sequence 1
        torch.testing.assert_close(net(x, lengths), net(padded, lengths))
        torch.testing.assert_close(net(x, lengths), net(garbage, lengths))


def _imbalanced(seed: int, n_rare: int = 30, n_common: int = 300):
    rng = np.random.default_rng(seed)
    y = np.array(["rare"] * n_rare + ["common"] * n_common)
    X = rng.normal(size=(len(y), 5, 2)).astype(np.float32)
    X[:n_rare, :, 0] += 0.8  # the rare class is shifted, with overlap
    return X, y


def test_logit_adjustment_is_folded_into_the_model(tmp_path):
    """Same seed with and without adjustment: the adjusted probabilities are the raw ones times
    prior**-tau (renormalised), tau comes from the validation grid, and save/load keeps it."""
    X, y = _imbalanced(0)
    Xv, yv = _imbalanced(1)
    opts = dict(hidden_size=8, epochs=8, lr=1e-2, patience=0, conv_kernel=3, **FAST)
    raw = SequenceClassifier(**opts).fit(X, y, val=(Xv, yv))
    adj = SequenceClassifier(logit_adjust="auto", **opts).fit(X, y, val=(Xv, yv))
    tau = adj.config.logit_adjust_tau
    assert tau in np.arange(0.0, 1.51, 0.125)
    prior = np.array([(y == c).mean() for c in adj.labels])
    expect = raw.predict_proba(Xv) * prior ** -tau
    np.testing.assert_allclose(adj.predict_proba(Xv), expect / expect.sum(1, keepdims=True), atol=1e-5)
    assert adj.predict(Xv).count("rare") >= raw.predict(Xv).count("rare")
    assert adj.evaluate(Xv, yv)["macro_f1"] >= raw.evaluate(Xv, yv)["macro_f1"] - 1e-9  # chosen on this split
    adj.save(tmp_path / "m")
    again = SequenceClassifier.load(tmp_path / "m")
    assert again.config.logit_adjust_tau == tau
    np.testing.assert_allclose(again.predict_proba(Xv[:20]), adj.predict_proba(Xv[:20]), atol=1e-6)


def test_bad_option_values():
    X, y = _imbalanced(0, 5, 10)
    with pytest.raises(UserError, match="conv_kernel"):
        SequenceClassifier(conv_kernel=2, **FAST).fit(X, y)
    with pytest.raises(UserError, match="logit_adjust"):
        SequenceClassifier(logit_adjust="yes", **FAST).fit(X, y)


def test_conv_and_adjusted_model_exports_to_onnx(tmp_path):
    """The conv front-end and the folded logit adjustment survive ONNX export (same probabilities)."""
    pytest.importorskip("onnxruntime")
    from rnnkit.cli import main
    from rnnkit.onnx_runtime import load_onnx

    names = ["anna", "marco", "giulia", "paolo", "francesca", "smith", "john", "william", "elizabeth",
             "thompson", "hans", "schmidt", "wolfgang", "krueger", "baecker", "sophie", "lena", "mario"]
    langs = ["it"] * 5 + ["en"] * 5 + ["de"] * 5 + ["de", "de", "it"]
    clf = SequenceClassifier(cell="gru", hidden_size=8, embed_size=8, bidirectional=True, conv_kernel=3,
                             logit_adjust="auto", epochs=2, batch_size=4, **FAST)
    clf.fit(names, langs, val=(names[::2], langs[::2]))
    clf.save(tmp_path / "m")
    assert main(["export", "--model", str(tmp_path / "m"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    fast = load_onnx(tmp_path / "m", tmp_path / "m.onnx")
    probe = ["anna", "x", "wolfgang", "giuseppina"]
    np.testing.assert_allclose(fast.predict_proba(probe), clf.predict_proba(probe), atol=1e-4)


def test_logit_adjusted_loss_favours_the_rare_class():
    """loss_adjust=1 trains against logits + log prior: the plain logits then predict the rare class
    more often than the same seed trained with the ordinary loss; post-hoc tau may go negative."""
    X, y = _imbalanced(0)
    Xv, yv = _imbalanced(1)
    opts = dict(hidden_size=8, epochs=8, lr=1e-2, patience=0, **FAST)
    plain = SequenceClassifier(**opts).fit(X, y, val=(Xv, yv))
    balanced = SequenceClassifier(loss_adjust=1.0, **opts).fit(X, y, val=(Xv, yv))
    assert balanced.predict(Xv).count("rare") > plain.predict(Xv).count("rare")
    adj = SequenceClassifier(loss_adjust=1.0, logit_adjust="auto", **opts).fit(X, y, val=(Xv, yv))
    assert adj.config.logit_adjust_tau in np.arange(-1.0, 1.51, 0.125)
    assert adj.evaluate(Xv, yv)["macro_f1"] >= balanced.evaluate(Xv, yv)["macro_f1"] - 1e-9


def test_input_noise_augments_numeric_training_only():
    """input_noise: changes training (fresh Gaussian noise per batch), never prediction; bad values
    and token inputs are refused before training."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = np.array(["a", "b"] * 20)
    X[y == "b"] += 1.0
    opts = dict(FAST, hidden_size=8, epochs=2, val_fraction=0.0, batch_size=8, pooling="mean")
    plain = SequenceClassifier(**opts).fit(X, y)
    noisy = SequenceClassifier(**opts, input_noise=0.5).fit(X, y)
    assert not np.allclose(plain.predict_proba(X), noisy.predict_proba(X))  # training differed
    np.testing.assert_allclose(noisy.predict_proba(X), noisy.predict_proba(X))  # inference is deterministic
    with pytest.raises(UserError, match="input_noise"):
        SequenceClassifier(**opts, input_noise=-0.1).fit(X, y)
    with pytest.raises(UserError, match="numeric inputs only"):
        SequenceClassifier(**opts, input_noise=0.1).fit(["ab", "ba"] * 10, ["x", "y"] * 10)
