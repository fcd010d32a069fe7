"""CTC greedy and beam-search decoding on hand-made logits; WER/CER with jiwer."""
import math

import numpy as np
import pytest

from rnnkit.tasks.speech.ctc_decode import CharVocab, WordLM, beam_search, greedy_decode

V = CharVocab()


def _frames(path: str, sharp: float = 0.9) -> np.ndarray:
    """Log-probs whose per-frame argmax spells ``path`` ('_' = blank)."""
    lp = np.full((len(path), len(V)), math.log((1 - sharp) / (len(V) - 1)))
    for t, ch in enumerate(path):
        lp[t, 0 if ch == "_" else V.encode(ch)[0] if ch != " " else V.chars.index(" ") + 1] = math.log(sharp)
    return lp


def test_vocab_round_trip_and_normalisation():
    assert V.normalize("Hello,  World! 42") == "hello world"
    assert V.decode(V.encode("it's ok")) == "it's ok"
    assert len(V) == len(V.chars) + 1 and CharVocab.from_json(V.to_json()) == V


def test_greedy_merges_repeats_and_drops_blanks():
    assert greedy_decode(_frames("hh_e_ll_llo"), V) == "hello"
    assert greedy_decode(_frames("__ t_w_o  o_n_e _"), V) == "two one"
    assert greedy_decode(_frames("____"), V) == ""


def test_beam_search_equals_greedy_on_peaked_logits():
    lp = _frames("ss_ee_vv_en  _n_ii_n_e")
    assert beam_search(lp, V, beam=8) == greedy_decode(lp, V) == "seven nine"


def test_beam_search_sums_paths_where_greedy_cannot():
    # Classic case: the best single path is blank-blank (""), but "a" has more total probability
    # (paths a-a, a-_, _-a). P("") = 0.4*0.4 = 0.16; P("a") = 0.3*0.3 + 2*0.3*0.4 = 0.33.
    lp = np.full((2, len(V)), -50.0)
    a = V.encode("a")[0]
    lp[:, 0], lp[:, a] = math.log(0.4), math.log(0.3)
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))  # renormalise the tiny rest
    assert greedy_decode(lp, V) == ""
    assert beam_search(lp, V, beam=4) == "a"


def test_word_list_lm_fixes_a_near_miss():
    # acoustics slightly prefer "fife"; the word list knows "five" and not "fife"
    lp = _frames("f_ii_vv_e", sharp=0.9)
    v, f = V.encode("v")[0], V.encode("f")[0]
    for t in (5, 6):
        lp[t, f], lp[t, v] = math.log(0.5), math.log(0.4)
    assert beam_search(lp, V, beam=8) == "fife"
    lm = WordLM.from_counts({"five": 10, "nine": 10})
    assert beam_search(lp, V, beam=8, lm=lm, alpha=1.0, beta=0.0) == "five"


def test_wer_cer_against_hand_counts():
    from rnnkit.metrics.speech import cer, per_utterance, wer

    refs, hyps = ["one two three", "four five"], ["one too three", "four five six"]
    assert wer(refs, hyps) == pytest.approx(2 / 5)  # 1 substitution + 1 insertion over 5 words
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    rows = per_utterance(refs, ["", "four five"])
    assert [r.wer for r in rows] == [1.0, 0.0]


def test_bigram_context_picks_the_likely_word():
    # acoustics: "one" then an ambiguous "six"/"sit" (t slightly ahead of x)
    lp = _frames("o_n_e _s_i_x", sharp=0.9)
    t, x = V.encode("t")[0], V.encode("x")[0]
    lp[11, t], lp[11, x] = math.log(0.5), math.log(0.4)
    uni, bi = WordLM.count(["sit down", "sit", "sit here", "one", "one six", "one six", "six"])
    unigram_only = WordLM.from_counts(uni)
    with_bigrams = WordLM.from_counts(uni, bigrams=bi)
    assert beam_search(lp, V, beam=8, lm=unigram_only, alpha=1.0, beta=0.0) == "one sit"
    assert beam_search(lp, V, beam=8, lm=with_bigrams, alpha=1.0, beta=0.0) == "one six"
    assert with_bigrams.score_next("one", "six") > with_bigrams.score_next("one", "sit")
    assert with_bigrams.score_next("<s>", "nope") == with_bigrams.oov_logp


def test_out_of_list_word_survives_when_the_acoustics_are_clear():
    # "clubs" is not in the word list: the LM charges one out-of-list penalty (character-level
    # fallback) but cannot turn a clearly spoken word into a listed one
    lp = _frames("t_ee_nn_ _oo_ff_ _cc_ll_uu_bb_ss", sharp=0.99)
    lm = WordLM.from_counts({"ten": 10, "of": 10, "clocks": 5, "close": 5})
    assert beam_search(lp, V, beam=8, lm=lm, alpha=1.0, beta=3.0) == "ten of clubs"
    # and the listed word next to it is not pulled towards the out-of-list one
    lp2 = _frames("t_ee_nn_ _oo_ff_ _cc_ll_oo_ss_ee", sharp=0.99)
    assert beam_search(lp2, V, beam=8, lm=lm, alpha=1.0, beta=3.0) == "ten of close"
