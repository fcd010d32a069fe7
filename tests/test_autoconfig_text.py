"""The text task's automatic configuration (rnnkit.tasks.autoconfig_text) and the "budget" lr schedule."""
from __future__ import annotations

import json
import math

import pytest

from rnnkit.data.text import load_shakespeare
from rnnkit.tasks.autoconfig_text import (PLAN_FILE, TextStats, dropout_for, expected_tokens, lstm_params,
                                          resolve_text, text_plan)
from rnnkit.tasks.text.task import TextConfig, TextModel
from rnnkit.train.callbacks import LRSchedule


def char(n: int, vocab: int = 100, cuda: bool = False) -> TextStats:
    return TextStats("char", n, vocab, cuda)


def test_three_minutes_on_two_megabytes_is_a_256_unit_race():
    plan = text_plan(char(2_070_000), 180.0)
    assert (plan.hidden_size, plan.num_layers, plan.batch_size, plan.bptt) == (256, 1, 16, 128)
    assert plan.schedule == "budget" and plan.lr == pytest.approx(5e-3)
    assert plan.dropout == 0.0  # the budget reads the text about once: nothing to regularise
    assert "1x256" in plan.reason and "180 s" in plan.reason and "passes" in plan.reason


def test_width_grows_with_the_budget_and_never_leaves_the_menu():
    widths = [text_plan(char(2_000_000), b).hidden_size for b in (10, 60, 180, 540, 1800, 36_000)]
    assert widths == sorted(widths)
    assert widths[0] == 128 and widths[2] == 256 and widths[-1] == 512
    # the chosen width sees at least TOKENS_PER_PARAM tokens per weight unless it is the smallest
    for b in (60, 180, 540, 1800):
        w = text_plan(char(2_000_000), b).hidden_size
        assert w == 128 or expected_tokens(w, b) >= 4 * lstm_params(w)


def test_a_gpu_affords_a_wider_model():
    assert text_plan(char(2_000_000, cuda=True), 180.0).hidden_size > text_plan(char(2_000_000), 180.0).hidden_size


def test_dropout_grows_with_the_passes_over_the_text():
    assert [dropout_for(p) for p in (1, 5, 20, 100)] == [0.0, 0.1, 0.2, 0.3]
    small, big = text_plan(char(50_000), 180.0), text_plan(char(5_000_000), 180.0)
    assert small.dropout > big.dropout == 0.0


def test_no_budget_is_a_long_run_sized_by_the_corpus():
    tiny, large = text_plan(char(100_000), None), text_plan(char(5_000_000), None)
    assert tiny.hidden_size < large.hidden_size == 512
    assert tiny.schedule == large.schedule == "cosine" and tiny.dropout > large.dropout
    assert large.lr == pytest.approx(3e-3) and large.batch_size == 32


def test_word_level_keeps_its_defaults_and_only_follows_the_budget():
    plan = text_plan(TextStats("word", 1_000_000, 10_000), 180.0)
    assert plan.schedule == "budget" and plan.hidden_size is None and plan.batch_size is None
    assert text_plan(TextStats("bpe", 1_000_000, 8_000), None).schedule is None


def test_flags_override_the_plan_and_the_line_says_so(capsys, tmp_path):
    req = TextConfig(max_time=180.0, hidden_size=64, lr=1e-3)
    cfg = resolve_text(req, char(2_000_000), str(tmp_path))
    assert (cfg.hidden_size, cfg.lr, cfg.batch_size, cfg.schedule) == (64, 1e-3, 16, "budget")
    line = capsys.readouterr().err.strip()
    assert line.startswith("rnnkit: auto config: char LSTM") and "given: --hidden-size, --lr" in line
    assert len(line.splitlines()) == 1


def test_resume_keeps_the_saved_plan_whatever_the_new_budget(tmp_path):
    resolve_text(TextConfig(max_time=180.0, progress=False), char(2_000_000), str(tmp_path))
    assert json.loads((tmp_path / PLAN_FILE).read_text())["hidden_size"] == 256
    again = resolve_text(TextConfig(max_time=3600.0, progress=False), char(2_000_000), str(tmp_path), resume=True)
    assert again.hidden_size == 256
    fresh = resolve_text(TextConfig(max_time=3600.0, progress=False), char(2_000_000), str(tmp_path))
    assert fresh.hidden_size == 512


def test_budget_schedule_follows_the_clock_or_the_steps_whichever_ends_first():
    s = LRSchedule(1.0, "budget", total_steps=1000)
    assert s.lr(0, time_frac=0.0) == s.lr(0, time_frac=0.5) == pytest.approx(1.0)  # held for the first half
    assert s.lr(0, time_frac=0.75) == pytest.approx(0.5)  # then linear down ...
    assert s.lr(0, time_frac=1.5) == pytest.approx(0.0, abs=1e-12)  # ... to 0 when the time runs out
    assert s.lr(900, time_frac=0.1) == pytest.approx(0.2)  # the steps end first
    assert s.lr(900) == pytest.approx(0.2)  # no budget: over the steps alone
    assert LRSchedule(1.0, "budget", total_steps=1000, min_lr_ratio=0.1).lr(999, time_frac=1.0) == pytest.approx(0.1)


def test_defaults_learn_a_real_text():
    """Real training with the automatic configuration (planned for 80 s, stopped by a step count so the
    result hardly depends on the machine's speed): well below the ~3.3 nats/char of character frequencies."""
    model = TextModel(progress=False).fit(load_shakespeare()[:60_000], max_time=80.0, max_steps=200)
    assert (model.config.hidden_size, model.config.batch_size, model.config.schedule) == (128, 16, "budget")
    assert model.metrics["val"]["loss"] < 2.4
