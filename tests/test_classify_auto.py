"""Default settings that learn on the user's data (issue 14): real small trainings, not timed."""
import numpy as np

from rnnkit.tasks.classify import SequenceClassifier

FAST = dict(progress=False, device="cpu", seed=0)


def sine_vs_square(n: int, T: int, rng: np.random.Generator):
    """Half sines, half square waves; random period, phase, offset 5-50 and scale 0.5-20."""
    t = np.arange(T)
    X, y = np.zeros((n, T, 1), np.float32), []
    for i in range(n):
        period = rng.uniform(10, 30)
        wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        label = "square" if i % 2 else "sine"
        if label == "square":
            wave = np.sign(wave)
        X[i, :, 0] = rng.uniform(5, 50) + rng.uniform(0.5, 20) * wave + 0.05 * rng.standard_normal(T)
        y.append(label)
    return X, np.array(y)


def three_frequencies(n: int, T: int, rng: np.random.Generator):
    """Three classes by frequency (periods 40 / 100 / 250 steps) at random phase, plus noise."""
    t = np.arange(T)
    labels = rng.integers(0, 3, n)
    periods = np.array([40.0, 100.0, 250.0])
    X = np.sin(2 * np.pi * t[None, :] / periods[labels][:, None] + rng.uniform(0, 2 * np.pi, (n, 1)))
    X = X + 0.3 * rng.standard_normal((n, T))
    return X[:, :, None].astype(np.float32), np.array([f"p{int(periods[k])}" for k in labels])


def test_40_series_with_random_offset_and_scale_defaults_learn():
    rng = np.random.default_rng(0)
    X, y = sine_vs_square(40, 100, rng)
    Xt, yt = sine_vs_square(200, 100, rng)
    clf = SequenceClassifier(max_time=10, **FAST).fit(X, y)
    assert clf.config.val_fraction == 0  # 4 validation series would be noise: all 40 train
    assert clf.config.series_norm and clf.config.max_steps >= 200
    acc = clf.evaluate(Xt, yt)["accuracy"]
    assert acc >= 0.95, (acc, clf.plan.reason)


def test_2000_step_series_train_without_truncation(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X, y = three_frequencies(45, 2000, rng)
    Xt, yt = three_frequencies(60, 2000, rng)
    clf = SequenceClassifier(max_time=10, **FAST).fit(X, y)
    assert clf.config.max_len is None and clf.config.conv_stride == 13  # 2000 steps -> 154 RNN steps
    assert "truncated" not in capsys.readouterr().err
    acc = clf.evaluate(Xt, yt)["accuracy"]
    assert acc >= 0.9, (acc, clf.plan.reason)
    clf.save(tmp_path / "m")
    again = SequenceClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(Xt[:5]), clf.predict_proba(Xt[:5]), atol=1e-5)


def test_truncation_is_never_silent(capsys):
    rng = np.random.default_rng(2)
    X, y = three_frequencies(12, 300, rng)
    SequenceClassifier(max_len=100, hidden_size=8, max_steps=2, **FAST).fit(X, y)
    assert "12 of 12 sequences are longer than max_len=100" in capsys.readouterr().err


def test_plan_is_printed_and_user_choices_win(capsys):
    rng = np.random.default_rng(3)
    X, y = sine_vs_square(16, 50, rng)
    clf = SequenceClassifier(hidden_size=8, pooling="last", epochs=2, device="cpu").fit(X, y)
    err = capsys.readouterr().err
    assert "rnnkit: auto config: 16 numeric examples, 2 classes" in err
    assert (clf.config.hidden_size, clf.config.pooling, clf.config.ensemble) == (8, "last", 1)
    assert clf.history.epochs == 2


def test_stratified_folds_are_balanced():
    from rnnkit.tasks.classify.tune import stratified_folds

    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 3
    folds = stratified_folds(labels, 3, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [6, 6, 6]
    for c in "abc":
        per_fold = np.bincount(folds[np.array(labels) == c], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1  # each class spread evenly


def test_tune_searches_by_cv_on_training_data_only(capsys):
    rng = np.random.default_rng(4)
    X, y = sine_vs_square(30, 60, rng)
    Xt, yt = sine_vs_square(100, 60, rng)
    # The search and the final fit share a wall-clock budget: on a loaded machine the final model
    # trains fewer steps, so the bar is "clearly learnt" (chance is 0.5), not the defaults' 0.95.
    clf = SequenceClassifier(tune=True, max_time=20, hidden_size=16, **dict(FAST, progress=True)).fit(X, y)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("rnnkit: tune: candidate")]
    assert len(lines) >= 2 and "automatic plan" in lines[0]  # candidate 0 is the plan itself
    assert "folds in" in err and clf.config.hidden_size == 16  # the user's value is never searched away
    assert clf.evaluate(Xt, yt)["accuracy"] >= 0.85


def test_epoch_step_time_counts_the_batch_that_holds_a_long_sequence():
    """A step costs what its longest sequence costs: one 60,000-step recording among 2,000 of 40 makes
    one batch in 63 that expensive, which a probe at the typical length alone misses."""
    from rnnkit.tasks.classify.probe import epoch_step_seconds

    cost = lambda T: 0.005 + 1e-6 * T  # noqa: E731  seconds of a step padded to T
    asked = []
    same = epoch_step_seconds(np.full(2000, 40), 32, lambda T: asked.append(T) or cost(T))
    assert same == cost(40) and asked == [40]  # no long tail: one probe, as before
    skewed = np.append(np.full(2000, 40), 60000)
    got = epoch_step_seconds(skewed, 32, cost)
    want = (62 * cost(40) + cost(60000)) / 63  # ceil(2001 / 32) = 63 batches, one holds the long one
    assert abs(got - want) < 1e-9 and got > 1.15 * cost(40)


def test_one_outlier_length_is_pooled_instead_of_setting_the_stride():
    """The stride follows the longest series unless a few are far longer than the rest: one
    60,000-step recording among 40-step ones used to set stride 375 (each typical one became one RNN
    step); now the typical ones keep their steps and the outlier is averaged down to 160."""
    from rnnkit.tasks.autoconfig import classify_architecture, classify_stats

    outlier = classify_architecture(classify_stats([40] * 500 + [60000], ["a", "b"] * 250 + ["a"], "numeric", 3))
    assert outlier["conv_stride"] == 1 and outlier["pool_len"] == 160
    uniform = classify_architecture(classify_stats(list(range(100, 1001)), ["a", "b"] * 450 + ["a"], "numeric", 1))
    assert uniform["conv_stride"] == 7 and uniform["pool_len"] == 0  # 1000 / 7 = 143 RNN steps: nothing pooled
    rng = np.random.default_rng(5)
    X, y = sine_vs_square(60, 40, rng)  # 4 x 40 = 160: stride 1
    arrays = [x for x in X] + [np.tile(X[0], (300, 1))]  # a 12,000-step copy of a sine
    clf = SequenceClassifier(max_time=8, **FAST).fit(arrays, np.append(y, y[0]))
    assert clf.config.pool_len == 160 and clf.config.conv_stride == 1, clf.plan.reason
    x, L = clf._encode(clf._data(arrays[-2:]))
    assert L.tolist() == [40, 160]  # 12,000 steps averaged in windows of 75
    Xt, yt = sine_vs_square(100, 40, rng)
    assert clf.evaluate(Xt, yt)["accuracy"] >= 0.9, clf.plan.reason
