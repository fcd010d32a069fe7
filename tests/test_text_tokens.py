"""Streaming text preparation: token file == in-memory tokenisation, cache reuse, splits, inputs
(folder, glob, .gz), errors, and TBPTT batches read from the file (disjoint per DDP rank)."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch

from rnnkit.data import text_sources
from rnnkit.data.vocab import Vocab, tokenize
from rnnkit.data.text_sources import TextStream, resolve_inputs
from rnnkit.data.token_batches import StreamBatches, make_stream_batches
from rnnkit.data.token_file import TokenArray, TokenSpec, cache_root, dtype_for, prepare_text
from rnnkit.errors import UserError
from rnnkit.train.distributed import DistInfo, shard

TEXT = ("\ufeffThe cat sat on the mat.\r\n\r\nThe dog ate the bone -- 'tis o'er!\r\n"
        "Ünïcödé wörds: café, naïve, 東京.\n" * 30) + "no final newline"


def _norm(text: str) -> str:
    """What the stream reads: BOM dropped, CRLF -> LF, a final line break added."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@pytest.fixture
def small_chunks(monkeypatch):
    """Pieces of 37 bytes: multi-byte characters, CRLF pairs and lines cross piece boundaries."""
    monkeypatch.setattr(text_sources, "CHUNK", 37)


@pytest.mark.parametrize("level", ["char", "word"])
def test_streamed_ids_equal_in_memory_tokenisation(tmp_path, small_chunks, level):
    path = tmp_path / "a.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    lower = level == "word"  # rnnkit's word models lower-case, its char models keep the case
    prep = prepare_text(resolve_inputs(path), TokenSpec(level=level, lowercase=lower, val_fraction=None))
    tokens = tokenize(_norm(TEXT), level, lower)
    expect = Vocab.build(tokens, level, lowercase=lower)
    assert prep.vocab.tokens == expect.tokens
    assert prep.train.memmap().tolist() == expect.encode(tokens)
    assert prep.train.dtype == np.uint8 and prep.val is None
    assert prep.manifest["characters"]["train"] == len(_norm(TEXT))
    # the same text given as a str is tokenised in memory the same way
    mem = prepare_text(TEXT, TokenSpec(level=level, lowercase=lower, val_fraction=None))
    assert mem.folder is None and mem.train.memmap().tolist() == prep.train.memmap().tolist()


def test_split_is_a_contiguous_tail_and_vocab_counts_train_only(tmp_path):
    text = "abc\n" * 900 + "xyz\n" * 100  # x, y, z only in the last 10 %
    path = tmp_path / "t.txt"
    path.write_text(text)
    whole = prepare_text(resolve_inputs(path), TokenSpec(level="char", val_fraction=None))
    prep = prepare_text(resolve_inputs(path), TokenSpec(level="char", val_fraction=0.1))
    assert len(prep.val) == 400 and len(prep.train) == 3600  # cut at the line break after 90 %
    assert set(prep.vocab.tokens) == {"<unk>", "a", "b", "c", "\n"}  # vocabulary from the head only
    ids = np.concatenate([prep.train.memmap(), prep.val.memmap()])
    decoded = "".join(t if t != "<unk>" else "?" for t in prep.vocab.decode(ids.tolist()))
    assert decoded == text.replace("x", "?").replace("y", "?").replace("z", "?")
    assert len(whole.train) == len(text)


def test_word_vocab_from_streamed_counts_with_cap_and_min_freq(tmp_path):
    words = " ".join(f"w{i}" for i in range(300))
    text = (words + "\n") * 3 + "rare\n" + "common common\n" * 50
    prep = prepare_text(text, TokenSpec(level="word", max_vocab=1000, min_freq=2, val_fraction=None))
    assert "rare" not in prep.vocab.stoi and "common" in prep.vocab.stoi and len(prep.vocab) == 303
    assert prep.vocab.tokens[1] == "common" and dtype_for(len(prep.vocab)) == np.uint16
    assert prep.train.dtype == np.uint16
    capped = prepare_text(text, TokenSpec(level="word", max_vocab=10, val_fraction=None))
    assert len(capped.vocab) == 10 and capped.train.dtype == np.uint8
    assert dtype_for(256) == np.uint8 and dtype_for(257) == np.uint16 and dtype_for(70000) == np.uint32


