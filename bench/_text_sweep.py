"""Char-level hyper-parameter sweep behind docs/bench/text.md (not run by `rnnkit bench`).

A bare TBPTT loop (Adam, clip 1.0, time-based cosine to 10 %) so that many configurations can
run side by side, each pinned to 2 cores:

    taskset -c 0,1 python bench/_text_sweep.py NAME CELL EMB HIDDEN LAYERS DROPOUT B T LR SECONDS THREADS cos

Prints one JSON line per configuration (and interim val losses at 180/360/540 s for longer runs).
The product trains through rnnkit's Trainer (bench/text.py); this loop only ranks settings.
"""
import json, math, sys, time
import torch, torch.nn.functional as F
from rnnkit.data.text import batchify, load_shakespeare, split_stream, tbptt_batches
from rnnkit.data.vocab import Vocab, tokenize
from rnnkit.tasks.text.network import LMConfig, LanguageModel, detach_state

def main(name, cell, emb, hid, layers, drop, B, T, lr, seconds, threads, sched):
    torch.set_num_threads(threads); torch.manual_seed(0)
    text = load_shakespeare(); toks = tokenize(text, "char", lowercase=False); v = Vocab.build(toks, "char")
    ids = torch.tensor(v.encode(toks)); tr, va = split_stream(ids, 0.1)
    m = LanguageModel(LMConfig(len(v), cell, emb, hid, layers, drop))
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    batches = tbptt_batches(tr, B, T)
    checks = [c for c in (180, 360, 540, 900, 1200) if c < seconds]
    t0 = time.time(); step = 0; st = None; done = False; ep = 0
    while not done:
        ep += 1; st = None
        for x, y in batches:
            el = time.time() - t0
            if el > seconds: done = True; break
            if checks and el > checks[0]:
                print(json.dumps(dict(name=name, at=checks.pop(0), val=evaluate(m, va), steps=step)), flush=True); t0 += time.time() - t0 - el
            if sched == "cos":
                for g in opt.param_groups: g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * el / seconds)))
            m.train(); logits, st = m(x, st); st = detach_state(st)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); step += 1
    train_time = time.time() - t0
    r = dict(name=name, val=evaluate(m, va), steps=step, epochs=ep, train_s=round(train_time,1), last_train=loss.item(), params=sum(p.numel() for p in m.parameters()))
    print(json.dumps(r), flush=True)

def evaluate(m, va):
    m.eval(); tot = 0.0; n = 0
    with torch.no_grad():
        xs = batchify(va[:-1], 16); ys = batchify(va[1:], 16); st = None
        for i in range(0, xs.shape[1], 256):
            lg, st = m(xs[:, i:i+256], st)
            tot += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), ys[:, i:i+256].reshape(-1), reduction="sum").item(); n += ys[:, i:i+256].numel()
    return tot / n

if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5]), int(a[6]), int(a[7]), float(a[8]), float(a[9]), int(a[10]), a[11])
