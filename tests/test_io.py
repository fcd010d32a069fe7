"""Atomic output: the target appears whole or not at all, with normal permissions."""
import os
import stat

import pytest

from rnnkit.io import atomic_path, atomic_write_text


def test_success_replaces_target_with_normal_permissions(tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("old")
    atomic_write_text(out, "new")
    assert out.read_text() == "new"
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, unlike a bare mkstemp file
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]


def test_failure_leaves_target_untouched_and_no_temp_file(tmp_path):
    out = tmp_path / "plot.png"
    out.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert out.read_text() == "previous"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_temp_file_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "a.flac") as tmp:
        assert tmp.suffix == ".flac" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
