"""The README is an executable contract: every command of its "Command line" block runs, as written
up to quick settings (shorter training, a smaller synthetic corpus), from a fresh folder beside the
shipped data. ``rnnkit demo`` and ``rnnkit bench`` take minutes even with ``--quick``: they run in
the ``slow`` test."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = ("rnnkit demo", "rnnkit bench")
# Appended to a command that starts with the key: the same command with a small budget.
QUICK = {
    "rnnkit forecast train": "--epochs 2",
    "rnnkit forecast backtest": "--epochs 2",
    "rnnkit text train": "--epochs 1 --hidden-size 32 --batch-size 8",
    "rnnkit classify train": "--epochs 1 --max-time 10",
    "rnnkit speech synth": "--digits 16 --numbers 0 --words 0 --sentences 0 --test 4 --flite 0",
    "rnnkit speech train": "--epochs 1 --max-time 10 --hidden-size 16 --num-layers 1 --conv-channels 4",
}
SERVE_CHECK = """python - "$@" <<'PY'
import os, socket, subprocess, sys, time, urllib.request
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
args = sys.argv[1:]
args[args.index("--port") + 1] = str(port)
proc = subprocess.Popen(["rnnkit", *args])
try:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                print(r.read().decode()); break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit("server did not answer /health")
finally:
    proc.terminate(); proc.wait(timeout=30)
PY"""


def readme_commands() -> list[str]:
    """The logical lines (comments stripped) of the README's "Command line" bash block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Command line"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = []
    for raw in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def quick(command: str) -> str:
    """The command with quick settings (each ``&&`` part on its own)."""
    parts = []
    for part in (p.strip() for p in command.split("&&")):
        for prefix, extra in QUICK.items():
            if part.startswith(prefix):
                part = f"{part} {extra}"
        if part.startswith("rnnkit serve"):
            part = "serve_check " + shlex.join(shlex.split(part)[1:])
        parts.append(part)
    return " && ".join(parts)


def run_block(tmp_path: Path, commands: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "rnnkit").symlink_to(ROOT / "rnnkit")  # $D=rnnkit/data/datasets resolves as in the repository
    script = "set -euo pipefail\nserve_check() {\n" + SERVE_CHECK + "\n}\n" + "\n".join(commands)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def test_readme_commands_run_as_written(tmp_path):
    commands = [quick(c) for c in readme_commands() if not c.startswith(SLOW)]
    assert len(commands) >= 15
    done = run_block(tmp_path, commands)
    assert done.returncode == 0, f"README command failed:\n{done.stderr[-3000:]}"
    for made in ("models/airline/config.json", "models/shakespeare/model.safetensors", "models/names/config.json",
                 "models/asr/config.json", "names.onnx", "airline.onnx", "pred.csv", "runs/bt/summary.md"):
        assert (tmp_path / made).is_file(), made
    assert '"task"' in done.stdout  # the served model answered /health


@pytest.mark.slow
def test_readme_demo_and_bench_run(tmp_path):
    commands = [c for c in readme_commands() if c.startswith(SLOW)]
    assert commands
    done = run_block(tmp_path, commands)
    assert done.returncode == 0, done.stderr[-3000:]


def test_demo_environment_has_what_the_readme_uses():
    """`make demo` installs every extra the README's commands need (export and serve included)."""
    makefile = (ROOT / "Makefile").read_text()
    demo_extras = re.search(r"\$\(VENV\)/\.demo:.*?-e '\.\[([^\]]*)\]'", makefile, re.S).group(1).split(",")
    commands = " ".join(readme_commands())
    needs = {"speech": "rnnkit speech", "export": "rnnkit export", "serve": "rnnkit serve"}
    assert all(extra in demo_extras for extra, cmd in needs.items() if cmd in commands), demo_extras
