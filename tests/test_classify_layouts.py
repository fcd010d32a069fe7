"""One series per row, one value per column: UCR archive .tsv files (UCRArchive_2018 layout) and wide
CSV/TSV tables read into the same ragged SequenceData as every other format (rnnkit/data/wide.py)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnkit.cli import main
from rnnkit.data.sequences import read_sequences
from rnnkit.data.wide import is_ucr_row
from rnnkit.errors import UserError
from rnnkit.tasks.classify.task import SequenceClassifier

# The UCR 2018 archive's own layout: no header, tab-separated, label first, values as the archive
# prints them; a variable-length problem pads each row with NaN up to the longest.
UCR_FIXED = ("1\t-0.64788544\t-0.64199155\t-0.63818632\t-0.63825875\t-0.63808177\n"
             "2\t-0.77838127\t-0.77836298\t-0.77783091\t-0.77735734\t-0.77698786\n"
             "2\t-1.3754335\t-1.3756366\t-1.3756241\t-1.3758218\t-1.3759041\n"
             "1\t-0.7809052\t-0.78061244\t-0.77925496\t-0.77793522\t-0.77722174\n")
UCR_VARIABLE = ("-1\t0.41\t0.39\t0.12\tNaN\tNaN\n"
                "1\t1.2\t-0.5\t3\t4\t5.5\n"
                "2\t0.7\tNaN\tNaN\tNaN\tNaN\n")


def test_ucr_2018_file(tmp_path):
    p = tmp_path / "GunPoint_TRAIN.tsv"
    p.write_text(UCR_FIXED)
    d = read_sequences(p)
    assert d.kind == "numeric" and d.labels == ["1", "2", "2", "1"] and d.lengths.tolist() == [5] * 4
    assert d.n_features == 1 and d.steps.dtype == np.float32
    assert d.padded()[2, :, 0].tolist() == np.float32([-1.3754335, -1.3756366, -1.3756241, -1.3758218, -1.3759041]).tolist()


def test_ucr_variable_length_nan_padding(tmp_path):
    p = tmp_path / "X_TEST.tsv"
    p.write_text(UCR_VARIABLE)
    d = read_sequences(p)
    assert d.labels == ["-1", "1", "2"] and d.lengths.tolist() == [3, 5, 1]
    assert d.steps[:, 0].tolist() == np.float32([0.41, 0.39, 0.12, 1.2, -0.5, 3, 4, 5.5, 0.7]).tolist()
    p.write_text("1\t0.5\n2\t1\t2\t3\n1\t4\t5\n")  # rows not padded at all (the first one the shortest)
    assert read_sequences(p).lengths.tolist() == [1, 3, 2]
    p.write_text("1\t0.5\t0.6\n\n2\t1\t2\n\n")  # blank lines are skipped, as by the CSV reader
    assert read_sequences(p).labels == ["1", "2"]
    p = tmp_path / "x.csv"  # the 2015 archive was comma-separated: same layout
    p.write_text(UCR_VARIABLE.replace("\t", ","))
    assert read_sequences(p).lengths.tolist() == [3, 5, 1]


def test_header_tsv_keeps_the_sequence_column_reader(tmp_path):
    """A .tsv with a header of sequence/label columns is the long layout, as before."""
    p = tmp_path / "d.tsv"
    p.write_text("sequence\tlabel\n1 2 3\t1\n4 5\t2\n")
    d = read_sequences(p)
    assert d.kind == "numeric" and d.lengths.tolist() == [3, 2] and d.labels == ["1", "2"]
    p.write_text("text\tlabel\nanna\tit\njohn\ten\n")
    assert read_sequences(p).texts == ["anna", "john"]
    p.write_text("id\tvalues\n1\t0.5\n2\t0.7\n")  # a long table whose sequence column has another name
    with pytest.raises(UserError, match="no label column .*or name the sequence column with --text-col"):
        read_sequences(p)
    p.write_text("id\tlabel\n1\ta\n2\tb\n")  # one value column: not a wide table, the old error
    with pytest.raises(UserError, match="no sequence column"):
        read_sequences(p)
    p = tmp_path / "long.csv"  # --text-col always means the long layout
    p.write_text("s,label\n1,a\n2,b\n")
    assert read_sequences(p, text_col="s").lengths.tolist() == [1, 1]


@pytest.mark.parametrize("cells, ucr", [
    (["1", "0.5", "0.7"], True), (["-1", "2"], True), (["a", "1", "NaN", ""], True),
    (["label", "1", "2"], False), (["species", "0", "1", "2"], False), (["0", "1", "2", "3"], False),
    (["1", "1", "2", "3"], True), (["1", "t0", "t1"], False), (["a"], False), (["", "1", "2"], False),
])
def test_ucr_first_row_rule(cells, ucr):
    assert is_ucr_row(cells, ("label", "class", "y", "target")) is ucr


def test_wide_tables(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("t0,t1,label,t2\n1,2,a,3\n4,5,b,\n6,,c,\n")  # label anywhere; trailing empty = shorter
    d = read_sequences(p)
    assert d.labels == ["a", "b", "c"] and d.lengths.tolist() == [3, 2, 1] and d.steps[:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    p = tmp_path / "w.tsv"
    p.write_text("species\t0\t1\t2\nx\t1\t2\t3\ny\t4\t5\t6\n")  # a header of column numbers, --label-col
    assert read_sequences(p, label_col="species").labels == ["x", "y"]
    with pytest.raises(UserError, match="no label column .*--label-col \\(column 'species' holds text\\)"):
        read_sequences(p)
    p = tmp_path / "u.csv"  # no label column: unlabelled at predict, an error at train/evaluate
    p.write_text("t0,t1,t2\n1,2,3\n4,5,\n")
    d = read_sequences(p, labelled=False)
    assert d.labels is None and d.lengths.tolist() == [3, 2]
    with pytest.raises(UserError, match="no label column"):
        read_sequences(p)


@pytest.mark.parametrize("name, text, match", [
    ("a.tsv", "1\t0.5\tNaN\t0.7\n2\t1\t2\t3\n", r"line 1, column 3: missing value .* before the series ends"),
    ("a.tsv", "1\t0.5\t0.6\n2\t1\tabc\n", r"line 2, column 3: 'abc' is not a number"),
    ("a.tsv", "1\t0.5\t0.6\n2\t1,5\t2\n", r"line 2, column 2: '1,5' is not a number"),
    ("a.tsv", "1\t0.5\t0.6\n\n2\tNA\t2\n", r"line 3, column 2: 'NA' is not a number"),  # blank line counted
    ("a.tsv", "1\t0.5\t0.6\n2\tNaN\tNaN\n", r"line 2 has no values"),
    ("a.tsv", "1\t0.5\t0.6\n2\t1e400\t2\n", r"line 2, column 2: non-finite value"),
    ("a.tsv", "1\t0.5\t0.6\n2\t1e20\t2\n", r"line 2, column 2: value 1e\+20 whose magnitude"),
    ("a.tsv", "1\t0.5\t0.6\n\t1\t2\n", r"line 2 has an empty label"),
    ("w.csv", "t0,t1,label\n1,,a\n,2,b\n", r"line 3, column 1 \('t0'\): missing value"),
    ("w.csv", "t0,t1,label\n1,2,a\n3,x,b\n", r"line 3, column 2 \('t1'\): 'x' is not a number"),
    ("w.csv", "t0,t1,label\n1,2,a\n3,4,b,5\n", r"line 3 has more cells than the header \(3 columns\)"),
    ("w.csv", "t0,t1,label\n1,2,a\n,,b\n", r"line 3 has no values"),
    ("w.csv", "t0,t1,label\n1,2,\n3,4,b\n", r"line 2 has an empty label"),
])
def test_errors_name_line_and_column(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(UserError, match=match):
        read_sequences(p)


def test_ucr_file_with_label_col_and_utf16(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text(UCR_FIXED)
    with pytest.raises(UserError, match="no header row .*--label-col 'cls' names no column"):
        read_sequences(p, label_col="cls")
    p.write_bytes(UCR_FIXED.encode("utf-16"))
    with pytest.raises(UserError, match="is UTF-16 or UTF-32 text"):
        read_sequences(p)
    p.write_text("1;0.5;0.6\n2;0.1;0.2\n")
    with pytest.raises(UserError, match="looks semicolon-separated"):
        read_sequences(tmp_path / "a.tsv")


# ----------------------------------------------------------------------------- round trip
LABELS = st.sampled_from(["1", "-1", "2", "10", "a", "Walk", "nan"])
VALUES = st.floats(-1e6, 1e6, allow_nan=False, width=32)
RAGGED = st.lists(st.tuples(LABELS, st.lists(VALUES, min_size=1, max_size=9)), min_size=1, max_size=8)


def _write(path, layout: str, rows: list) -> None:
    """``rows`` of (label, values) in one layout; values written as float64 reprs of float32 numbers."""
    width = max(len(v) for _, v in rows)
    lines = []
    if layout == "ucr":
        sep, pad = "\t", "NaN"
    else:
        sep, pad = ("\t" if layout == "wide-tsv" else ","), ""
        lines.append(sep.join(["label"] + [f"t{j}" for j in range(width)]))
    for label, values in rows:
        cells = [repr(float(v)) for v in values] + [pad] * (width - len(values))
        lines.append(sep.join([label] + cells))
    path.write_text("\n".join(lines) + "\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=RAGGED, layout=st.sampled_from(["ucr", "wide-csv", "wide-tsv"]))
def test_random_ragged_sets_read_back_exactly(tmp_path, rows, layout):
    if layout == "ucr":  # the documented corner: a first row of column numbers is a header
        first = [rows[0][0]] + [repr(float(v)) for v in rows[0][1]]
        assume(is_ucr_row(first, ("label",)))
    else:  # a wide table has at least two value columns (one would read an 'id, label' table as series)
        assume(max(len(v) for _, v in rows) >= 2)
    p = tmp_path / ("d.tsv" if layout != "wide-csv" else "d.csv")
    _write(p, layout, rows)
    d = read_sequences(p)
    assert d.labels == [label for label, _ in rows]
    assert d.lengths.tolist() == [len(v) for _, v in rows]
    assert d.steps[:, 0].tolist() == np.float32([x for _, v in rows for x in v]).tolist()


# ----------------------------------------------------------------------------- end to end
def _sine_square(n: int, seed: int) -> list:
    """n rows (label, values): a sine or a square wave of random phase, period and length 20-40."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = np.arange(rng.integers(20, 41))
        wave = np.sin(2 * np.pi * t / rng.uniform(8, 16) + rng.uniform(0, 2 * np.pi))
        label = ["sine", "square"][i % 2]
        values = wave if label == "sine" else np.sign(wave)
        rows.append((label, (values + rng.normal(0, 0.05, len(t))).astype(np.float32).tolist()))
    return rows


