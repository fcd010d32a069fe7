"""Standing rules checked like tinygrad's line count: small modules, no pickle anywhere."""
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnnkit"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_stays_under_400_lines():
    big = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not big, f"split these by responsibility: {big}"


def test_no_pickle_and_torch_load_only_with_weights_only():
    offenders = []
    for p in MODULES:
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bimport pickle\b|pickle\.load|np\.load\(.*allow_pickle=True", line):
                offenders.append(f"{p.name}:{i}")
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{p.name}:{i}")
    assert not offenders, offenders
