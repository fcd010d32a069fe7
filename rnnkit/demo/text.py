"""``rnnkit demo`` section for text: train on the shipped Shakespeare, sample, rank next words."""
from __future__ import annotations

import sys
import time
from pathlib import Path


from rnnkit.data.text import load_shakespeare
from rnnkit.io import save_figure
from rnnkit.train import torch_threads


def text_demo(out_dir: Path, quick: bool) -> str:
    """Train a character LSTM for a fixed time budget (quick: 25 s, full: 100 s), then show a
    generated sample, next-word probabilities (plot: ``text_next_word.png``) and val metrics."""
    budget = 25.0 if quick else 100.0
    corpus = load_shakespeare()
    print(f"text: training a character LSTM on Shakespeare ({len(corpus):,} chars) for {budget:.0f} s", file=sys.stderr)
    # One thread: on a busy 2-core machine a second OpenMP thread that gets descheduled makes every
    # parallel region wait (measured here: 11x slower per step with 2 threads under load).
    with torch_threads(1):
        return _run(out_dir, quick, budget, corpus)


def _run(out_dir: Path, quick: bool, budget: float, corpus: str) -> str:
    from rnnkit.tasks.text.task import TextModel

    start = time.perf_counter()
    # the 3-minute benchmark configuration (docs/bench/text.md), stopped by the time budget
    model = TextModel(level="char", hidden_size=256, embed_size=64, dropout=0.0, batch_size=16, bptt=128, lr=3e-3,
                      val_fraction=0.03)  # a small held-out tail keeps the validation passes short
    model.fit(corpus, epochs=50, max_time=budget, schedule="constant", patience=None, device="cpu", progress=True)
    seconds = time.perf_counter() - start
    val = model.metrics["val"]
    prompt = "KING RICHARD.\n"
    sample = model.generate(prompt, length=300 if quick else 500, temperature=0.7, seed=0)
    next_prompt = "My gracious lord, I "
    ranked = model.next_words(next_prompt, k=5)
    _plot(out_dir / "text_next_word.png", next_prompt, ranked)
    table = "\n".join(f"| {w} | {p:.3f} |" for w, p in ranked)
    return f"""A one-layer character LSTM (256 units, {model.network.num_parameters():,} parameters) trained on the shipped
public-domain Shakespeare corpus for {seconds:.0f} s on the CPU (held-out last 3 %):
validation loss **{val['loss']:.3f} nats/char** ({val['bits_per_char']:.2f} bits per char, perplexity {val['perplexity']:.2f}).
Longer training reaches below 1.5 (see `docs/bench/text.md`).

Sample (prompt `{prompt.strip()}`, temperature 0.7, seed 0; `rnnkit text generate`):

```
{prompt}{sample}
```

Next word after "{next_prompt.strip()}" (beam search over characters; `rnnkit text next-word`):

| word | probability |
|---|---|
{table}

![next word](text_next_word.png)
"""


def _plot(path: Path, prompt: str, ranked: list[tuple[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6))
    words = [w for w, _ in ranked][::-1]
    ax.barh(words, [p for _, p in ranked][::-1], color="#4c72b0")
    ax.set_xlabel("probability")
    ax.set_title(f"next word after \u201c{prompt.strip()}\u201d", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
