"""Typed request and response bodies of ``rnnkit serve`` (pydantic), one pair per route.

Request models are built per server (``request_models``) because their bounds come from the
server's ``ServeLimits`` and, for forecasting, their row fields from the model's training
columns: ``/openapi.json`` and ``/docs`` then show exactly what this server accepts.
All request models are strict: no strings for numbers, no NaN/Infinity, no unknown keys.
"""
from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, with_config
from typing_extensions import NotRequired, TypedDict  # pydantic needs typing_extensions' TypedDict on Python < 3.12

from rnnkit.data.checks import MAX_MAGNITUDE
from rnnkit.serve.limits import ServeLimits
from rnnkit.tasks.forecast.combine import FIT_COST_POINTS, refit_cost

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
_SEED_MAX = 2 ** 63 - 1  # torch.Generator seeds are 64-bit
_MIN_TEMPERATURE = 1e-3  # below this, logits / temperature overflows float32: use 0 (greedy) instead
_MIN_TOP_P = 1e-6  # sampling compares top_p in float32: a smaller one rounds to 0 and drops every token
_MAX_STATIC_TEXT = 1000  # characters of a series id or category value in ``static``


# ---------------------------------------------------------------------------- responses
class HealthResponse(BaseModel):
    task: str
    rnnkit_version: str


class ErrorResponse(BaseModel):
    error: str = Field(description="what is wrong with the request, in one line")
    detail: Optional[list[dict[str, Any]]] = Field(None, description="pydantic's validation errors, when any")


class ForecastResponse(BaseModel):
    forecast: list[dict[str, Union[str, int, float, None]]] = Field(
        description="one row per series and step: id, time, step, forecast (the median), q<level> per quantile; "
                    "with format nixtla: unique_id, ds, <MODEL>, <MODEL>-lo-<L>, <MODEL>-hi-<L>")


class TextResponse(BaseModel):
    text: str


class WordProbability(BaseModel):
    word: str
    probability: float


class NextWordResponse(BaseModel):
    words: list[WordProbability]


class ClassifyResponse(BaseModel):
    labels: list[str]
    probabilities: list[dict[str, float]] = Field(description="per sequence: label -> probability")


class TranscribeResponse(BaseModel):
    text: str


# ---------------------------------------------------------------------------- requests
def text_requests(limits: ServeLimits) -> tuple[type[BaseModel], type[BaseModel]]:
    """(body of text /predict, body of /next-word)."""
    def prompt_field():
        return Field("", max_length=limits.max_prompt_chars, description="text the model continues")

    class TextRequest(BaseModel):
        model_config = _STRICT
        prompt: str = prompt_field()
        length: int = Field(200, ge=0, le=limits.max_length, description="tokens to generate")
        temperature: float = Field(1.0, ge=0, le=100, description=f"0 = greedy; otherwise >= {_MIN_TEMPERATURE}")
        top_k: Optional[int] = Field(None, ge=1, le=1_000_000)
        top_p: Optional[float] = Field(None, ge=_MIN_TOP_P, le=1)
        seed: Optional[int] = Field(None, ge=0, le=_SEED_MAX, description="same seed, same text; null = random")

        @field_validator("temperature")
        @classmethod
        def _not_tiny(cls, v: float) -> float:
            if 0 < v < _MIN_TEMPERATURE:
                raise ValueError(f"temperature must be 0 (greedy) or at least {_MIN_TEMPERATURE}")
            return v

    class NextWordRequest(BaseModel):
        model_config = _STRICT
        prompt: str = prompt_field()
        k: int = Field(5, ge=1, le=limits.max_k, description="how many next words to rank")

    return TextRequest, NextWordRequest


def classify_request(limits: ServeLimits) -> type[BaseModel]:
    steps = limits.max_sequence_length
    Step = Union[float, list[float]]  # one feature per step, or a list of features

    class ClassifyRequest(BaseModel):
        """``sequences``: strings (token models) or numeric sequences (time, features); each
        numeric sequence may also be a flat list (one feature per step)."""

        model_config = _STRICT
        sequences: Union[list[str], list[list[Step]]] = Field(min_length=1, max_length=limits.max_sequences)

        @field_validator("sequences")
        @classmethod
        def _shapes(cls, seqs: list) -> list:
            total = sum(len(s) for s in seqs)
            if total > limits.max_total_steps:
                raise ValueError(f"{total} steps in all; this server accepts up to {limits.max_total_steps} "
                                 f"per request (send fewer or shorter sequences)")
            for i, s in enumerate(seqs):
                if isinstance(s, str):
                    if not 1 <= len(s) <= steps:
                        raise ValueError(f"sequence {i} must have 1..{steps} characters, has {len(s)}")
                    continue
                if not 1 <= len(s) <= steps:
                    raise ValueError(f"sequence {i} must have 1..{steps} steps, has {len(s)}")
                widths = {len(x) if isinstance(x, list) else None for x in s}  # None: a bare number
                if len(widths) != 1 or 0 in widths:
                    raise ValueError(f"sequence {i}: every step needs the same number of features "
                                     f"(a flat list of numbers, or a list of equally long lists)")
            return seqs

    return ClassifyRequest


