"""rnnkit: recurrent neural networks that work out of the box.

Layers live in ``rnnkit.nn``; tasks (``Forecaster``, ``TextModel``, ``SequenceClassifier``,
``SpeechRecognizer``) are imported lazily so ``import rnnkit`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Forecaster": "rnnkit.tasks.forecast",
    "TextModel": "rnnkit.tasks.text",
    "SequenceClassifier": "rnnkit.tasks.classify",
    "SpeechRecognizer": "rnnkit.tasks.speech",
    "Trainer": "rnnkit.train",
    "TrainConfig": "rnnkit.train",
}
# config.json "task" -> class name
TASKS = {"forecast": "Forecaster", "text": "TextModel", "classify": "SequenceClassifier", "speech": "SpeechRecognizer"}


def __getattr__(name: str) -> Any:
    if name == "nn":
        return importlib.import_module("rnnkit.nn")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")


def load(path: str) -> Any:
    """Load any saved rnnkit model folder (``config.json`` + ``model.safetensors``)."""
    import json
    from pathlib import Path

    from rnnkit.errors import UserError

    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise UserError(f"{path}: not an rnnkit model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{config_path}: unreadable config.json ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    task = config.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise UserError(f"{config_path}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return __getattr__(TASKS[task]).load(path)
