"""MiniRocket (aeon) on one data set; run by bench/archive.py with an interpreter where aeon installs.

aeon 1.6.0 needs pandas < 3.1, the project pins 3.1.1, so this runs in a separate environment:
``python bench/_archive_baselines.py IN.npz`` prints one JSON line {"minirocket": acc, "seconds": s}.
IN.npz holds X_train, y_train, X_test, y_test as (n, channels, length) arrays (equal length).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(path: str) -> None:
    from aeon.classification.convolution_based import MiniRocketClassifier

    with np.load(path, allow_pickle=False) as z:
        Xtr, ytr, Xte, yte = z["X_train"], z["y_train"], z["X_test"], z["y_test"]
    t0 = time.perf_counter()
    clf = MiniRocketClassifier(random_state=0, n_jobs=1).fit(Xtr, ytr)
    acc = float(np.mean(clf.predict(Xte) == yte))
    import aeon

    print(json.dumps({"minirocket": acc, "seconds": round(time.perf_counter() - t0, 2), "aeon": aeon.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
