"""TextModel: real learning on tiny corpora, decoding, streaming == full forward, save/load."""
import math
import warnings

import pytest
import torch

from rnnkit.errors import UserError
from rnnkit.tasks.text.sampling import SamplingConfig, filter_logits, sample
from rnnkit.tasks.text.task import TextModel
from rnnkit.tasks.text.network import LanguageModel, LMConfig

PHRASES = "the cat sat on the mat.\nthe dog ate the bone.\n" * 40


@pytest.fixture(scope="module")
def char_model():
    torch.set_num_threads(1)
    m = TextModel(level="char", hidden_size=64, embed_size=16, bptt=32, batch_size=8, lr=1e-2, dropout=0.0)
    return m.fit(PHRASES, epochs=25, patience=None, device="cpu", progress=False)


@pytest.fixture(scope="module")
def word_model():
    torch.set_num_threads(1)
    m = TextModel(level="word", hidden_size=32, embed_size=32, bptt=8, batch_size=4, lr=1e-2, dropout=0.0)
    return m.fit(PHRASES, epochs=25, patience=None, device="cpu", progress=False)


def test_char_model_learns_the_phrases(char_model):
    val = char_model.metrics["val"]
    # a uniform guess over the 17 characters costs ln 17 = 2.83 nats; the phrases are learnable
    assert val["loss"] < 0.25, val
    assert val["bits_per_char"] == pytest.approx(val["loss"] / math.log(2))
    assert val["perplexity"] == pytest.approx(math.exp(val["loss"]))
    assert char_model.generate("the cat sat", length=13, temperature=0) == " on the mat.\n"
    assert char_model.next_words("the dog ate the ", k=3)[0][0] == "bone"


def test_char_next_word_completes_a_word_and_probabilities_are_sane(char_model):
    ranked = char_model.next_words("the cat sat on the m", k=3)
    assert ranked[0][0] == "at"  # completes "m" -> "mat"
    probs = [p for _, p in ranked]
    assert all(0 < p <= 1 for p in probs) and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6


def test_word_model_learns_next_word(word_model):
    assert word_model.metrics["val"]["loss"] < 0.2
    ranked = word_model.next_words("the cat sat on the", k=3)
    assert ranked[0][0] == "mat" and ranked[0][1] > 0.8
    assert word_model.generate("the dog", length=4, temperature=0) == " ate the bone."
    assert all(w.isalnum() for w, _ in word_model.next_words("the cat sat on", k=5, words_only=True))
    assert word_model.predict(["the cat sat on the", "the dog ate the"], k=1)[1][0][0] == "bone"


def test_evaluate_scores_every_token(word_model, char_model):
    text = "the cat sat on the mat.\n" * 3
    r = char_model.evaluate(text)
    assert r["tokens"] == len(text) - 1 and r["skipped"] == 0 and r["top5_accuracy"] >= r["top1_accuracy"]
    r = char_model.evaluate(text + "ZZ")  # unseen characters: skipped, counted, not a crash
    assert r["skipped"] == 2 and r["tokens"] == len(text) - 1
    r = word_model.evaluate(text)
    assert r["tokens"] == 3 * 8 - 1 and r["characters"] == len(text) and r["bits_per_char"] < r["loss"] / math.log(2)
    with pytest.raises(UserError, match="empty"):
        word_model.evaluate("   ")
    with pytest.raises(UserError, match="nothing to score"):
        char_model.evaluate("ZZZZ")


def test_streaming_steps_equal_a_full_forward(char_model):
    """Generation steps the recurrent layer token by token; a full forward over the whole text
    must give the same next-token choices (the prefix is never re-run, and need not be)."""
    prompt = "the dog"
    out = char_model.generate(prompt, length=30, temperature=0)
    vocab, net = char_model.vocab, char_model.network
    ids = torch.tensor([vocab.encode(["\n", *prompt, *out])])
    with torch.no_grad():
        logits, _ = net(ids)
    greedy = logits[0, len(prompt):-1].argmax(-1).tolist()  # predictions after the prompt
    assert vocab.decode(greedy) == list(out)


def test_same_seed_same_text_and_sampling_options(char_model):
    a = char_model.generate("the", length=50, temperature=1.5, seed=7)
    assert a == char_model.generate("the", length=50, temperature=1.5, seed=7)
    assert a != char_model.generate("the", length=50, temperature=1.5, seed=8)
    greedy = char_model.generate("the", length=20, temperature=0)
    assert char_model.generate("the", length=20, top_k=1, seed=3) == greedy
    assert char_model.generate("the", length=20, top_p=1e-6, seed=3) == greedy
    pieces = list(char_model.stream("the", length=5, seed=1))
    assert len(pieces) == 5 and "".join(pieces) == char_model.generate("the", length=5, seed=1)
    for bad in (dict(temperature=-1), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5), dict(length=-1)):
        with pytest.raises(UserError):
            char_model.generate("the", **{"length": 5, **bad})


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_k=2)))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, SamplingConfig(top_p=0.7)))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    assert sample(logits, SamplingConfig(temperature=0)).tolist() == [0]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample(logits, SamplingConfig(), g) for _ in range(4000)])
    assert abs(float((draws == 0).float().mean()) - 0.5) < 0.03  # samples follow the distribution


