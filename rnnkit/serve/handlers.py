"""What each route does with a validated request; runs on a worker thread (``pool.py``).

Every function takes the loaded model, the parsed request and a ``Deadline``, and returns a
response model. Bad input the schema cannot see (a column the model does not know, a feature
count that does not match) surfaces as ``UserError`` from the task code, answered 400.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Optional

import numpy as np

from rnnkit.errors import UserError
from rnnkit.serve.limits import RequestError, ServeLimits
from rnnkit.serve.ipc import Deadline
from rnnkit.serve.schemas import (ClassifyResponse, ForecastResponse, NextWordResponse, TextResponse,
                                  TranscribeResponse, WordProbability)

_MIN_SAMPLE_RATE, _MAX_SAMPLE_RATE = 1000, 384_000  # outside: not audio the model can use
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def forecast(model, req, deadline: Deadline) -> ForecastResponse:
    import pandas as pd

    frame = pd.DataFrame(req.data)
    sc = model.schema
    for col in [sc["target"], *sc.get("past_cols", []), *sc.get("future_cols", [])]:
        if col in frame and np.nanmax(np.abs(frame[col].to_numpy(dtype=np.float64)), initial=0.0) > _FLOAT32_MAX:
            raise RequestError(422, f"data: column {col!r} has numbers beyond float32 (|x| <= {_FLOAT32_MAX:.3g})")
    out = model.predict(frame, quantiles=tuple(req.quantiles) if req.quantiles else None, format=req.format,
                        level=req.level, static=static_table(model, req.static, frame))
    keys = ["unique_id", "ds"] if req.format == "nixtla" else ["id", "time", "step"]
    time_col = keys[1]
    values = out.drop(columns=keys).to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():  # never answer NaN as if it were a forecast
        raise RequestError(422, "the model produced non-finite forecasts for this history "
                                "(values far outside the training range?)")
    if out[time_col].dtype.kind == "M":
        out[time_col] = [t.isoformat() for t in out[time_col]]
    rows = out.astype(object).to_dict(orient="records")
    return ForecastResponse(forecast=[{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                                      for r in rows])


def static_table(model, static: Optional[dict], frame):
    """The request's ``static`` as the table ``--static FILE`` gives predict (``read_static``, the
    same checks); None for a model without static covariates. RequestError 400 when the model needs
    the table and the request has none, or has one the model cannot use."""
    import pandas as pd

    from rnnkit.data.static import read_static

    enc = getattr(model, "static", None)
    if enc is None:
        if static is not None:
            raise RequestError(400, "static: this model was trained without static covariates; leave it out")
        return None
    id_col = model.schema["id_col"]
    columns = enc.numeric + enc.categorical
    if static is None:
        ids = pd.unique(frame[id_col].astype(str)) if id_col in frame else []
        shown = ", ".join(repr(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
        raise RequestError(400, f"this model was trained with static covariates: send \"static\": {{series id: "
                                f"{{column: value}}}} with {', '.join(map(repr, columns))} for the {len(ids)} "
                                f"series in data ({shown})")
    rows = pd.DataFrame([[sid, *(values[c] for c in columns)] for sid, values in static.items()],
                        columns=[id_col, *columns])
    return read_static(rows, id_col)[0]


def generate(model, req, deadline: Deadline) -> TextResponse:
    """Token by token (``TextModel.stream``), so an over-long request stops at its deadline."""
    pieces = []
    for piece in model.stream(req.prompt, length=req.length, temperature=req.temperature, top_k=req.top_k,
                              top_p=req.top_p, seed=req.seed):
        pieces.append(piece)
        deadline.check()
    return TextResponse(text="".join(pieces))


def next_word(model, req, deadline: Deadline) -> NextWordResponse:
    words = model.next_words(req.prompt, k=req.k)
    return NextWordResponse(words=[WordProbability(word=w, probability=float(p)) for w, p in words])


def classify(model, req, deadline: Deadline) -> ClassifyResponse:
    sequences = req.sequences
    if not isinstance(sequences[0], str):
        sequences = [np.asarray(s, dtype=np.float64) for s in sequences]
        if any(np.abs(s).max() > _FLOAT32_MAX for s in sequences):  # finite in JSON, infinite in float32
            raise RequestError(422, f"sequences: numbers must fit in float32 (|x| <= {_FLOAT32_MAX:.3g})")
        sequences = [s.astype(np.float32) for s in sequences]
    proba = model.predict_proba(sequences)
    if not np.isfinite(proba).all():
        raise RequestError(422, "the model produced non-finite probabilities for these sequences "
                                "(values far outside the training range?)")
    labels = [model.labels[i] for i in proba.argmax(1)]
    return ClassifyResponse(labels=labels, probabilities=[dict(zip(model.labels, map(float, p))) for p in proba])


def transcribe(model, audio: bytes, limits: ServeLimits, deadline: Deadline) -> TranscribeResponse:
    """The duration and sample rate are read from the header before anything is decoded."""
    from rnnkit.data.audio import AudioLimits, load_audio

    if not audio:
        raise UserError("send the audio file as the request body")
    fd, path = tempfile.mkstemp(suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(audio)
        seconds, rate = _header(path)
        if not _MIN_SAMPLE_RATE <= rate <= _MAX_SAMPLE_RATE:
            raise RequestError(422, f"audio sample rate {rate} Hz is outside {_MIN_SAMPLE_RATE}..{_MAX_SAMPLE_RATE} Hz")
        if seconds > limits.max_audio_seconds:
            raise RequestError(413, f"audio is {seconds:.1f} s long; this server accepts up to "
                                    f"{limits.max_audio_seconds:g} s")
        wave = load_audio(path, limits=AudioLimits(max_seconds=limits.max_audio_seconds,
                                                   max_bytes=limits.max_body_bytes))
        if float(np.abs(wave).max()) > 1.0 + 1e-6:  # float WAVs can hold anything; the model saw [-1, 1]
            raise RequestError(422, "audio samples must lie in [-1, 1]")
        deadline.check()
        return TranscribeResponse(text=model.transcribe_wave(wave))
    finally:
        os.unlink(path)


def _header(path: str) -> tuple[float, int]:
    """(seconds, sample rate) from the audio header, without decoding the samples."""
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception as exc:  # libsndfile's own error types: all mean "not audio it can read"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read the audio: {first_line}") from None
    rate = int(info.samplerate)
    return (info.frames / rate if rate > 0 else math.inf), rate
