"""SequenceClassifier: real small models on real data (UEA JapaneseVowels, names), every cell /
pooling / direction, masks, class weights, save -> load -> same probabilities."""
import numpy as np
import pytest
import torch

from rnnkit.data.uea import load_uea
from rnnkit.errors import UserError
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig

FAST = dict(progress=False, device="cpu", seed=0)


@pytest.fixture(scope="module")
def vowels():
    torch.set_num_threads(1)
    return load_uea("JapaneseVowels", "train"), load_uea("JapaneseVowels", "test")


def test_japanese_vowels_well_above_chance(vowels, tmp_path):
    """9 speakers (chance 0.11, majority 0.24): a small GRU on the official split gets > 0.85."""
    train, test = vowels
    clf = SequenceClassifier(cell="gru", hidden_size=48, epochs=12, patience=4, **FAST)
    clf.fit(train.X, train.y, train.lengths)
    report = clf.evaluate(test.X, test.y, test.lengths)
    assert report["accuracy"] > 0.85 and report["macro_f1"] > 0.85, report["accuracy"]
    # save -> load -> the same probabilities; the scaler travels with the model
    clf.save(tmp_path / "m")
    again = SequenceClassifier.load(tmp_path / "m")
    p1 = clf.predict_proba(test.X[:50], test.lengths[:50])
    p2 = again.predict_proba(test.X[:50], test.lengths[:50])
    np.testing.assert_allclose(p1, p2, rtol=0, atol=1e-6)
    assert again.predict(test.X[:3], test.lengths[:3]) == clf.predict(test.X[:3], test.lengths[:3])
    assert (tmp_path / "m" / "scaler.json").is_file()
    import rnnkit

    assert isinstance(rnnkit.load(str(tmp_path / "m")), SequenceClassifier)  # dispatch on config["task"]


def test_names_char_model_beats_majority(tmp_path):
    """Five languages from the shipped names data: a char GRU is far above the majority class."""
    from rnnkit.data.names import load_names, split_names

    keep = {"Greek", "Irish", "Japanese", "Polish", "Italian"}
    pairs = [p for p in load_names() if p[1] in keep]
    train, val, test = split_names(pairs, val=0.1, test=0.2, seed=0)
    train = train[::2]  # a smaller training set keeps the test quick
    clf = SequenceClassifier(cell="gru", hidden_size=32, bidirectional=True, pooling="mean", batch_size=64,
                             epochs=5, lr=1e-2, class_weight="balanced", **FAST)
    clf.fit([n for n, _ in train], [l for _, l in train], val=([n for n, _ in val], [l for _, l in val]))
    truth = [l for _, l in test]
    report = clf.evaluate([n for n, _ in test], truth)
    majority = max(set(truth), key=truth.count)
    assert report["accuracy"] > np.mean([t == majority for t in truth]) + 0.2
    assert report["macro_f1"] > 0.6, report
    proba = clf.predict_proba(["Papadopoulos", "Kowalski"])
    assert proba.shape == (2, 5) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    clf.save(tmp_path / "names")
    np.testing.assert_allclose(SequenceClassifier.load(tmp_path / "names").predict_proba(["Nakamura"]),
                               clf.predict_proba(["Nakamura"]), atol=1e-6)


def _parity_task(n=160, seed=0):
    """Tokens 'a'/'b' of random length 2..12: the label is whether 'a' appears an odd number of
    times -- needs the whole sequence, so padding or length bugs show up as chance accuracy."""
    rng = np.random.default_rng(seed)
    xs = ["".join(rng.choice(list("ab"), size=rng.integers(2, 13))) for _ in range(n)]
    return xs, [str(s.count("a") % 2) for s in xs]


