"""The one model-folder format: ``config.json`` + ``model.safetensors`` + small JSON extras.

Everything is written atomically (temp file or temp folder, then ``os.replace``) so a crash never
leaves a half-written model, and nothing is pickled: tensors go through safetensors, the rest JSON.

Also the tensor-tree helpers the trainer uses to store optimizer / RNG / TBPTT state in
``trainer_state.safetensors`` + ``trainer_state.json``.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

import rnnkit
from rnnkit.errors import UserError, exc_summary

PathLike = Union[str, os.PathLike]
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
# JSON files in a model folder that are not user extras.
RESERVED = {CONFIG, "trainer_state.json"}
_ALIASES_KEY = "rnnkit_aliases"  # safetensors metadata: {"alias": "stored key"} for tied weights
_UMASK = os.umask(0)
os.umask(_UMASK)


def _mkstemp(path: Path) -> tuple[int, str]:
    """Temp file next to ``path`` with normal permissions (mkstemp alone gives 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)
    return fd, tmp


def make_temp_dir(path: Path) -> Path:
    """Temp folder next to ``path`` (to be renamed onto it) with normal permissions."""
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


# The names the temp helpers here and in rnnkit.io give: "." + target name + "." + tempfile's
# 8 random characters + ".tmp" (+ the target's suffix for io.atomic_path).
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def remove_stale_temps(folder: PathLike) -> list[Path]:
    """Delete temp files/folders a killed run left in ``folder`` (only rnnkit's own temp names);
    returns what was removed. Call it only where no other writer is active (a trainer's start)."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not _TEMP_NAME.match(p.name):
            continue
        try:
            if p.is_symlink() or not p.is_dir():
                p.unlink()
            else:
                shutil.rmtree(p)
            removed.append(p)
        except OSError:
            continue  # not ours to remove (permissions): leave it
    return removed


# ---------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + ``os.replace``."""
    path = Path(path)
    fd, tmp = _mkstemp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _unlink(path: PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- tensors
def save_tensors(path: PathLike, tensors: Mapping[str, Tensor], metadata: Optional[dict] = None) -> None:
    """safetensors file written atomically. Tensors sharing memory (tied weights) are stored once."""
    stored: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for key, t in tensors.items():
        t = t.detach()
        ident = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride())) if t.numel() else None
        if ident is not None and ident in seen:
            aliases[key] = seen[ident]
            continue
        if ident is not None:
            seen[ident] = key
        # A contiguous CPU clone: safetensors refuses views and shared storage.
        stored[key] = t.to("cpu", copy=True).contiguous()
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    if aliases:
        meta[_ALIASES_KEY] = json.dumps(aliases)
    atomic_write_bytes(path, save(stored, metadata=meta or None))


