"""``rnnkit demo`` section for speech: synthesize spoken digits with espeak-ng, train a small
CTC model, transcribe voices it never heard (plot: ``speech_demo.png``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnkit.data.audio import load_audio
from rnnkit.data.features import features
from rnnkit.io import save_figure
from rnnkit.tasks.speech.data import Utterance
from rnnkit.tasks.speech.task import SpeechRecognizer


def speech_demo(out_dir: Path, quick: bool) -> str:
    """`rnnkit demo`: synthesize spoken digits with espeak-ng, train a small model, transcribe
    utterances of voices it never heard. Writes ``speech_demo.png`` (log-mel + CTC output)."""
    import shutil
    import sys
    import tempfile

    if shutil.which("espeak-ng") is None:
        return "Skipped: espeak-ng is not installed (`sudo apt-get install espeak-ng`)."
    try:
        import jiwer  # noqa: F401
        import soundfile  # noqa: F401
        import soxr  # noqa: F401
    except ModuleNotFoundError as exc:
        return f"Skipped: the speech extra is not installed ({exc.name}); `pip install 'rnnkit[speech]'`."
    from rnnkit.data.audio import save_audio
    from rnnkit.data.speech_synth import DIGITS, add_noise_floor, speak

    rng = np.random.default_rng(0)
    train_voices = ["en-us+m1", "en-us+f2", "en-gb+m3", "en-us+klatt", "en-gb+f4", "en-us+m7", "en-029+m2",
                    "en-gb-x-rp+f1"][: 6 if quick else 8]
    test_voices = ["en-us+m4", "en-gb+f3"]
    n_train = 90 if quick else 260
    tmp = Path(tempfile.mkdtemp(prefix="rnnkit_speech_demo_"))
    try:
        def utterances(voices: list[str], n: int, tag: str) -> list[Utterance]:
            out = []
            for i in range(n):
                text = " ".join(rng.choice(DIGITS, size=int(rng.integers(1, 4))))
                wave = speak(text, str(rng.choice(voices)), int(rng.integers(130, 190)), int(rng.integers(30, 70)))
                path = tmp / f"{tag}_{i:04d}.wav"
                save_audio(path, add_noise_floor(wave * 0.7, rng))
                out.append(Utterance(path, text))
            return out

        print("speech: synthesizing digits with espeak-ng", file=sys.stderr)
        train, test = utterances(train_voices, n_train, "train"), utterances(test_voices, 6 if quick else 12, "test")
        torch.set_num_threads(1)
        asr = SpeechRecognizer(hidden_size=64 if quick else 128, num_layers=1 if quick else 2, conv_channels=8 if quick else 16,
                               epochs=200, lr=3e-3, batch_frames=1500, specaugment=not quick, dropout=0.0,
                               patience=0, max_time=22 if quick else 75, progress=True)
        asr.fit(train)
        report = asr.evaluate(test)
        greedy = asr.evaluate(test, beam=1)
        _plot(asr, test[0], out_dir / "speech_demo.png")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = "\n".join(f"| {u['reference']} | {u['hypothesis']} |" for u in report["utterances"])
    return (f"A {sum(p.numel() for p in asr.network.parameters()):,}-parameter conv + bidirectional GRU + CTC model, "
            f"trained for {asr.history.epochs} epochs on {len(train)} espeak-ng digit strings from "
            f"{len(train_voices)} voices, transcribes voices it never heard ({', '.join(test_voices)}):\n\n"
            f"| said | transcribed |\n|---|---|\n{rows}\n\n"
            f"WER {report['wer']:.2f} with beam search + word list ({greedy['wer']:.2f} greedy), "
            f"CER {report['cer']:.2f}; CPU real-time factor {report['rtf']:.3f}. "
            f"Synthetic voices only: see docs/bench/speech.md for real recordings.\n\n![log-mel and CTC output](speech_demo.png)")


def _plot(asr: SpeechRecognizer, utt: Utterance, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wave = load_audio(utt.audio)
    feats = features(wave, asr.fbank).numpy()
    lp = asr.log_probs(wave)
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5), sharex=False)
    a.imshow(feats.T, origin="lower", aspect="auto", cmap="magma")
    a.set(title=f"normalised log-mel: '{utt.text}'", ylabel="mel bin")
    probs = np.exp(lp)
    b.plot(probs[:, 0], color="0.7", label="blank")
    best = probs[:, 1:].max(axis=1)
    b.plot(best, color="C0", label="best character")
    for t, c in enumerate(lp.argmax(axis=1)):
        if c != 0 and (t == 0 or c != lp[t - 1].argmax()):
            b.annotate(asr.vocab.chars[c - 1].replace(" ", "_"), (t, best[t]), ha="center", va="bottom")
    b.set(xlabel="output step (40 ms)", ylabel="probability", ylim=(0, 1.15))
    b.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
