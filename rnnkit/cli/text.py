"""`rnnkit text train|generate|next-word|evaluate`: parse flags, call ``rnnkit.tasks.text``."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Iterator

from rnnkit.cli.common import add_train_flags, check_out_dir, removed_on_error, resolve_config, save_trained


def register(sub: argparse._SubParsersAction) -> None:
    from rnnkit.tasks.text.task import TextConfig

    p = sub.add_parser("text", help="character/word language models: train, generate, next word, evaluate")
    cmds = p.add_subparsers(dest="text_command", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    t = cmds.add_parser("train", help="train a language model on UTF-8 text of any size")
    t.add_argument("--data", required=True, help="training text (UTF-8): a file, a folder, a glob or .gz/.bz2/.xz files; "
                                                   "its tail is held out for validation. Prepared once into a cached "
                                                   "token file ($RNNKIT_CACHE_DIR, default ~/.cache/rnnkit)")
    t.add_argument("--val-data", help="validation text, same forms as --data (default: the last --val-fraction of --data)")
    add_train_flags(t, TextConfig)
    t.set_defaults(func=_train)

    g = cmds.add_parser("generate", help="generate text, streamed token by token")
    g.add_argument("--model", required=True)
    g.add_argument("--prompt", default="", help="text the generation continues (primed through the network)")
    g.add_argument("--length", type=int, default=300, help="tokens to generate (characters or words)")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int, help="same seed, same text")
    g.add_argument("--onnx", metavar="FILE.onnx", help="run the network in onnxruntime from the step graph "
                                                       "(`rnnkit export --model MODEL --graph step --out FILE.onnx`)")
    g.set_defaults(func=_generate)

    n = cmds.add_parser("next-word", help="most likely next words with probabilities")
    n.add_argument("--model", required=True)
    n.add_argument("--prompt", required=True)
    n.add_argument("--k", type=int, default=5)
    n.add_argument("--words-only", action="store_true", help="word level: leave out punctuation and <eos>")
    n.add_argument("--json", action="store_true", help="print JSON instead of a table")
    n.set_defaults(func=_next_word)

    e = cmds.add_parser("evaluate", help="loss, perplexity, bits per character on a held-out text")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True, help="held-out text: a file, a folder, a glob or .gz files")
    e.set_defaults(func=_evaluate)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Library warnings (e.g. unknown prompt characters) as one ``rnnkit: warning:`` line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda msg, *a, **k: print(f"rnnkit: warning: {msg}", file=sys.stderr)
        yield


def _train(args: argparse.Namespace) -> int:
    from rnnkit.tasks.text.task import TextConfig, TextModel

    out = check_out_dir(args.out, args.resume, "text")
    model = TextModel(config=resolve_config(args, TextConfig))
    val = Path(args.val_data) if args.val_data else None
    with removed_on_error(out):  # a corpus found bad while reading leaves no half-written folder
        model.fit(Path(args.data), val, out_dir=str(out), resume=args.resume)
        if save_trained(model, out) is None:
            return 0
    print(json.dumps({"model": str(out), **model.metrics}, indent=2))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.text.task import TextModel

    model = TextModel.load(args.model)
    if args.onnx:
        from rnnkit.onnx_runtime import with_onnx

        model = with_onnx(model, args.onnx)
    with _warnings_to_stderr():
        pieces = model.stream(args.prompt, args.length, args.temperature, args.top_k, args.top_p, args.seed)
        first = next(pieces, "")  # primes (and validates) before anything is printed
        sys.stdout.write(args.prompt + first)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _next_word(args: argparse.Namespace) -> int:
    from rnnkit.tasks.text.task import TextModel

    model = TextModel.load(args.model)
    with _warnings_to_stderr():
        ranked = model.next_words(args.prompt, k=args.k, words_only=args.words_only)
    if args.json:
        print(json.dumps([{"word": w, "probability": p} for w, p in ranked], ensure_ascii=False))
    else:
        for i, (word, p) in enumerate(ranked, 1):
            print(f"{i}\t{word!r}\t{p:.4f}" if not word.isprintable() else f"{i}\t{word}\t{p:.4f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.text.task import TextModel

    model = TextModel.load(args.model)
    print(json.dumps(model.evaluate(Path(args.data)), indent=2))
    return 0
