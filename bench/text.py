"""Text benchmark: char- and word-level language models on the shipped Shakespeare.

- char: held-out loss (nats/char) after a fixed training-time budget (target: < 1.88, the
  nanoGPT CPU configuration, in 3 minutes on 2 cores);
- word: perplexity and top-1/top-5 next-word accuracy against a 5-gram interpolated modified
  Kneser-Ney model (own count-based implementation below) on the same split and vocabulary.

    python bench/text.py                 # full: char 180 s + word 300 s + KN -> bench/results/text.json
    python bench/text.py --quick         # smoke run (20 s budgets) -> bench/results/text.quick.json
    python bench/text.py --part char --seconds 180 --threads 2 --json out.json  # one part, for parallel runs
    python bench/text.py --collect DIR   # merge the part JSONs in DIR into bench/results/text.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, write_results  # noqa: E402
from rnnkit.data.text import load_shakespeare  # noqa: E402
from rnnkit.data.vocab import Vocab, tokenize  # noqa: E402
from rnnkit.tasks.text.task import TextModel  # noqa: E402
from rnnkit.tasks.text.network import LanguageModel  # noqa: E402

# name -> (level, TextModel options). "char3" is the 3-minute configuration (sweep in docs/bench/text.md).
CONFIGS = {
    "char3": ("char", dict(hidden_size=256, embed_size=64, num_layers=1, dropout=0.0, batch_size=16, bptt=128, lr=3e-3)),
    "char512": ("char", dict(hidden_size=512, embed_size=64, num_layers=1, dropout=0.1, batch_size=32, bptt=128, lr=3e-3)),
    "word256": ("word", dict(hidden_size=256, embed_size=256, dropout=0.5, lr=3e-3)),  # adaptive softmax
    "word512": ("word", dict(hidden_size=512, embed_size=256, dropout=0.5, lr=2e-3)),
    "word256tied": ("word", dict(hidden_size=256, embed_size=256, dropout=0.5, lr=3e-3, adaptive_softmax=False)),
}


# ----------------------------------------------------------------------------- RNN runs
def _calibrated_epochs(model: TextModel, text: str, seconds: float) -> int:
    """Epochs whose cosine schedule spans about ``seconds``: time 20 training steps of the same
    network on the real token mix (the trainer's cosine horizon is counted in epochs; ``max_time`` is
    the hard stop). 10 % is left for the validation passes at epoch ends."""
    c = model.config
    tokens = tokenize(text, c.level, c.lowercase)
    vocab = Vocab.build(tokens, c.level, c.max_vocab if c.level == "word" else None)
    net = LanguageModel(model._lm_config(len(vocab)))
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    ids = torch.tensor(vocab.encode(tokens[: c.batch_size * (c.bptt + 1)])).view(c.batch_size, -1)  # real word mix
    for i in range(25):
        if i == 5:
            t0 = time.perf_counter()
        loss, _ = net(ids[:, :-1], None, targets=ids[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_step = (time.perf_counter() - t0) / 20
    steps_per_epoch = len(tokens) * (1 - c.val_fraction) / (c.batch_size * c.bptt)
    # ceil: better an lr not fully decayed at the time limit than a run that ends before it
    return max(1, math.ceil(seconds * 0.9 / per_step / steps_per_epoch))


def run_rnn(name: str, seconds: float, seed: int = 0) -> dict:
    level, options = CONFIGS[name]
    text = load_shakespeare()
    model = TextModel(level=level, **options)
    epochs = _calibrated_epochs(model, text, seconds)
    log(f"{name}: {seconds:.0f} s budget, cosine over {epochs} epochs")
    t0 = time.perf_counter()
    model.fit(text, epochs=epochs, max_time=seconds, seed=seed, device="cpu", patience=2, schedule="cosine", progress=False)
    train_s = time.perf_counter() - t0
    _, val_text = model._split_text(text)
    scores = model.evaluate(val_text, streams=1)  # one stream: every token has its full left context
    return {"part": name, "level": level, "options": options, "budget_s": seconds, "train_s": round(train_s, 1),
            "epochs": model.history.epochs, "steps": model.history.steps, "stop_reason": model.history.stop_reason,
            "params": model.network.num_parameters(), "val": scores, "history": model.history.rows,
            "sample": model.generate("KING RICHARD.\n" if level == "char" else "", length=200 if level == "char" else 60,
                                     temperature=0.7, seed=0)}


# ----------------------------------------------------------------------------- Kneser-Ney
class KneserNey:
    """Interpolated modified Kneser-Ney n-gram model (Chen & Goodman 1998), counts in dicts.

    Highest order uses raw counts, lower orders continuation counts (number of distinct left
    extensions); three discounts per order (D1, D2, D3+) from the count-of-counts; the unigram
    level is interpolated with the uniform distribution, so every vocabulary id has mass.
    """

    def __init__(self, order: int, vocab_size: int) -> None:
        self.order, self.V = order, vocab_size

    def fit(self, ids: list[int]) -> "KneserNey":
        N = self.order
        raw = Counter(tuple(ids[i:i + N]) for i in range(len(ids) - N + 1))
        counts = {N: raw}
        for n in range(N - 1, 0, -1):  # continuation counts: each distinct (n+1)-gram adds 1 to its suffix
            counts[n] = Counter(g[1:] for g in counts[n + 1])
        self.tables: dict[int, dict[tuple, tuple]] = {}
        for n in range(1, N + 1):
            d = self._discounts(counts[n])
            by_ctx: dict[tuple, list] = defaultdict(list)
            for g, c in counts[n].items():
                by_ctx[g[:-1]].append((g[-1], c))
            table = {}
            for ctx, wc in by_ctx.items():
                words = np.fromiter((w for w, _ in wc), dtype=np.int64, count=len(wc))
                c = np.fromiter((c for _, c in wc), dtype=np.float64, count=len(wc))
                disc = d[np.minimum(c, 3).astype(int)]
                total = c.sum()
                table[ctx] = (words, (c - disc) / total, float(disc.sum() / total))
            self.tables[n] = table
        words, probs, gamma = self.tables[1][()]
        self.unigram = np.full(self.V, gamma / self.V)
        self.unigram[words] += probs
        return self

    @staticmethod
    def _discounts(counts: Counter) -> np.ndarray:
        """[0, D1, D2, D3+] from the numbers of n-grams seen exactly 1..4 times."""
        cc = Counter(min(c, 5) for c in counts.values())
        n1, n2, n3, n4 = (max(cc.get(i, 0), 1) for i in range(1, 5))
        y = n1 / (n1 + 2 * n2)
        d = [0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
        return np.array([0.0] + [min(max(x, 0.0), float(i)) for i, x in enumerate(d[1:], 1)])

    def distribution(self, history: list[int]) -> np.ndarray:
        """P(. | last order-1 tokens of ``history``), a dense (V,) vector summing to 1."""
        p = self.unigram
        for n in range(2, self.order + 1):
            if len(history) < n - 1:
                break
            entry = self.tables[n].get(tuple(history[len(history) - n + 1:]))
            if entry is None:  # unseen context: every longer one is unseen too
                break
            words, probs, gamma = entry
            p = gamma * p
            p[words] += probs
        return p

    def score(self, ids: list[int]) -> dict:
        """Every token after the first, context from ``ids`` only (as the RNN evaluation)."""
        nll, top1, top5 = 0.0, 0, 0
        for i in range(1, len(ids)):
            p = self.distribution(ids[max(0, i - self.order + 1):i])
            target = ids[i]
            nll -= math.log(p[target])
            best = np.argpartition(-p, 5)[:5]
            top5 += int(target in best)
            top1 += int(best[np.argmax(p[best])] == target)
        n = len(ids) - 1
        return {"loss": nll / n, "perplexity": math.exp(nll / n), "top1_accuracy": top1 / n, "top5_accuracy": top5 / n,
                "tokens": n}


def run_kn(orders: tuple[int, ...] = (3, 5)) -> dict:
    """KN baselines on exactly the RNN's split, tokenizer and vocabulary (cap 10,000 + <unk>)."""
    text = load_shakespeare()
    model = TextModel(level="word")
    train_text, val_text = model._split_text(text)
    train_tok = tokenize(train_text, "word", lowercase=True)
    vocab = Vocab.build(train_tok, "word", model.config.max_vocab)
    train_ids, val_ids = vocab.encode(train_tok), vocab.encode(tokenize(val_text, "word", lowercase=True))
    out = {"part": "kn", "vocab": len(vocab), "train_tokens": len(train_ids), "val_tokens": len(val_ids)}
    for order in orders:
        t0 = time.perf_counter()
        kn = KneserNey(order, len(vocab)).fit(train_ids)
        scores = kn.score(val_ids)
        scores["seconds"] = round(time.perf_counter() - t0, 1)
        out[f"kn{order}"] = scores
        log(f"KN {order}-gram: perplexity {scores['perplexity']:.1f}")
    return out


