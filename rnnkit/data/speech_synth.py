"""Offline labelled speech corpus: espeak-ng, flite and festival voices x rates x pitches, plus augmentation.

``build_corpus`` writes 16 kHz audio files and JSON-lines manifests (``train.jsonl``,
``test.jsonl``, ``all.jsonl``). Whole voices (espeak variants, flite kal16, festival kal) are held
out for the test split, so test WER measures generalisation to unseen speakers, not to unseen
utterances. Augmentation (``rnnkit.data.speech_augment``) pushes clean synthesis towards real
microphones. ``plan_corpus`` draws every random choice up front, independent of what is installed,
and ``speak_cached`` / ``render_cache`` keep clean renderings in a folder: render on one machine,
augment and train on another that has no synthesizer.
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
from rnnkit.data.speech_augment import AugmentConfig, add_noise_floor, augment  # noqa: F401 (re-exported)
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


# Festival voices (Debian packages festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts): diphones
# concatenated from the recordings of real speakers (kal, ked) and an HTS model of CMU ARCTIC slt.
FESTIVAL_VOICES = {"kal": "kal_diphone", "ked": "ked_diphone", "slt": "cmu_us_slt_arctic_hts"}


def have_festival() -> bool:
    """festival's ``text2wave`` (Debian package 'festival' + festvox-* voices) is optional."""
    return shutil.which("text2wave") is not None


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
    if voice.startswith("festival:"):
        return _festival(text, voice.split(":", 1)[1], rate)
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


def _festival(text: str, voice: str, rate: int) -> np.ndarray:
    """festival ``text2wave`` with voice kal|ked|slt; rate via Duration_Stretch (diphone voices) or
    the HTS engine's speed option (slt)."""
    import tempfile

    import soundfile as sf

    exe = shutil.which("text2wave")
    if exe is None:
        raise UserError("festival is not installed; install the system packages 'festival festvox-kallpc16k "
                        "festvox-kdlpc16k festvox-us-slt-hts' (e.g. sudo apt-get install festival ...)")
    if voice not in FESTIVAL_VOICES:
        raise UserError(f"unknown festival voice {voice!r}; choose one of {', '.join(FESTIVAL_VOICES)}")
    name = FESTIVAL_VOICES[voice]
    speed = ([f"(set! hts_engine_params (append hts_engine_params (list '(\"-r\" {rate / 160:.3f}))))"]
             if name.endswith("_hts") else [f"(Parameter.set 'Duration_Stretch {160 / rate:.3f})"])
    fd, tmp = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        cmd = [exe, "-o", tmp, "-eval", f"(voice_{name})"] + [a for e in speed for a in ("-eval", e)]
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
        if proc.returncode != 0 or os.path.getsize(tmp) < 100:
            raise UserError(f"festival failed for voice {voice!r} (is festvox for it installed?): "
                            f"{(proc.stderr or proc.stdout).decode(errors='replace').strip()[-300:]}")
        wave, sr = sf.read(tmp, dtype="float32")
    finally:
        os.unlink(tmp)
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    return resample(wave, sr, SAMPLE_RATE)


def _cache_path(cache: Path, text: str, voice: str, rate: int, pitch: int) -> Path:
    import hashlib

    key = hashlib.sha1(f"{voice}|{rate}|{pitch}|{text}".encode("utf-8")).hexdigest()
    return cache / f"{voice.split(':')[0]}_{key[:20]}.ogg"


