"""The shipped real recordings and the pocketsphinx baseline runner."""
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("soundfile")
pytest.importorskip("jiwer")

from rnnkit.data.audio import load_audio  # noqa: E402
from rnnkit.tasks.speech.data import read_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "rnnkit" / "data" / "datasets" / "speech_real"


def test_shipped_real_recordings_are_readable_and_licensed():
    utts = read_dataset(REAL)
    assert len(utts) == 12 and all(u.text.strip() for u in utts)
    assert "BSD" in (REAL / "LICENSE.txt").read_text() or "Redistribution" in (REAL / "LICENSE.txt").read_text()
    seconds = sum(load_audio(u.audio).size for u in utts) / 16000
    assert 35 < seconds < 50


def test_pocketsphinx_baseline_scores_a_folder(tmp_path):
    pytest.importorskip("pocketsphinx")
    sys.path.insert(0, str(ROOT))
    from bench.pocketsphinx_baseline import score, table

    shutil.copy(REAL / "goforward.flac", tmp_path)
    shutil.copy(REAL / "goforward.txt", tmp_path)
    result = score(tmp_path)
    assert result["rows"][0]["pocketsphinx"] == "go forward ten meters"
    assert result["systems"]["pocketsphinx"]["wer"] == 0.0
    assert "| pocketsphinx |" in table(result)
