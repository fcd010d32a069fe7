"""Text data layer: reading/validating files, tokenizer, vocabulary, TBPTT streams."""
import json

import pytest
import torch

from rnnkit.data.text import (SHAKESPEARE, TBPTTBatches, batchify, decode_text, load_shakespeare, read_text,
                              split_stream, tbptt_batches)
from rnnkit.data.vocab import EOS, PAD, UNK, Vocab, detokenize, prompt_tokens, tokenize
from rnnkit.errors import UserError


def test_read_text_normalises_newlines_and_bom(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffline one\r\nline two\rthree ünïcödé\n".encode("utf-8"))
    assert read_text(p) == "line one\nline two\nthree ünïcödé\n"


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"abc\x00\x01\x02def", "binary"),
    (b"caf\xe9 au lait\n", "not valid UTF-8"),
])
def test_read_text_rejects_bad_files(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_text(p)


def test_read_text_missing_and_folder(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(UserError, match="folder"):
        read_text(tmp_path)


def test_non_utf8_error_says_where():
    with pytest.raises(UserError, match=r"byte 6, line 2"):
        decode_text(b"hello\n\xff\xfe", "x.txt")


def test_word_tokenizer_documented_rules():
    text = "Pardon'd, O'er the hill--'tis true!\n\nThe KING's 2 men.\n"
    assert tokenize(text, "word", lowercase=True) == ["pardon'd", ",", "o'er", "the", "hill", "--", "'tis", "true", "!", EOS,
                                      "the", "king's", "2", "men", ".", EOS]
    assert tokenize("A b", "word", lowercase=False) == ["A", "b", EOS]
    assert tokenize("ab\n", "char", lowercase=False) == ["a", "b", "\n"]
    with pytest.raises(UserError, match="unknown text level"):
        tokenize("x", "byte", lowercase=False)


def test_prompt_tokens_continue_the_line():
    assert prompt_tokens("I pray you", "word") == ["i", "pray", "you"]
    assert prompt_tokens("I pray you\n", "word") == ["i", "pray", "you", EOS]


def test_detokenize_spacing():
    toks = ["i", "pray", "you", ",", "sir", "!", EOS, "(", "aside", ")", "go", "."]
    assert detokenize(toks, "word") == "i pray you, sir!\n(aside) go."
    assert detokenize(list("ab c"), "char") == "ab c"


def test_vocab_cap_unk_and_json_roundtrip(tmp_path):
    tokens = list("aaaabbbcc d")
    v = Vocab.build(tokens, "char", max_size=3)
    assert v.tokens == [UNK, "a", "b"]  # by falling frequency, capped, <unk> first
    assert v.encode(list("abcz")) == [1, 2, 0, 0]
    assert v.unknown(list("abczc")) == ["c", "z"]
    assert Vocab.build(tokens, "char", min_freq=2).tokens == [UNK, "a", "b", "c"]
    w = Vocab.from_json(json.loads(json.dumps(v.to_json())))
    assert w.tokens == v.tokens and w.level == "char"
    with pytest.raises(UserError, match="malformed"):
        Vocab.from_json({"tokens": [UNK]})
    with pytest.raises(UserError, match="malformed"):
        Vocab.from_json({"tokens": ["a", UNK, UNK], "level": "char"})
    padded = Vocab.build(tokens, "char", specials=(PAD, UNK))  # the classifier's layout: padding is id 0
    assert padded.tokens[:2] == [PAD, UNK] and padded.unk_id == 1 and padded.encode(["z"]) == [1]


def test_vocab_is_deterministic():
    toks = tokenize(load_shakespeare()[:20000], "word", lowercase=True)
    assert Vocab.build(toks, "word", 500).tokens == Vocab.build(list(reversed(toks)), "word", 500).tokens


def test_batchify_and_tbptt_streams_are_contiguous():
    ids = torch.arange(103)
    streams = batchify(ids, 4)
    assert streams.shape == (4, 25)
    assert torch.equal(streams[1], torch.arange(25, 50))  # each row is one contiguous piece
    batches = list(TBPTTBatches(streams, bptt=10))
    assert len(batches) == len(TBPTTBatches(streams, bptt=10)) == 3
    xs = torch.cat([x for x, _ in batches], dim=1)
    ys = torch.cat([y for _, y in batches], dim=1)
    assert torch.equal(xs, streams[:, :-1]) and torch.equal(ys, streams[:, 1:])  # y = x shifted, across batches
    assert batches[-1][0].shape == (4, 4)


def test_tbptt_batches_too_small_is_a_user_error():
    with pytest.raises(UserError, match="too small"):
        tbptt_batches(torch.arange(50), batch_size=4, bptt=32)


def test_split_stream_is_contiguous():
    tr, va = split_stream(torch.arange(100), 0.1)
    assert torch.equal(tr, torch.arange(90)) and torch.equal(va, torch.arange(90, 100))
    with pytest.raises(UserError):
        split_stream(torch.arange(10), 0.0)


def test_shipped_corpus_and_licence():
    text = load_shakespeare()
    assert 1_000_000 < len(text) < 1_250_000
    assert text.startswith("THE TRAGEDY OF CORIOLANUS")
    assert "public domain" in (SHAKESPEARE.parent / "LICENSE.txt").read_text()


def test_tbptt_batches_for_ranks_keep_each_stream_on_one_process():
    streams = batchify(torch.arange(4 * 21), 4)
    batches = list(TBPTTBatches(streams, bptt=10, ranks=2))
    assert len(batches) == len(TBPTTBatches(streams, bptt=10, ranks=2)) == 4
    rank0 = torch.cat([x for x, _ in batches[0::2]], dim=1)  # what the trainer's sharding gives rank 0
    rank1 = torch.cat([x for x, _ in batches[1::2]], dim=1)
    assert torch.equal(rank0, streams[:2, :-1]) and torch.equal(rank1, streams[2:, :-1])
