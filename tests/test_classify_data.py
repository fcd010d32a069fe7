"""Classification data: readers (CSV, class folder, npz, UEA .ts), validation, stratified split,
and the metrics against scikit-learn."""
import gzip

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.sequences import check_labels, from_arrays, read_sequences, stratified_split
from rnnkit.data.uea import load_uea, read_ts
from rnnkit.errors import UserError
from rnnkit.metrics.classify import accuracy, confusion_matrix, format_confusion, macro_f1, plot_confusion
from rnnkit.data.vocab import Vocab
from rnnkit.tasks.classify.data import FeatureScaler, Ragged, build_vocab, encode_texts, padded_batches


def test_csv_tokens_and_default_columns(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("name,label\nKowalski,Polish\nSmith,English\nNowak,Polish\n", encoding="utf-8")
    d = read_sequences(p)
    assert d.kind == "tokens" and d.texts == ["Kowalski", "Smith", "Nowak"] and d.labels == ["Polish", "English", "Polish"]


def test_csv_numeric_rows_become_series(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("sequence,label\n1 2 3,a\n4 5,b\n", encoding="utf-8")
    d = read_sequences(p)
    assert d.kind == "numeric" and d.padded().shape == (2, 3, 1) and d.lengths.tolist() == [3, 2]
    assert d.padded()[1, :, 0].tolist() == [4, 5, 0] and d.steps.shape == (5, 1)


def test_csv_numeric_column_with_one_odd_value(tmp_path):
    """A typo or 'NA' in one row of numeric series is an error naming it (the whole column was read
    as characters and a text model trained); text that holds some numbers stays text."""
    p = tmp_path / "d.csv"
    p.write_text("sequence,label\n1 2 3,a\n4 5 6,b\n7 NA 9,a\n1 1 1,b\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"row 4 in column 'sequence': 'NA' is not a number, while 3 of 4 rows"):
        read_sequences(p)
    p.write_text("text,label\nroom 101,a\n12 34,b\nhello there,a\nbye,b\n", encoding="utf-8")
    assert read_sequences(p).kind == "tokens"


def test_one_value_per_column_is_read(tmp_path):
    """UCR-archive rows (no header: label, then values) and wide tables were refused; they read now
    (tests/test_classify_layouts.py has the rest)."""
    ucr = tmp_path / "X_TRAIN.tsv"
    ucr.write_text("".join(f"{1 + i % 2}\t" + "\t".join(f"{(i * j) % 7 / 7:.3f}" for j in range(8)) + "\n"
                           for i in range(6)))
    d = read_sequences(ucr)
    assert d.labels == ["1", "2"] * 3 and d.lengths.tolist() == [8] * 6
    wide = tmp_path / "w.csv"
    wide.write_text("t0,t1,t2,t3,label\n" + "".join(f"{i},{i + 1},{i + 2},{i},{'ab'[i % 2]}\n" for i in range(6)))
    d = read_sequences(wide)
    assert d.labels == ["a", "b"] * 3 and d.padded()[2, :, 0].tolist() == [2, 3, 4, 2]


def test_csv_with_another_separator_says_so(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text;label\nab;x\ncd;y\n", encoding="utf-8")
    with pytest.raises(UserError, match="looks semicolon-separated"):  # was "no sequence column"
        read_sequences(p)


def test_csv_and_class_file_in_utf16_are_named(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("text,label\nab,x\ncd,y\n".encode("utf-16"))
    with pytest.raises(UserError, match="d.csv: is UTF-16 or UTF-32 text"):
        read_sequences(p)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.txt").write_bytes("ab\ncd\n".encode("utf-16"))
    with pytest.raises(UserError, match="a.txt: is UTF-16 or UTF-32 text"):
        read_sequences(tmp_path / "f")


@pytest.mark.parametrize("X, y, match", [
    (["ab", np.zeros(3), "cd", "ef"], ["a", "b"] * 2, "got a list of ndarray, str"),  # numpy's message before
    (np.zeros((4, 3)), np.zeros((4, 2)), r"y must have shape \(n,\)"),  # was 'need at least 2 classes'
    (np.zeros((4, 3)), np.array([0.0, 1.0, np.nan, 1.0]), "NaN or infinite labels"),  # was a class 'nan'
    (np.zeros((2, 3)), [[1, 2], [3]], "nested lists"),
])
def test_in_memory_inputs_of_the_wrong_form(X, y, match):
    with pytest.raises(UserError, match=match):
        from_arrays(X, y)


def test_csv_unknown_label_column(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("sequence,label\nab,x\n", encoding="utf-8")
    with pytest.raises(UserError, match="no label column 'cls'"):
        read_sequences(p, label_col="cls")
    with pytest.raises(UserError, match="'label' is both the sequence and the label column"):
        read_sequences(p, text_col="label")  # trained on the labels themselves before


def test_csv_empty_label(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("sequence,label\nab,x\ncd,\n", encoding="utf-8")
    with pytest.raises(UserError, match="row 3 has an empty label"):
        read_sequences(p)


def test_folder_of_class_files(tmp_path):
    (tmp_path / "Greek.txt").write_text("Papadopoulos\nNikolaidis\n\n", encoding="utf-8")
    (tmp_path / "Irish.txt").write_text("O'Brien\n", encoding="utf-8")
    d = read_sequences(tmp_path)
    assert d.labels == ["Greek", "Greek", "Irish"] and d.texts[2] == "O'Brien"
    (tmp_path / "Scottish.TXT").write_text("MacLeod\n", encoding="utf-8")  # an upper-case suffix was skipped
    assert read_sequences(tmp_path).labels[-1] == "Scottish"


def test_folder_of_class_folders_is_named(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "1.txt").write_text("great\n")
    with pytest.raises(UserError, match="it holds folders pos: one example per line of <class>.txt"):
        read_sequences(tmp_path)


def test_folder_empty_class_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="class 'b' has no examples"):
        read_sequences(tmp_path)


def test_npz_roundtrip_with_lengths(tmp_path):
    X = np.random.default_rng(0).normal(size=(4, 5, 2)).astype(np.float32)
    X[0, 3:] = np.nan  # padding after the length may be anything
    p = tmp_path / "d.npz"
    np.savez(p, X=X, y=np.array(["a", "b", "a", "b"]), lengths=np.array([3, 5, 5, 1]))
    d = read_sequences(p)
    assert d.padded().shape == (4, 5, 2) and d.lengths.tolist() == [3, 5, 5, 1] and d.labels[1] == "b"


@pytest.mark.parametrize("arrays, msg", [
    (dict(X=np.zeros((4, 5, 2)), y=np.zeros(3)), "X has 4 examples but y has 3"),
    (dict(X=np.zeros((4, 5, 2)), y=np.zeros((4, 2))), r"y must have shape \(n,\)"),
    (dict(X=np.zeros((4, 5, 2, 1)), y=np.zeros(4)), r"X must have shape \(n, time, features\)"),
    (dict(X=np.zeros((4, 5, 2)), y=np.zeros(4), lengths=np.array([1, 2, 3])), "lengths must be integers of shape"),
    (dict(X=np.zeros((4, 5, 2)), y=np.zeros(4), lengths=np.array([1, 2, 3, 9])), r"lengths must lie in \[1, 5\]"),
    (dict(y=np.zeros(4)), "no array 'X'"),
])
def test_npz_bad_shapes(tmp_path, arrays, msg):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    with pytest.raises(UserError, match=msg):
        read_sequences(p)


def test_nan_inside_a_sequence_is_an_error(tmp_path):
    X = np.zeros((2, 4, 3), dtype=np.float32)
    X[1, 2, 1] = np.nan
    with pytest.raises(UserError, match="example 1, step 2, feature 1"):
        from_arrays(X, ["a", "b"])


def test_label_checks():
    assert check_labels(["b", "a", "b", "a"], "x") == ["a", "b"]
    with pytest.raises(UserError, match="class 'c' has 1 example"):
        check_labels(["a", "a", "b", "b", "c"], "x")
    with pytest.raises(UserError, match="at least 2 classes"):
        check_labels(["a", "a"], "x")


def test_stratified_split_keeps_class_shares():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2
    tr, va = stratified_split(labels, 0.2, seed=1)
    assert sorted(tr.tolist() + va.tolist()) == list(range(62))
    lab = np.array(labels)
    assert (lab[va] == "a").sum() == 10 and (lab[va] == "b").sum() == 2 and (lab[va] == "c").sum() == 1
    assert (lab[tr] == "c").sum() == 1  # a rare class keeps a training example
    assert stratified_split(labels, 0.2, seed=1)[1].tolist() == va.tolist()  # deterministic


def test_uea_shipped_datasets_match_the_archive():
    bm = load_uea("BasicMotions", "train")
    assert bm.X.shape == (40, 100, 6) and sorted(set(bm.y)) == ["Badminton", "Running", "Standing", "Walking"]
    jv = load_uea("JapaneseVowels", "test")
    assert jv.X.shape[0] == 370 and jv.X.shape[2] == 12 and jv.lengths.min() == 7 and jv.lengths.max() == 29
    # padding after each case's length is zero
    i = int(jv.lengths.argmin())
    assert np.all(jv.X[i, jv.lengths[i]:] == 0)


def test_ts_cases_are_stored_end_to_end_not_padded_to_the_longest(tmp_path):
    p = tmp_path / "ragged.ts"
    p.write_text("@classLabel true a b\n@data\n1,2,3:4,5,6:a\n7:8:b\n")
    ts = read_ts(p)
    assert ts.steps.tolist() == [[1, 4], [2, 5], [3, 6], [7, 8]] and ts.offsets.tolist() == [0, 3, 4]
    assert ts.X.shape == (2, 3, 2) and ts.X[1, 1:].tolist() == [[0, 0], [0, 0]]
    d = read_sequences(p)
    assert np.array_equal(d.steps, ts.steps) and d.lengths.tolist() == [3, 1] and d.labels == ["a", "b"]


def test_ts_reader_errors(tmp_path):
    p = tmp_path / "bad.ts.gz"
    with gzip.open(p, "wt") as f:
        f.write("@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,2:3,4,5:b\n")
    with pytest.raises(UserError, match="different lengths"):
        read_ts(p)
    p2 = tmp_path / "miss.ts"
    p2.write_text("@classLabel true a b\n@data\n1,?,3:a\n")
    with pytest.raises(UserError, match="missing value"):
        read_ts(p2)
    p2.write_text("@timestamps true\n@classLabel true a b\n@data\n(2007-01-01 00:00:00,1),(2007-01-02 00:00:00,2):a\n")
    with pytest.raises(UserError, match="@timestamps true is not supported"):  # was "non-numeric value"
        read_ts(p2)


def test_vocab_and_scaler():
    v = build_vocab(["abc", "abd"], "char", lowercase=False)
    ragged, lengths = encode_texts(v, ["abz", "a"], max_len=None)
    ids = ragged.padded(torch.arange(2), 3)
    assert lengths.tolist() == [3, 1] and ids[0, 2] == 1 and ids[1, 1] == 0  # unknown=1, padding=0
    assert Vocab.from_json(v.to_json()).tokens == v.tokens
    d = from_arrays(np.array([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]]), lengths=np.array([2, 3]))
    s = FeatureScaler.fit(d.steps)  # the 100 is past the first sequence's length: not a step
    assert s.mean == pytest.approx([5.0]) and s.std == pytest.approx([np.std([1, 3, 5, 7, 9])])
    out = s.transform(d.steps)
    assert out.shape == (5, 1) and out[0, 0] == pytest.approx((1 - 5) / np.std([1, 3, 5, 7, 9]))


def test_metrics_match_sklearn(tmp_path):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 5, 300))
    p[p == 4] = 3  # class 4 never predicted: F1 0 for it
    assert accuracy(t, p) == pytest.approx(sk.accuracy_score(t, p))
    assert macro_f1(t, p, 5) == pytest.approx(sk.f1_score(t, p, average="macro"))
    assert (confusion_matrix(t, p, 5) == sk.confusion_matrix(t, p, labels=range(5))).all()
    table = format_confusion(confusion_matrix(t, p, 5), list("abcde"))
    assert table.splitlines()[0].startswith("| true \\ pred | a |") and len(table.splitlines()) == 7
    png = plot_confusion(confusion_matrix(t, p, 5), list("abcde"), tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_of_hundreds_of_classes_stays_small(tmp_path):
    """500 classes: the table was 500 columns of zeros on stdout and the PNG a 25,000-pixel square
    that took GBs (killed); now the top confusions and a capped figure."""
    import matplotlib.image

    n = 500
    cm = np.eye(n, dtype=np.int64) * 2
    cm[3, 7] = 5
    labels = [f"class{i}" for i in range(n)]
    table = format_confusion(cm, labels)
    assert len(table.splitlines()) == 4 and "| class3 | class7 | 5 |" in table
    png = plot_confusion(cm, labels, tmp_path / "cm.png")
    assert max(matplotlib.image.imread(png).shape[:2]) <= 24 * 110


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=12), min_size=1, max_size=20), st.data())
def test_ragged_tokens_pad_like_a_padded_matrix(seqs, data):
    ragged = Ragged.from_lists(seqs)
    idx = torch.tensor(data.draw(st.lists(st.integers(0, len(seqs) - 1), min_size=1, max_size=8)))
    steps = data.draw(st.integers(1, 14))
    want = torch.zeros(len(idx), steps, dtype=torch.int64)
    for row, i in enumerate(idx.tolist()):
        s = seqs[i][:steps]
        want[row, :len(s)] = torch.tensor(s)
    assert torch.equal(ragged.padded(idx, steps), want)


def test_text_batches_hold_tokens_not_n_times_the_longest_document():
    """One 100,000-character document among 5,000 short texts: memory follows the tokens, and every
    batch is padded to its own longest sequence."""
    texts = ["ab"] * 5000 + ["a" * 100_000]
    v = build_vocab(texts, "char", lowercase=False)
    ragged, lengths = encode_texts(v, texts, max_len=None)
    assert ragged.values.numel() == 5000 * 2 + 100_000 and lengths.max() == 100_000  # padded: 500 M ids
    batches = padded_batches(ragged, torch.from_numpy(lengths), None, 64, shuffle=False)(0)
    assert all(tuple(b[0].shape) == (64, 2) for b in batches[:-1])
    assert tuple(batches[-1][0].shape) == (5001 - 64 * 78, 100_000) and batches[-1][0][-1, -1] != 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.data())
