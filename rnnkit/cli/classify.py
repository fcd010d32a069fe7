"""`rnnkit classify train|predict|evaluate`: parse flags, call ``SequenceClassifier``."""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

from rnnkit.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="sequence classification (names, symbols, sensor series)")
    group = p.add_subparsers(dest="classify_command", metavar="{train,predict,evaluate}", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    data_help = "CSV (sequence + label columns), .npz (X, y[, lengths]), UEA .ts(.gz), or a folder of <class>.txt files"
    t = group.add_parser("train", help="train a classifier; writes a model folder")
    t.add_argument("--data", required=True, help=data_help)
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument("--val-data", help="validation data (default: a stratified split of --data)")
    _columns(t)
    t.add_argument("--level", choices=["char", "word"], default="char", help="tokens of text inputs")
    t.add_argument("--lowercase", action="store_true", help="lower-case text before tokenising")
    auto = " (default: chosen from the data and --max-time)"
    t.add_argument("--max-len", type=int, default=None, help="truncate longer sequences, with a warning (default: never)")
    t.add_argument("--cell", default="gru", help="lstm | gru | rnn | mingru | i2h ... (default gru)")
    t.add_argument("--hidden", type=int, default=None, help="hidden units per direction" + auto)
    t.add_argument("--layers", type=int, default=1)
    t.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None, help=auto.strip(" ()"))
    t.add_argument("--pooling", choices=["last", "mean", "max", "attention"], default=None, help=auto.strip(" ()"))
    t.add_argument("--embed-dim", type=int, default=32, help="token embedding size")
    t.add_argument("--dropout", type=float, default=None, help=auto.strip(" ()"))
    t.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                   help="'balanced' weighs classes inversely to their frequency (imbalanced data)")
    t.add_argument("--label-smoothing", type=float, default=None, help="label smoothing of the training loss" + auto)
    t.add_argument("--input-noise", type=float, default=None,
                   help="numeric inputs: Gaussian noise (in standard deviations) on training batches" + auto)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="numeric inputs: random amplitude scaling and crops of training batches (default: off)")
    t.add_argument("--loss-adjust", type=float, default=0.0,
                   help="logit-adjusted training loss: add this times log class prior to the logits in the loss")
    t.add_argument("--conv-kernel", type=int, default=None, help="width of a conv front end (0 = none)" + auto)
    t.add_argument("--conv-stride", type=int, default=None,
                   help="numeric inputs: the conv front end shortens the series by this factor" + auto)
    t.add_argument("--series-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="numeric inputs: also feed each series standardised by its own mean and std" + auto)
    t.add_argument("--logit-adjust", choices=["none", "auto"], default="none",
                   help="'auto': favour rare classes by the amount that maximises validation macro-F1")
    t.add_argument("--ensemble", type=int, default=None,
                   help="train K networks (seeds seed..seed+K-1) and average their probabilities" + auto)
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (0 = Adam, none)")
    t.add_argument("--val-fraction", type=float, default=None,
                   help="stratified validation share for early stopping (default: 0.1 when that is >= 100 examples, else 0)")
    t.add_argument("--batch-size", type=int, default=None, help=auto.strip(" ()"))
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-3)")
    t.add_argument("--epochs", type=int, default=None, help="training length in passes over the data" + auto)
    t.add_argument("--max-steps", type=int, default=None, help="training length in optimizer steps per network" + auto)
    t.add_argument("--patience", type=int, default=None, help="early stopping: epochs without val improvement" + auto)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-time", type=float, default=None,
                   help="the time budget in seconds for the whole training; the automatic configuration plans "
                        "for it (default: plans for 120 s)")
    t.add_argument("--tune", action="store_true",
                   help="spend part of --max-time on a random search scored by k-fold CV on the training data")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    pr = group.add_parser("predict", help="label + class probabilities for each sequence (CSV)")
    pr.add_argument("--model", required=True, help="model folder")
    pr.add_argument("--data", required=True, help=data_help + " (labels optional)")
    pr.add_argument("--out", help="CSV to write (default: stdout)")
    _columns(pr)
    pr.set_defaults(func=_predict)

    ev = group.add_parser("evaluate", help="accuracy, macro-F1, confusion matrix (table + PNG)")
    ev.add_argument("--model", required=True, help="model folder")
    ev.add_argument("--data", required=True, help=data_help)
    ev.add_argument("--out", help="folder for metrics.json and confusion.png")
    _columns(ev)
    ev.set_defaults(func=_evaluate)


