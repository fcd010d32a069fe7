"""Speech metrics: word and character error rates (jiwer), corpus-level and per utterance."""
from __future__ import annotations

from dataclasses import dataclass

from rnnkit.errors import UserError


def _jiwer():
    try:
        import jiwer
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise UserError("speech metrics need 'jiwer': pip install 'rnnkit[speech]'") from exc
    return jiwer


@dataclass
class UtteranceError:
    """One utterance: reference, hypothesis and its own error rates."""

    reference: str
    hypothesis: str
    wer: float
    cer: float


def _safe(texts: list[str]) -> list[str]:
    # jiwer refuses empty references/hypotheses; a lone space keeps the counts right for hypotheses
    return [t if t.strip() else " " for t in texts]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: (substitutions + deletions + insertions) / reference words."""
    if len(references) != len(hypotheses):
        raise UserError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [r for r in references if r.strip()]
    if not refs:
        raise UserError("all reference transcripts are empty")
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    return float(_jiwer().wer([r for r, _ in pairs], _safe([h for _, h in pairs])))


def cer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus character error rate (spaces count as characters)."""
    if len(references) != len(hypotheses):
        raise UserError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        raise UserError("all reference transcripts are empty")
    return float(_jiwer().cer([r for r, _ in pairs], _safe([h for _, h in pairs])))


def per_utterance(references: list[str], hypotheses: list[str]) -> list[UtteranceError]:
    """Error rates of each utterance (empty references get rate 0 if the hypothesis is empty, else 1)."""
    out = []
    for r, h in zip(references, hypotheses):
        if r.strip():
            out.append(UtteranceError(r, h, wer([r], [h]), cer([r], [h])))
        else:
            out.append(UtteranceError(r, h, float(bool(h.strip())), float(bool(h.strip()))))
    return out
