"""Text task: character- and word-level language models (``rnnkit.TextModel``).

    m = TextModel(level="char").fit(Path("input.txt"), max_time=180)
    m.generate("ROMEO.\\n", length=300, temperature=0.8, seed=1)
    m.next_words("I pray you, my", k=5)      # [(word, probability), ...]
    m.evaluate(Path("held_out.txt"))          # loss, perplexity, bits per char
    m.save("model/"); TextModel.load("model/")

The network is ``text_model.LanguageModel``; training is the shared ``Trainer`` with truncated
BPTT (``carry_state=True``) over ``batch_size`` contiguous streams; decoding is ``sampling``.
"""
from __future__ import annotations

import secrets
import sys
import time
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch

from rnnkit.data.bpe import BPEVocab
from rnnkit.data.text_sources import resolve_inputs
from rnnkit.data.token_batches import StreamBatches, dist_rank, make_stream_batches
from rnnkit.data.token_file import TokenArray, TokenSpec, prepare_text
from rnnkit.data.vocab import EOS, UNK, Vocab, detokenize, prompt_tokens, tokenize
from rnnkit.errors import UserError
from rnnkit.metrics.text import LMScores, LMTotals
from rnnkit.nn.registry import cell_names
from rnnkit.tasks.text.corpus import load_corpus, text_source
from rnnkit.tasks.text.sampling import SamplingConfig, rank_words, sample
from rnnkit.tasks.text.network import LanguageModel, LMConfig, state_batch
from rnnkit.options import from_dict, opt, shared_fields, validate
from rnnkit.tasks.autoconfig_text import TextStats, resolve_text
from rnnkit.tasks.base import RunOptions, Task
from rnnkit.train import TrainConfig, Trainer, seed_everything
from rnnkit.train.callbacks import SCHEDULES
from rnnkit.train.distributed import pick_device

TextLike = Union[str, Path]

# Per-level defaults, chosen by the sweeps recorded in docs/bench/text.md; at char level the
# automatic configuration (rnnkit.tasks.autoconfig_text) sets the model and training from the data first.
_DEFAULTS = {
    "char": dict(embed_size=64, hidden_size=512, num_layers=1, dropout=0.1, tie_weights=False,
                 adaptive_softmax=False, bptt=128, batch_size=32, lr=3e-3, schedule="cosine"),
    "word": dict(embed_size=256, hidden_size=256, num_layers=1, dropout=0.5, tie_weights=True,
                 adaptive_softmax=True, bptt=35, batch_size=32, lr=3e-3, schedule="cosine"),
    # byte-level BPE (rnnkit.data.bpe): word-like vocabulary sizes, so the word-level setup
    "bpe": dict(embed_size=256, hidden_size=256, num_layers=1, dropout=0.3, tie_weights=True,
                adaptive_softmax=True, bptt=64, batch_size=32, lr=3e-3, schedule="cosine"),
}
MAX_NEXT_WORDS = 1000  # next_words' k: the beam of a character model is 4k wide
VAL_TOKENS = 1 << 17  # validation (each epoch and the final metrics) reads at most this many tokens


