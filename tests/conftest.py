"""Test-session settings.

pytest-xdist runs two workers on a 2-core machine: one torch thread each avoids
oversubscription (2 workers x 2 threads made training steps several times slower).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402

torch.set_num_threads(1)
