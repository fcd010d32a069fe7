"""Serving a forecaster trained with static covariates: the request's ``static`` field means what
``--static FILE`` means to ``rnnkit forecast predict`` (same forecasts), and every bad ``static``
is a one-line 4xx, never a 500."""
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from rnnkit import Forecaster  # noqa: E402
from rnnkit.data.synthetic import static_level_panel  # noqa: E402
from rnnkit.serve import ServeLimits  # noqa: E402

from test_serve import forecast_dir, served  # noqa: E402,F401 - the plain model fixture


@pytest.fixture(scope="module")
def static_model(tmp_path_factory):
    df, table = static_level_panel(n_series=6, length=20)  # unique_id, ds, y; unique_id, group, size
    fc = Forecaster(horizon=3, hidden_size=8, epochs=2, ensemble=1, progress=False, calibrate="none",
                    combine="none").fit(df, static=table)
    path = tmp_path_factory.mktemp("fc_static")
    fc.save(path)
    return path, fc, df, table


def _static(table):
    return {r.unique_id: {"group": r.group, "size": r.size} for r in table.itertuples()}


def _forecast(client, body):
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    return pd.DataFrame(r.json()["forecast"])


def test_static_forecast_over_http_equals_predict(static_model):
    path, fc, df, table = static_model
    rows = df.to_dict("records")
    odd = table.copy()
    odd.loc[0, "group"] = "never-seen"  # unseen category: "unknown", as predict does
    part = table.iloc[1:]  # series s0 without a row: unknown categories, training mean numbers
    with served(path) as client:
        for t in (table, odd, part):
            got = _forecast(client, {"data": rows, "static": _static(t), "quantiles": [0.1, 0.9]})
            want = fc.predict(df, quantiles=(0.1, 0.9), static=t)
            assert list(got["id"]) == list(want["id"]) and list(got["step"]) == list(want["step"])
            for col in ("forecast", "q0.1", "q0.9"):
                np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-12, atol=0)
        unseen = _forecast(client, {"data": rows, "static": _static(odd)})
        assert not np.allclose(unseen["forecast"][:3], _forecast(client, {"data": rows, "static": _static(table)}
                                                                 )["forecast"][:3])  # the static table is used
        spec = client.get("/openapi.json").json()["components"]["schemas"]
        assert set(spec["StaticRow"]["properties"]) == {"group", "size"}


def test_static_request_errors_are_one_line_4xx(static_model):
    path, _, df, table = static_model
    rows = df.to_dict("records")
    good = _static(table)
    s0 = good["s0"]
    cases = [
        ({"data": rows}, 400, "trained with static covariates"),
        ({"data": rows, "static": {**good, "s0": {**s0, "colour": "red"}}}, 422, "static.s0.colour"),
        ({"data": rows, "static": {**good, "s0": {"group": "a"}}}, 422, "static.s0.size"),
        ({"data": rows, "static": {**good, "s0": {**s0, "size": "big"}}}, 422, "static.s0.size"),
        ({"data": rows, "static": {**good, "s0": {**s0, "group": 3}}}, 422, "static.s0.group"),
        ({"data": rows, "static": {**good, "s0": {**s0, "group": None}}}, 422, "static.s0.group"),
        ({"data": rows, "static": {**good, "s0": {**s0, "group": ""}}}, 422, "static.s0.group"),
        ({"data": rows, "static": {**good, "s0": {**s0, "group": "x" * 1001}}}, 422, "static.s0.group"),
        ({"data": rows, "static": {**good, "s0": {**s0, "size": 1e300}}}, 422, "static.s0.size"),
        ({"data": rows, "static": {**good, "s0": {**s0, "size": True}}}, 422, "static.s0.size"),
        ({"data": rows, "static": {}}, 422, "static"),
        ({"data": rows, "static": [good]}, 422, "static"),
    ]
    with served(path, ServeLimits(max_rows=200)) as client:
        for body, status, named in cases:
            r = client.post("/predict", json=body)
            err = r.json()["error"]
            assert r.status_code == status and named in err and "\n" not in err, (body.get("static"), r.text)
        missing = client.post("/predict", json={"data": rows}).json()["error"]
        assert "'size', 'group'" in missing and "6 series" in missing and "'s0'" in missing
        for raw in (b'"size": NaN', b'"size": Infinity'):
            body = b'{"data": [{"unique_id": "s0", "ds": 0, "y": 1.0}], "static": {"s0": {"group": "a", ' + raw + b"}}}"
            r = client.post("/predict", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422 and "static.s0.size" in r.json()["error"], r.text
        many = {f"x{i}": s0 for i in range(201)}  # more series than --max-rows allows rows
        r = client.post("/predict", json={"data": rows[:50], "static": many})
        assert r.status_code == 422 and "static" in r.json()["error"], r.text


def test_a_model_without_static_covariates_refuses_static(forecast_dir):  # noqa: F811
    path, df = forecast_dir
    rows = df[df.id == "a"].tail(20).to_dict("records")
    with served(path) as client:
        r = client.post("/predict", json={"data": rows, "static": {"a": {"group": "x"}}})
        assert r.status_code == 400 and "without static covariates" in r.json()["error"], r.text
        assert client.post("/predict", json={"data": rows}).status_code == 200


def test_fuzzed_static_fields_get_200_or_one_line_4xx(static_model):
    """Any JSON in ``static`` (ids, columns and values of every type, nested) is a 200 or a one-line
    4xx: never a 500, a traceback or a hang."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    path, _, df, table = static_model
    rows = df.to_dict("records")
    leaf = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
    value = st.recursive(leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                         max_leaves=6)
    column = st.sampled_from(["group", "size", "other", ""]) | st.text(max_size=5)
    entry = st.dictionaries(column, value, max_size=4) | value
    static = st.dictionaries(st.sampled_from(sorted(table.unique_id)) | st.text(max_size=6), entry, max_size=4) | value
    with served(path) as client:
        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(static)
        def check(s):
            r = client.post("/predict", json={"data": rows, "static": s})
            assert r.status_code in (200, 400, 422), (s, r.status_code, r.text)
            if r.status_code != 200:
                assert "\n" not in r.json()["error"] and "Traceback" not in r.text, (s, r.text)

        check()