def speak_cached(text: str, voice: str, rate: int, pitch: int, espeak: str | None, cache: str | None) -> np.ndarray:
    """``speak`` through a folder of clean renderings (Ogg Opus, keyed by text/voice/rate/pitch):
    render the voices on one machine, augment and build the corpus on another that lacks the
    synthesizers (e.g. a GPU machine without festival or espeak-ng)."""
    if not cache:
        return speak(text, voice, rate, pitch, espeak)
    import soundfile as sf

    path = _cache_path(Path(cache), text, voice, rate, pitch)
    if path.is_file():
        wave, sr = sf.read(path, dtype="float32")
        return resample(wave, sr, SAMPLE_RATE)
    wave = speak(text, voice, rate, pitch, espeak)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    sf.write(tmp, np.clip(wave, -1, 1), SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=0.95)
    os.replace(tmp, path)
    return wave


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
    festival_train: list[str] = field(default_factory=lambda: ["ked", "slt"])
    festival_test: list[str] = field(default_factory=lambda: ["kal"])  # the kal speaker is held out in both engines
    p_festival: float = 0.0                  # share spoken by festival (when installed or cache_dir is given)
    cache_dir: str | None = None             # clean renderings of festival/flite voices (see speak_cached)
    copies: int = 1                          # training utterances: 1 + (copies - 1) extra augmented renderings
    audio_format: str = "wav"                # wav | flac | ogg (Opus, ~8x smaller than wav)
    keep: float = 1.0                        # render only this share of the planned training texts
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


def _synth_one(spec: dict) -> dict:
    """Speak and (maybe) augment one utterance; write its WAV; return its manifest row."""
    rng = np.random.default_rng(spec["seed"])
    wave = speak_cached(spec["text"], spec["voice"], spec["rate"], spec["pitch"], spec["espeak"], spec["cache"])
    applied: list[str] = []
    if spec["augment"]:
        wave, applied = augment(wave, rng)
    else:
        wave = wave / (np.abs(wave).max() + 1e-9) * 0.7
    wave = add_noise_floor(wave, rng)
    name = f"wav/{spec['split']}_{spec['i']:06d}.{spec['format']}"
    save_audio(Path(spec["out"]) / name, wave)
    return {"audio": name, "text": spec["text"], "duration": round(wave.size / SAMPLE_RATE, 3),
            "voice": spec["voice"], "kind": spec["kind"], "rate": spec["rate"], "pitch": spec["pitch"],
            "augment": applied}


def _render_one(spec: dict) -> int:
    speak_cached(spec["text"], spec["voice"], spec["rate"], spec["pitch"], spec["espeak"], spec["cache"])
    return 1


def plan_corpus(out_dir: str | os.PathLike, cfg: SynthConfig) -> list[dict]:
    """Every utterance of the corpus as a spec dict (split, kind, text, voice, rate, pitch, augment,
    seed). All random choices are drawn here, the same on any machine whatever is installed, so a
    cache of festival renderings made on one machine matches the corpus built on another."""
    # with a cache of renderings espeak-ng is only needed for what is not in it (speak() says so)
    espeak = shutil.which("espeak-ng") if cfg.cache_dir else require_espeak()
    if not cfg.test_variants and cfg.n_test:
        raise UserError("n_test > 0 needs at least one held-out voice variant")
    rng = np.random.default_rng(cfg.seed)
    total = cfg.n_digits + cfg.n_numbers + cfg.n_words + cfg.n_sentences + cfg.n_book
    train_texts = make_texts(rng, cfg.n_digits, cfg.n_numbers, cfg.n_words, cfg.n_sentences, cfg.n_book)
    train_texts += [("custom", t) for t in cfg.extra_texts]
    scale = cfg.n_test / max(total, 1)  # test split has the same mix of kinds
    counts = [round(n * scale) for n in (cfg.n_digits, cfg.n_numbers, cfg.n_words, cfg.n_book)]
    test_texts = make_texts(rng, counts[0], counts[1], counts[2], max(cfg.n_test - sum(counts), 0), counts[3])
    jobs = [("train", k, t, cfg.train_variants, cfg.p_augment) for k, t in train_texts if cfg.make_train]
    jobs += [("test", k, t, cfg.test_variants, cfg.p_augment_test) for k, t in test_texts]
    use_flite = cfg.p_flite > 0 and (have_flite() or cfg.cache_dir is not None)
    use_festival = cfg.p_festival > 0 and (have_festival() or cfg.cache_dir is not None)

    def pick_voice(split: str, variants: list[str]) -> str:
        flite = cfg.flite_train if split == "train" else cfg.flite_test
        festival = cfg.festival_train if split == "train" else cfg.festival_test
        # every choice is drawn whatever is installed, so the stream of random numbers never depends on it
        r, k, espeak_voice = rng.random(), int(rng.integers(1 << 30)), f"{rng.choice(cfg.accents)}+{rng.choice(variants)}"
        if use_festival and festival and r < cfg.p_festival:
            return f"festival:{festival[k % len(festival)]}"
        if use_flite and flite and r < cfg.p_festival + cfg.p_flite:
            return f"flite:{flite[k % len(flite)]}"
        return espeak_voice

    if cfg.audio_format not in ("wav", "flac", "ogg"):
        raise UserError(f"audio_format must be wav, flac or ogg, not {cfg.audio_format!r}")
    base = dict(out=str(out_dir), espeak=espeak, cache=cfg.cache_dir, format=cfg.audio_format)
    specs = [dict(base, split=split, kind=kind, text=text, voice=pick_voice(split, variants),
                  rate=int(rng.integers(*cfg.rate)), pitch=int(rng.integers(*cfg.pitch)),
                  augment=bool(rng.random() < p_aug), seed=int(rng.integers(2**31)))
             for split, kind, text, variants, p_aug in jobs]
    if cfg.keep < 1.0:  # a subset from its own random stream, so the renderings' keys do not change
        drop = np.random.default_rng(cfg.seed + 1).random(len(specs)) >= cfg.keep
        specs = [s for s, d in zip(specs, drop) if not (d and s["split"] == "train")]
    # extra renderings of the same spoken audio, each with its own augmentation (drawn last, so
    # copies=1 and copies=2 share the base corpus)
    specs += [dict(s, augment=True, seed=int(rng.integers(2**31)))
              for _ in range(max(cfg.copies, 1) - 1) for s in list(specs) if s["split"] == "train"]
    for i, s in enumerate(specs):
        s["i"] = i
    return specs