@dataclass(kw_only=True)
class TextConfig(RunOptions):
    """Everything that defines a text model; ``None`` fields are chosen at ``fit`` (char level: from the corpus
    size and ``max_time``, ``rnnkit.tasks.autoconfig_text``), the rest take the level's default (``_DEFAULTS``)."""

    level: str = opt("char", "tokens: characters, words or byte-level BPE (pip install 'rnnkit[text]')",
                     choices=("char", "word", "bpe"))
    cell: str = opt("lstm", "recurrent cell: lstm, gru, rnn, mingru")
    embed_size: Optional[int] = opt(None, "token embedding size (default per level: char 64, word 256)",
                                    min=1, max=65_536)
    hidden_size: Optional[int] = opt(None, "hidden units (default: char: automatic, word 256)", min=1, max=65_536)
    num_layers: Optional[int] = opt(None, "stacked recurrent layers (default 1)", min=1, max=64)
    dropout: Optional[float] = opt(None, "dropout (default: char: automatic, word 0.5)", min=0.0, max=0.99)
    tie_weights: Optional[bool] = opt(None, "share the embedding with the decoder (full softmax only; default: "
                                      "word level)")
    adaptive_softmax: Optional[bool] = opt(None, "adaptive softmax for vocabularies over 2,500 tokens (default: "
                                           "word level)")
    bptt: Optional[int] = opt(None, "truncated-BPTT window in tokens (default: char: automatic, word 35)",
                              min=1, max=1_000_000)
    batch_size: Optional[int] = opt(None, "parallel streams (default: char: automatic, else 32)", min=1, max=1_000_000)
    lr: Optional[float] = opt(None, "learning rate (default: char: automatic, else 3e-3)", min=0.0, max=10.0)
    max_vocab: int = opt(10_000, "word level: the most frequent words kept, the rest become <unk>; bpe: the "
                         "vocabulary size to train", min=1, max=10_000_000)
    min_freq: int = opt(1, "word level: minimum count of a kept word", min=1, max=1_000_000_000)
    lowercase: bool = opt(True, "word level: lower-case before tokenising")
    val_fraction: float = opt(0.1, "tail of the text held out for validation (without --val-data)", min=0.0, max=0.9)
    tokenizer: Optional[str] = opt(None, "bpe level: a tokenizer.json (or a model folder holding one) to use "
                                   "instead of training one")
    epochs: int = opt(30, "passes over the training text", min=1, max=1_000_000)
    patience: Optional[int] = opt(3, "early stopping: epochs without validation improvement (0 = off)", min=0,
                                  max=1_000_000)
    schedule: Optional[str] = opt(None, "learning-rate schedule (default: budget = constant, then linear to 0 over "
                                  "the last half of --max-time when given, else cosine over the epochs)", choices=SCHEDULES)

    def resolved(self) -> "TextConfig":
        if self.cell not in cell_names():
            raise UserError(f"unknown --cell {self.cell!r}; choose one of {', '.join(cell_names())}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, default in _DEFAULTS[self.level].items():
            if values[key] is None:
                values[key] = default
        return TextConfig(**values)


class TextModel(Task):
    """Character- or word-level recurrent language model with fit / generate / next_words / evaluate."""

    task = "text"
    Config = TextConfig
    onnx_inputs = ("token",)

    def __init__(self, level: Optional[str] = None, cell: Optional[str] = None, config: Optional[TextConfig] = None,
                 **options) -> None:
        options.update({k: v for k, v in (("level", level), ("cell", cell)) if v is not None})
        super().__init__(config, **options)
        self.requested = self.config  # what the user asked for (None = automatic); fit() resolves it
        self.config = self.config.resolved()
        self.vocab: Optional[Vocab] = None
        self.metrics: dict = {}

    # ------------------------------------------------------------------ training
    def fit(self, text: TextLike, val_text: Optional[TextLike] = None, *, out_dir: Optional[str] = None,
            resume: bool = False, **options) -> "TextModel":
        """Train on ``text`` (str, or Path of a UTF-8 file); validate on ``val_text`` or the tail
        ``val_fraction`` of ``text``. Early stopping on the validation loss keeps the best weights.
        Keyword arguments set ``TextConfig`` fields for this fit (``epochs``, ``max_time``, ``seed``,
        ...); the rest go to ``TrainConfig`` (e.g. ``max_steps``, ``warmup_steps``)."""
        names = {f.name for f in fields(TextConfig)}
        req = validate(replace(self.requested, **{k: v for k, v in options.items() if k in names}), "TextModel")
        self.requested = cfg = req
        train_options = {k: v for k, v in options.items() if k not in names}
        t_start = time.monotonic()  # --max-time counts the preparation too
        source = self.init_source()  # fine-tuning: the saved vocabulary and network settings
        corpus = load_corpus(text, val_text, cfg.level, self._lowercase, cfg.max_vocab, cfg.min_freq, cfg.val_fraction,
                             progress=cfg.progress, tokenizer=cfg.tokenizer,
                             vocab=source.vocab if source is not None else None)
        self.vocab = corpus.vocab
        n_val_tokens = min(len(corpus.val), VAL_TOKENS)
        if n_val_tokens < 2:
            raise UserError(f"validation text too small: {n_val_tokens} {cfg.level} tokens, need at least 2")
        if source is None:  # fine-tuning keeps the source's network
            req = resolve_text(req, TextStats(req.level, len(corpus.train), len(self.vocab),
                                              pick_device(req.device).type == "cuda"), out_dir, resume)
        self.config = cfg = req.resolved()
        batch = self._fit_batch_size(len(corpus.train))
        ranks = dist_rank()[1]  # under torchrun: every process gets its own streams
        train = make_stream_batches(corpus.train, max(batch, ranks), cfg.bptt, "training text")
        n_val = max(ranks, min(batch, n_val_tokens // (cfg.bptt + 1)))
        if n_val_tokens < 2 * n_val:
            raise UserError(f"validation text too small for {ranks} processes: {n_val_tokens} tokens")
        val = StreamBatches(corpus.val, n_val, cfg.bptt, max_tokens=VAL_TOKENS)
        max_time = None if cfg.max_time is None else max(0.0, cfg.max_time - (time.monotonic() - t_start))
        seed_everything(cfg.seed)
        lm = source.network.cfg if source is not None else self._lm_config(len(self.vocab))
        self.network = self.start_from(LanguageModel(lm), source)
        tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, max_time=max_time, seed=cfg.seed, device=cfg.device,
                           patience=cfg.patience, schedule=cfg.schedule, carry_state=True, out_dir=out_dir,
                           resume=resume, progress=cfg.progress, logger=cfg.logger, **train_options)
        ignore = self.vocab.unk_id if cfg.level == "char" else None  # unseen characters cannot be learned
        trainer = Trainer(self.network, tcfg, _LossFn(ignore), model_config=self.config_json(), extras=self.extras())
        self.history = trainer.fit(train, val)
        self.network.eval()
        rows = self.history.rows
        val_chars = round(corpus.val_characters * n_val_tokens / max(len(corpus.val), 1))
        val_ids = TokenArray(corpus.val.dtype, n_val_tokens, array=corpus.val.read(0, n_val_tokens))
        self.metrics = {"val": self._score(val_ids, val_chars), "epochs": self.history.epochs, "steps": self.history.steps,
                        "stop_reason": self.history.stop_reason, "train_seconds": rows[-1]["seconds"] if rows else None}
        return self

    @property
    def _lowercase(self) -> bool:
        """``lowercase`` is a word-level setting: a character model keeps the case it reads."""
        return self.config.lowercase and self.config.level == "word"

    def _fit_batch_size(self, n_tokens: int) -> int:
        """Shrink the number of streams for a small text so each holds one BPTT window."""
        cfg = self.config
        fit = n_tokens // (cfg.bptt + 1)
        if fit < 1:
            raise UserError(f"training text too small: {n_tokens} {cfg.level} tokens, need more than --bptt "
                            f"{cfg.bptt} (the context length); use more text or a smaller --bptt")
        if fit < cfg.batch_size:
            print(f"rnnkit: small text: using {fit} parallel streams instead of {cfg.batch_size}", file=sys.stderr)
        return min(cfg.batch_size, fit)

    def _lm_config(self, vocab_size: int) -> LMConfig:
        c = self.config
        cutoffs = [k for k in (2000, 6000, 20000, 60000) if k < vocab_size - 1] if c.adaptive_softmax else []
        adaptive = vocab_size > 2500 and bool(cutoffs)
        return LMConfig(**{**shared_fields(c, LMConfig), "vocab_size": vocab_size,
                           "tie_weights": c.tie_weights and not adaptive, "cutoffs": cutoffs if adaptive else None})

    def extras(self) -> dict:
        extras = {"vocab": self.vocab.to_json(), "metrics": self.metrics}
        if isinstance(self.vocab, BPEVocab):  # tokenizer.json: the Hugging Face file
            extras["tokenizer"] = self.vocab.tokenizer_json()
        return extras

    def _tokens(self, text: str, prompt: bool = False) -> list[str]:
        """The tokens of ``text`` (a prompt: no line end appended at word level)."""
        if isinstance(self.vocab, BPEVocab):
            return self.vocab.tokenize(text)
        return (prompt_tokens if prompt else tokenize)(text, self.config.level, self._lowercase)

    def _join(self, tokens: list[str]) -> str:
        if isinstance(self.vocab, BPEVocab):
            return self.vocab.detokenize(tokens)
        return detokenize(tokens, self.config.level)

    def restore(self, net: dict, extras: dict, where: str) -> LanguageModel:
        lm = from_dict(LMConfig, net, f"{where} net")
        if "vocab" not in extras:
            raise UserError(f"{where}: vocab.json is missing")
        if self.config.level == "bpe":
            if "tokenizer" not in extras:
                raise UserError(f"{where}: tokenizer.json is missing (a bpe model needs it)")
            self.vocab = BPEVocab.from_tokenizer_json(extras["tokenizer"], where.replace("config.json", "tokenizer.json"))
        else:
            self.vocab = Vocab.from_json(extras["vocab"], where.replace("config.json", "vocab.json"))
        if len(self.vocab) != lm.vocab_size:
            raise UserError(f"{where}: vocab.json has {len(self.vocab)} tokens but the model expects {lm.vocab_size}")
        self.metrics = extras.get("metrics", {}) or {}
        return LanguageModel(lm)

    def _check_ready(self) -> LanguageModel:
        if self.vocab is None:
            raise UserError("the text model is not trained: call fit() or TextModel.load()")
        return self.require_trained()

    def onnx_network(self, session):
        from rnnkit.onnx_runtime import OnnxLanguageModel

        net = self._check_ready()
        session.require_inputs(list(self.onnx_inputs), "the text step graph")
        rnn = net.rnn
        sizes = tuple(rnn.state_sizes())
        for name, size in zip(session.input_names[1:], sizes):
            session.require_dims("input", name, {0: rnn.num_layers, 2: size}, "this model's state")
        session.require_dims("output", session.output_names[0], {-1: len(self.vocab)}, "this model's vocabulary")
        return OnnxLanguageModel(session, net.cfg, sizes, rnn.num_layers)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def evaluate(self, text: TextLike, streams: int = 16, chunk: int = 256) -> dict:
        """Loss (nats/token), perplexity, bits per character and top-1/top-5 accuracy on ``text``.

        Every token after the first is scored once. The text is cut into ``streams`` parallel
        pieces for speed (each piece starts with an empty state); unknown characters (char level)
        are not scored and counted in ``skipped``; unknown words are scored as ``<unk>``.
        """
        self._check_ready()
        cfg = self.config
        if isinstance(text, Path):  # streamed into a (cached) token file: any size
            prep = prepare_text(resolve_inputs(text, "evaluation text"),
                                TokenSpec(cfg.level, self._lowercase, val_fraction=None), vocab=self.vocab)
            return self._score(prep.train, prep.manifest["characters"]["train"], streams, chunk)
        body = text_source(text, "evaluation text")  # a str here
        ids = np.asarray(self.vocab.encode(self._tokens(body)), dtype=np.int64)
        return self._score(TokenArray(ids.dtype, len(ids), array=ids), len(body), streams, chunk)

    @torch.no_grad()
    def _score(self, ids: TokenArray, characters: int, streams: int = 16, chunk: int = 256) -> dict:
        """``evaluate`` on token ids: ``streams`` pieces read ``chunk`` tokens at a time."""
        n = len(ids)
        if n < 2:
            raise UserError("evaluation text too small: need at least 2 tokens")
        totals = LMTotals()
        ignore = self.vocab.unk_id if self.config.level == "char" else None
        device = next(self.network.parameters()).device
        self.network.eval()
        # scored: ids[1:] given ids[:-1]; B streams of L inputs each, then the ragged tail
        B = max(1, min(streams, (n - 1) // chunk))
        L = (n - 1) // B
        state = None
        for i in range(0, L, chunk):
            T = min(chunk, L - i)
            block = torch.from_numpy(np.stack([ids.read(b * L + i, T + 1) for b in range(B)]).astype(np.int64))
            logits, state = self.network(block[:, :-1].to(device), state)
            totals.add(logits, block[:, 1:].to(device), ignore, ks=(1, 5))
        if B * L < n - 1:  # the ragged end continues the last stream, with its state
            last = tuple(s[:, -1:] for s in state) if isinstance(state, tuple) else state[:, -1:]
            tail = torch.from_numpy(ids.read(B * L, n - B * L).astype(np.int64)).unsqueeze(0)
            logits, _ = self.network(tail[:, :-1].to(device), last)
            totals.add(logits, tail[:, 1:].to(device), ignore, ks=(1, 5))
        if totals.tokens == 0:
            raise UserError("evaluation text has no characters the model knows: nothing to score")
        chars = totals.tokens if self.config.level == "char" else characters
        scores: LMScores = totals.scores(characters=chars)
        return scores.to_dict()

    # ------------------------------------------------------------------ decoding
    def _prime(self, prompt: str) -> tuple[torch.Tensor, object]:
        """Read the prompt as the start of a line; return the next-token logits (V,) and state."""
        self._check_ready()
        cfg, vocab = self.config, self.vocab
        tokens = self._tokens(prompt, prompt=True)
        unknown = vocab.unknown(tokens)
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            if cfg.level == "char":  # an unseen character has no trained embedding: leave it out
                tokens = [t for t in tokens if t in vocab.stoi]
                warnings.warn(f"prompt characters not in the model's vocabulary were skipped: {shown}", stacklevel=3)
            else:
                warnings.warn(f"prompt words not in the model's vocabulary were read as {UNK}: {shown}", stacklevel=3)
        start = {"char": "\n", "word": EOS}.get(cfg.level) or self.vocab.line_start
        ids = ([vocab.stoi[start]] if start in vocab.stoi else []) + vocab.encode(tokens)
        if not ids:
            ids = [1 if len(vocab) > 1 else 0]  # the most frequent token
        self.network.eval()
        device = next(self.network.parameters()).device
        logits, state = self.network(torch.tensor([ids], device=device))
        return logits[0, -1], state

    @torch.no_grad()
    def stream(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: Optional[int] = None,
               top_p: Optional[float] = None, seed: Optional[int] = None) -> Iterator[str]:
        """Yield the continuation of ``prompt`` piece by piece (a character, or a word with its
        leading space), one recurrent ``step`` per token: the prefix is never re-run."""
        if length < 0:
            raise UserError(f"--length must be >= 0, got {length}")
        sampling = SamplingConfig(temperature, top_k, top_p)
        gen = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))
        logits, state = self._prime(prompt)
        level = self.config.level
        prev = self._tokens(prompt, prompt=True)[-1:] if prompt else []
        if level == "word" and prompt.endswith("\n"):
            prev = [EOS]
        for _ in range(length):
            token_id = sample(logits.unsqueeze(0).cpu(), sampling, gen)
            token = self.vocab.tokens[int(token_id)]
            piece = self._join(prev + [token])[len(self._join(prev)):]
            if level == "word" and not prev and piece.startswith(" "):
                piece = piece[1:]
            yield piece
            prev = [token]
            logits, state = self.network.step(token_id.to(logits.device), state)
            logits = logits[0]

    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, seed: Optional[int] = None) -> str:
        """The continuation of ``prompt`` (``length`` tokens) as one string; same seed, same text."""
        return "".join(self.stream(prompt, length, temperature, top_k, top_p, seed))

    @torch.no_grad()
    def next_words(self, prompt: str, k: int = 5, words_only: bool = False) -> list[tuple[str, float]]:
        """The ``k`` most likely next words after ``prompt`` with their probabilities.

        Word level: the model's distribution over the vocabulary (``<unk>`` left out; with
        ``words_only`` also punctuation and ``<eos>``). Character level: a beam search over
        characters to the end of the word (completing a word the prompt ends inside).
        """
        if not 1 <= k <= MAX_NEXT_WORDS:  # a character model's beam is 4k wide: k = 1e9 never finished
            raise UserError(f"--k must lie in 1..{MAX_NEXT_WORDS}, got {k}")
        logits, state = self._prime(prompt)
        if self.config.level == "char":
            return rank_words(self.network.step, logits, state, self.vocab.tokens, _is_word_char, k=k)
        if self.config.level == "bpe":  # the next word pieces, as text
            probs = torch.softmax(logits.float(), dim=-1).cpu()
            order = torch.argsort(probs, descending=True).tolist()
            pieces = [(self.vocab.detokenize([self.vocab.tokens[i]]), float(probs[i])) for i in order[: 4 * k + 1] if i]
            return [(w.strip() or w, p) for w, p in pieces if not words_only or any(c.isalnum() for c in w)][:k]
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        skip = {self.vocab.unk_id}
        if words_only:
            skip |= {i for i, t in enumerate(self.vocab.tokens) if t == EOS or not any(ch.isalnum() for ch in t)}
        order = torch.argsort(probs, descending=True).tolist()
        picked = [i for i in order[: k + len(skip)] if i not in skip][:k]
        return [(self.vocab.tokens[i], float(probs[i])) for i in picked]

    def predict(self, prompts: Union[str, list[str]], k: int = 5) -> Union[list, list[list]]:
        """The task-wide ``predict``: next words with probabilities for one prompt or a list."""
        if isinstance(prompts, str):
            return self.next_words(prompts, k=k)
        return [self.next_words(p, k=k) for p in prompts]

    @torch.no_grad()
    def probabilities(self, prompt: str) -> torch.Tensor:
        """Next-token distribution (V,) after ``prompt``; index it with ``vocab.stoi``."""
        logits, _ = self._prime(prompt)
        return torch.softmax(logits.float(), dim=-1).cpu()


class _LossFn:
    """Trainer loss: next-token cross-entropy with the recurrent state carried (TBPTT)."""

    def __init__(self, ignore_index: Optional[int]) -> None:
        self.ignore_index = -100 if ignore_index is None else ignore_index

    def __call__(self, model, batch, state):
        x, y = batch
        if state_batch(state) not in (None, x.shape[0]):
            state = None  # a new stream layout (e.g. validation): start from zero
        return model(x, state, targets=y, ignore_index=self.ignore_index)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "'"
