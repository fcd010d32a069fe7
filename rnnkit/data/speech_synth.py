"""Offline labelled speech corpus: espeak-ng voices x rates x pitches, plus augmentation.

``build_corpus`` writes 16 kHz WAV files and JSON-lines manifests (``train.jsonl``,
``test.jsonl``, ``all.jsonl``). Whole voices (espeak variants) are held out for the test
split, so test WER measures generalisation to unseen speakers, not to unseen utterances.
Augmentation (speed, gain, reverberation, telephone band-limiting, noise) is there to push a
model trained on clean formant synthesis towards real microphones.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from rnnkit.data.audio import SAMPLE_RATE, resample, save_audio
from rnnkit.errors import UserError
from rnnkit.io import atomic_write_text

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc"]
# espeak-ng voice variants that still sound like speech (robotic/whisper ones left out of training)
TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "m6", "m7", "f1", "f2", "f4", "klatt", "klatt2", "klatt4",
                  "Alex", "Andy", "Annie", "aunty", "benjamin", "caleb", "david", "ed", "edward",
                  "Gene", "iven", "john", "Lee", "linda", "max", "Michael", "Mike", "norbert", "paul",
                  "quincy", "rob", "robert", "steph", "travis", "victor", "zac", "grandma", "anika"]
TEST_VARIANTS = ["m4", "f3", "f5", "klatt3", "Andrea", "belinda", "pablo", "shelby"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def require_espeak() -> str:
    """Path of the espeak-ng program, or a UserError saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise UserError("espeak-ng is not installed; install the system package 'espeak-ng' "
                        "(e.g. sudo apt-get install espeak-ng) to synthesize speech")
    return path


def have_flite() -> bool:
    """flite (CMU's small synthesizer, Debian package 'flite') is optional: its awb/rms/slt voices
    are statistical models of real speakers, more natural than espeak's formant voices."""
    return shutil.which("flite") is not None


def number_to_words(n: int) -> str:
    """0 <= n < 1_000_000 in English words, e.g. 405 -> 'four hundred and five'."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + DIGITS[n % 10])
    if n < 1000:
        rest = n % 100
        return DIGITS[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))
    rest = n % 1000
    head = number_to_words(n // 1000) + " thousand"
    if rest == 0:
        return head
    return head + (" and " if rest < 100 else " ") + number_to_words(rest)


def shipped_texts(name: str) -> list[str]:
    """Lines of ``rnnkit/data/datasets/speech_texts/<name>.txt`` (words, sentences)."""
    text = resources.files("rnnkit.data.datasets").joinpath(f"speech_texts/{name}.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def book_lines(min_words: int = 4, max_words: int = 12) -> list[str]:
    """Verse lines of the shipped Shakespeare text (public domain) as extra, open-vocabulary sentences."""
    try:
        text = resources.files("rnnkit.data.datasets").joinpath("shakespeare/shakespeare.txt").read_text("utf-8")
    except FileNotFoundError:
        raise UserError("the shipped shakespeare text is missing; synthesize without book lines") from None
    out = []
    for line in text.splitlines():
        words = "".join(c if c.isalpha() or c in " '" else " " for c in line.lower()).split()
        if min_words <= len(words) <= max_words and not line.isupper() and not line.rstrip().endswith(":"):
            out.append(" ".join(w.strip("'") for w in words if w.strip("'")))
    return out


def make_texts(rng: np.random.Generator, n_digits: int, n_numbers: int, n_words: int,
               n_sentences: int, n_book: int = 0) -> list[tuple[str, str]]:
    """(kind, text) pairs: digit strings (1-7 digits, 'oh' sometimes for zero), numbers, words,
    sentences, and lines of the shipped Shakespeare text ("book": wider vocabulary)."""
    out: list[tuple[str, str]] = []
    for _ in range(n_digits):
        digits = rng.integers(0, 10, size=int(rng.integers(1, 8)))
        words = [("oh" if d == 0 and rng.random() < 0.3 else DIGITS[d]) for d in digits]
        out.append(("digits", " ".join(words)))
    for _ in range(n_numbers):
        n = int(rng.choice([rng.integers(0, 100), rng.integers(100, 1000), rng.integers(1000, 100000)]))
        out.append(("numbers", number_to_words(n)))
    words, sentences = shipped_texts("words"), shipped_texts("sentences")
    for _ in range(n_words):
        k = int(rng.integers(1, 4))  # short commands: one to three words
        out.append(("words", " ".join(rng.choice(words, size=k))))
    for i in range(n_sentences):
        out.append(("sentences", sentences[(i + int(rng.integers(0, len(sentences)))) % len(sentences)]))
    if n_book:
        lines = book_lines()
        out += [("book", str(t)) for t in rng.choice(lines, size=n_book, replace=False)]
    return out


def speak(text: str, voice: str, rate: int = 160, pitch: int = 50, espeak: str | None = None) -> np.ndarray:
    """espeak-ng (voice like 'en-us+m3') or flite (voice 'flite:slt') -> (samples,) float32 at 16 kHz.

    rate in words per minute (160 = normal); pitch 0-99 (espeak only; flite keeps its speaker's pitch).
    """
    import soundfile as sf

    if voice.startswith("flite:"):
        return _flite(text, voice.split(":", 1)[1], rate)
    exe = espeak or require_espeak()
    proc = subprocess.run([exe, "--stdout", "-v", voice, "-s", str(rate), "-p", str(pitch), text],
                          capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise UserError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
    wave, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return resample(wave, sr, SAMPLE_RATE)


def _flite(text: str, voice: str, rate: int) -> np.ndarray:
    import tempfile

    import soundfile as sf

    exe = shutil.which("flite")
    if exe is None:
        raise UserError("flite is not installed; install the system package 'flite' (e.g. sudo apt-get install flite)")
    fd, tmp = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        proc = subprocess.run([exe, "-voice", voice, "--setf", f"duration_stretch={160 / rate:.3f}", "-t", text,
                               "-o", tmp], capture_output=True, check=False)
        if proc.returncode != 0:
            raise UserError(f"flite failed for voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
        wave, sr = sf.read(tmp, dtype="float32")
    finally:
        os.unlink(tmp)
    return resample(wave, sr, SAMPLE_RATE)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each augmentation (applied independently, in this order)."""

    speed: tuple[float, float] = (0.85, 1.15)
    p_speed: float = 0.5
    p_reverb: float = 0.35
    rt60: tuple[float, float] = (0.15, 0.7)       # seconds
    p_telephone: float = 0.25
    p_noise: float = 0.6
    snr_db: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-18.0, 3.0)
    pad_s: tuple[float, float] = (0.05, 0.4)      # leading/trailing silence (with the noise floor)