def load_tensors(path: PathLike) -> dict[str, Tensor]:
    """Inverse of :func:`save_tensors` (aliases restored). Raises UserError on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt data
        raise UserError(f"{path}: corrupt or truncated safetensors file ({exc_summary(exc)})") from None
    for alias, key in json.loads(meta.get(_ALIASES_KEY, "{}")).items():
        tensors[alias] = tensors[key]
    return tensors


# ---------------------------------------------------------------- model folders
def save_model(dir: PathLike, model: nn.Module, config: dict, extras: Optional[dict] = None) -> Path:
    """Write a model folder: ``config.json`` (config + ``rnnkit_version``), ``model.safetensors``
    and ``<name>.json`` for each extra (small JSON-able values: vocabulary, scaler, labels).

    A new folder is written as a temp folder and renamed, so it is never half-written. An existing
    folder keeps its other files (e.g. a trainer's ``metrics.csv``); each file is replaced atomically.
    """
    dir = Path(dir)
    extras = dict(extras or {})
    for name in extras:
        if not name or "/" in name or name + ".json" in RESERVED:
            raise ValueError(f"bad extra name {name!r}")
    cfg = dict(config)
    cfg["rnnkit_version"] = rnnkit.__version__
    state = _model(model).state_dict()
    try:
        json.dumps(cfg), json.dumps(extras)
    except TypeError as exc:
        raise ValueError(f"config/extras must be JSON-serialisable: {exc}") from None

    def write_all(target: Path) -> None:
        save_tensors(target / WEIGHTS, state)
        for name, value in extras.items():
            atomic_write_json(target / f"{name}.json", value)
        atomic_write_json(target / CONFIG, cfg)  # last: its presence marks a complete folder

    if dir.is_dir():
        write_all(dir)
        return dir
    dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dir)
    try:
        write_all(tmp)
        os.replace(tmp, dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dir


def _model(model: nn.Module) -> nn.Module:
    """The wrapped module of a DDP / DataParallel model."""
    return getattr(model, "module", model) if isinstance(
        model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def read_json(path: PathLike, what: str = "file") -> Any:
    """Parse a JSON file; UserError (one line) when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: corrupt or truncated JSON ({exc_summary(exc)})") from None
    except RecursionError:  # json's C parser recurses once per nesting level
        raise UserError(f"{path}: JSON nested too deeply") from None


def check_version(version: Any, where: PathLike) -> None:
    """Refuse files written by a newer major version of rnnkit."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise UserError(f"{where}: bad rnnkit_version {version!r}") from None
    ours = int(rnnkit.__version__.split(".")[0])
    if major > ours:
        raise UserError(f"{where}: written by rnnkit {version}, newer than this rnnkit "
                        f"{rnnkit.__version__}; upgrade rnnkit to load it")


def load_model(dir: PathLike, task: Optional[str] = None) -> tuple[dict, dict[str, Tensor], dict[str, Any]]:
    """Read a model folder -> ``(config, state_dict, extras)``; UserError on anything wrong,
    including a folder of another task than ``task`` (when given)."""
    dir = Path(dir)
    if not dir.exists():
        raise UserError(f"model folder not found: {dir}")
    if not dir.is_dir():
        raise UserError(f"{dir}: not a model folder (expected a folder with {CONFIG} and {WEIGHTS})")
    config = read_json(dir / CONFIG, what=f"{CONFIG} (not a model folder?)")
    if not isinstance(config, dict):
        raise UserError(f"{dir / CONFIG}: expected a JSON object")
    check_version(config.get("rnnkit_version", "0"), dir / CONFIG)
    if task is not None and config.get("task") != task:
        raise UserError(f"{dir}: a {config.get('task')!r} model, not a {task!r} model")
    state = load_tensors(dir / WEIGHTS)
    check_finite(state, dir / WEIGHTS)
    extras = {}
    for p in sorted(dir.glob("*.json")):
        if p.name not in RESERVED and not p.name.startswith("."):
            extras[p.stem] = read_json(p)
    return config, state, extras


def check_finite(state: Mapping[str, Tensor], where: PathLike) -> None:
    """Refuse NaN/inf weights: they load silently and make every prediction NaN."""
    for name, t in state.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"{where}: tensor {name!r} holds {n_bad} non-finite value(s) (NaN/inf); "
                            f"the model is damaged (retrain, or resume from an earlier checkpoint)")


def load_state_into(model: nn.Module, state_dict: Mapping[str, Tensor], strict: bool = True,
                    where: str = "model.safetensors") -> None:
    """``model.load_state_dict`` that reports shape mismatches / missing keys by name, in one line."""
    model = _model(model)
    own = model.state_dict()
    problems = []
    for k, v in state_dict.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            problems.append(f"{k} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} in the model")
    if strict:
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing:
            problems.append("missing " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        if unexpected:
            problems.append("unexpected " + ", ".join(unexpected[:5]) + (" ..." if len(unexpected) > 5 else ""))
    if problems:
        raise UserError(f"{where} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(dict(state_dict), strict=strict)


# ---------------------------------------------------------------- tensor trees (no pickle)
def flatten_tree(tree: Any, prefix: str, out: dict[str, Tensor]) -> Any:
    """Split a nested tuple/list/dict/tensor/scalar tree into tensors (added to ``out`` under
    ``prefix.*`` keys) and a JSON skeleton that :func:`unflatten_tree` turns back into the tree."""
    if isinstance(tree, Tensor):
        out[prefix] = tree
        return {"t": prefix}
    if isinstance(tree, (tuple, list)):
        return {"seq": [flatten_tree(v, f"{prefix}.{i}", out) for i, v in enumerate(tree)],
                "tuple": isinstance(tree, tuple)}
    if isinstance(tree, dict):
        return {"map": [[k, flatten_tree(v, f"{prefix}.{i}", out)] for i, (k, v) in enumerate(tree.items())]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return {"v": tree}
    raise TypeError(f"cannot store {type(tree).__name__} in a checkpoint")


def unflatten_tree(skeleton: Any, tensors: Mapping[str, Tensor]) -> Any:
    if "t" in skeleton:
        return tensors[skeleton["t"]]
    if "seq" in skeleton:
        items = [unflatten_tree(v, tensors) for v in skeleton["seq"]]
        return tuple(items) if skeleton["tuple"] else items
    if "map" in skeleton:
        return {k: unflatten_tree(v, tensors) for k, v in skeleton["map"]}
    return skeleton["v"]


# ---------------------------------------------------------------- RNG states (no pickle)
def rng_state() -> dict:
    """Every RNG a training step may touch (torch CPU + CUDA, numpy, python) as a tensor tree."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),  # uint8
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss},
    }


def set_rng_state(rng: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = rng["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