# ----------------------------------------------------------------------------- report
def collect(parts: list[dict], info: dict, quick: bool) -> dict:
    rows, char_rows = [], []
    kn = next((p for p in parts if p["part"] == "kn"), None)
    for p in parts:
        if p["part"] == "kn":
            continue
        v = p["val"]
        if p["level"] == "char":
            char_rows.append([p["part"], p["params"], p["budget_s"], p["steps"], v["loss"], v["bits_per_char"]])
        else:
            rows.append([p["part"], p["params"], p["budget_s"], p["epochs"], v["perplexity"], v["top1_accuracy"],
                         v["top5_accuracy"], v["bits_per_char"]])
    if kn:
        for order in (3, 5):
            if f"kn{order}" in kn:
                s = kn[f"kn{order}"]
                rows.append([f"{order}-gram modified KN", "-", s["seconds"], "-", s["perplexity"], s["top1_accuracy"],
                             s["top5_accuracy"], "-"])
    tables = []
    if char_rows:
        tables.append(markdown_table(["char model", "params", "budget s", "steps", "val nats/char", "bits/char"], char_rows))
    if rows:
        tables.append(markdown_table(["word model", "params", "budget s", "epochs", "val perplexity", "top-1", "top-5",
                                      "bits/char"], rows))
    return {"machine": info, "quick": quick, "parts": parts, "table": "\n\n".join(tables)}


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1 if quick else 2)
    info = machine_info()
    if quick:
        parts = [run_rnn("char3", 20), run_rnn("word256", 20), run_kn(orders=(3,))]
    else:
        parts = [run_rnn("char3", 180), run_rnn("word256", 300), run_kn()]
    result = collect(parts, info, quick)
    write_results("text", result, quick=quick)
    return result


def _cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", help=f"one of: kn, {', '.join(CONFIGS)}")
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="where --part writes its result")
    ap.add_argument("--collect", help="folder of part JSONs to merge into bench/results/text.json")
    args = ap.parse_args()
    if args.collect:
        parts = [json.loads(p.read_text()) for p in sorted(Path(args.collect).glob("*.json"))]
        info = parts[0].get("machine", machine_info()) if parts else machine_info()
        result = collect(parts, info, quick=False)
        write_results("text", result)
        print(result["table"])
    elif args.part:
        torch.set_num_threads(args.threads)
        result = run_kn() if args.part == "kn" else run_rnn(args.part, args.seconds)
        result["machine"] = machine_info()
        text = json.dumps(result, indent=1)
        if args.json:
            Path(args.json).write_text(text)
        print(text if not args.json else json.dumps(result["val"] if "val" in result else result)[:2000])
    else:
        print(main(args.quick)["table"])


if __name__ == "__main__":
    _cli()
