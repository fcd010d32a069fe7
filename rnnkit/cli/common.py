"""What every ``train`` command shares: flags generated from a config dataclass, the run flags,
the config file, the ``--out`` rule and the rank-0 save.

A task's ``train`` parser is ``add_train_flags(parser, TaskConfig)`` plus its data flags; the
command builds its config with ``resolve_config(args, TaskConfig)``: defaults live only in the
dataclass, a ``--config`` file (TOML, or a model folder's ``config.json``) overrides them, and
flags given on the command line override the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from rnnkit.errors import UserError
from rnnkit.options import field_type, from_dict


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _numbers(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return parse


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls`` declared with ``opt(..., flag=True)``; unset flags stay unset."""
    for f in dataclasses.fields(cls):
        if not f.metadata.get("flag", False) or f.name in skip:
            continue
        kind, _ = field_type(cls, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        suffix = "" if default is None else f" (default: {shown})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": f.metadata["help"] + suffix}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is tuple:
            kw["type"], kw["metavar"] = _numbers(float), "X,Y,..."
        else:
            kw["type"] = kind
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag_name(f.name), **kw)


def add_train_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """The shared run flags plus the generated flags of ``cls``."""
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training in --out")
    parser.add_argument("--config", metavar="FILE", help="settings from a TOML file or a model folder's config.json "
                                                         "(flags given here override it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(parser, cls, skip)


def read_config_file(path: str) -> dict:
    """Settings of a ``--config`` file: TOML (top level or an [options] table) or JSON (config.json's options)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config {p}: file not found")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise UserError(f"--config {p}: unreadable ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(data, dict) and isinstance(data.get("options"), dict):
        data = data["options"]
    if not isinstance(data, dict):
        raise UserError(f"--config {p}: expected a table of settings")
    return data


def resolve_config(args: argparse.Namespace, cls: type, **fixed: Any) -> Any:
    """The run's config: dataclass defaults < ``--config`` file < flags < ``fixed`` (all checked)."""
    values = read_config_file(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    values.update(fixed)
    if getattr(args, "quiet", False):
        values["progress"] = False
    where = f"settings (--config {args.config} and flags)" if getattr(args, "config", None) else "settings"
    return from_dict(cls, values, where, label=flag_name)


def check_out_dir(out: str, resume: bool, task: Optional[str] = None) -> Path:
    """Refuse to overwrite a model folder unless resuming; refuse a file; with ``task``, refuse to
    resume (and so write into) another task's folder."""
    path = check_out_folder(out)  # checked before any training, not after it
    if path.is_dir() and (path / "config.json").exists() and not resume:
        raise UserError(f"--out {path}: already holds a model; choose another folder or pass --resume")
    if resume and task is not None:
        for cfg in (path / "checkpoint" / "config.json", path / "config.json"):
            try:
                found = json.loads(cfg.read_text(encoding="utf-8")).get("task", task)
            except (OSError, ValueError, AttributeError):  # absent or damaged: the trainer's checks report it
                continue
            if found != task:
                raise UserError(f"--out {path}: holds a {found!r} model, not a {task!r} model; --resume continues "
                                f"a run of the same task")
    return path


def check_out_file(out: str, flag: str = "--out") -> Path:
    """An output file's path, checked before any work: not a folder, and its folder exists (a
    mistyped folder is named rather than created)."""
    path = Path(out)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")
    return path


def check_out_folder(out: str, flag: str = "--out") -> Path:
    """An output folder's path, checked before any work: not an existing file (created later)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a folder")
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is not a folder")
    return path


@contextmanager
def removed_on_error(out: Path) -> Iterator[None]:
    """Remove the folder ``out`` if the block fails with a UserError (training diverged, bad data found
    late) and the folder did not exist before: a failed run leaves no half-written model folder.
    Other errors (Ctrl-C) keep it, with its checkpoint, for ``--resume``."""
    fresh = not out.exists()
    try:
        yield
    except UserError:
        if fresh and is_rank0():
            shutil.rmtree(out, ignore_errors=True)
        raise


def is_rank0() -> bool:
    """True unless this is a non-zero rank under torchrun (only rank 0 writes files)."""
    return int(os.environ.get("RANK", "0")) == 0


def save_trained(task: Any, out: Path) -> Optional[Path]:
    """Save the model folder on rank 0 only; returns the folder (None on other ranks)."""
    if not is_rank0():
        return None
    return task.save(out)
