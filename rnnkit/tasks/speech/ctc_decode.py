"""CTC decoding over characters: greedy, and prefix beam search with an optional word-list LM.

Index 0 is the CTC blank. A ``CharVocab`` maps the remaining indices to characters; the space
character separates words, which is where the word LM adds its score.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

BLANK = 0
DEFAULT_CHARS = " 'abcdefghijklmnopqrstuvwxyz"


@dataclass
class CharVocab:
    """Characters of the transcripts; index 0 is reserved for the CTC blank."""

    chars: str = DEFAULT_CHARS

    def __len__(self) -> int:
        return len(self.chars) + 1

    def normalize(self, text: str) -> str:
        """Lower-case, map unknown characters to spaces, squeeze spaces."""
        allowed = set(self.chars)
        text = "".join(c if c in allowed else " " for c in text.lower())
        return re.sub(r" +", " ", text).strip()

    def dropped_letters(self, texts: list[str]) -> Counter:
        """Letters of ``texts`` outside the alphabet (e.g. 'ö', 'é', CJK), which ``normalize`` turns into
        spaces; punctuation and digits are not counted (dropping those is the normalisation)."""
        allowed = set(self.chars)
        return Counter(c for text in texts for c in text.lower() if c.isalpha() and c not in allowed)

    def encode(self, text: str) -> list[int]:
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        return [index[c] for c in self.normalize(text)]

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 1] for i in ids if 0 < i <= len(self.chars))

    def to_json(self) -> dict:
        return {"blank": BLANK, "chars": self.chars}

    @classmethod
    def from_json(cls, data: dict) -> "CharVocab":
        return cls(chars=data["chars"])


def greedy_decode(log_probs: np.ndarray, vocab: CharVocab) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks. log_probs: (time, vocab)."""
    best = np.asarray(log_probs).argmax(axis=-1)
    ids = [int(c) for i, c in enumerate(best) if c != BLANK and (i == 0 or c != best[i - 1])]
    return re.sub(r" +", " ", vocab.decode(ids)).strip()


START = "<s>"