def test_cache_reused_and_invalidated_by_an_edit(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello world\n" * 100)
    first = prepare_text(resolve_inputs(path), TokenSpec(level="word"))
    assert not first.reused and first.folder.parent == cache_root()
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest["inputs"][0]["size"] == path.stat().st_size and manifest["vocab_size"] == 4
    again = prepare_text(resolve_inputs(path), TokenSpec(level="word"))
    assert again.reused and again.folder == first.folder
    assert again.train.memmap().tolist() == first.train.memmap().tolist()
    path.write_text("hello there world\n" * 100)  # edited: new size and time, prepared again
    edited = prepare_text(resolve_inputs(path), TokenSpec(level="word"))
    assert not edited.reused and edited.folder != first.folder and "there" in edited.vocab.stoi
    (edited.folder / "manifest.json").unlink()  # an incomplete entry is rebuilt, not trusted
    assert not prepare_text(resolve_inputs(path), TokenSpec(level="word")).reused


def test_folder_glob_and_gzip_inputs_read_the_same_text(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("first file\n")
    (d / "sub" / "b.txt").write_text("second file without newline")
    with gzip.open(d / "c.txt.gz", "wt") as f:
        f.write("third file, compressed\n")
    (d / ".hidden").write_text("not read\n")
    files = resolve_inputs(d)
    assert [f.path.name for f in files] == ["a.txt", "c.txt.gz", "b.txt"]
    text = "".join(t for _, t in TextStream(files))
    assert text == "first file\nthird file, compressed\nsecond file without newline\n"
    globbed = resolve_inputs(str(d / "**" / "*.txt"))
    assert [f.path.name for f in globbed] == ["a.txt", "b.txt"]
    # a compressed file is split by its decompressed size
    big = tmp_path / "big.txt.gz"
    with gzip.open(big, "wt") as f:
        f.write("line\n" * 1000)
    parts = [p for p, _ in TextStream(resolve_inputs(big), val_fraction=0.25)]
    assert parts.count(1) >= 1
    val = "".join(t for p, t in TextStream(resolve_inputs(big), val_fraction=0.25) if p == 1)
    assert val == "line\n" * 250


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"  \n\n ", "empty"),
    (b"abc\x00\x01def", "binary"),
    ("Notepad's Unicode\n".encode("utf-16"), "is UTF-16 or UTF-32 text"),  # was "looks binary"
    (b"good line\n" * 5 + b"caf\xe9\n", r"not valid UTF-8 \(line 6\)"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        prepare_text(resolve_inputs(path), TokenSpec(level="char"))


def test_missing_inputs_and_corrupt_archive(tmp_path):
    with pytest.raises(UserError, match="not found"):
        resolve_inputs(tmp_path / "nope.txt")
    with pytest.raises(UserError, match="no files match"):
        resolve_inputs(str(tmp_path / "*.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no"):
        resolve_inputs(tmp_path / "empty")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"hello\n" * 100)[:-20])
    with pytest.raises(UserError, match="cannot read"):
        prepare_text(resolve_inputs(bad), TokenSpec(level="char"))
    garbled = tmp_path / "garbled.txt.gz"  # a gzip header then junk: zlib.error was a traceback
    garbled.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(UserError, match="garbled.txt.gz: cannot read"):
        prepare_text(resolve_inputs(garbled), TokenSpec(level="char"))


def test_empty_text_names_the_file(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("  \n\t\n" * 10)
    with pytest.raises(UserError, match="blank.txt: empty text"):
        prepare_text(resolve_inputs(path), TokenSpec(level="word", val_fraction=0.1))


def test_stream_batches_match_the_in_memory_layout():
    ids = np.arange(1000, dtype=np.uint16) % 97
    tokens = TokenArray(ids.dtype, len(ids), array=ids)
    batches = make_stream_batches(tokens, batch_size=4, bptt=16)
    L = 1000 // 4
    items = list(batches)
    assert len(items) == len(batches) == -(-(L - 1) // 16)
    x0, y0 = items[0]
    assert x0.shape == (4, 16) and x0.dtype == torch.int64
    assert x0[1].tolist() == ids[L:L + 16].tolist() and y0[1].tolist() == ids[L + 1:L + 17].tolist()
    x1, _ = items[1]  # the next item continues every stream
    assert x1[2, 0].item() == ids[2 * L + 16]
    assert items[-1][0].shape[1] == (L - 1) - 16 * (len(items) - 1)  # the last window is shorter
    with pytest.raises(UserError, match="too small"):
        make_stream_batches(tokens, batch_size=64, bptt=16)


def test_two_ranks_read_disjoint_streams_of_the_token_file(tmp_path):
    """Two simulated DDP processes: each reads only its own rows, together they cover every
    training position once, in the same number of steps."""
    path = tmp_path / "t.txt"
    path.write_text("".join(chr(97 + i % 26) for i in range(5000)) + "\n")
    prep = prepare_text(resolve_inputs(path), TokenSpec(level="char", val_fraction=None))
    seen = {}
    for rank in (0, 1):
        batches = StreamBatches(prep.train, batch_size=8, bptt=32, rank=rank, ranks=2)
        own = list(shard(batches, DistInfo(rank=rank, world_size=2)))
        assert all(item is not None for item in own) and len(own) == len(batches) // 2
        L = batches.length
        positions = set()
        for w, (x, _) in enumerate(own):
            assert x.shape[0] == 4
            for row, b in enumerate(batches.rows_of(rank)):
                start = b * L + 32 * w
                assert x[row].tolist() == prep.train.read(start, x.shape[1]).tolist()
                positions.update(range(start, start + x.shape[1]))
        seen[rank] = positions
    assert not seen[0] & seen[1]
    L = len(prep.train) // 8
    assert seen[0] | seen[1] == {b * L + t for b in range(8) for t in range(L - 1)}


def test_text_model_trains_from_a_folder_and_scores_files_like_strings(tmp_path):
    from rnnkit.tasks.text.task import TextModel

    torch.set_num_threads(1)
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(3):
        with gzip.open(d / f"part{i}.txt.gz", "wt") as f:
            f.write("the cat sat on the mat.\nthe dog ate the bone.\n" * 15)
    m = TextModel(level="word", hidden_size=32, embed_size=32, bptt=8, batch_size=4, lr=1e-2, dropout=0.0)
    m.fit(d, epochs=20, patience=None, device="cpu", progress=False)
    assert m.metrics["val"]["loss"] < 0.5
    entries = sorted(p.name for p in cache_root().iterdir() if p.is_dir())
    m2 = TextModel(level="word", hidden_size=32, embed_size=32, bptt=8, batch_size=4, lr=1e-2, dropout=0.0)
    m2.fit(d, epochs=1, patience=None, device="cpu", progress=False)
    assert sorted(p.name for p in cache_root().iterdir() if p.is_dir()) == entries  # the token file was reused
    held = tmp_path / "held.txt"
    held.write_text("the dog ate the bone.\nthe cat sat on the mat.\n" * 4)
    from_file, from_str = m.evaluate(held), m.evaluate(held.read_text())
    assert from_file == pytest.approx(from_str) and from_file["tokens"] == 4 * 15 - 1


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_text_train_under_torchrun_two_processes(tmp_path):
    """The real thing: `torchrun --nproc-per-node 2 -m rnnkit text train` on a token file; both
    processes read their own streams (placeholders elsewhere) and finish in step."""
    import os
    import subprocess
    import sys

    data = tmp_path / "t.txt"
    data.write_text("the cat sat on the mat.\nthe dog ate the bone.\n" * 200)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone", "-m", "rnnkit",
           "text", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--level", "word", "--hidden-size", "16",
           "--embed-size", "16", "--bptt", "8", "--batch-size", "4", "--epochs", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["val"]["loss"] < 3.0


def test_max_time_counts_the_preparation(tmp_path):
    """--max-time is measured from the start of fit: with no time left after preparing, one step."""
    from rnnkit.tasks.text.task import TextModel

    torch.set_num_threads(1)
    m = TextModel(level="char", hidden_size=16, embed_size=8, bptt=16, batch_size=4)
    m.fit("the cat sat on the mat.\n" * 200, epochs=5, max_time=0.0, patience=None, device="cpu", progress=False)
    assert m.metrics["steps"] == 1 and m.metrics["stop_reason"] == "max_time"


_PIECES = [b"ab", b"\xc3\xa9", b"\xe6\x9d\xb1", b"\xf0\x9f\x98\x80", b"\r\n", b"\r", b"\n", b" ", b"\x00", b"\xff",
           b"\xc3", b"\xef\xbb\xbf", b"'tis", b"--", b"."]


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_PIECES) | st.binary(max_size=3), max_size=40), chunk=st.integers(1, 9))
def test_fuzzed_bytes_tokenise_like_read_text_or_fail_cleanly(tmp_path_factory, parts, chunk):
    """Whatever the bytes and the piece size: a UserError, or exactly the characters read_text
    reads (plus the final line break the stream adds) -- and any text read_text accepts is prepared."""
    from rnnkit.data.text import read_text

    p = tmp_path_factory.mktemp("fuzz") / "t.txt"
    p.write_bytes(b"".join(parts))
    old, text_sources.CHUNK = text_sources.CHUNK, chunk
    try:
        try:
            prep = prepare_text(resolve_inputs(p), TokenSpec(level="char", val_fraction=None), cache=False)
        except UserError as exc:
            assert "\n" not in str(exc)
            prep = None
    finally:
        text_sources.CHUNK = old
    try:
        text = read_text(p)
    except UserError:
        text = None
    if prep is not None:
        assert text is not None
        expect = text if text.endswith("\n") else text + "\n"
        assert "".join(prep.vocab.decode(prep.train.memmap().tolist())) == expect
    elif text is not None:
        assert not text.strip()  # only blank text may be refused when read_text accepts it
