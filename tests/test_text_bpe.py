"""`--level bpe`: a byte-level BPE (Hugging Face tokenizers) trained on the data, saved as tokenizer.json."""
import json
import sys

import pytest
import torch

pytest.importorskip("tokenizers")

from rnnkit.cli import main  # noqa: E402
from rnnkit.data.bpe import BPEVocab, require_tokenizers, train_bpe  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402
from rnnkit.tasks.text.task import TextModel  # noqa: E402

PHRASES = "the cat sat on the mat.\nthe dog ate the bone.\n" * 60


def test_bpe_vocab_round_trip_and_layout():
    vocab = BPEVocab(train_bpe([PHRASES], vocab_size=300))
    assert vocab.tokens[0] == "<unk>" and len(vocab) <= 300 and vocab.level == "bpe"
    ids = vocab.encode_text(PHRASES)
    assert 0 not in ids and len(ids) < len(PHRASES) / 2  # merges learned, nothing unknown
    assert vocab.detokenize(vocab.decode(ids)) == PHRASES
    assert vocab.detokenize(vocab.tokenize("café 東京")) == "café 東京"  # byte level: any text
    again = BPEVocab.from_tokenizer_json(vocab.tokenizer_json())
    assert again.encode_text("the cat") == vocab.encode_text("the cat")


def test_bpe_model_learns_saves_tokenizer_json_and_reloads(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "phrases.txt"
    data.write_text(PHRASES)
    m = TextModel(level="bpe", max_vocab=300, hidden_size=48, embed_size=32, bptt=16, batch_size=4, lr=1e-2,
                  dropout=0.0)
    m.fit(data, epochs=15, patience=None, device="cpu", progress=False)
    assert m.metrics["val"]["loss"] < 0.3, m.metrics
    assert m.generate("the dog", length=4, temperature=0).startswith(" ate the bone")
    assert m.next_words("the cat sat on the", k=1)[0][0] == "mat"
    m.save(tmp_path / "m")
    tok_file = tmp_path / "m" / "tokenizer.json"
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(tok_file)).encode("the cat").ids == m.vocab.encode_text("the cat")
    loaded = TextModel.load(tmp_path / "m")
    assert torch.equal(loaded.probabilities("the dog"), m.probabilities("the dog"))
    # --tokenizer: reuse the saved tokenizer instead of training one
    m2 = TextModel(level="bpe", tokenizer=str(tmp_path / "m"), hidden_size=16, embed_size=16, bptt=16, batch_size=4)
    m2.fit(data, epochs=1, patience=None, device="cpu", progress=False)
    assert m2.vocab.tokens == m.vocab.tokens


def test_bpe_cli_and_clear_errors(tmp_path, capsys, monkeypatch):
    data = tmp_path / "phrases.txt"
    data.write_text(PHRASES)
    out = tmp_path / "model"
    args = ["text", "train", "--data", str(data), "--out", str(out), "--level", "bpe", "--max-vocab", "300",
            "--hidden-size", "16", "--embed-size", "16", "--bptt", "16", "--batch-size", "4", "--epochs", "1",
            "--device", "cpu"]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["options"]["level"] == "bpe"
    assert (out / "tokenizer.json").is_file()
    capsys.readouterr()
    other = [*args[:5], str(tmp_path / "m1"), *args[6:]]
    assert main([*other, "--tokenizer", str(tmp_path / "none.json")]) == 2
    assert "tokenizer file not found" in capsys.readouterr().err
    assert main(["text", "train", "--data", str(data), "--out", str(tmp_path / "m2"), "--level", "word",
                 "--tokenizer", str(out)]) == 2
    assert "--tokenizer goes with --level bpe" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as if not installed
    with pytest.raises(UserError, match=r"pip install 'rnnkit\[text\]'"):
        require_tokenizers()
