"""DDP under torchrun (gloo, CPU): 2 processes end with identical weights and the loss falls."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.train.checkpoint import load_tensors

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_two_process_ddp(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parents[1]))
    # --standalone: a local rendezvous on a free port, so parallel test runs cannot collide.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           str(SCRIPT), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["steps"] == r1["steps"] == 6 * 4  # 8 batches per epoch, half on each rank
    assert r0["best"] == pytest.approx(r1["best"], abs=1e-12)  # val loss averaged over ranks
    assert r0["best"] < 0.5 * r0["first"], (r0["first"], r0["best"])
    w0, w1 = load_tensors(tmp_path / "rank0.safetensors"), load_tensors(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    # only rank 0 writes run files and the progress bar
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "checkpoint").is_dir()
    assert proc.stderr.count("epoch 6/6  step 24") == 1