def _run(fn, specs: list[dict], workers: int, progress: bool) -> list:
    if workers > 1:
        from multiprocessing import get_context
        with get_context("spawn").Pool(workers) as pool:
            return list(_progress(pool.imap(fn, specs, chunksize=8), len(specs), progress))
    return list(_progress(map(fn, specs), len(specs), progress))


def render_cache(cfg: SynthConfig, prefix: str | None = "festival", progress: bool = True, workers: int = 1) -> dict:
    """Render the utterances whose voice is ``prefix:...`` (all with ``prefix=None``) clean into
    ``cfg.cache_dir`` (no corpus).
    ``build_corpus`` with the same config then reads them from the cache, e.g. on a machine
    without festival."""
    if not cfg.cache_dir:
        raise UserError("render_cache needs cfg.cache_dir (--cache DIR)")
    todo = [s for s in plan_corpus(cfg.cache_dir, cfg) if prefix is None or s["voice"].startswith(prefix + ":")]
    unique = list({(s["text"], s["voice"], s["rate"], s["pitch"]): s for s in todo}.values())
    _run(_render_one, unique, workers, progress)
    return {"rendered": len(unique), "cache": cfg.cache_dir}


def build_corpus(out_dir: str | os.PathLike, cfg: SynthConfig | None = None, progress: bool = True,
                 workers: int = 1) -> dict:
    """Synthesize the corpus into ``out_dir`` (wav/ + train/test/all.jsonl). Returns a summary dict.

    ``workers`` > 1 runs the synthesizers and the augmentation in that many processes."""
    cfg = cfg or SynthConfig()
    out = Path(out_dir)
    specs = plan_corpus(out, cfg)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    made = _run(_synth_one, specs, workers, progress)
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    for spec, row in zip(specs, made):
        rows[spec["split"]].append(row)
    _write_jsonl(out / "train.jsonl", rows["train"])
    _write_jsonl(out / "test.jsonl", rows["test"])
    _write_jsonl(out / "all.jsonl", rows["train"] + rows["test"])
    hours = sum(r["duration"] for r in rows["train"] + rows["test"]) / 3600
    engines = {v.split(":")[0] for v in (r["voice"] for r in rows["train"] + rows["test"]) if ":" in v}
    test_voices = sorted({r["voice"].split("+")[-1] for r in rows["test"]})
    return {"train": len(rows["train"]), "test": len(rows["test"]), "hours": round(hours, 3),
            "test_voices": test_voices, "flite": "flite" in engines, "festival": "festival" in engines,
            "out": str(out)}
