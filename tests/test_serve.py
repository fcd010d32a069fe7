"""HTTP serving: real (tiny) trained models answer over the typed JSON API; bad requests get
a 4xx with a message, never a 500; limits, the worker pool and the API key hold."""
import contextlib
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from rnnkit.errors import UserError  # noqa: E402
from rnnkit.serve import ServeLimits, create_app, serve  # noqa: E402
from rnnkit.serve.app import is_loopback  # noqa: E402
from rnnkit.serve.limits import json_depth  # noqa: E402


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from rnnkit import SequenceClassifier

    words = ["aaaa", "aaa", "aaaaa", "aa", "bbbb", "bbb", "bbbbb", "bb"] * 6
    labels = ["a" if w[0] == "a" else "b" for w in words]
    clf = SequenceClassifier(hidden_size=16, epochs=15, progress=False, val_fraction=0.0)
    clf.fit(words, labels)
    path = tmp_path_factory.mktemp("clf")
    clf.save(path)
    return path


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    from rnnkit import TextModel

    lm = TextModel(level="char", hidden_size=32, embed_size=8, bptt=16, batch_size=4)
    lm.fit("the cat sat on the mat. " * 60, epochs=3, progress=False, device="cpu")
    path = tmp_path_factory.mktemp("lm")
    lm.save(path)
    return path


@pytest.fixture(scope="module")
def forecast_dir(tmp_path_factory):
    import pandas as pd

    from rnnkit import Forecaster

    t = np.arange(60)
    df = pd.DataFrame({"id": np.repeat(["a", "b"], 60), "t": np.tile(t, 2),
                       "y": np.concatenate([10 + np.sin(t / 3), 20 + np.cos(t / 3)])})
    fc = Forecaster(horizon=3, hidden_size=8, epochs=3, progress=False).fit(df, target="y", time_col="t", id_col="id")
    path = tmp_path_factory.mktemp("fc")
    fc.save(path)
    return path, df


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    """A speech model trained for one epoch on tones: serving is about input handling, not accuracy."""
    pytest.importorskip("soundfile")
    from rnnkit import SpeechRecognizer
    from rnnkit.data.audio import save_audio

    root = tmp_path_factory.mktemp("asr")
    utts = []
    for i, text in enumerate(["one", "two", "one two", "two one"]):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * np.arange(16000) / 16000)
        save_audio(root / f"{i}.wav", wave.astype(np.float32))
        utts.append((str(root / f"{i}.wav"), text))
    asr = SpeechRecognizer(hidden_size=16, num_layers=1, conv_channels=4, epochs=1, progress=False, batch_frames=2000)
    asr.fit(utts).save(root / "model")
    return root


@contextlib.contextmanager
def served(folder, limits=None, **kw):
    """A test client whose model processes stop when the block ends."""
    with TestClient(create_app(str(folder), limits, **kw)) as client:
        yield client


@pytest.fixture(scope="module")
def clf_client(classifier_dir):
    with served(classifier_dir) as client:
        yield client


@pytest.fixture(scope="module")
def text_client(text_dir):
    with served(text_dir) as client:
        yield client


def test_classifier_predicts_over_http(clf_client):
    client = clf_client
    assert client.get("/health").json()["task"] == "classify"
    out = client.post("/predict", json={"sequences": ["aaaa", "bbb"]}).json()
    assert out["labels"] == ["a", "b"]
    assert abs(sum(out["probabilities"][0].values()) - 1) < 1e-5


