"""Configs: plain nested dicts with attribute access, dotted overrides and experiment files.

An experiment is a Python file (see ``experiments/``) with

* ``get_config(smoke: bool = False) -> Config``: every hyper-parameter of the run;
* ``build(config, info) -> (game, g_tx, d_tx)``: the networks, losses and optimisers, as code.

Configs hold only JSON values, so the resolved config is written to ``config.json`` and a run can
be rebuilt from it (``jaxgan sample``/``eval``). ``--set train.batch_size=128`` overrides a field; the
new value must parse as the type of the old one.
"""
from __future__ import annotations

import copy
import difflib
import importlib.util
import json
import pathlib
import types
from typing import Any

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"


class Config(dict):
    """A dict whose keys read as attributes (``config.train.batch_size``); nested dicts convert."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k, v in self.items():
            if isinstance(v, dict) and not isinstance(v, Config):
                super().__setitem__(k, Config(v))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no field {name!r}; fields: {', '.join(sorted(self))}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = Config(value) if isinstance(value, dict) else value

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(dict(self), memo))

    def to_json(self) -> str:
        return json.dumps(self, indent=2, sort_keys=True)


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_value(key: str, text: str, old: Any) -> Any:
    """Parses ``text`` as the type of ``old``; a clear error otherwise."""
    def fail(kind):
        return ValueError(f"--set {key}={text}: expected {kind} (the current value is {old!r})")

    if isinstance(old, dict):
        example = next(iter(old), "field")
        raise ValueError(f"--set {key}={text}: {key!r} is a group of fields; set one of them, "
                         f"e.g. --set {key}.{example}=...")
    if isinstance(old, bool):
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise fail("a boolean (true/false)")
    if isinstance(old, int):
        try:
            return int(text)
        except ValueError:
            raise fail("an integer") from None
    if isinstance(old, float):
        try:
            return float(text)
        except ValueError:
            raise fail("a number") from None
    if isinstance(old, str):
        return text
    try:  # None and lists: JSON, with bare words read as strings
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if old is not None and not isinstance(value, type(old)):
        raise fail(f"a JSON {type(old).__name__}")
    return value


def override(config: Config, assignment: str) -> None:
    """Applies one ``dotted.key=value`` to ``config`` in place."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.batch_size=128")
    key, text = assignment.split("=", 1)
    *parents, leaf = key.strip().split(".")
    node, path = config, []
    for part in parents:
        path.append(part)
        if not isinstance(node.get(part), dict):
            raise KeyError(_unknown(".".join(path), node))
        node = node[part]
    if leaf not in node:
        raise KeyError(_unknown(key, node))
    node[leaf] = parse_value(key, text, node[leaf])


def _unknown(key: str, node: dict) -> str:
    leaf = key.split(".")[-1]
    close = difflib.get_close_matches(leaf, list(node), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {key!r}{hint} (known here: {', '.join(sorted(node))})"


def find_experiment(name_or_path: str) -> pathlib.Path:
    """An experiment file: a path, or a name in ./experiments or jaxgan's experiments/."""
    path = pathlib.Path(name_or_path)
    if path.suffix == ".py" and path.exists():
        return path.resolve()
    for folder in (pathlib.Path.cwd() / "experiments", EXPERIMENTS_DIR):
        candidate = folder / f"{name_or_path}.py"
        if candidate.exists():
            return candidate.resolve()
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))
    raise FileNotFoundError(f"no experiment {name_or_path!r}: give a path to a .py file or one of "
                            f"{', '.join(known) or '(none found)'}")


def load_experiment(name_or_path: str) -> types.ModuleType:
    """Imports an experiment file as a module; it must define get_config and build."""
    path = find_experiment(name_or_path)
    spec = importlib.util.spec_from_file_location(f"jaxgan_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fn in ("get_config", "build"):
        if not callable(getattr(module, fn, None)):
            raise AttributeError(f"experiment {path} defines no {fn}(): see experiments/ring8.py")
    return module


def resolve(name_or_path: str, overrides: list[str] = (), smoke: bool = False
            ) -> tuple[Config, types.ModuleType]:
    """Loads an experiment, applies overrides and records where it came from."""
    module = load_experiment(name_or_path)
    config = Config(module.get_config(smoke=smoke))
    for assignment in overrides:
        override(config, assignment)
    config["experiment"] = str(find_experiment(name_or_path))
    config["smoke"] = bool(smoke)
    return config, module