def forecast_request(limits: ServeLimits, schema: dict) -> type[BaseModel]:
    """Rows typed by the forecaster's training columns (``schema`` from its config.json)."""
    number = Optional[float]  # a missing value is allowed (null or left out); NaN / Infinity are not
    stamp = Union[str, int]
    columns = {schema["target"]: NotRequired[Annotated[number, Field(description="target (observed value)")]]}
    if schema.get("time_col"):
        columns[schema["time_col"]] = Annotated[stamp, Field(description="time stamp (ISO date or integer step)")]
    if schema.get("id_col"):
        columns[schema["id_col"]] = Annotated[stamp, Field(description="series id")]
    for col in list(schema.get("past_cols") or []) + list(schema.get("future_cols") or []):
        columns[col] = NotRequired[Annotated[number, Field(description="covariate")]]
    # A TypedDict, not a model: the keys are the training column names (any string), and rows come
    # out as plain dicts for pandas; validating 100,000 rows takes 0.09 s instead of 2.1 s.
    Row = with_config(ConfigDict(strict=True, extra="ignore", allow_inf_nan=False))(TypedDict("ForecastRow", columns))
    static_row, static_note = _static_row(schema.get("static"))

    class ForecastRequest(BaseModel):
        model_config = _STRICT
        data: list[Row] = Field(min_length=1, max_length=limits.max_rows,
                                description="the history of every series to forecast, one row per time step")
        quantiles: Optional[list[Annotated[float, Field(gt=0, lt=1)]]] = Field(
            None, max_length=50, description="extra quantile levels in (0, 1), e.g. [0.1, 0.9]")
        format: Literal["rnnkit", "nixtla"] = Field(
            "rnnkit", description="rnnkit: id, time, step, forecast, q<level>; nixtla: neuralforecast's "
                                  "unique_id, ds, <MODEL>, <MODEL>-lo-<L>, <MODEL>-hi-<L>")
        level: Optional[list[Annotated[float, Field(gt=0, lt=100)]]] = Field(
            None, min_length=1, max_length=20, description="nixtla format: interval levels in percent, e.g. [80, 90]")
        static: Optional[dict[Annotated[str, Field(min_length=1, max_length=_MAX_STATIC_TEXT)], static_row]] = Field(
            None, min_length=1, max_length=limits.max_rows, description=static_note)

        @field_validator("data")
        @classmethod
        def _member_cost(cls, rows: list) -> list:
            if schema.get("combine") in (None, "none"):
                return rows
            id_col = schema.get("id_col")
            lengths = Counter(r.get(id_col) for r in rows).values() if id_col else [len(rows)]
            points = refit_cost(lengths)
            if points > limits.max_combined_points:
                raise ValueError(f"this model blends per-series ETS and Theta, refitted here on {len(lengths)} series "
                                 f"= {points} points (history + {FIT_COST_POINTS} per series for the fit); this "
                                 f"server accepts up to {limits.max_combined_points} per request "
                                 "(--max-combined-points; fewer series, or a model trained with --combine none)")
            return rows

    return ForecastRequest


def _static_row(static: Optional[dict]) -> tuple[Any, str]:
    """(type, description) of one series' entry in ``static``: the training's static columns, all
    required, no others (``static``: ``{"numeric": [...], "categorical": [...]}``, None without them).
    The values then go through ``read_static`` and ``StaticEncoder.encode`` as a ``--static`` CSV
    does; these bounds only say early, and by field, what those would refuse (missing values,
    numbers beyond MAX_MAGNITUDE)."""
    if not static:  # refused with a 400 by handlers.forecast: the model takes no static features
        return dict[str, Union[float, str]], "this model was trained without static covariates: leave it out"
    number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, description="numeric static feature")]
    text = Annotated[str, Field(min_length=1, max_length=_MAX_STATIC_TEXT,
                                description="category (a value unseen in training counts as unknown)")]
    columns = {**{c: number for c in static["numeric"]}, **{c: text for c in static["categorical"]}}
    row = with_config(ConfigDict(strict=True, extra="forbid", allow_inf_nan=False))(TypedDict("StaticRow", columns))
    note = ("static covariates, as the --static table of `rnnkit forecast predict`: series id -> {column: value} "
            "for every column the model was trained with; a series left out gets unknown categories and the "
            "training mean of each number")
    return row, note


def describe(exc: ValidationError) -> tuple[int, str, list[dict]]:
    """(status, one-line message, error list without the offending input) for a failed parse."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return 400, f"request body is not valid JSON: {first['msg']}", errors
    # a location part is the client's own key (a series id, a column): quoted when it is not printable,
    # so the message stays one line
    where = ".".join(str(p) if str(p).isprintable() else repr(p) for p in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return 422, f"{where}: {first['msg']}{more}", errors
