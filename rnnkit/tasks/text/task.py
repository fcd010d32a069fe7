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

import os
import secrets
import sys
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import torch

from rnnkit.data.text import TBPTTBatches, batchify, read_text, tbptt_batches
from rnnkit.data.vocab import EOS, UNK, Vocab, detokenize, prompt_tokens, tokenize
from rnnkit.errors import UserError
from rnnkit.metrics.text import LMScores, LMTotals
from rnnkit.nn.registry import cell_names
from rnnkit.tasks.text.sampling import SamplingConfig, rank_words, sample
from rnnkit.tasks.text.network import LanguageModel, LMConfig, state_batch
from rnnkit.options import from_dict, opt, shared_fields, validate
from rnnkit.tasks.base import RunOptions, Task
from rnnkit.train import TrainConfig, Trainer, seed_everything

TextLike = Union[str, Path]

# Per-level defaults, chosen by the sweeps recorded in docs/bench/text.md.
_DEFAULTS = {
    "char": dict(embed_size=64, hidden_size=512, num_layers=1, dropout=0.1, tie_weights=False,
                 adaptive_softmax=False, bptt=128, batch_size=32, lr=3e-3),
    "word": dict(embed_size=256, hidden_size=256, num_layers=1, dropout=0.5, tie_weights=True,
                 adaptive_softmax=True, bptt=35, batch_size=32, lr=3e-3),
}