def test_bad_request_is_4xx_with_message(clf_client):
    client = clf_client
    r = client.post("/predict", json={"nothing": 1})
    assert r.status_code == 422 and "sequences" in r.json()["error"]
    r = client.post("/predict", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = client.post("/predict", json={"sequences": [[1.0, 2.0]]})  # numeric input to a text model
    assert r.status_code == 400 and "numeric" in r.json()["error"]


def test_text_model_generates_and_ranks_next_words(text_client):
    client = text_client
    a = client.post("/predict", json={"prompt": "the ", "length": 20, "seed": 3}).json()["text"]
    b = client.post("/predict", json={"prompt": "the ", "length": 20, "seed": 3}).json()["text"]
    assert a == b and len(a) >= 20
    words = client.post("/next-word", json={"prompt": "the cat sat on the", "k": 3}).json()["words"]
    assert len(words) == 3 and all(0 <= w["probability"] <= 1 for w in words)


# The requests that got a 500 (or an OOM kill) in issue 15, as (route, raw body, status, field named in the message).
TEXT_ABUSE = [
    ("/predict", b'{"length": "abc"}', 422, "length"),
    ("/predict", b'{"length": Infinity}', 422, "length"),
    ("/predict", b'{"length": 10000000}', 422, "length"),
    ("/predict", b'{"temperature": NaN}', 422, "temperature"),
    ("/predict", b'{"temperature": 1e-300}', 422, "temperature"),
    ("/predict", b'{"seed": "x"}', 422, "seed"),
    ("/predict", b'{"top_k": "x"}', 422, "top_k"),
    ("/predict", b'{"prompt": 5}', 422, "prompt"),
    ("/predict", b'{"lenght": 5}', 422, "lenght"),
    ("/next-word", b'{"k": ""}', 422, "k"),
    ("/next-word", b'{"k": 1000000000}', 422, "k"),
    ("/next-word", b'[' * 100_000, 400, "nested"),
    ("/next-word", b'{"k": 3', 400, "JSON"),
    ("/next-word", b'\xff\xfe', 400, "JSON"),
]


@pytest.mark.parametrize("route,body,status,named", TEXT_ABUSE)
def test_issue_examples_are_typed_4xx(text_client, route, body, status, named):
    r = text_client.post(route, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and named in r.json()["error"], r.text


def test_classify_and_forecast_reject_ragged_null_and_shapeless_bodies(clf_client, forecast_dir):
    too_many_steps = ["ab" * 5000] * 101  # each within --max-sequence-length, 1,010,000 in all
    for seqs in ([[[1, 2], [3]]], [[1, None]], [[[]]], [""], [], [[1e39]], too_many_steps):
        r = clf_client.post("/predict", json={"sequences": seqs})
        assert r.status_code == 422 and r.json()["error"], (seqs, r.text)
    path, df = forecast_dir
    with served(path) as client:
        _forecast_bodies(client, df)


def _forecast_bodies(client, df):
    rows = df[df.id == "a"].tail(20).to_dict("records")
    ok = client.post("/predict", json={"data": rows, "quantiles": [0.1, 0.9]})
    assert ok.status_code == 200 and [r["step"] for r in ok.json()["forecast"]] == [1, 2, 3]
    assert all(np.isfinite(r["q0.1"]) and r["q0.1"] <= r["q0.9"] for r in ok.json()["forecast"])
    bad = ({"data": [1, 2, 3]}, {"data": []}, {"data": [{**rows[0], "y": "7"}]}, {"data": rows, "quantiles": [1.5]},
           {"data": [{"y": 1.0, "t": 1}]})  # the last lacks the id column
    for body in bad:
        r = client.post("/predict", json=body)
        assert r.status_code == 422, (body, r.text)
    one = client.post("/predict", json={"data": rows[:1]})  # one row: a forecast from one point, or a clean 4xx
    assert one.status_code in (200, 400), one.text
    huge = client.post("/predict", json={"data": [{**r, "y": 1e300} for r in rows]})
    assert huge.status_code == 422 and "float32" in huge.json()["error"]
    mixed = client.post("/predict", json={"data": [{**r, "t": "2020-01-01"} if k == 3 else r
                                                   for k, r in enumerate(rows)]})
    assert mixed.status_code == 400 and "mixes numbers and text" in mixed.json()["error"], mixed.text
    nf = client.post("/predict", json={"data": rows, "format": "nixtla", "level": [80]})
    assert nf.status_code == 200, nf.text
    first = nf.json()["forecast"][0]
    model = [k for k in first if k not in ("unique_id", "ds") and "-lo-" not in k and "-hi-" not in k][0]
    assert first["unique_id"] == "a" and sorted(first) == sorted(["unique_id", "ds", model, f"{model}-lo-80",
                                                                   f"{model}-hi-80"])
    assert first[f"{model}-lo-80"] <= first[model] <= first[f"{model}-hi-80"]
    for body, status in (({"data": rows, "level": [80]}, 400), ({"data": rows, "format": "nixtla", "level": [100]}, 422),
                         ({"data": rows, "format": "csv"}, 422)):
        r = client.post("/predict", json=body)  # level without nixtla: the model's own one-line 400
        assert r.status_code == status and r.json()["error"], (body, r.text)


def test_body_over_the_limit_is_413_without_reading_it(text_dir):
    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(100):
            yield b" " * 100

    with served(text_dir, ServeLimits(max_body_bytes=1000)) as client:
        r = client.post("/predict", content=b'{"prompt": "' + b"x" * 5000 + b'"}')
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert client.post("/predict", content=chunks()).status_code == 413


def test_json_depth_counts_brackets_outside_strings():
    assert json_depth(b'{"a": [[1], [2, [3]]]}') == 4
    assert json_depth(b'{"a": "[[[[\\"[[", "b": []}') == 2
    assert json_depth(b"[" * 500) == 500


def test_health_answers_while_a_long_request_runs_and_a_full_queue_is_503(text_dir):
    limits = ServeLimits(max_length=10 ** 7, workers=1, queue=0, timeout_s=4.0)
    app = create_app(str(text_dir), limits)
    with TestClient(app) as client:
        result = {}
        long = threading.Thread(target=lambda: result.update(r=client.post("/predict", json={"length": 10 ** 7})))
        long.start()
        while app.state.pool.admitted == 0:
            time.sleep(0.01)
        health = client.get("/health")
        # answered while the long request still runs (it holds its worker until the 4 s limit): not queued behind it
        assert health.status_code == 200 and long.is_alive()
        busy = client.post("/predict", json={"length": 1})
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
        assert long.is_alive()
        long.join(30)
        assert result["r"].status_code == 503 and "limit" in result["r"].json()["error"]  # the time limit
        while app.state.pool.admitted:  # the generation stops at its deadline and frees the worker
            time.sleep(0.01)
        assert client.post("/predict", json={"length": 5}).status_code == 200


def test_api_key_is_required_off_loopback_and_checked(text_dir, monkeypatch):
    monkeypatch.delenv("RNNKIT_API_KEY", raising=False)
    with pytest.raises(UserError, match="api-key"):
        serve(str(text_dir), host="0.0.0.0")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    with served(text_dir, api_key="sekret") as client:
        _key_checks(client)


def _key_checks(client):
    assert client.get("/health").status_code == 200  # liveness stays open
    body = {"length": 3}
    assert client.post("/predict", json=body).status_code == 401
    assert client.post("/predict", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/predict", json=body, headers={"Authorization": "Bearer sekret"}).status_code == 200
    assert client.post("/next-word", json={}, headers={"X-API-Key": "sekret"}).status_code == 200


def test_cli_refuses_a_public_host_without_a_key_and_bad_limits(text_dir, monkeypatch, capsys):
    from rnnkit.cli import main

    monkeypatch.delenv("RNNKIT_API_KEY", raising=False)
    assert main(["serve", "--model", str(text_dir), "--host", "0.0.0.0"]) == 2
    assert main(["serve", "--model", str(text_dir), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--api-key" in err[0] and "--workers" in err[1], err


def test_openapi_has_a_typed_request_body_for_every_route(classifier_dir, text_dir, forecast_dir, speech_dir):
    for folder in (classifier_dir, text_dir, forecast_dir[0], speech_dir / "model"):
        with served(folder) as client:
            spec = client.get("/openapi.json").json()
        posts = [op for item in spec["paths"].values() for method, op in item.items() if method == "post"]
        assert posts, folder
        for op in posts:
            content = op["requestBody"]["content"]
            schema = next(iter(content.values()))["schema"]
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[-1]
                assert spec["components"]["schemas"][name]["properties"], name
            else:
                assert schema["format"] == "binary"  # /transcribe: the audio file itself


def test_speech_transcribes_and_refuses_long_or_broken_audio(speech_dir):
    import io

    import soundfile as sf

    def wav(seconds: float, rate: int = 16000) -> bytes:
        buf = io.BytesIO()
        t = np.arange(int(seconds * rate)) / rate
        sf.write(buf, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    with served(speech_dir / "model", ServeLimits(max_audio_seconds=2)) as client:
        _audio_checks(client, wav)


def _audio_checks(client, wav):
    ok = client.post("/transcribe", content=wav(1.0), headers={"content-type": "audio/wav"})
    assert ok.status_code == 200 and isinstance(ok.json()["text"], str)
    long = client.post("/transcribe", content=wav(3.0))
    assert long.status_code == 413 and "2 s" in long.json()["error"]
    broken = wav(1.0)
    broken = broken[:24] + (2 ** 31 - 1).to_bytes(4, "little") + broken[28:]  # header: a 2^31-1 Hz sample rate
    for body in (b"", b"not audio at all", broken, wav(1.0)[:30]):
        r = client.post("/transcribe", content=body)
        assert 400 <= r.status_code < 500, r.text


def test_a_dead_or_stuck_model_process_is_replaced(classifier_dir):
    with served(classifier_dir, ServeLimits(timeout_s=1.0, max_total_steps=10 ** 7)) as client:
        pool = client.app.state.pool
        body = {"sequences": ["aaaa", "bbb"]}

        def idle():
            while pool.admitted:  # the slot stays taken until a new process has loaded the model
                time.sleep(0.05)

        pool.processes[0].proc.kill()
        dead = client.post("/predict", json=body)
        assert dead.status_code == 503 and "died" in dead.json()["error"], dead.text
        idle()
        assert client.post("/predict", json=body).json()["labels"] == ["a", "b"]
        pid = pool.processes[0].proc.pid
        stuck = client.post("/predict", json={"sequences": ["ab" * 4000] * 400})  # no deadline checks inside
        assert stuck.status_code == 503 and "limit" in stuck.json()["error"], stuck.text
        idle()
        assert pool.processes[0].proc.pid != pid  # killed after the grace period, replaced
        assert client.post("/predict", json=body).json()["labels"] == ["a", "b"]


def test_a_folder_that_is_not_a_model_fails_at_start(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="config.json"):
        create_app(str(tmp_path))


def test_a_blending_forecaster_bounds_the_history_refitted_per_request(tmp_path):
    """A model that blends per-series ETS/Theta refits them on every series of a request: the
    points refitted, plus a fixed cost per series, are bounded (422 with the flag's name), so a big
    request cannot run for minutes, not even as thousands of 3-point series."""
    import pandas as pd

    from rnnkit import Forecaster

    t = np.arange(60)
    df = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 60), "t": np.tile(t, 3),
                       "y": np.concatenate([10 + k + np.sin(t / 3 + k) for k in range(3)])})
    Forecaster(horizon=3, hidden_size=8, epochs=2, progress=False, calibrate="none", combine="blend",
               season=6).fit(df, target="y", time_col="t", id_col="id").save(tmp_path / "m")
    with served(tmp_path / "m", ServeLimits(max_combined_points=300)) as client:
        small = df[df.id != "c"].groupby("id").tail(40).to_dict("records")       # 2 x (40 + 50) = 180
        ok = client.post("/predict", json={"data": small})
        assert ok.status_code == 200 and len(ok.json()["forecast"]) == 6
        big = client.post("/predict", json={"data": df.to_dict("records")})     # 3 x (60 + 50) = 330
        assert big.status_code == 422 and "--max-combined-points" in big.json()["error"]
        short = [{"id": f"s{i}", "t": int(j), "y": 1.0 + j} for i in range(20) for j in range(3)]
        many = client.post("/predict", json={"data": short})                    # 60 points, 20 fits: 1,060
        assert many.status_code == 422 and "20 series" in many.json()["error"]