def test_numeric_sequences_are_ragged_and_subset_like_the_padded_array(lengths, data):
    """from_arrays keeps only real steps; subset (with or without max_len) and per-batch padding give
    exactly the padded array's rows."""
    rng = np.random.default_rng(len(lengths))
    arrays = [rng.normal(size=(n, 2)) for n in lengths]
    d = from_arrays(arrays)
    assert d.steps.shape == (sum(lengths), 2) and d.lengths.tolist() == lengths
    idx = data.draw(st.lists(st.integers(0, len(lengths) - 1), min_size=1, max_size=6))
    cut = data.draw(st.one_of(st.none(), st.integers(1, 9)))
    sub = d.subset(idx, max_len=cut)
    want = [arrays[i][:cut].astype(np.float32) for i in idx]
    assert [len(w) for w in want] == sub.lengths.tolist()
    full = sub.padded()
    for row, w in enumerate(want):
        np.testing.assert_array_equal(full[row, :len(w)], w)
        assert not full[row, len(w):].any()
    x = Ragged(torch.from_numpy(sub.steps), torch.from_numpy(sub.offsets))
    np.testing.assert_array_equal(x.padded(torch.arange(len(idx)), full.shape[1]).numpy(), full)


def test_one_long_recording_costs_its_own_steps():
    """2,000 recordings of 20 steps and one of 200,000 (3 features): 1.0 M steps stored, not 2,001 x
    200,000; the classifier's batches without the long one stay short."""
    arrays = [np.ones((20, 3))] * 2000 + [np.ones((200_000, 3))]
    d = from_arrays(arrays, ["a", "b"] * 1000 + ["a"])
    assert d.steps.shape == (2000 * 20 + 200_000, 3)
    x = Ragged(torch.from_numpy(d.steps), torch.from_numpy(d.offsets))
    batches = padded_batches(x, torch.from_numpy(d.lengths), None, 64, shuffle=False)(0)
    assert tuple(batches[0][0].shape) == (64, 20, 3) and tuple(batches[-1][0].shape) == (2001 - 64 * 31, 200_000, 3)


