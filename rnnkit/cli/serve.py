"""`rnnkit serve --model DIR [--host H] [--port P] [--workers N] [--api-key KEY] [limits]`."""
from __future__ import annotations

import argparse
from dataclasses import replace

from rnnkit.errors import UserError

_MB = 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    from rnnkit.serve.limits import ServeLimits

    d = ServeLimits()
    p = sub.add_parser("serve", help="serve a saved model over HTTP (typed JSON API; see rnnkit/serve/__init__.py)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--host", default="127.0.0.1", help="a non-loopback address needs --api-key")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (default: $RNNKIT_API_KEY)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="model processes (each loads its own copy of the model; torch threads are split between them)")
    p.add_argument("--queue", type=int, default=d.queue, help="requests waiting for a worker before 503")
    g = p.add_argument_group("limits (over a limit: 413 / 422 / 503, never a crash)")
    g.add_argument("--max-body-mb", type=float, default=d.max_body_bytes / _MB, help="request body size")
    g.add_argument("--max-audio-seconds", type=float, default=d.max_audio_seconds, help="/transcribe audio length")
    g.add_argument("--max-length", type=int, default=d.max_length, help="text: tokens generated per request")
    g.add_argument("--max-k", type=int, default=d.max_k, help="text: next words ranked per request")
    g.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars, help="text: prompt length")
    g.add_argument("--max-sequences", type=int, default=d.max_sequences, help="classify: sequences per request")
    g.add_argument("--max-sequence-length", type=int, default=d.max_sequence_length,
                   help="classify: steps or characters per sequence")
    g.add_argument("--max-total-steps", type=int, default=d.max_total_steps,
                   help="classify: steps or characters summed over a request's sequences")
    g.add_argument("--max-rows", type=int, default=d.max_rows, help="forecast: table rows per request")
    g.add_argument("--max-combined-points", type=int, default=d.max_combined_points,
                   help="forecast models that blend per-series ETS/Theta (--combine): points refitted per "
                        "request, each series' last 300 at most plus 50 for its fits")
    g.add_argument("--max-depth", type=int, default=d.max_depth, help="JSON nesting depth")
    g.add_argument("--timeout", type=float, default=d.timeout_s, help="seconds of model work per request (then 503)")
    g.add_argument("--read-timeout", type=float, default=d.read_timeout_s,
                   help="seconds to receive a request body (then 408)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from rnnkit.serve import ServeLimits, serve
    except ModuleNotFoundError as exc:
        raise UserError(f"serving needs the [serve] extra ({exc.name} is missing): pip install 'rnnkit[serve]'") from None
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    if not 0 < args.max_body_mb <= 1024:
        raise UserError(f"--max-body-mb must lie in (0, 1024], got {args.max_body_mb}")
    limits = replace(ServeLimits(), max_body_bytes=int(args.max_body_mb * _MB),
                     max_audio_seconds=args.max_audio_seconds, max_length=args.max_length, max_k=args.max_k,
                     max_prompt_chars=args.max_prompt_chars, max_sequences=args.max_sequences,
                     max_sequence_length=args.max_sequence_length,
                     max_total_steps=args.max_total_steps, max_rows=args.max_rows,
                     max_combined_points=args.max_combined_points,
                     max_depth=args.max_depth, timeout_s=args.timeout, read_timeout_s=args.read_timeout,
                     workers=args.workers, queue=args.queue)
    serve(args.model, args.host, args.port, limits=limits.check(), api_key=args.api_key)
    return 0