@dataclass(kw_only=True)
class TextConfig(RunOptions):
    """Everything that defines a text model; ``None`` fields take the level's default (``_DEFAULTS``)."""

    level: str = opt("char", "tokens: characters or words", choices=("char", "word"))
    cell: str = opt("lstm", "recurrent cell: lstm, gru, rnn, mingru")
    embed_size: Optional[int] = opt(None, "token embedding size (default per level: char 64, word 256)",
                                    min=1, max=65_536)
    hidden_size: Optional[int] = opt(None, "hidden units (default per level: char 512, word 256)", min=1, max=65_536)
    num_layers: Optional[int] = opt(None, "stacked recurrent layers (default 1)", min=1, max=64)
    dropout: Optional[float] = opt(None, "dropout (default per level: char 0.1, word 0.5)", min=0.0, max=0.99)
    tie_weights: Optional[bool] = opt(None, "share the embedding with the decoder (full softmax only; default: "
                                      "word level)")
    adaptive_softmax: Optional[bool] = opt(None, "adaptive softmax for vocabularies over 2,500 tokens (default: "
                                           "word level)")
    bptt: Optional[int] = opt(None, "truncated-BPTT window in tokens (default per level: char 128, word 35)",
                              min=1, max=1_000_000)
    batch_size: Optional[int] = opt(None, "parallel streams (default 32)", min=1, max=1_000_000)
    lr: Optional[float] = opt(None, "learning rate (default 3e-3)", min=0.0, max=10.0)
    max_vocab: int = opt(10_000, "word level: the most frequent words kept, the rest become <unk>", min=1,
                         max=10_000_000)
    min_freq: int = opt(1, "word level: minimum count of a kept word", min=1, max=1_000_000_000)
    lowercase: bool = opt(True, "word level: lower-case before tokenising")
    val_fraction: float = opt(0.1, "tail of the text held out for validation (without --val-data)", min=0.0, max=0.9)
    epochs: int = opt(30, "passes over the training text", min=1, max=1_000_000)
    patience: Optional[int] = opt(3, "early stopping: epochs without validation improvement (0 = off)", min=0,
                                  max=1_000_000)
    schedule: str = opt("cosine", "learning-rate schedule", choices=("constant", "cosine", "plateau"))

    def resolved(self) -> "TextConfig":
        if self.cell not in cell_names():
            raise UserError(f"unknown --cell {self.cell!r}; choose one of {', '.join(cell_names())}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, default in _DEFAULTS[self.level].items():
            if values[key] is None:
                values[key] = default
        return TextConfig(**values)


def _as_text(data: TextLike, what: str) -> str:
    """A ``Path`` is read as a UTF-8 file; a ``str`` is the text itself."""
    if isinstance(data, Path):
        return read_text(data, what)
    if not isinstance(data, str):
        raise UserError(f"{what}: expected text (str) or a file path (pathlib.Path), got {type(data).__name__}")
    if not data.strip():
        raise UserError(f"{what}: empty text (no characters to learn from)")
    return data


class TextModel(Task):
    """Character- or word-level recurrent language model with fit / generate / next_words / evaluate."""

    task = "text"
    Config = TextConfig
    onnx_inputs = ("token",)

    def __init__(self, level: Optional[str] = None, cell: Optional[str] = None, config: Optional[TextConfig] = None,
                 **options) -> None:
        options.update({k: v for k, v in (("level", level), ("cell", cell)) if v is not None})
        super().__init__(config, **options)
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
        self.config = validate(replace(self.config, **{k: v for k, v in options.items() if k in names}), "TextModel")
        train_options = {k: v for k, v in options.items() if k not in names}
        cfg = self.config
        corpus = _as_text(text, "training text")
        if val_text is None:
            train_str, val_str = self._split_text(corpus)
        else:
            train_str, val_str = corpus, _as_text(val_text, "validation text")
        train_tokens = tokenize(train_str, cfg.level, self._lowercase)
        source = self.init_source()  # fine-tuning: the saved vocabulary and network settings
        self.vocab = source.vocab if source is not None else Vocab.build(
            train_tokens, cfg.level, cfg.max_vocab if cfg.level == "word" else None, cfg.min_freq, self._lowercase)
        train_ids = torch.tensor(self.vocab.encode(train_tokens), dtype=torch.long)
        val_ids = torch.tensor(self.vocab.encode(tokenize(val_str, cfg.level, self._lowercase)), dtype=torch.long)
        if len(val_ids) < 2:
            raise UserError(f"validation text too small: {len(val_ids)} {cfg.level} tokens, need at least 2")
        batch = self._fit_batch_size(len(train_ids))
        ranks = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: every process gets its own streams
        train = tbptt_batches(train_ids, max(batch, ranks), cfg.bptt, "training text", ranks)
        n_val = max(ranks, min(batch, len(val_ids) // (cfg.bptt + 1)))
        val = TBPTTBatches(batchify(val_ids, n_val), cfg.bptt, ranks) if len(val_ids) >= 2 * n_val else None
        if val is None:
            raise UserError(f"validation text too small for {ranks} processes: {len(val_ids)} tokens")
        seed_everything(cfg.seed)
        lm = source.network.cfg if source is not None else self._lm_config(len(self.vocab))
        self.network = self.start_from(LanguageModel(lm), source)
        tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, max_time=cfg.max_time, seed=cfg.seed, device=cfg.device,
                           patience=cfg.patience, schedule=cfg.schedule, carry_state=True, out_dir=out_dir,
                           resume=resume, progress=cfg.progress, logger=cfg.logger, **train_options)
        ignore = self.vocab.unk_id if cfg.level == "char" else None  # unseen characters cannot be learned
        trainer = Trainer(self.network, tcfg, _LossFn(ignore), model_config=self.config_json(), extras=self.extras())
        self.history = trainer.fit(train, val)
        self.network.eval()
        rows = self.history.rows
        self.metrics = {"val": self.evaluate(val_str), "epochs": self.history.epochs, "steps": self.history.steps,
                        "stop_reason": self.history.stop_reason, "train_seconds": rows[-1]["seconds"] if rows else None}
        return self

    @property
    def _lowercase(self) -> bool:
        """``lowercase`` is a word-level setting: a character model keeps the case it reads."""
        return self.config.lowercase and self.config.level == "word"

    def _split_text(self, corpus: str) -> tuple[str, str]:
        """Hold out the tail of the text at a line break (a contiguous split: no leakage)."""
        cut = int(len(corpus) * (1 - self.config.val_fraction))
        nl = corpus.rfind("\n", 0, cut)
        cut = nl + 1 if nl > cut // 2 else cut
        return corpus[:cut], corpus[cut:]

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
        return {"vocab": self.vocab.to_json(), "metrics": self.metrics}

    def restore(self, net: dict, extras: dict, where: str) -> LanguageModel:
        lm = from_dict(LMConfig, net, f"{where} net")
        if "vocab" not in extras:
            raise UserError(f"{where}: vocab.json is missing")
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
        body = _as_text(text, "evaluation text")
        ids = torch.tensor(self.vocab.encode(tokenize(body, self.config.level, self._lowercase)), dtype=torch.long)
        if len(ids) < 2:
            raise UserError("evaluation text too small: need at least 2 tokens")
        x_all, y_all = ids[:-1], ids[1:]
        totals = LMTotals()
        ignore = self.vocab.unk_id if self.config.level == "char" else None
        device = next(self.network.parameters()).device
        self.network.eval()
        B = max(1, min(streams, len(x_all) // chunk))
        xs, ys = batchify(x_all, B), batchify(y_all, B)
        state = None
        for i in range(0, xs.shape[1], chunk):
            logits, state = self.network(xs[:, i:i + chunk].to(device), state)
            totals.add(logits, ys[:, i:i + chunk].to(device), ignore, ks=(1, 5))
        tail = B * xs.shape[1]
        if tail < len(x_all):  # the ragged end continues the last stream, with its state
            last = tuple(s[:, -1:] for s in state) if isinstance(state, tuple) else state[:, -1:]
            logits, _ = self.network(x_all[tail:].unsqueeze(0).to(device), last)
            totals.add(logits, y_all[tail:].unsqueeze(0).to(device), ignore, ks=(1, 5))
        if totals.tokens == 0:
            raise UserError("evaluation text has no characters the model knows: nothing to score")
        chars = totals.tokens if self.config.level == "char" else len(body)
        scores: LMScores = totals.scores(characters=chars)
        return scores.to_dict()

    # ------------------------------------------------------------------ decoding
    def _prime(self, prompt: str) -> tuple[torch.Tensor, object]:
        """Read the prompt as the start of a line; return the next-token logits (V,) and state."""
        self._check_ready()
        cfg, vocab = self.config, self.vocab
        tokens = prompt_tokens(prompt, cfg.level, self._lowercase)
        unknown = vocab.unknown(tokens)
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            if cfg.level == "char":  # an unseen character has no trained embedding: leave it out
                tokens = [t for t in tokens if t in vocab.stoi]
                warnings.warn(f"prompt characters not in the model's vocabulary were skipped: {shown}", stacklevel=3)
            else:
                warnings.warn(f"prompt words not in the model's vocabulary were read as {UNK}: {shown}", stacklevel=3)
        start = "\n" if cfg.level == "char" else EOS
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
        prev = prompt_tokens(prompt, level, self._lowercase)[-1:] if prompt else []
        if level == "word" and prompt.endswith("\n"):
            prev = [EOS]
        for _ in range(length):
            token_id = sample(logits.unsqueeze(0).cpu(), sampling, gen)
            token = self.vocab.tokens[int(token_id)]
            piece = detokenize(prev + [token], level)[len(detokenize(prev, level)):]
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
        if k < 1:
            raise UserError(f"--k must be >= 1, got {k}")
        logits, state = self._prime(prompt)
        if self.config.level == "char":
            return rank_words(self.network.step, logits, state, self.vocab.tokens, _is_word_char, k=k)
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
