"""`rnnkit serve --model DIR [--host H] [--port P]`."""
from __future__ import annotations

import argparse

from rnnkit.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a saved model over HTTP (JSON API; see rnnkit/serve.py)")
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from rnnkit.serve import serve
    except ModuleNotFoundError as exc:
        raise UserError(f"serving needs the [serve] extra ({exc.name} is missing): pip install 'rnnkit[serve]'") from None
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    serve(args.model, args.host, args.port)
    return 0
