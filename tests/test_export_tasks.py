"""ONNX export of real (tiny, trained) task models through ``rnnkit export``, and predictions
through onnxruntime (``rnnkit.onnx_runtime``) equal to the PyTorch ones within 1e-4."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit.cli import main  # noqa: E402
from rnnkit.export import run_onnx  # noqa: E402
from rnnkit.onnx_runtime import OnnxSession, load_onnx, predict_onnx  # noqa: E402

ATOL = 1e-4
NAMES = [("anna", "it"), ("marco", "it"), ("giulia", "it"), ("paolo", "it"), ("francesca", "it"),
         ("smith", "en"), ("john", "en"), ("william", "en"), ("elizabeth", "en"), ("thompson", "en"),
         ("hans", "de"), ("schmidt", "de"), ("wolfgang", "de"), ("krueger", "de"), ("baecker", "de")]
TEXT = "the cat sat on the mat.\nthe dog ran to the cat.\na cat and a dog sat.\n" * 6


def _export(model_dir, out, graph="sequence") -> None:
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(out), "--graph", graph]) == 0
    assert out.is_file()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from rnnkit.tasks.classify.task import SequenceClassifier

    torch.manual_seed(0)
    clf = SequenceClassifier(cell="lstm", hidden_size=12, embed_size=8, bidirectional=True, pooling="attention",
                             epochs=3, batch_size=8, val_fraction=0.0, progress=False, device="cpu", seed=0)
    clf.fit([n for n, _ in NAMES], [l for _, l in NAMES])
    root = tmp_path_factory.mktemp("clf")
    clf.save(root / "m")
    _export(root / "m", root / "m.onnx")
    return clf, root


@pytest.fixture(scope="module", params=["lstm", "gru"])
def text_model(request, tmp_path_factory):
    from rnnkit.tasks.text.task import TextModel

    m = TextModel(level="char", cell=request.param, hidden_size=24, embed_size=8, num_layers=2, bptt=16,
                  batch_size=4, lr=1e-2, dropout=0.0)
    m.fit(TEXT, epochs=2, patience=None, device="cpu", progress=False)
    root = tmp_path_factory.mktemp("text")
    m.save(root / "m")
    _export(root / "m", root / "seq.onnx")
    _export(root / "m", root / "step.onnx", graph="step")
    return m, root


def test_classifier_sequence_graph_variable_lengths(classifier):
    clf, root = classifier
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, len(clf.vocab), (4, 11), generator=g)
    lengths = torch.tensor([11, 3, 7, 1])
    x[torch.arange(11)[None, :] >= lengths[:, None]] = 0  # right padding
    with torch.no_grad():
        ref = clf.network(x, lengths).numpy()
    got = run_onnx(root / "m.onnx", {"x": x, "lengths": lengths})["logits"]
    np.testing.assert_allclose(got, ref, atol=ATOL)


def test_classifier_predictions_through_onnxruntime(classifier):
    clf, root = classifier
    names = ["anna", "wolfgang", "thompson", "x", "giuseppina", "baecker"]  # one batch, many lengths
    fast = load_onnx(root / "m", root / "m.onnx")
    np.testing.assert_allclose(fast.predict_proba(names), clf.predict_proba(names), atol=ATOL)
    assert predict_onnx(root / "m", root / "m.onnx", names) == clf.predict(names)
    assert clf.network.__class__.__name__ == "ClassifierNet"  # with_onnx copies, the original is untouched


def test_text_sequence_graph_with_lengths_and_state(text_model):
    m, root = text_model
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, len(m.vocab), (3, 10), generator=g)
    lengths = torch.tensor([10, 4, 7])
    sizes, n = m.network.rnn.state_sizes(), m.network.rnn.num_layers
    state = tuple(torch.randn(n, 3, s, generator=g) for s in sizes)
    with torch.no_grad():
        y, out = m.network.rnn(m.network.embed(ids), state if len(state) > 1 else state[0], lengths=lengths)
        logits = m.network.decoder(y)
    names = ["h0", "c0"][: len(sizes)]
    got = run_onnx(root / "seq.onnx", {"ids": ids, "lengths": lengths, **dict(zip(names, state))})
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=ATOL)
    for name, ref in zip(["hn", "cn"], out if isinstance(out, tuple) else (out,)):
        np.testing.assert_allclose(got[name], ref.numpy(), atol=ATOL)  # state at each row's last real token


def test_text_step_graph_equals_pytorch_step(text_model):
    m, root = text_model
    sess = OnnxSession(root / "step.onnx")
    names = sess.input_names[1:]
    tokens = torch.tensor(m.vocab.encode(list("the cat sat")))
    state = None
    onnx_state = [np.zeros((m.network.rnn.num_layers, 1, s), np.float32) for s in m.network.rnn.state_sizes()]
    for tok in tokens:
        with torch.no_grad():
            ref, state = m.network.step(tok.view(1), state)
        out = sess(token=tok.view(1), **dict(zip(names, onnx_state)))
        onnx_state = [out[n] for n in sess.output_names[1:]]
        np.testing.assert_allclose(out["logits"], ref.numpy(), atol=ATOL)
    for got, ref in zip(onnx_state, state if isinstance(state, tuple) else (state,)):
        np.testing.assert_allclose(got, ref.numpy(), atol=ATOL)


def test_text_generation_through_onnxruntime(text_model):
    m, root = text_model
    fast = load_onnx(root / "m", root / "step.onnx")
    assert fast.generate("the ", length=40, temperature=0) == m.generate("the ", length=40, temperature=0)
    assert fast.generate("a ", length=40, seed=3) == m.generate("a ", length=40, seed=3)
    np.testing.assert_allclose(fast.probabilities("the c").numpy(), m.probabilities("the c").numpy(), atol=ATOL)
    assert [w for w, _ in fast.next_words("the c", k=3)] == [w for w, _ in m.next_words("the c", k=3)]


def test_text_onnx_needs_the_step_graph(text_model):
    from rnnkit.errors import UserError

    _, root = text_model
    with pytest.raises(UserError, match="--graph step"):
        load_onnx(root / "m", root / "seq.onnx")


def test_forecast_network_and_predictions(tmp_path):
    from rnnkit.tasks.forecast.task import Forecaster

    t = np.arange(160)
    df = pd.DataFrame({"id": ["a"] * 160 + ["b"] * 160,
                       "y": np.r_[50 + 10 * np.sin(2 * np.pi * t / 12), 5 + np.cos(2 * np.pi * t / 12)]})
    fc = Forecaster(horizon=4, cell="gru", hidden_size=12, epochs=2, steps_per_epoch=5, batch_size=16, progress=False)
    fc.fit(df, target="y", id_col="id")
    fc.save(tmp_path / "m")
    _export(tmp_path / "m", tmp_path / "m.onnx")
    # the scaled-units network on a batch with missing (masked) points
    model, g = fc.network, torch.Generator().manual_seed(4)
    m = (torch.rand(5, model.cfg.context, generator=g) > 0.2).float()
    y_s = torch.randn(5, model.cfg.context, generator=g) * m
    with torch.no_grad():
        ref = torch.stack([net(y_s, m, y_s.new_zeros(5, model.cfg.context, 0), y_s.new_zeros(5, 4, 0))
                           for net in model.members], dim=1)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", {"y_s": y_s, "m": m})["q"], ref.numpy(), atol=ATOL)
    # predictions in data units: scaling in Python around the ONNX network
    series = pd.concat([df.iloc[:100], df.iloc[160:167]], ignore_index=True)  # b: shorter than the context
    assert len(series["id"].unique()) == 2 and 7 < model.cfg.context
    ref_df = fc.predict(series)
    got_df = load_onnx(tmp_path / "m", tmp_path / "m.onnx").predict(series)
    assert len(got_df) == 2 * 4
    np.testing.assert_allclose(got_df["forecast"].to_numpy(), ref_df["forecast"].to_numpy(), rtol=1e-5, atol=ATOL)


def test_forecast_with_covariates_exports(tmp_path):
    from rnnkit.export import export
    from rnnkit.tasks.forecast.network import ForecastModel, NetConfig

    net = ForecastModel(NetConfig(context=10, horizon=3, n_past=1, n_future=2, hidden_size=8, cell="lstm", ensemble=2))
    spec = net.onnx_specs()["sequence"]
    assert spec.input_names == ["y_s", "m", "x_s", "f_s"]
    assert export(spec, tmp_path / "cov.onnx")["q"] < ATOL  # checked at batch 2 and 5


def test_speech_log_probs_dynamic_time(tmp_path):
    from rnnkit.data.audio import SAMPLE_RATE, save_audio
    from rnnkit.tasks.speech.task import SpeechRecognizer
    from rnnkit.tasks.speech.data import Utterance

    rng = np.random.default_rng(0)
    utts = []
    for i, (word, f0) in enumerate([("on", 220.0), ("off", 330.0), ("go", 440.0), ("no", 550.0)]):
        t = np.arange(int(SAMPLE_RATE * (0.3 + 0.1 * i))) / SAMPLE_RATE
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
        save_audio(tmp_path / f"{i}.wav", wave.astype(np.float32))
        utts.append(Utterance(tmp_path / f"{i}.wav", word))
    asr = SpeechRecognizer(hidden_size=8, num_layers=2, conv_channels=2, epochs=1, batch_frames=400, specaugment=False,
                           dropout=0.0, progress=False, beam=1)
    asr.fit(utts)
    asr.save(tmp_path / "m")
    _export(tmp_path / "m", tmp_path / "m.onnx")
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(3, 53, asr.fbank.n_mels, generator=g)
    lengths = torch.tensor([53, 20, 9])
    with torch.no_grad():
        lp, out_len = asr.network(feats, lengths)
    got = run_onnx(tmp_path / "m.onnx", {"feats": feats, "lengths": lengths})
    np.testing.assert_array_equal(got["out_lengths"], out_len.numpy())
    np.testing.assert_allclose(got["log_probs"], lp.numpy(), atol=ATOL)  # padded frames too
    fast = load_onnx(tmp_path / "m", tmp_path / "m.onnx")
    wave = np.sin(2 * np.pi * 300 * np.arange(8000) / SAMPLE_RATE).astype(np.float32)
    np.testing.assert_allclose(fast.log_probs(wave), asr.log_probs(wave), atol=ATOL)
    assert fast.predict([utts[0].audio]) == asr.predict([utts[0].audio])


def test_cli_bad_input_exit_2_and_no_output(classifier, tmp_path, capsys):
    _, root = classifier
    out = tmp_path / "x.onnx"
    assert main(["export", "--model", str(root / "m"), "--format", "tflite", "--out", str(out)]) == 2
    assert main(["export", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["export", "--model", str(root / "m"), "--out", str(tmp_path / "no" / "x.onnx")]) == 2
    assert main(["export", "--model", str(root / "m"), "--out", str(out), "--graph", "step"]) == 2  # classifier: sequence only
    # unwritable targets (chmod does not stop root, so: a file as the folder, a folder as the file)
    (tmp_path / "file").write_text("not a folder")
    assert main(["export", "--model", str(root / "m"), "--out", str(tmp_path / "file" / "x.onnx")]) == 2
    (tmp_path / "dir.onnx").mkdir()
    assert main(["export", "--model", str(root / "m"), "--out", str(tmp_path / "dir.onnx")]) == 2
    assert not any((tmp_path / "dir.onnx").iterdir())
    assert "rnnkit: error:" in capsys.readouterr().err
    assert not out.exists() and not any(p.suffix == ".tmp" for p in tmp_path.rglob("*"))


def test_i2h_classifier_is_refused_clearly():
    from rnnkit.errors import UserError
    from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig

    net = ClassifierNet(ClassifierNetConfig(n_classes=2, vocab_size=5, cell="i2h", hidden_size=4))
    with pytest.raises(UserError, match="i2h"):
        net.onnx_specs()