def test_ordered_batches_put_a_very_long_sequence_in_a_batch_of_its_own():
    """Inference and validation batch by length with a cap on padded steps (batch x the 90th-percentile
    length): one 60,000-step sequence among 40-step ones does not pad 255 others to its length."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(40, 1)).astype(np.float32) for _ in range(600)] + [np.zeros((60000, 1), np.float32)]
    d = from_arrays(arrays, ["a"] * 601)
    x, L = Ragged(torch.from_numpy(d.steps), torch.from_numpy(d.offsets)), torch.from_numpy(d.lengths)
    batches = padded_batches(x, L, None, 256, shuffle=False, order=torch.argsort(L, stable=True))(0)
    assert [len(b[1]) for b in batches] == [256, 256, 88, 1] and batches[-1][0].shape == (1, 60000, 1)
    assert sum(int(b[0].numel()) for b in batches) == 600 * 40 + 60000  # nothing padded


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=10), st.integers(1, 12))
def test_pool_long_averages_windows_of_long_sequences_only(lengths, cap):
    """Each sequence longer than ``cap`` becomes the means of consecutive windows of ceil(len / cap)
    steps (the last window what is left), at most ``cap`` steps; shorter ones are untouched."""
    from rnnkit.data.ragged import offsets_of, pool_long, pooled_lengths

    rng = np.random.default_rng(len(lengths) * 100 + cap)
    arrays = [rng.normal(size=(n, 2)).astype(np.float32) for n in lengths]
    steps, offsets = pool_long(np.concatenate(arrays), offsets_of(np.array(lengths)), cap)
    got = np.diff(offsets)
    assert got.tolist() == pooled_lengths(np.array(lengths), cap).tolist()
    for a, start, n in zip(arrays, offsets[:-1], got):
        k = -(-len(a) // cap) if len(a) > cap else 1
        want = np.stack([a[i:i + k].mean(axis=0) for i in range(0, len(a), k)])
        assert n <= max(cap, 1) or len(a) <= cap
        np.testing.assert_allclose(steps[start:start + n], want, rtol=1e-5, atol=1e-6)
