"""`rnnkit serve`: any saved model folder behind a small JSON HTTP API (FastAPI).

Endpoints (all JSON; user errors answer 400 with ``{"error": "..."}``):

- ``GET  /health``   -> ``{"task", "rnnkit_version"}``
- ``POST /predict``  task-specific body:
    forecast: ``{"data": [{"<time>": ..., "<target>": ...}, ...], "quantiles": [0.1, 0.9]}`` -> ``{"forecast": [rows]}``
    text:     ``{"prompt": "...", "length": 200, "temperature": 1.0, "top_k": null, "top_p": null, "seed": 0}`` -> ``{"text"}``
    classify: ``{"sequences": ["text", ...] | [[[f1, f2], ...], ...]}`` -> ``{"labels", "probabilities"}``
- ``POST /next-word`` (text models): ``{"prompt": "...", "k": 5}`` -> ``{"words": [{"word", "probability"}]}``
- ``POST /transcribe`` (speech models): the audio file as the raw request body -> ``{"text"}``
"""
# No `from __future__ import annotations` here: FastAPI resolves the endpoint annotations at runtime.
import os
import tempfile
from typing import Any, Callable

import numpy as np

import rnnkit
from rnnkit.errors import UserError


def _forecast(model, body: dict) -> dict:
    import pandas as pd

    rows = body.get("data")
    if not isinstance(rows, list) or not rows:
        raise UserError("body needs 'data': a non-empty list of rows (objects with the training columns)")
    quantiles = body.get("quantiles")
    frame = model.predict(pd.DataFrame(rows), quantiles=tuple(quantiles) if quantiles else None)
    return {"forecast": frame.astype(object).where(frame.notna(), None).to_dict(orient="records")}


def _text(model, body: dict) -> dict:
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise UserError("'prompt' must be a string")
    text = model.generate(prompt, length=int(body.get("length", 200)), temperature=float(body.get("temperature", 1.0)),
                          top_k=body.get("top_k"), top_p=body.get("top_p"), seed=body.get("seed"))
    return {"text": text}


def _classify(model, body: dict) -> dict:
    sequences = body.get("sequences")
    if not isinstance(sequences, list) or not sequences:
        raise UserError("body needs 'sequences': a non-empty list of strings or of (time, features) arrays")
    if not isinstance(sequences[0], str):
        sequences = [np.asarray(s, dtype=np.float32) for s in sequences]
    proba = model.predict_proba(sequences)
    labels = [model.labels[i] for i in proba.argmax(1)]
    return {"labels": labels, "probabilities": [dict(zip(model.labels, map(float, p))) for p in proba]}


PREDICT: dict[str, Callable[[Any, dict], dict]] = {"forecast": _forecast, "text": _text, "classify": _classify}


def _task_of(model) -> str:
    for task, cls_name in rnnkit.TASKS.items():
        if type(model).__name__ == cls_name:
            return task
    raise UserError(f"cannot serve a {type(model).__name__}")


def create_app(model_dir: str):
    """Load ``model_dir`` once and return the FastAPI application serving it."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    model = rnnkit.load(model_dir)
    task = _task_of(model)
    app = FastAPI(title=f"rnnkit {task} model", version=rnnkit.__version__)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):  # noqa: ARG001 - FastAPI signature
        return JSONResponse(status_code=400, content={"error": str(exc)})

    async def _json(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise UserError("request body must be JSON") from None
        if not isinstance(body, dict):
            raise UserError("request body must be a JSON object")
        return body

    @app.get("/health")
    def health() -> dict:
        return {"task": task, "rnnkit_version": rnnkit.__version__}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        if task not in PREDICT:
            raise UserError(f"{task} models answer on /transcribe, not /predict")
        return PREDICT[task](model, await _json(request))

    if task == "text":
        @app.post("/next-word")
        async def next_word(request: Request) -> dict:
            body = await _json(request)
            words = model.next_words(str(body.get("prompt", "")), k=int(body.get("k", 5)))
            return {"words": [{"word": w, "probability": float(p)} for w, p in words]}

    if task == "speech":
        @app.post("/transcribe")
        async def transcribe(request: Request) -> dict:
            audio = await request.body()
            if not audio:
                raise UserError("send the audio file as the request body")
            fd, path = tempfile.mkstemp(suffix=".audio")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(audio)
                return {"text": model.transcribe(path)}
            finally:
                os.unlink(path)

    return app


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``model_dir`` until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_dir), host=host, port=port, log_level="info")
