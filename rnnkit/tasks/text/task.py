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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Optional, Union

import torch

from rnnkit.data.text import (EOS, UNK, TBPTTBatches, Vocab, batchify, detokenize, make_batches, prompt_tokens, read_text,
                              tokenize)
from rnnkit.errors import UserError
from rnnkit.metrics.text import LMScores, LMTotals
from rnnkit.nn.registry import cell_names
from rnnkit.tasks.text.sampling import SamplingConfig, rank_words, sample
from rnnkit.tasks.text.network import LanguageModel, LMConfig, state_batch
from rnnkit.train import TrainConfig, Trainer, load_model, load_state_into, save_model, seed_everything

TextLike = Union[str, Path]

# Per-level defaults, chosen by the sweeps recorded in docs/bench/text.md.
_DEFAULTS = {
    "char": dict(embed_size=64, hidden_size=512, num_layers=1, dropout=0.1, tie_weights=False,
                 adaptive_softmax=False, bptt=128, batch_size=32, lr=3e-3),
    "word": dict(embed_size=256, hidden_size=256, num_layers=1, dropout=0.5, tie_weights=True,
                 adaptive_softmax=True, bptt=35, batch_size=32, lr=3e-3),
}


@dataclass
class TextConfig:
    """Everything that defines a text model; ``None`` fields take the level's default."""

    level: str = "char"
    cell: str = "lstm"
    embed_size: Optional[int] = None
    hidden_size: Optional[int] = None
    num_layers: Optional[int] = None
    dropout: Optional[float] = None
    tie_weights: Optional[bool] = None   # full softmax only
    adaptive_softmax: Optional[bool] = None  # for vocabularies over 2,500 tokens (text_model docstring)
    bptt: Optional[int] = None          # truncated-BPTT window (tokens)
    batch_size: Optional[int] = None    # parallel streams
    lr: Optional[float] = None
    max_vocab: int = 10000              # word level: the rest become <unk>
    min_freq: int = 1
    lowercase: bool = True              # word level
    val_fraction: float = 0.1           # tail of the text held out when no validation text is given

    def resolved(self) -> "TextConfig":
        if self.level not in _DEFAULTS:
            raise UserError(f"unknown --level {self.level!r}; choose char or word")
        if self.cell not in cell_names():
            raise UserError(f"unknown --cell {self.cell!r}; choose one of {', '.join(cell_names())}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, default in _DEFAULTS[self.level].items():
            if values[key] is None:
                values[key] = default
        cfg = TextConfig(**values)
        for name in ("embed_size", "hidden_size", "num_layers", "bptt", "batch_size", "max_vocab", "min_freq"):
            if getattr(cfg, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise UserError(f"dropout must lie in [0, 1), got {cfg.dropout}")
        return cfg


def _as_text(data: TextLike, what: str) -> str:
    """A ``Path`` is read as a UTF-8 file; a ``str`` is the text itself."""
    if isinstance(data, Path):
        return read_text(data, what)
    if not isinstance(data, str):
        raise UserError(f"{what}: expected text (str) or a file path (pathlib.Path), got {type(data).__name__}")
    if not data.strip():
        raise UserError(f"{what}: empty text (no characters to learn from)")
    return data


class TextModel:
    """Character- or word-level recurrent language model with fit / generate / next_words / evaluate."""

    def __init__(self, level: str = "char", cell: str = "lstm", **options) -> None:
        self.config = TextConfig(level=level, cell=cell, **options).resolved()
        self.vocab: Optional[Vocab] = None
        self.model: Optional[LanguageModel] = None
        self.history = None
        self.metrics: dict = {}

    # ------------------------------------------------------------------ training
    def fit(self, text: TextLike, val_text: Optional[TextLike] = None, *, epochs: int = 30,
            max_time: Optional[float] = None, seed: int = 0, device: str = "auto", patience: Optional[int] = 3,
            schedule: str = "cosine", out_dir: Optional[str] = None, resume: bool = False,
            progress: bool = True, **train_options) -> "TextModel":
        """Train on ``text`` (str, or Path of a UTF-8 file); validate on ``val_text`` or the tail
        ``val_fraction`` of ``text``. Early stopping on the validation loss keeps the best weights.
        Extra keyword arguments go to ``TrainConfig`` (e.g. ``max_steps``, ``warmup_steps``)."""
        cfg = self.config
        corpus = _as_text(text, "training text")
        if val_text is None:
            train_str, val_str = self._split_text(corpus)
        else:
            train_str, val_str = corpus, _as_text(val_text, "validation text")
        train_tokens = tokenize(train_str, cfg.level, cfg.lowercase)
        self.vocab = Vocab.build(train_tokens, cfg.level, cfg.max_vocab if cfg.level == "word" else None,
                                 cfg.min_freq, cfg.lowercase)
        train_ids = torch.tensor(self.vocab.encode(train_tokens), dtype=torch.long)
        val_ids = torch.tensor(self.vocab.encode(tokenize(val_str, cfg.level, cfg.lowercase)), dtype=torch.long)
        if len(val_ids) < 2:
            raise UserError(f"validation text too small: {len(val_ids)} {cfg.level} tokens, need at least 2")
        batch = self._fit_batch_size(len(train_ids))
        ranks = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: every process gets its own streams
        train = make_batches(train_ids, max(batch, ranks), cfg.bptt, "training text", ranks)
        n_val = max(ranks, min(batch, len(val_ids) // (cfg.bptt + 1)))
        val = TBPTTBatches(batchify(val_ids, n_val), cfg.bptt, ranks) if len(val_ids) >= 2 * n_val else None
        if val is None:
            raise UserError(f"validation text too small for {ranks} processes: {len(val_ids)} tokens")
        seed_everything(seed)
        self.model = LanguageModel(self._lm_config(len(self.vocab)))
        tcfg = TrainConfig(epochs=epochs, lr=cfg.lr, max_time=max_time, seed=seed, device=device, patience=patience,
                           schedule=schedule, carry_state=True, out_dir=out_dir, resume=resume, progress=progress,
                           **train_options)
        ignore = self.vocab.unk_id if cfg.level == "char" else None  # unseen characters cannot be learned
        trainer = Trainer(self.model, tcfg, _LossFn(ignore), model_config=self._config_json(), extras=self._extras())
        self.history = trainer.fit(train, val)
        self.model.eval()
        rows = self.history.rows
        self.metrics = {"val": self.evaluate(val_str), "epochs": self.history.epochs, "steps": self.history.steps,
                        "stop_reason": self.history.stop_reason, "train_seconds": rows[-1]["seconds"] if rows else None}
        return self

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
        return LMConfig(vocab_size=vocab_size, cell=c.cell, embed_size=c.embed_size, hidden_size=c.hidden_size,
                        num_layers=c.num_layers, dropout=c.dropout, tie_weights=c.tie_weights and not adaptive,
                        cutoffs=cutoffs if adaptive else None)

    def _config_json(self) -> dict:
        return {"task": "text", "text": asdict(self.config), "model": self._lm_config(len(self.vocab)).to_dict()}

    def _extras(self) -> dict:
        return {"vocab": self.vocab.to_json(), "metrics": self.metrics}

    def _check_ready(self) -> None:
        if self.model is None or self.vocab is None:
            raise UserError("the text model is not trained: call fit() or TextModel.load()")

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
        ids = torch.tensor(self.vocab.encode(tokenize(body, self.config.level, self.config.lowercase)), dtype=torch.long)
        if len(ids) < 2:
            raise UserError("evaluation text too small: need at least 2 tokens")
        x_all, y_all = ids[:-1], ids[1:]
        totals = LMTotals()
        ignore = self.vocab.unk_id if self.config.level == "char" else None
        device = next(self.model.parameters()).device
        self.model.eval()
        B = max(1, min(streams, len(x_all) // chunk))
        xs, ys = batchify(x_all, B), batchify(y_all, B)
        state = None
        for i in range(0, xs.shape[1], chunk):
            logits, state = self.model(xs[:, i:i + chunk].to(device), state)
            totals.add(logits, ys[:, i:i + chunk].to(device), ignore, ks=(1, 5))
        tail = B * xs.shape[1]
        if tail < len(x_all):  # the ragged end continues the last stream, with its state
            last = tuple(s[:, -1:] for s in state) if isinstance(state, tuple) else state[:, -1:]
            logits, _ = self.model(x_all[tail:].unsqueeze(0).to(device), last)
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
        tokens = prompt_tokens(prompt, cfg.level, cfg.lowercase)
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
        self.model.eval()
        device = next(self.model.parameters()).device
        logits, state = self.model(torch.tensor([ids], device=device))
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
        prev = prompt_tokens(prompt, level, self.config.lowercase)[-1:] if prompt else []
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
            logits, state = self.model.step(token_id.to(logits.device), state)
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
            return rank_words(self.model.step, logits, state, self.vocab.tokens, _is_word_char, k=k)
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

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Model folder: config.json, model.safetensors, vocab.json, metrics.json."""
        self._check_ready()
        return save_model(path, self.model, self._config_json(), self._extras())

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "TextModel":
        config, state, extras = load_model(path, task="text")
        if "vocab" not in extras:
            raise UserError(f"{path}: vocab.json is missing")
        try:
            self = cls(**config["text"])
            lm = LMConfig(**config["model"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"{Path(path) / 'config.json'}: not a valid text-model config ({exc})") from None
        self.vocab = Vocab.from_json(extras["vocab"], str(Path(path) / "vocab.json"))
        if len(self.vocab) != lm.vocab_size:
            raise UserError(f"{path}: vocab.json has {len(self.vocab)} tokens but the model expects {lm.vocab_size}")
        self.model = LanguageModel(lm)
        load_state_into(self.model, state, where=str(Path(path) / "model.safetensors"))
        self.model.to(device).eval()
        self.metrics = extras.get("metrics", {}) or {}
        return self


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
