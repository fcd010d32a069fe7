"""Test-session settings.

pytest-xdist runs two workers on a 2-core machine: one torch thread each avoids
oversubscription (2 workers x 2 threads made training steps several times slower).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402

torch.set_num_threads(1)

# Prepared token files and speech features (rnnkit.data.cache) go to a throw-away cache, not ~/.cache.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# One per process: xdist workers inherit the controller's environment, and a shared folder would let
# one worker's entries appear in another's cache-reuse assertions.
if "RNNKIT_CACHE_DIR" not in os.environ or os.environ["RNNKIT_CACHE_DIR"] == os.environ.get("RNNKIT_TEST_CACHE_DIR"):
    os.environ["RNNKIT_CACHE_DIR"] = os.environ["RNNKIT_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnkit-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RNNKIT_CACHE_DIR"], True)
