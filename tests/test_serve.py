"""HTTP serving: a real (tiny) trained model answers over the JSON API; bad requests get 400."""
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from rnnkit.serve import create_app  # noqa: E402


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


def test_classifier_predicts_over_http(classifier_dir):
    client = TestClient(create_app(str(classifier_dir)))
    assert client.get("/health").json()["task"] == "classify"
    out = client.post("/predict", json={"sequences": ["aaaa", "bbb"]}).json()
    assert out["labels"] == ["a", "b"]
    assert abs(sum(out["probabilities"][0].values()) - 1) < 1e-5


def test_bad_request_is_400_with_message(classifier_dir):
    client = TestClient(create_app(str(classifier_dir)))
    r = client.post("/predict", json={"nothing": 1})
    assert r.status_code == 400 and "sequences" in r.json()["error"]
    r = client.post("/predict", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_text_model_generates_and_ranks_next_words(text_dir):
    client = TestClient(create_app(str(text_dir)))
    a = client.post("/predict", json={"prompt": "the ", "length": 20, "seed": 3}).json()["text"]
    b = client.post("/predict", json={"prompt": "the ", "length": 20, "seed": 3}).json()["text"]
    assert a == b and len(a) >= 20
    words = client.post("/next-word", json={"prompt": "the cat sat on the", "k": 3}).json()["words"]
    assert len(words) == 3 and all(0 <= w["probability"] <= 1 for w in words)