def _colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise, unit RMS (shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size) + 1.0
    spec = spec / f ** rng.choice([0.0, 0.5, 1.0])
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def augment(wave: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> tuple[np.ndarray, list[str]]:
    """Randomly augmented copy of wave (samples,) at 16 kHz, and the names of what was applied."""
    cfg = cfg or AugmentConfig()
    x, applied = wave.astype(np.float64), []
    if rng.random() < cfg.p_speed:
        factor = rng.uniform(*cfg.speed)  # resampling changes tempo and pitch together, like tape speed
        x = resample(x.astype(np.float32), int(SAMPLE_RATE * factor), SAMPLE_RATE).astype(np.float64)
        applied.append(f"speed{factor:.2f}")
    pad = lambda: np.zeros(int(rng.uniform(*cfg.pad_s) * SAMPLE_RATE))  # noqa: E731
    x = np.concatenate([pad(), x, pad()])
    if rng.random() < cfg.p_reverb:
        rt60 = rng.uniform(*cfg.rt60)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        ir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path
        ir /= np.sqrt(np.sum(ir ** 2))
        x = np.fft.irfft(np.fft.rfft(x, x.size + ir.size) * np.fft.rfft(ir, x.size + ir.size))[:x.size]
        applied.append(f"reverb{rt60:.2f}")
    if rng.random() < cfg.p_telephone:
        # telephone: 300-3400 Hz band and an 8 kHz round trip
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
        spec[(freqs < 300) | (freqs > 3400)] = 0
        x = np.fft.irfft(spec, x.size)
        x = resample(resample(x.astype(np.float32), SAMPLE_RATE, 8000), 8000, SAMPLE_RATE).astype(np.float64)
        applied.append("telephone")
    rms = np.sqrt(np.mean(x ** 2)) + 1e-9
    if rng.random() < cfg.p_noise:
        snr = rng.uniform(*cfg.snr_db)
        x = x + _colored_noise(rng, x.size) * rms / 10 ** (snr / 20)
        applied.append(f"noise{snr:.0f}dB")
    peak = np.abs(x).max() + 1e-9
    gain = 10 ** (rng.uniform(*cfg.gain_db) / 20)
    x = x / peak * 0.9 * gain  # normalise the level first, then a random gain
    return x.astype(np.float32), applied


@dataclass
class SynthConfig:
    """What ``build_corpus`` synthesizes."""

    n_digits: int = 600
    n_numbers: int = 200
    n_words: int = 300
    n_sentences: int = 400
    n_book: int = 0                          # Shakespeare lines (open vocabulary)
    n_test: int = 300                        # utterances spoken by held-out voices
    accents: list[str] = field(default_factory=lambda: list(ACCENTS))
    train_variants: list[str] = field(default_factory=lambda: list(TRAIN_VARIANTS))
    test_variants: list[str] = field(default_factory=lambda: list(TEST_VARIANTS))
    flite_train: list[str] = field(default_factory=lambda: ["awb", "rms", "slt"])
    flite_test: list[str] = field(default_factory=lambda: ["kal16"])  # held out like the espeak variants
    p_flite: float = 0.3                     # share of utterances spoken by flite (when it is installed)
    rate: tuple[int, int] = (120, 200)       # words per minute
    pitch: tuple[int, int] = (20, 80)
    p_augment: float = 0.8                   # fraction of training utterances augmented
    p_augment_test: float = 0.5
    seed: int = 0
    extra_texts: list[str] = field(default_factory=list)  # user texts (--text FILE), spoken as sentences
    make_train: bool = True                  # False: only the held-out-voice test split (same mix of kinds)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _progress(it, total: int, on: bool):
    if not on:
        return it
    from tqdm import tqdm
    return tqdm(it, total=total, desc="synth", unit="utt", file=sys.stderr)


def add_noise_floor(wave: np.ndarray, rng: np.random.Generator, db: tuple[float, float] = (-75.0, -55.0)) -> np.ndarray:
    """Add faint white noise: espeak's pauses are exact digital zeros, which real microphones never
    give, and a model that learns "silence = -inf log energy" is lost on real recordings."""
    return (wave + rng.standard_normal(wave.size) * 10 ** (rng.uniform(*db) / 20)).astype(np.float32)


def _synth_one(spec: dict) -> dict:
    """Speak and (maybe) augment one utterance; write its WAV; return its manifest row."""
    rng = np.random.default_rng(spec["seed"])
    wave = speak(spec["text"], spec["voice"], spec["rate"], spec["pitch"], spec["espeak"])
    applied: list[str] = []
    if spec["augment"]:
        wave, applied = augment(wave, rng)
    else:
        wave = wave / (np.abs(wave).max() + 1e-9) * 0.7
    wave = add_noise_floor(wave, rng)
    name = f"wav/{spec['split']}_{spec['i']:06d}.wav"
    save_audio(Path(spec["out"]) / name, wave)
    return {"audio": name, "text": spec["text"], "duration": round(wave.size / SAMPLE_RATE, 3),
            "voice": spec["voice"], "kind": spec["kind"], "rate": spec["rate"], "pitch": spec["pitch"],
            "augment": applied}


def build_corpus(out_dir: str | os.PathLike, cfg: SynthConfig | None = None, progress: bool = True,
                 workers: int = 1) -> dict:
    """Synthesize the corpus into ``out_dir`` (wav/ + train/test/all.jsonl). Returns a summary dict.

    ``workers`` > 1 runs espeak-ng and the augmentation in that many processes."""
    cfg = cfg or SynthConfig()
    espeak = require_espeak()
    if not cfg.test_variants and cfg.n_test:
        raise UserError("n_test > 0 needs at least one held-out voice variant")
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    total = cfg.n_digits + cfg.n_numbers + cfg.n_words + cfg.n_sentences + cfg.n_book
    train_texts = make_texts(rng, cfg.n_digits, cfg.n_numbers, cfg.n_words, cfg.n_sentences, cfg.n_book)
    train_texts += [("custom", t) for t in cfg.extra_texts]
    scale = cfg.n_test / max(total, 1)  # test split has the same mix of kinds
    counts = [round(n * scale) for n in (cfg.n_digits, cfg.n_numbers, cfg.n_words, cfg.n_book)]
    test_texts = make_texts(rng, counts[0], counts[1], counts[2], max(cfg.n_test - sum(counts), 0), counts[3])
    jobs = [("train", k, t, cfg.train_variants, cfg.p_augment) for k, t in train_texts if cfg.make_train]
    jobs += [("test", k, t, cfg.test_variants, cfg.p_augment_test) for k, t in test_texts]
    # draw every random choice up front, so the corpus is the same for any number of workers
    use_flite = cfg.p_flite > 0 and have_flite()

    def pick_voice(split: str, variants: list[str]) -> str:
        flite = cfg.flite_train if split == "train" else cfg.flite_test
        if use_flite and flite and rng.random() < cfg.p_flite:
            return f"flite:{rng.choice(flite)}"
        return f"{rng.choice(cfg.accents)}+{rng.choice(variants)}"

    specs = [dict(split=split, kind=kind, text=text, i=i, out=str(out), espeak=espeak,
                  voice=pick_voice(split, variants),
                  rate=int(rng.integers(*cfg.rate)), pitch=int(rng.integers(*cfg.pitch)),
                  augment=bool(rng.random() < p_aug), seed=int(rng.integers(2**31)))
             for i, (split, kind, text, variants, p_aug) in enumerate(jobs)]
    if workers > 1:
        from multiprocessing import get_context
        with get_context("spawn").Pool(workers) as pool:
            made = list(_progress(pool.imap(_synth_one, specs, chunksize=8), len(specs), progress))
    else:
        made = list(_progress(map(_synth_one, specs), len(specs), progress))
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    for spec, row in zip(specs, made):
        rows[spec["split"]].append(row)
    _write_jsonl(out / "train.jsonl", rows["train"])
    _write_jsonl(out / "test.jsonl", rows["test"])
    _write_jsonl(out / "all.jsonl", rows["train"] + rows["test"])
    hours = sum(r["duration"] for r in rows["train"] + rows["test"]) / 3600
    test_voices = cfg.test_variants + ([f"flite:{v}" for v in cfg.flite_test] if use_flite else [])
    return {"train": len(rows["train"]), "test": len(rows["test"]), "hours": round(hours, 3),
            "test_voices": test_voices, "flite": use_flite, "out": str(out)}
