"""Surnames labelled by language/country of origin, shipped with rnnkit.

22,311 surnames in 31 classes (Polish 3,739 ... Danish 47), derived from the MIT-licensed
surname lists of Faker (see ``datasets/names/LICENSE.txt`` and ``build_names.py``): the
same kind of task as the PyTorch "classifying names with a character-level RNN"
tutorial, whose own data file cannot be downloaded at run time here. Names keep their
accents (``Kovács``); Cyrillic and Greek names are romanised. A surname that appears
under two labels was dropped when the file was built, so every name has one answer.

>>> pairs = load_names()                      # [("Abbott", "English"), ...]
>>> train, val, test = split_names(pairs)     # stratified 80/10/10, deterministic
"""
from __future__ import annotations

import csv
import random
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Optional

from rnnkit.errors import UserError

NAMES_CSV = Path(__file__).parent / "datasets" / "names" / "names.csv"

Pair = tuple[str, str]


def load_names(path: Optional[str | Path] = None) -> list[Pair]:
    """Return ``[(name, origin), ...]`` sorted by name (the shipped file unless ``path`` is given).

    ``path`` may be any CSV with a ``name`` and an ``origin`` column (UTF-8).
    """
    path = Path(path) if path is not None else NAMES_CSV
    if not path.is_file():
        raise UserError(f"names file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"name", "origin"} <= set(reader.fieldnames):
            raise UserError(f"{path}: expected columns 'name' and 'origin', got {reader.fieldnames}")
        pairs = []
        for line, row in enumerate(reader, start=2):
            name, origin = (row["name"] or "").strip(), (row["origin"] or "").strip()
            if not name or not origin:
                raise UserError(f"{path}:{line}: empty name or origin")
            pairs.append((name, origin))
    return pairs


def labels(pairs: list[Pair]) -> list[str]:
    """The sorted distinct labels of ``pairs`` (the class order models use)."""
    return sorted({label for _, label in pairs})


def split_names(
    pairs: list[Pair], val: float = 0.1, test: float = 0.1, seed: int = 0
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Stratified split into ``(train, val, test)``: each label is split in the same ratios.

    Deterministic for a given ``seed`` and input (the input order does not matter: each
    label's names are sorted before a seeded shuffle). A label with at least 3 names puts
    at least one in each non-empty part, so rare classes are still tested.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UserError(f"split fractions must be in [0, 1) and sum below 1, got val={val}, test={test}")
    by_label: dict[str, list[str]] = defaultdict(list)
    for name, label in pairs:
        by_label[label].append(name)
    rng = random.Random(seed)
    train: list[Pair] = []
    val_part: list[Pair] = []
    test_part: list[Pair] = []
    for label in sorted(by_label):
        names = sorted(by_label[label])
        rng.shuffle(names)
        n = len(names)
        n_test = _part_size(n, test)
        n_val = _part_size(n - n_test, val * n / max(n - n_test, 1))
        test_part += [(x, label) for x in names[:n_test]]
        val_part += [(x, label) for x in names[n_test : n_test + n_val]]
        train += [(x, label) for x in names[n_test + n_val :]]
    return train, val_part, test_part


def _part_size(n: int, frac: float) -> int:
    if frac <= 0 or n < 2:
        return 0
    return min(max(1, round(n * frac)), n - 1)


def to_ascii(name: str) -> str:
    """Fold accents away as the PyTorch tutorial does (``Kovács -> Kovacs``, ``Ó Corra -> O Corra``)."""
    return "".join(c for c in unicodedata.normalize("NFD", name) if unicodedata.category(c) != "Mn")
