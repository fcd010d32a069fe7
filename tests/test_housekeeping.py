"""Housekeeping of files rnnkit leaves on disk (issue 15): stale checkpoint temp folders of a killed run
are removed when training starts, and the C-kernel cache is a private folder whose libraries are
loaded only when this user owns them and nobody else can write them."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.nn import kernel_cache, kernels
from rnnkit.train import Trainer, TrainConfig
from rnnkit.train.checkpoint import remove_stale_temps

SOURCE = "int three(void) { return 3; }\n"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
needs_cc = pytest.mark.skipif(not kernels.available(), reason="no C compiler / kernels disabled")


# ----------------------------------------------------------------------------- stale temps
def test_trainer_start_removes_only_rnnkit_temps(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale_dir = out / ".checkpoint.ab12cd_3.tmp"  # a killed run's half-written checkpoint (mkdtemp name)
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"half")
    stale_file = out / ".metrics.k2j4h5g6.tmp.csv"  # an io.atomic_path temp
    stale_file.write_text("x")
    keep = [out / "notes.tmp", out / ".checkpoint.tmp", out / "data.csv", out / ".hidden"]
    for p in keep:
        p.write_text("user file")
    x = torch.randn(32, 5, 1)
    y = x.sum(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 1))
    loss = lambda m, b, s: (nn.functional.mse_loss(m(b[0]), b[1]), None)  # noqa: E731
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    hist = Trainer(model, TrainConfig(epochs=2, lr=1e-2, progress=False, device="cpu", out_dir=str(out)), loss).fit(data)
    assert hist.rows[-1]["train_loss"] < hist.rows[0]["train_loss"]  # it really trained
    assert not stale_dir.exists() and not stale_file.exists()
    assert all(p.read_text() == "user file" for p in keep)
    assert (out / "checkpoint" / "trainer_state.json").is_file()


def test_remove_stale_temps_leaves_other_names(tmp_path):
    for name in ("checkpoint", ".checkpoint.old", ".x.ABCDEFGH.tmp", ".x.abc.tmp", "a.b12345678.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / ".config.json.q1w2e3r4.tmp").write_text("{")
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".config.json.q1w2e3r4.tmp"]
    assert len(list(tmp_path.iterdir())) == 5


# ----------------------------------------------------------------------------- kernel cache
def build(cache_env: Path, monkeypatch) -> dict:
    monkeypatch.setenv("RNNKIT_CACHE_DIR", str(cache_env))
    return kernels.build_library("cachetest", SOURCE, {"f32": []}, {"three": []})


@needs_cc
def test_cache_is_created_private_and_used(tmp_path, monkeypatch):
    libs = build(tmp_path / "cache", monkeypatch)
    assert libs["f32"].three() == 3
    folder = tmp_path / "cache" / "kernels"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (so,) = folder.glob("cachetest_f32_*.so")
    assert so.stat().st_uid == os.getuid() and not so.stat().st_mode & 0o022


def test_cache_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernel_cache.cache_candidates()[0] == tmp_path / "rnnkit" / "kernels"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    assert kernel_cache.cache_candidates()[0] == Path.home() / ".cache" / "rnnkit" / "kernels"
    assert kernel_cache.cache_candidates()[-1].parent == Path(tempfile.gettempdir())


def test_open_folder_of_ours_is_narrowed_to_0700(tmp_path):
    d = tmp_path / "k"
    d.mkdir()
    os.chmod(d, 0o777)
    assert kernel_cache.private_dir(d) == d
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_symlinked_cache_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert kernel_cache.private_dir(tmp_path / "link") is None


def test_world_writable_parent_without_sticky_bit_is_refused(tmp_path):
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)  # anyone could swap our folder for theirs
    assert kernel_cache.private_dir(parent / "rnnkit-x") is None
    os.chmod(parent, 0o1777)  # sticky (like /tmp): only the owner may rename it
    assert kernel_cache.private_dir(parent / "rnnkit-y") == parent / "rnnkit-y"


@pytest.mark.skipif(not ROOT, reason="needs root to create a folder owned by another user")
def test_folder_of_another_user_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    assert kernel_cache.private_dir(d) is None


@needs_cc
def test_writable_library_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    """A .so that others could have written is deleted and rebuilt before anything loads it."""
    build(tmp_path / "cache", monkeypatch)
    (so,) = (tmp_path / "cache" / "kernels").glob("cachetest_f32_*.so")
    so.unlink()  # a new file, not an overwrite: this process has the old one mapped
    so.write_bytes(b"planted, not an ELF file")
    os.chmod(so, 0o777)
    assert not kernel_cache.trusted_file(so)
    libs = build(tmp_path / "cache", monkeypatch)
    assert libs["f32"].three() == 3 and kernel_cache.trusted_file(so)


@pytest.mark.skipif(not ROOT, reason="needs root to plant a library owned by another user")
@needs_cc
def test_library_of_another_user_is_rebuilt(tmp_path, monkeypatch):
    build(tmp_path / "cache", monkeypatch)
    (so,) = (tmp_path / "cache" / "kernels").glob("cachetest_f32_*.so")
    so.unlink()
    so.write_bytes(b"planted")
    os.chown(so, 65534, 65534)
    assert build(tmp_path / "cache", monkeypatch)["f32"].three() == 3
    assert so.stat().st_uid == os.getuid()


def unusable_cache_and_shared_tmp(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A cache path below a regular file (cannot be created) and a sticky 1777 folder as the system tmp."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    shared = tmp_path / "shared_tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return blocker / "cache", shared


@needs_cc
def test_temp_fallback_is_a_private_folder(tmp_path, monkeypatch):
    """An unusable cache (here: below a file) falls back to <tmp>/rnnkit-<uid>, created 0700."""
    blocked, shared = unusable_cache_and_shared_tmp(tmp_path, monkeypatch)
    libs = build(blocked, monkeypatch)
    assert libs["f32"].three() == 3
    own = shared / f"rnnkit-{os.getuid()}"
    assert stat.S_IMODE(own.stat().st_mode) == 0o700 and list(own.glob("cachetest_f32_*.so"))


@pytest.mark.skipif(not ROOT, reason="needs root to create a folder owned by another user")
@needs_cc
def test_temp_fallback_squatted_by_another_user_is_not_used(tmp_path, monkeypatch):
    blocked, shared = unusable_cache_and_shared_tmp(tmp_path, monkeypatch)
    squat = shared / f"rnnkit-{os.getuid()}"
    squat.mkdir(mode=0o777)
    os.chown(squat, 65534, 65534)
    assert build(blocked, monkeypatch) == {}  # no kernels (pure-torch fallback), nothing loaded
    assert not list(squat.iterdir())


@needs_cc
def test_loading_kernels_keeps_subnormals(tmp_path, monkeypatch):
    """gcc's crtfastmath.o (linked by -ffast-math -shared) would set flush-to-zero for the whole process."""
    build(tmp_path / "cache", monkeypatch)
    assert kernels.available()
    tiny = np.array([5e-324]) * 1.0
    assert tiny[0] > 0
    assert float(torch.tensor([1e-40], dtype=torch.float32)[0] * 1.0) > 0
