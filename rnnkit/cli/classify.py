"""`rnnkit classify train|predict|evaluate`: parse flags, call ``SequenceClassifier``."""
from __future__ import annotations

import argparse
import io
import json
import sys

from rnnkit.cli.common import (add_train_flags, check_out_dir, check_out_file, check_out_folder, removed_on_error,
                               resolve_config, save_trained)


def register(sub: argparse._SubParsersAction) -> None:
    from rnnkit.tasks.classify.task import ClassifierConfig

    p = sub.add_parser("classify", help="sequence classification (names, symbols, sensor series)")
    group = p.add_subparsers(dest="classify_command", metavar="{train,predict,evaluate}", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    data_help = ("CSV/TSV (sequence + label columns, or one value per column: a wide table with a label column, "
                 "or UCR archive .tsv rows: label then values, no header), .npz (X, y[, lengths]), UEA .ts(.gz), "
                 "or a folder of <class>.txt files (docs/data.md)")
    t = group.add_parser("train", help="train a classifier; writes a model folder")
    t.add_argument("--data", required=True, help=data_help)
    t.add_argument("--val-data", help="validation data (default: a stratified split of --data)")
    _columns(t)
    add_train_flags(t, ClassifierConfig)
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
    from rnnkit.tasks.classify.task import ClassifierConfig, SequenceClassifier

    out = check_out_dir(args.out, args.resume, "classify")
    clf = SequenceClassifier(resolve_config(args, ClassifierConfig))
    data = _read(args, args.data, labelled=True)
    val = (_read(args, args.val_data, labelled=True),) if args.val_data else None
    with removed_on_error(out):  # bad data found late (e.g. --val-data) leaves no half-written folder
        clf.fit(data, val=val, out_dir=out, resume=args.resume)
        if args.quiet and clf.plan is not None:  # the one line of what was chosen and why, even when quiet
            print(f"rnnkit: auto config: {clf.plan.reason}", file=sys.stderr)
        if save_trained(clf, out) is None:
            return 0
    h = clf.history
    print(json.dumps({"model": str(out), "classes": len(clf.labels), "members": len(clf.histories), "epochs": h.epochs,
                      "best_val_loss": h.best_val_loss, "stop_reason": h.stop_reason}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from rnnkit.tasks.classify.task import SequenceClassifier

    out = check_out_file(args.out) if args.out else None  # before the work, not after it
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
    if out is not None:
        from rnnkit.train.checkpoint import atomic_write_text

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

    out = check_out_folder(args.out) if args.out else None
    clf = SequenceClassifier.load(args.model)
    data = _read(args, args.data, labelled=True)
    report = clf.evaluate(data)
    cm = np.array(report["confusion"])
    print(f"n = {report['n']}  accuracy = {report['accuracy']:.4f}  macro-F1 = {report['macro_f1']:.4f}")
    print(format_confusion(cm, report["labels"]))
    if out is not None:
        from rnnkit.train.checkpoint import atomic_write_json

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "metrics.json", report)
        plot_confusion(cm, report["labels"], out / "confusion.png")
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}", file=sys.stderr)
    return 0