def _columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-col", help="CSV sequence column (default: sequence/text/name/x)")
    p.add_argument("--label-col", help="CSV label column (default: label/class/y/target)")


def _read(args: argparse.Namespace, path: str, labelled: bool):
    from rnnkit.data.sequences import read_sequences

    return read_sequences(path, text_col=args.text_col, label_col=args.label_col, labelled=labelled)


def _train(args: argparse.Namespace) -> int:
    from rnnkit.tasks.classify.task import SequenceClassifier

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and (out / "config.json").exists() and not args.resume:
        raise UserError(f"--out {out}: already holds a model; choose another folder or pass --resume")
    data = _read(args, args.data, labelled=True)
    val = None
    if args.val_data:
        v = _read(args, args.val_data, labelled=True)
        val = (v,)
    clf = SequenceClassifier(
        cell=args.cell, hidden_size=args.hidden, num_layers=args.layers, bidirectional=args.bidirectional,
        pooling=args.pooling, embed_dim=args.embed_dim, dropout=args.dropout, level=args.level,
        lowercase=args.lowercase, max_len=args.max_len,
        class_weight=None if args.class_weight == "none" else args.class_weight, val_fraction=args.val_fraction,
        label_smoothing=args.label_smoothing, input_noise=args.input_noise, augment=args.augment,
        weight_decay=args.weight_decay, conv_kernel=args.conv_kernel, conv_stride=args.conv_stride,
        series_norm=args.series_norm, ensemble=args.ensemble, loss_adjust=args.loss_adjust,
        logit_adjust=None if args.logit_adjust == "none" else "auto",
        optimizer="adamw" if args.weight_decay > 0 else "adam",
        batch_size=args.batch_size, epochs=args.epochs, max_steps=args.max_steps, lr=args.lr, patience=args.patience,
        seed=args.seed, max_time=args.max_time, tune=args.tune, device=args.device, progress=not args.quiet)
    clf.fit(data, val=val, out_dir=out, resume=args.resume)
    if args.quiet and clf.plan is not None:  # the one line of what was chosen and why, even when quiet
        print(f"rnnkit: auto config: {clf.plan.reason}", file=sys.stderr)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes the model folder
        return 0
    clf.save(out)
    h = clf.history
    print(json.dumps({"model": str(out), "classes": len(clf.labels), "members": len(clf.histories), "epochs": h.epochs,
                      "best_val_loss": h.best_val_loss, "stop_reason": h.stop_reason}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from rnnkit.tasks.classify.task import SequenceClassifier

    clf = SequenceClassifier.load(args.model)
    data = _read(args, args.data, labelled=False)
    proba = clf.predict_proba(data)
    df = pd.DataFrame({"index": range(len(data))})
    if data.texts is not None:
        df["sequence"] = data.texts
    if data.labels is not None:
        df["true_label"] = data.labels
    df["label"] = [clf.labels[i] for i in proba.argmax(1)]
    for j, name in enumerate(clf.labels):
        df[f"p_{name}"] = proba[:, j].round(6)
    if args.out:
        from rnnkit.train.checkpoint import atomic_write_text

        out = Path(args.out)
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        atomic_write_text(out, buf.getvalue())
        print(f"wrote {len(df)} predictions to {out}", file=sys.stderr)
    else:
        try:
            df.to_csv(sys.stdout, index=False)
        except BrokenPipeError:  # `... | head`: the reader left, nothing is wrong
            sys.stderr.close()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from rnnkit.metrics.classify import format_confusion, plot_confusion
    from rnnkit.tasks.classify.task import SequenceClassifier

    clf = SequenceClassifier.load(args.model)
    data = _read(args, args.data, labelled=True)
    report = clf.evaluate(data)
    cm = np.array(report["confusion"])
    print(f"n = {report['n']}  accuracy = {report['accuracy']:.4f}  macro-F1 = {report['macro_f1']:.4f}")
    print(format_confusion(cm, report["labels"]))
    if args.out:
        from rnnkit.train.checkpoint import atomic_write_json

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "metrics.json", report)
        plot_confusion(cm, report["labels"], out / "confusion.png")
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}", file=sys.stderr)
    return 0
