"""The shipped names-by-origin dataset and its deterministic stratified split."""
from collections import Counter
from pathlib import Path

import pytest

from rnnkit.data.names import NAMES_CSV, labels, load_names, split_names, to_ascii
from rnnkit.errors import UserError


def test_shipped_file_has_licence_and_expected_shape():
    assert (NAMES_CSV.parent / "LICENSE.txt").read_text(encoding="utf-8").startswith("names.csv is derived")
    pairs = load_names()
    assert len(pairs) > 20_000
    classes = labels(pairs)
    assert len(classes) == 31 and {"English", "Russian", "Japanese", "Polish"} <= set(classes)
    # every name has exactly one label (ambiguous names were dropped when the file was built)
    assert len({n for n, _ in pairs}) == len(pairs)
    assert ("Kowalski", "Polish") in pairs


def test_split_is_stratified_disjoint_and_deterministic():
    pairs = load_names()
    train, val, test = split_names(pairs, val=0.1, test=0.1, seed=0)
    assert len(train) + len(val) + len(test) == len(pairs)
    assert not ({n for n, _ in train} & {n for n, _ in test}) and not ({n for n, _ in val} & {n for n, _ in test})
    total, in_test = Counter(l for _, l in pairs), Counter(l for _, l in test)
    for label, n in total.items():
        assert in_test[label] >= 1 and abs(in_test[label] - 0.1 * n) <= 1, label
    # same seed, shuffled input -> same split; another seed -> another split
    again = split_names(list(reversed(pairs)), seed=0)
    assert again == (train, val, test)
    assert split_names(pairs, seed=1)[2] != test


def test_split_small_classes_and_bad_fractions():
    pairs = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "y")]
    train, val, test = split_names(pairs, val=0.1, test=0.1)
    assert sorted(train + val + test) == sorted(pairs)
    assert len(test) == 1 and len(val) == 1 and ("d", "y") in train  # a 1-name class stays in train
    with pytest.raises(UserError):
        split_names(pairs, val=0.6, test=0.5)


def test_load_names_from_other_csv_and_bad_files(tmp_path: Path):
    good = tmp_path / "n.csv"
    good.write_text("name,origin\nMüller,German\nSato,Japanese\n", encoding="utf-8")
    assert load_names(good) == [("Müller", "German"), ("Sato", "Japanese")]
    bad = tmp_path / "bad.csv"
    bad.write_text("surname,lang\nA,B\n", encoding="utf-8")
    with pytest.raises(UserError, match="expected columns"):
        load_names(bad)
    with pytest.raises(UserError, match="not found"):
        load_names(tmp_path / "missing.csv")


def test_to_ascii_folds_accents():
    assert to_ascii("Kovács") == "Kovacs" and to_ascii("Ó Corra") == "O Corra"