@pytest.mark.parametrize("layout", ["ucr", "wide-csv"])
def test_fit_and_evaluate_in_each_layout(tmp_path, layout):
    torch.set_num_threads(1)
    suffix = ".csv" if layout == "wide-csv" else ".tsv"
    train, test = tmp_path / f"train{suffix}", tmp_path / f"test{suffix}"
    _write(train, layout, _sine_square(120, 0))
    _write(test, layout, _sine_square(60, 1))
    clf = SequenceClassifier(hidden_size=16, max_time=5, progress=False, device="cpu", seed=0).fit(train)
    report = clf.evaluate(test)
    assert report["n"] == 60 and report["accuracy"] >= 0.9, report["accuracy"]


def test_cli_train_predict_evaluate_ucr(tmp_path, capsys):
    data, model = tmp_path / "Toy_TRAIN.tsv", tmp_path / "m"
    _write(data, "ucr", [(["1", "2"][i % 2], r[1]) for i, r in enumerate(_sine_square(40, 2))])
    quick = ["--epochs", "2", "--hidden-size", "8", "--quiet", "--device", "cpu"]
    assert main(["classify", "train", "--data", str(data), "--out", str(model), *quick]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["classes"] == 2
    pred = tmp_path / "pred.csv"
    assert main(["classify", "predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 0
    df = pd.read_csv(pred, dtype={"true_label": str, "label": str})
    assert len(df) == 40 and df["true_label"].tolist() == ["1", "2"] * 20 and set(df["label"]) <= {"1", "2"}
    unlabelled = tmp_path / "new.csv"  # a wide table without a label column predicts too
    _write(unlabelled, "wide-csv", [("x", r[1]) for r in _sine_square(6, 3)])
    unlabelled.write_text("\n".join(",".join(ln.split(",")[1:]) for ln in unlabelled.read_text().splitlines()) + "\n")
    assert main(["classify", "predict", "--model", str(model), "--data", str(unlabelled), "--out", str(pred)]) == 0
    assert len(pd.read_csv(pred)) == 6 and "true_label" not in pd.read_csv(pred).columns
    assert main(["classify", "evaluate", "--model", str(model), "--data", str(data)]) == 0
    assert "accuracy" in capsys.readouterr().out
