"""Speech to text: ``SpeechRecognizer`` (log-mel -> conv + bidirectional RNN -> CTC characters).

>>> asr = SpeechRecognizer(cell="gru", hidden_size=192).fit("corpus/train.jsonl", val_data="corpus/test.jsonl")
>>> asr.transcribe("hello.wav"), asr.evaluate("corpus/test.jsonl")["wer"]
>>> asr.save("model/"); SpeechRecognizer.load("model/")

Training runs on the shared ``Trainer`` (CTC loss, SpecAugment on training batches only).
Decoding: greedy, or prefix beam search scored with a unigram word list collected from the
training transcripts. Long files are cut into chunks at quiet points and decoded piece by piece.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.audio import SAMPLE_RATE, check_wave, load_audio
from rnnkit.data.features import FbankConfig, SpecAugmentConfig, features, spec_augment
from rnnkit.errors import UserError
from rnnkit.options import from_dict, opt, shared_fields
from rnnkit.tasks.base import RunOptions, Task
from rnnkit.tasks.speech.ctc_decode import CharVocab, WordLM, beam_search, greedy_decode
from rnnkit.tasks.speech.corpora import load_utterance
from rnnkit.tasks.speech.data import Utterance, read_dataset
from rnnkit.tasks.speech.feature_cache import DiskFeatureSet
from rnnkit.tasks.speech.network import SpeechModel, SpeechModelConfig
from rnnkit.train import torch_threads

Data = Union[str, Path, list]


@dataclass(kw_only=True)
class SpeechConfig(RunOptions):
    """Hyper-parameters of ``SpeechRecognizer``: architecture, training and decoding."""

    cell: str = opt("gru", "recurrent cell: gru, lstm, rnn, mingru")
    hidden_size: int = opt(192, "hidden units per direction", min=1, max=8192)
    num_layers: int = opt(3, "stacked bidirectional layers", min=1, max=64)
    conv_channels: int = opt(32, "channels of the two strided convolutions", min=1, max=4096)
    dropout: float = opt(0.1, "dropout", min=0.0, max=0.99)
    epochs: int = opt(30, "epochs", min=1, max=1_000_000)
    lr: float = opt(2e-3, "learning rate", min=0.0, max=10.0)
    batch_frames: int = opt(16000, "padded feature frames per batch (100 frames = 1 s)", min=1, max=100_000_000)
    specaugment: bool = opt(True, "SpecAugment masks on the training features")
    patience: int = opt(10, "early stopping: epochs without validation improvement (0 = off)", min=0,
                        max=1_000_000)
    beam: int = opt(8, "beam width of the decoder (0 or 1 = greedy)", min=0, max=1024)
    lm_weight: float = opt(1.0, "weight of the word-list log-probability in beam search", min=0.0, max=100.0)
    word_bonus: float = opt(3.0, "reward per completed word in beam search", min=-100.0, max=100.0)
    chunk_seconds: float = opt(20.0, "long files are decoded in chunks of about this length", min=1.0, max=3600.0)
    workers: int = opt(1, "threads for feature extraction", min=1, max=256)


_BEAM_BOUNDS = next((int(f.metadata["min"]), int(f.metadata["max"])) for f in fields(SpeechConfig) if f.name == "beam")


def _utterances(data: Data) -> list[Utterance]:
    if isinstance(data, (str, Path)):
        return read_dataset(data)
    return [u if isinstance(u, Utterance) else Utterance(Path(u[0]), u[1]) for u in data]


def _warn_dropped_letters(utts: list[Utterance], vocab: CharVocab) -> None:
    """The alphabet is fixed (English letters, apostrophe, space): a corpus in another language would
    otherwise train, silently, on transcripts with its other letters blanked out."""
    dropped = vocab.dropped_letters([u.text for u in utts])
    if dropped:
        top = ", ".join(f"{ch!r} ({n})" for ch, n in dropped.most_common(5))
        print(f"rnnkit: warning: {sum(dropped.values())} transcript letters are outside the speech alphabet "
              f"{vocab.chars.strip()!r} and are dropped: {top}", file=sys.stderr)


class SpeechRecognizer(Task):
    """Character CTC speech recogniser on rnnkit's recurrent layers."""

    task = "speech"
    Config = SpeechConfig
    onnx_inputs = ("feats", "lengths")

    def __init__(self, config: Optional[SpeechConfig] = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.vocab = CharVocab()
        self.fbank = FbankConfig()
        self.lm: Optional[WordLM] = None
        self.word_counts: dict[str, int] = {}
        self.bigram_counts: dict[str, dict[str, int]] = {}

    # ------------------------------------------------------------------ training
    def _build(self) -> SpeechModel:
        c = self.config
        mcfg = SpeechModelConfig(**shared_fields(c, SpeechModelConfig), n_mels=self.fbank.n_mels,
                                 vocab_size=len(self.vocab))
        return SpeechModel(mcfg)

    def fit(self, data: Data, val_data: Optional[Data] = None, out_dir: Optional[str] = None,
            resume: bool = False, epochs: Optional[int] = None) -> "SpeechRecognizer":
        """Train on a manifest / folder / list of (audio path, text). Returns self."""
        from rnnkit.train import TrainConfig, Trainer, seed_everything

        c = self.config
        seed_everything(c.seed)
        utts = _utterances(data)
        _warn_dropped_letters(utts, self.vocab)
        train = DiskFeatureSet(utts, self.vocab, self.fbank, progress=c.progress, workers=c.workers)
        val = (DiskFeatureSet(_utterances(val_data), self.vocab, self.fbank, progress=c.progress, workers=c.workers)
               if val_data else None)
        self.word_counts, self.bigram_counts = WordLM.count(train.texts)
        self.lm = WordLM.from_counts(self.word_counts, bigrams=self.bigram_counts)
        source = self.init_source()  # fine-tuning: the saved network (the alphabet is fixed)
        self.network = self.start_from(SpeechModel(source.network.cfg), source) if source is not None else self._build()
        aug = SpecAugmentConfig() if c.specaugment else None

        def loss_fn(model, batch, state):
            x, lengths, targets, target_lengths = batch
            if model.training and aug is not None:
                x = spec_augment(x, lengths, aug)
            log_probs, out_lengths = model(x, lengths)
            loss = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths,
                              blank=0, reduction="mean", zero_infinity=True)
            return loss, None

        tcfg = TrainConfig(epochs=epochs or c.epochs, lr=c.lr, optimizer="adamw", weight_decay=1e-4,
                           grad_clip=5.0, schedule="cosine", warmup_steps=min(100, len(train) // 20), min_lr_ratio=0.05,
                           patience=c.patience if val is not None else None, seed=c.seed,
                           max_time=c.max_time, device=c.device, progress=c.progress, logger=c.logger,
                           out_dir=out_dir, resume=resume)
        trainer = Trainer(self.network, tcfg, loss_fn, model_config=self.config_json(), extras=self.extras())
        val_batches = val.batches(c.batch_frames) if val is not None else None
        self.history = trainer.fit(lambda epoch: train.batches(c.batch_frames, shuffle=True, seed=c.seed + epoch),
                                   val_batches)
        self.network.to("cpu").eval()
        return self

    def add_words(self, phrases: list[str], weight: int = 1) -> "SpeechRecognizer":
        """Teach the decoder's word LM domain words or phrases (e.g. product names, commands);
        each phrase counts ``weight`` times, its word pairs feed the bigram table. Returns self."""
        texts = [self.vocab.normalize(p) for p in phrases for _ in range(max(1, weight))]
        uni, bi = WordLM.count(t for t in texts if t)
        for w, n in uni.items():
            self.word_counts[w] = self.word_counts.get(w, 0) + n
        for prev, follow in bi.items():
            mine = self.bigram_counts.setdefault(prev, {})
            for w, n in follow.items():
                mine[w] = mine.get(w, 0) + n
        self.lm = WordLM.from_counts(self.word_counts, bigrams=self.bigram_counts)
        return self

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def log_probs(self, wave: np.ndarray) -> np.ndarray:
        """Frame log-probabilities of one waveform (samples,) at 16 kHz -> (time/4, vocab).

        Runs on one CPU thread: batch-1 recurrent steps are too small to split, and on a busy
        machine extra threads spin-wait (measured 20x slower with 2 threads under load)."""
        model = self.require_trained().eval()
        with torch_threads(1):
            feats = features(wave, self.fbank)
            if feats.shape[0] < 4:
                return np.zeros((0, len(self.vocab)), dtype=np.float32)
            lp, _ = model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
            return lp[0].numpy()

    def decode(self, log_probs: np.ndarray, beam: Optional[int] = None, use_lm: bool = True) -> str:
        beam = self.config.beam if beam is None else beam
        lo, hi = _BEAM_BOUNDS  # SpeechConfig.beam's: -3 was greedy, 100,000 ran for minutes
        if not lo <= beam <= hi:
            raise UserError(f"--beam must lie in {lo}..{hi} (0 or 1 = greedy), got {beam}")
        if beam <= 1:
            return greedy_decode(log_probs, self.vocab)
        lm = self.lm if use_lm else None
        return beam_search(log_probs, self.vocab, beam=beam, lm=lm, alpha=self.config.lm_weight,
                           beta=self.config.word_bonus)

    def transcribe_wave(self, wave: np.ndarray, beam: Optional[int] = None, use_lm: bool = True) -> str:
        """Transcript of a 16 kHz waveform; long audio is split at quiet points into chunks."""
        wave = check_wave(wave)
        pieces = [self.decode(self.log_probs(chunk), beam, use_lm)
                  for chunk in split_long(wave, self.config.chunk_seconds)]
        return " ".join(p for p in pieces if p)

    def transcribe(self, path: Union[str, Path], beam: Optional[int] = None, use_lm: bool = True) -> str:
        return self.transcribe_wave(load_audio(path), beam, use_lm)

    def predict(self, paths: list, beam: Optional[int] = None, use_lm: bool = True) -> list[str]:
        return [self.transcribe(p, beam, use_lm) for p in paths]

    def evaluate(self, data: Data, beam: Optional[int] = None, use_lm: bool = True) -> dict:
        """WER/CER over a dataset, per-utterance errors, and the real-time factor of inference."""
        from rnnkit.metrics.speech import cer, per_utterance, wer

        utts = _utterances(data)
        refs, hyps, audio_s, compute_s = [], [], 0.0, 0.0
        for u in utts:
            wave = load_utterance(u)
            start = time.perf_counter()
            hyps.append(self.transcribe_wave(wave, beam, use_lm))
            compute_s += time.perf_counter() - start
            audio_s += wave.size / SAMPLE_RATE
            refs.append(self.vocab.normalize(u.text))
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "n": len(utts),
                "rtf": compute_s / max(audio_s, 1e-9), "audio_seconds": audio_s,
                "utterances": [dict(audio=str(u.audio), **asdict(e)) for u, e in zip(utts, per_utterance(refs, hyps))]}

    # ------------------------------------------------------------------ model folder
    def extras(self) -> dict:
        return {"vocab": self.vocab.to_json(), "fbank": asdict(self.fbank), "words": self.word_counts,
                "bigrams": self.bigram_counts}

    def restore(self, net: dict, extras: dict, where: str) -> SpeechModel:
        mcfg = from_dict(SpeechModelConfig, net, f"{where} net")
        try:
            self.fbank = FbankConfig(**extras["fbank"])
            self.vocab = CharVocab.from_json(extras["vocab"])
            self.word_counts = {str(k): int(v) for k, v in extras.get("words", {}).items()}
            self.bigram_counts = {str(k): {str(w): int(n) for w, n in v.items()}
                                  for k, v in extras.get("bigrams", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where}: fbank.json / vocab.json / words.json do not describe a speech model "
                            f"({type(exc).__name__}: {exc})") from None
        if self.word_counts:
            self.lm = WordLM.from_counts(self.word_counts, bigrams=self.bigram_counts)
        return SpeechModel(mcfg)


def split_long(wave: np.ndarray, chunk_seconds: float = 20.0, search_seconds: float = 2.0) -> list[np.ndarray]:
    """Cut wave (samples,) into pieces of about ``chunk_seconds``, each cut at the quietest 10 ms
    within ``search_seconds`` before the nominal boundary (so words are rarely split)."""
    size, hop = int(chunk_seconds * SAMPLE_RATE), SAMPLE_RATE // 100
    if wave.size <= size * 1.25:
        return [wave]
    pieces, start = [], 0
    while wave.size - start > size * 1.25:
        lo = start + size - int(search_seconds * SAMPLE_RATE)
        window = wave[lo: start + size]
        frames = window[: window.size // hop * hop].reshape(-1, hop)
        cut = lo + int(np.argmin((frames ** 2).mean(axis=1))) * hop + hop // 2
        pieces.append(wave[start:cut])
        start = cut
    pieces.append(wave[start:])
    return pieces