@pytest.mark.parametrize("cell, pooling, bidirectional", [
    ("lstm", "last", False), ("gru", "attention", True), ("rnn", "mean", True), ("i2h", "last", False),
    ("gru", "max", True),
])
def test_every_cell_and_pooling_trains(cell, pooling, bidirectional):
    xs, ys = _parity_task(200)
    clf = SequenceClassifier(cell=cell, hidden_size=16, pooling=pooling, bidirectional=bidirectional,
                             epochs=2, batch_size=32, val_fraction=0.1, **FAST)
    clf.fit(xs, ys)
    proba = clf.predict_proba(xs[:7])
    assert proba.shape == (7, 2) and np.isfinite(proba).all()
    assert clf.history.epochs >= 1


def test_padding_does_not_change_predictions():
    """Extra padding after a sequence's length changes nothing (masks in the RNN and the pooling)."""
    for pooling in ("last", "mean", "max", "attention"):
        net = ClassifierNet(ClassifierNetConfig(n_classes=3, input_kind="numeric", n_features=4, cell="gru",
                                                bidirectional=True, pooling=pooling)).eval()
        x = torch.randn(3, 6, 4)
        lengths = torch.tensor([6, 2, 4])
        padded = torch.cat([x, torch.randn(3, 5, 4)], dim=1)
        torch.testing.assert_close(net(x, lengths), net(padded, lengths))


def test_class_weights_raise_minority_recall():
    """On a 10:1 imbalanced, noisy task, balanced weights predict the rare class more often."""
    rng = np.random.default_rng(0)
    n = 330
    y = np.array(["rare"] * 30 + ["common"] * 300)
    X = rng.normal(size=(n, 5, 2)).astype(np.float32)
    X[:30, :, 0] += 0.8  # the rare class is shifted, with overlap
    counts = {}
    for mode in (None, "balanced"):
        clf = SequenceClassifier(hidden_size=8, epochs=15, lr=1e-2, class_weight=mode, val_fraction=0.0,
                                 patience=0, **FAST).fit(X, y)
        counts[mode] = clf.predict(X).count("rare")
    assert counts["balanced"] > counts[None]


def test_bad_input_errors():
    xs, ys = _parity_task(20)
    with pytest.raises(UserError, match="has 1 example"):
        SequenceClassifier(**FAST).fit(xs + ["ab"], ys + ["lonely"])
    with pytest.raises(UserError, match="unknown cell 'nope'"):
        SequenceClassifier(cell="nope", **FAST).fit(xs, ys)
    with pytest.raises(UserError, match="not trained"):
        SequenceClassifier().predict(["ab"])
    X = np.zeros((4, 3, 2), dtype=np.float32)
    X[0, 0, 0] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        SequenceClassifier(**FAST).fit(X, ["a", "a", "b", "b"])
    with pytest.raises(TypeError, match="unknown SequenceClassifier option"):
        SequenceClassifier(hiden_size=3)


def test_numeric_model_refuses_text_and_wrong_features(vowels, tmp_path):
    train, _ = vowels
    clf = SequenceClassifier(hidden_size=8, epochs=1, **FAST).fit(train.X[:60], train.y[:60], train.lengths[:60])
    with pytest.raises(UserError, match="trained on numeric series"):
        clf.predict(["abc"])
    with pytest.raises(UserError, match="expects 12 features"):
        clf.predict(np.zeros((2, 5, 3), dtype=np.float32))
    with pytest.raises(UserError, match="not seen in training"):
        clf.evaluate(train.X[:2], ["1", "zzz"], train.lengths[:2])


def test_predictions_come_back_in_the_callers_order_whatever_the_batching():
    """predict_proba batches the sequences by length; each row must still be that sequence's own
    answer, as if it were predicted alone (texts with the default frontend, lengths 1 to 60)."""
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("ab"), size=n)) for n in rng.integers(1, 60, size=40)]
    labels = ["a" if t.count("a") >= t.count("b") else "b" for t in texts]
    clf = SequenceClassifier(hidden_size=16, epochs=2, ensemble=2, val_fraction=0.0, **FAST).fit(texts, labels)
    together = clf.predict_proba(texts)
    alone = np.concatenate([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