def test_unknown_prompt_characters_warn_not_crash(char_model, word_model):
    with pytest.warns(UserWarning, match="skipped: 'é'"):
        out = char_model.generate("thé cat", length=10, seed=0)
    assert len(out) == 10
    with pytest.warns(UserWarning, match="read as <unk>: 'zebra'"):
        assert len(word_model.next_words("the zebra sat", k=2)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        char_model.generate("", length=5, seed=0)  # empty prompt: starts a line, no warning


def test_save_load_same_probabilities(char_model, word_model, tmp_path):
    for m, prompt in ((char_model, "the ca"), (word_model, "the dog ate")):
        folder = tmp_path / m.config.level
        m.save(folder)
        assert {"config.json", "model.safetensors", "vocab.json"} <= {p.name for p in folder.iterdir()}
        loaded = TextModel.load(folder)
        assert torch.equal(m.probabilities(prompt), loaded.probabilities(prompt))
        assert loaded.generate(prompt, length=20, seed=5) == m.generate(prompt, length=20, seed=5)
    import rnnkit

    assert isinstance(rnnkit.load(str(tmp_path / "word")), TextModel)


def test_word_model_ties_weights(word_model, tmp_path):
    net = word_model.network
    assert net.decoder.weight is net.embed.weight
    word_model.save(tmp_path / "w")
    loaded = TextModel.load(tmp_path / "w").network
    assert loaded.decoder.weight.data_ptr() == loaded.embed.weight.data_ptr()


def test_tied_projection_when_sizes_differ():
    net = LanguageModel(LMConfig(vocab_size=11, embed_size=8, hidden_size=12, num_layers=2, tie_weights=True))
    logits, state = net(torch.randint(0, 11, (3, 5)))
    assert logits.shape == (3, 5, 11) and state[0].shape == (2, 3, 12)
    step_logits, _ = net.step(torch.tensor([1, 2, 3]))
    assert step_logits.shape == (3, 11)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_train(cell):
    torch.set_num_threads(1)
    m = TextModel(level="char", cell=cell, hidden_size=48, embed_size=16, bptt=32, batch_size=8, lr=1e-2, dropout=0.0)
    m.fit(PHRASES, epochs=6, patience=None, device="cpu", progress=False)
    # unigram character entropy of PHRASES is 2.40 nats (uniform: ln 17 = 2.83): context was learned
    assert m.metrics["val"]["loss"] < 1.6
    assert len(m.generate("the", length=10, seed=0)) == 10


def test_too_small_corpus_and_bad_options():
    with pytest.raises(UserError, match="too small"):
        TextModel(level="char", bptt=64).fit("short text\n" * 3, progress=False)
    with pytest.raises(UserError, match="empty"):
        TextModel().fit("  \n", progress=False)
    with pytest.raises(UserError, match="unknown --cell"):
        TextModel(cell="transformer")
    with pytest.raises(UserError, match="level must be one of"):
        TextModel(level="byte")
    with pytest.raises(UserError, match="not trained"):
        TextModel().generate("x")


def test_adaptive_softmax_is_a_normalised_model_with_consistent_step():
    torch.manual_seed(0)
    net = LanguageModel(LMConfig(vocab_size=3000, embed_size=16, hidden_size=24, num_layers=1, dropout=0.0,
                                 tie_weights=True, cutoffs=[2000])).eval()
    ids = torch.randint(0, 3000, (2, 7))
    logp, _ = net(ids)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 7), atol=1e-4)  # log-probabilities
    loss, _ = net(ids[:, :-1], targets=ids[:, 1:])
    expect = torch.nn.functional.nll_loss(logp[:, :-1].reshape(-1, 3000), ids[:, 1:].reshape(-1))
    assert torch.allclose(loss, expect, atol=1e-5)
    state, steps = None, []
    for t in range(7):  # streaming steps == full forward
        out, state = net.step(ids[:, t], state)
        steps.append(out)
    assert torch.allclose(torch.stack(steps, 1), logp, atol=1e-5)


def test_word_model_with_large_vocab_uses_adaptive_softmax(tmp_path):
    torch.set_num_threads(1)
    words = [f"w{i}" for i in range(2600)]
    text = "\n".join(" ".join(words[i:i + 10]) for i in range(0, 2600, 10)) + "\n"
    text = (text + "the cat sat on the mat .\n" * 200) * 2
    m = TextModel(level="word", hidden_size=16, embed_size=16, bptt=16, batch_size=8, max_vocab=5000)
    m.fit(text, epochs=1, patience=None, device="cpu", progress=False)
    assert m.network.cfg.cutoffs == [2000] and not m.network.cfg.tie_weights
    m.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    assert torch.equal(m.probabilities("the cat"), loaded.probabilities("the cat"))
    assert len(loaded.next_words("the cat", k=3)) == 3
