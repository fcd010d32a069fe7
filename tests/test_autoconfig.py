"""The automatic configuration rule (rnnkit.tasks.autoconfig): pure functions, no training."""
import numpy as np

from rnnkit.tasks import autoconfig as A


def stats(n=40, classes=2, length=100, kind="numeric", features=1, lengths=None):
    lengths = lengths if lengths is not None else [length] * n
    labels = [str(i % classes) for i in range(n)]
    return A.classify_stats(lengths, labels, kind, features)


def test_stats_from_data():
    s = A.classify_stats([5, 7, 9, 20], ["a", "b", "a", "a"], "numeric", 3)
    assert (s.n, s.n_classes, s.min_class_count, s.n_features) == (4, 2, 1, 3)
    assert (s.len_min, s.len_median, s.len_max) == (5, 8.0, 20)


def test_long_series_are_downsampled_not_truncated():
    arch = A.classify_architecture(stats(length=2000))
    assert arch["conv_stride"] == 13  # ceil(2000 / 160): the RNN sees <= MAX_RNN_STEPS steps
    assert np.ceil(2000 / arch["conv_stride"]) <= A.MAX_RNN_STEPS
    assert arch["conv_kernel"] == 2 * 13 + 1  # odd, windows overlap
    short = A.classify_architecture(stats(length=100))
    assert short["conv_stride"] == 1 and short["conv_kernel"] == 3


def test_numeric_vs_tokens():
    num = A.classify_architecture(stats())
    assert num["series_norm"] and num["bidirectional"] and num["pooling"] == "max"
    tok = A.classify_architecture(stats(kind="tokens", features=0))
    assert not tok["series_norm"] and tok["conv_kernel"] == 0


def test_small_data_no_early_stopping_and_fixed_steps():
    p = A.classify_plan(stats(n=40), 120, 0.01)
    assert p.val_fraction == 0 and p.patience == 0
    # 40 / batch 8 = 5 steps per epoch: the floor (1500) wins; 9000 affordable steps pay for 6 members,
    # 5 are trained, and a full ensemble of tiny data is not lengthened
    assert p.max_steps == A.MIN_STEPS and p.ensemble == 5
    assert p.input_noise > 0 and not p.augment and p.label_smoothing > 0
    assert p.reason.startswith("40 numeric examples, 2 classes") and "no validation split" in p.reason


def test_large_data_early_stopping():
    p = A.classify_plan(stats(n=5000, classes=5), 600, 0.01)
    assert p.val_fraction == 0.1 and p.patience > 0
    assert p.ensemble == 1 and not p.augment and p.label_smoothing == 0


def test_ensemble_fills_the_budget():
    # 1500 steps at 10 ms = 15 s per member; 120 s * 0.75 pays for 6 members -> capped at MAX_ENSEMBLE
    assert A.classify_plan(stats(n=40), 120, 0.01).ensemble == A.MAX_ENSEMBLE
    # 1500 steps at 50 ms = 75 s per member; 90 s of steps -> one member
    assert A.classify_plan(stats(n=40), 120, 0.05).ensemble == 1


def test_left_over_budget_lengthens_the_members():
    p = A.classify_plan(stats(n=100, length=1460), 120, 0.04)  # 2250 affordable: one member, not of 1500
    assert (p.ensemble, p.max_steps) == (1, 2250)
    p = A.classify_plan(stats(n=100, length=1460), 120, 0.015)  # 6000 affordable: 4 members of 1500
    assert (p.ensemble, p.max_steps) == (4, 1500)
    p = A.classify_plan(stats(n=100, length=1460), 120, 0.02)  # 4500 affordable: 3 members of 1500
    assert (p.ensemble, p.max_steps) == (3, 1500)
    p = A.classify_plan(stats(n=100, length=1460), 120, 0.025)  # 3600: 2 members lengthened to 1800
    assert (p.ensemble, p.max_steps) == (2, 1800)
    p = A.classify_plan(stats(n=40), 600, 0.01)  # a full ensemble of tiny data is not lengthened
    assert (p.ensemble, p.max_steps) == (5, A.MIN_STEPS)


def test_budget_limits_steps_and_warns():
    p = A.classify_plan(stats(n=40), 10, 0.1)  # 75 affordable steps
    assert p.max_steps == 75 and p.ensemble == 1
    assert p.notes and "raise --max-time" in p.notes[0] and "budget-limited" in p.reason


def test_default_budget_when_none():
    p = A.classify_plan(stats(n=40), None, 0.1)
    assert "(default)" in p.reason and p.max_steps == min(A.MIN_STEPS, int(A.BUDGET_USE * A.DEFAULT_BUDGET_S / 0.1))


def test_user_settings_win():
    p = A.classify_plan(stats(n=40, length=2000), 120, 0.01,
                        fixed=dict(hidden_size=16, pooling="max", epochs=3, ensemble=None, conv_stride=1, conv_kernel=0))
    assert (p.hidden_size, p.pooling, p.conv_stride, p.conv_kernel) == (16, "max", 1, 0)
    assert p.max_steps == 3 * 5 and p.ensemble == 1  # fixed length: no budget-filled ensemble


def test_step_time_callable_sees_the_architecture_and_batch():
    seen = []
    A.classify_plan(stats(n=1000), 60, lambda arch, batch: seen.append((arch["hidden_size"], batch)) or 0.02)
    assert seen == [(64, 16)]  # 900 training examples after the 10 % validation split