@dataclass
class WordLM:
    """Word-list language model: unigram log P(word), optionally a Witten-Bell bigram
    P(word | previous word), and a penalty for words not in the list.

    Used by beam search when a word is completed (at a space or at the end).
    """

    logp: dict[str, float] = field(default_factory=dict)
    oov_logp: float = -12.0
    bigrams: dict[str, dict[str, int]] = field(default_factory=dict)  # prev ("<s>" at start) -> next -> count

    @staticmethod
    def count(texts) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Unigram and bigram counts of normalised transcripts (one string per utterance)."""
        uni: dict[str, int] = {}
        bi: dict[str, dict[str, int]] = {}
        for text in texts:
            prev = START
            for w in text.split():
                uni[w] = uni.get(w, 0) + 1
                follow = bi.setdefault(prev, {})
                follow[w] = follow.get(w, 0) + 1
                prev = w
        return uni, bi

    def score_next(self, prev: str, word: str) -> float:
        """log P(word | prev): Witten-Bell interpolation of the bigram with the unigram
        (P = (c(prev, word) + T(prev) P(word)) / (c(prev) + T(prev)), T = distinct followers)."""
        if word not in self.logp:
            return self.oov_logp
        follow = self.bigrams.get(prev)
        if not follow:
            return self.logp[word]
        if not hasattr(self, "_totals"):
            self._totals = {}
        total = self._totals.get(prev)
        if total is None:
            total = self._totals[prev] = sum(follow.values())
        types = len(follow)
        return math.log((follow.get(word, 0) + types * math.exp(self.logp[word])) / (total + types))

    @classmethod
    def from_words(cls, words, oov_logp: float = -12.0) -> "WordLM":
        counts: dict[str, int] = defaultdict(int)
        for w in words:
            if w:
                counts[w] += 1
        total = sum(counts.values()) or 1
        return cls({w: math.log(c / total) for w, c in counts.items()}, oov_logp)

    @classmethod
    def from_counts(cls, counts: dict[str, int], oov_logp: float = -12.0,
                    bigrams: dict[str, dict[str, int]] | None = None) -> "WordLM":
        total = sum(counts.values()) or 1
        return cls({w: math.log(c / total) for w, c in counts.items() if c > 0}, oov_logp, dict(bigrams or {}))

    def score(self, word: str) -> float:
        return self.logp.get(word, self.oov_logp)

    def is_prefix(self, partial: str) -> bool:
        """True when some listed word starts with ``partial`` (prefix set built on first use)."""
        if getattr(self, "_prefixes", None) is None:
            self._prefixes = {w[:i] for w in self.logp for i in range(len(w) + 1)}
        return partial in self._prefixes



def _lse(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def beam_search(log_probs: np.ndarray, vocab: CharVocab, beam: int = 8, lm: WordLM | None = None,
                alpha: float = 0.5, beta: float = 1.0, prune: float = -8.0, top_k: int = 8) -> str:
    """CTC prefix beam search (Hannun et al. 2014).

    log_probs: (time, vocab) log-softmax outputs. With ``lm``, each completed word adds
    ``alpha * log P(word) + beta`` (beta rewards words so the LM does not favour deleting them).
    Per frame only the ``top_k`` most likely symbols above log-probability ``prune`` are tried
    (speed: an unsure model otherwise spreads over the whole alphabet).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    space = vocab.chars.index(" ") + 1 if " " in vocab.chars else -1
    # prefix (tuple of ids) -> (log p ending in blank, log p ending in non-blank, lm score)
    beams: dict[tuple, list[float]] = {(): [0.0, -math.inf, 0.0]}

    def last_word(prefix: tuple) -> str:
        # walk back to the last space only: decoding the whole prefix made long chunks quadratic
        i = len(prefix)
        while i > 0 and prefix[i - 1] != space:
            i -= 1
        return vocab.decode(prefix[i:])

    def previous_word(prefix: tuple) -> str:
        """The word before the last one (``<s>`` at the start)."""
        i = len(prefix)
        while i > 0 and prefix[i - 1] != space:
            i -= 1
        return last_word(prefix[: i - 1]) if i > 0 else START

    def word_end(prefix: tuple) -> float:
        """LM score when the last word of ``prefix`` is complete. A word that left the list while
        being spelled was already penalised then (see ``extend``), so it only gets the bonus."""
        if lm is None:
            return 0.0
        word = last_word(prefix)
        if not word:
            return 0.0
        if word in lm.logp:
            return alpha * lm.score_next(previous_word(prefix), word) + beta
        return beta + (alpha * lm.oov_logp if lm.is_prefix(word) else 0.0)

    def extend(prefix: tuple, c: int) -> float:
        """LM score of appending character c (not a space): the out-of-list penalty is paid once,
        at the character where the partial word stops being the start of any listed word, so
        misspellings drop out of the beam early instead of at the end of the word."""
        if lm is None:
            return 0.0
        partial = last_word(prefix)
        if lm.is_prefix(partial) and not lm.is_prefix(partial + vocab.chars[c - 1]):
            return alpha * lm.oov_logp
        return 0.0

    for t in range(lp.shape[0]):
        nxt: dict[tuple, list[float]] = defaultdict(lambda: [-math.inf, -math.inf, 0.0])
        top = np.argsort(lp[t])[::-1][:top_k]
        candidates = [int(c) for c in top if lp[t, c] > prune] or [int(top[0])]
        for prefix, (pb, pnb, lm_score) in beams.items():
            total = _lse(pb, pnb)
            for c in candidates:
                p = lp[t, c]
                if c == BLANK:
                    entry = nxt[prefix]
                    entry[0] = _lse(entry[0], total + p)
                    entry[2] = lm_score
                    continue
                last = prefix[-1] if prefix else None
                if c == space and (not prefix or last == space):
                    # a leading or doubled space adds nothing: treat it like staying on the prefix
                    entry = nxt[prefix]
                    entry[1] = _lse(entry[1], total + p)
                    entry[2] = lm_score
                    continue
                new = prefix + (c,)
                entry = nxt[new]
                new_lm = lm_score + (word_end(prefix) if c == space else extend(prefix, c))
                entry[2] = new_lm
                if c == last:
                    entry[1] = _lse(entry[1], pb + p)       # repeat needs a blank in between
                    same = nxt[prefix]
                    same[1] = _lse(same[1], pnb + p)        # collapsed repeat stays on the prefix
                    same[2] = lm_score
                else:
                    entry[1] = _lse(entry[1], total + p)
        ranked = sorted(nxt.items(), key=lambda kv: _lse(kv[1][0], kv[1][1]) + kv[1][2], reverse=True)
        beams = dict(ranked[:beam])

    def final(kv) -> float:
        prefix, (pb, pnb, lm_score) = kv
        end = word_end(prefix) if prefix and prefix[-1] != space else 0.0
        return _lse(pb, pnb) + lm_score + end

    best = max(beams.items(), key=final)[0]
    return re.sub(r" +", " ", vocab.decode(best)).strip()
