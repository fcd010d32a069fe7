"""`rnnkit export --model DIR --format onnx --out FILE.onnx [--graph sequence|step]`."""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model folder to ONNX (checked against onnxruntime)")
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--format", default="onnx", help="export format; only 'onnx' (the default) for now")
    p.add_argument("--out", required=True, help="output file, e.g. model.onnx")
    p.add_argument("--graph", default="sequence",
                   help="which graph: 'sequence' (whole sequences, dynamic batch/time, lengths) or "
                        "'step' (one streaming step with explicit state inputs/outputs)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed onnxruntime-vs-PyTorch difference")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rnnkit.errors import UserError
    from rnnkit.export import export_model

    if args.format != "onnx":  # checked here, not by argparse choices: a UserError, exit 2 from main()
        raise UserError(f"--format {args.format}: unknown export format; choose onnx")
    if not args.out.endswith(".onnx"):
        raise UserError(f"--out {args.out}: expected a .onnx file name")
    try:
        diffs = export_model(args.model, args.out, graph=args.graph, atol=args.atol)
    except ImportError as exc:
        raise UserError(f"ONNX export needs the [export] extra (onnx, onnxruntime): {exc}") from None
    worst = max(diffs.values())
    print(f"wrote {args.out} ({args.graph} graph); onnxruntime vs PyTorch max abs diff {worst:.2e}", file=sys.stderr)
    print(args.out)
    return 0
