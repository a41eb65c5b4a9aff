"""Configs: plain nested dicts with attribute access, dotted overrides and experiment files.

An experiment is a Python file (see ``experiments/``) with

* ``get_config(smoke: bool = False) -> Config``: every hyper-parameter of the run;
* ``build(config, info) -> (game, g_tx, d_tx)``: the networks, losses and optimisers, as code.

Configs hold only JSON values, so the resolved config is written to ``config.json`` and a run can
be rebuilt from it (``jaxgan sample``/``eval``). ``--set train.batch_size=128`` overrides a field; the
new value must parse as the type of the old one.
"""
from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import importlib.util
import json
import linecache
import os
import pathlib
import types
from typing import Any

from jaxgan.errors import ExperimentError, OverrideError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments"
# A global of every module load_experiment imports: the frames of experiment code carry it, so an
# error can be told apart as the experiment file's (see experiment_frame).
EXPERIMENT_MARK = "__jaxgan_experiment_file__"
GAME_METHODS = ("init", "d_loss", "g_loss", "generate")  # jaxgan.game.Game


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
            raise AttributeError(_no_field(name, self)) from None

    def __missing__(self, name: str) -> Any:  # config["hiden"]: the same message as config.hiden
        raise MissingFieldError(_no_field(name, self))

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = Config(value) if isinstance(value, dict) else value

    def __deepcopy__(self, memo):
        return Config(copy.deepcopy(dict(self), memo))

    def to_json(self) -> str:
        return json.dumps(self, indent=2, sort_keys=True)


class MissingFieldError(KeyError):
    """``config["name"]`` of a field the config lacks (a KeyError whose text is the message, unquoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _no_field(name: Any, node: dict) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in node], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"config has no field {name!r}{hint}; fields: {', '.join(sorted(map(str, node))) or '(none)'}"


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_value(key: str, text: str, old: Any) -> Any:
    """Parses ``text`` as the type of ``old``; a clear error otherwise."""
    def fail(kind):
        return OverrideError(f"--set {key}={text}: expected {kind} (the current value is {old!r})")

    if isinstance(old, dict):
        example = next(iter(old), "field")
        raise OverrideError(f"--set {key}={text}: {key!r} is a group of fields; set one of them, "
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
        raise OverrideError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.batch_size=128")
    key, text = assignment.split("=", 1)
    *parents, leaf = key.strip().split(".")
    node, path = config, []
    for part in parents:
        path.append(part)
        if not isinstance(node.get(part), dict):
            raise OverrideError(_unknown(".".join(path), node))
        node = node[part]
    if leaf not in node:
        raise OverrideError(_unknown(key, node))
    node[leaf] = parse_value(key, text, node[leaf])


def _unknown(key: str, node: dict) -> str:
    leaf = key.split(".")[-1]
    close = difflib.get_close_matches(leaf, list(node), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown config key {key!r}{hint} (known here: {', '.join(sorted(node))})"


def packaged_experiments() -> dict[str, str]:
    """``{name: first docstring line}`` of the experiments shipped in jaxgan's ``experiments/``."""
    out = {}
    for path in sorted(EXPERIMENTS_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        except (SyntaxError, OSError, ValueError):
            doc = "(unreadable)"
        out[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".py") or os.sep in name_or_path or "/" in name_or_path


def find_experiment(name_or_path: str) -> pathlib.Path:
    """An experiment file: a path to a ``.py`` file, or the name of a packaged experiment.

    A name (``ring8``) means jaxgan's own ``experiments/ring8.py``, never a file that happens to sit
    in the working directory: a local experiment is given by its path (``experiments/mine.py``).
    """
    if _looks_like_path(name_or_path):
        path = pathlib.Path(name_or_path).expanduser()
        if path.suffix != ".py":
            raise ExperimentError(f"experiment {name_or_path!r}: an experiment file is a .py file; give its "
                                  "path, or the name of a packaged experiment (jaxgan --help lists them)")
        if not path.is_file():
            raise ExperimentError(f"experiment file {path} does not exist or is not a file")
        return path.resolve()
    candidate = EXPERIMENTS_DIR / f"{name_or_path}.py"
    if candidate.is_file():
        return candidate.resolve()
    known = sorted(packaged_experiments())
    local = pathlib.Path.cwd() / "experiments" / f"{name_or_path}.py"
    hint = f"; to use {local}, give its path: experiments/{name_or_path}.py" if local.is_file() else ""
    raise ExperimentError(f"no packaged experiment {name_or_path!r}: give a path to a .py file or one of "
                          f"{', '.join(known) or '(none found)'}{hint}")


def local_shadow_note(name_or_path: str) -> str | None:
    """A note when a name picked the packaged file although ``./experiments/<name>.py`` differs."""
    if _looks_like_path(name_or_path):
        return None
    local = pathlib.Path.cwd() / "experiments" / f"{name_or_path}.py"
    packaged = EXPERIMENTS_DIR / f"{name_or_path}.py"
    if local.is_file() and packaged.is_file() and local.resolve() != packaged.resolve():
        return (f"note: using the packaged {packaged}, not {local}; to use the local file give its "
                f"path (experiments/{name_or_path}.py)")
    return None


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def load_experiment(name_or_path: str, module_name: str | None = None) -> types.ModuleType:
    """Imports an experiment file as a module; it must define get_config and build.

    Experiment files are Python code: importing one runs it. Raises ExperimentError (one line: the
    file and what is wrong) for a syntax error, an error while importing, or a missing function.
    """
    path = find_experiment(name_or_path)
    spec = importlib.util.spec_from_file_location(module_name or f"jaxgan_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    setattr(module, EXPERIMENT_MARK, str(path))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ExperimentError(f"experiment file {path} has a syntax error at line {e.lineno}: {e.msg}; "
                              "fix the file") from e
    except Exception as e:  # noqa: BLE001 - any error in the user's file is reported as theirs
        raise ExperimentError(describe_experiment_error(e, f"importing experiment file {path}")) from e
    for fn in ("get_config", "build"):
        if not callable(getattr(module, fn, None)):
            raise ExperimentError(f"experiment file {path} defines no {fn}(): an experiment defines "
                                  "get_config(smoke=False) and build(config, info); see experiments/ring8.py")
    return module


def experiment_config(module: types.ModuleType, smoke: bool) -> Config:
    """``module.get_config(smoke=smoke)`` as a Config; a clear error if it fails or is not a dict."""
    try:
        raw = module.get_config(smoke=smoke)
    except ExperimentError:
        raise
    except Exception as e:  # noqa: BLE001 - any error in the user's file is reported as theirs
        raise ExperimentError(describe_experiment_error(e, f"get_config(smoke={smoke}) of {module.__file__}")
                              ) from e
    if not isinstance(raw, dict):
        raise ExperimentError(f"get_config() of {module.__file__} returned a {type(raw).__name__}, not a dict: "
                              "return jaxgan.experiment.base_config(...) or a dict")
    try:
        json.dumps(raw)
    except (TypeError, ValueError) as e:
        raise ExperimentError(f"the config of {module.__file__} is not plain JSON data ({e}): configs hold "
                              "only dicts, lists, str, numbers, bools and None") from e
    return Config(copy.deepcopy(raw))


def build_experiment(module: types.ModuleType, config: Config, info) -> tuple:
    """``module.build(config, info)``, checked: it must return ``(game, g_tx, d_tx)``.

    Raises ExperimentError naming the file when build returns something else (None, a game alone,
    optimisers that are not optax GradientTransformations); errors raised inside build propagate
    (the command line reports them as the file's, see :func:`experiment_frame`).
    """
    result = module.build(config, info)
    where = f"build() of experiment file {getattr(module, '__file__', module.__name__)}"
    fix = "return (game, g_tx, d_tx), e.g. jaxgan.experiment.standard_gan(config, generator, discriminator)"
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        got = f"a {len(result)}-tuple" if isinstance(result, (tuple, list)) else repr(result)
        if len(got) > 80:
            got = f"a {type(result).__name__}"
        raise ExperimentError(f"{where} returned {got}: {fix}")
    game, *txs = result
    missing = [m for m in GAME_METHODS if not callable(getattr(game, m, None))]
    if missing:
        raise ExperimentError(f"{where} returned a {type(game).__name__} as the game, without "
                              f"{', '.join(missing)}: the game is a jaxgan.game.Game such as jaxgan.game.GAN; {fix}")
    for name, tx in zip(("g_tx", "d_tx"), txs):
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise ExperimentError(f"{where} returned a {type(tx).__name__} as {name}, not an optax "
                                  f"GradientTransformation (e.g. optax.adam(2e-4)): {fix}")
    return tuple(result)


def experiment_frame(error: BaseException) -> tuple[str, int, str] | None:
    """Where experiment code was running when ``error`` was raised: ``(file, line, function)``.

    The innermost frame of the traceback (or of an explicit ``raise ... from`` cause's) that runs
    code of a file :func:`load_experiment` imported; None when no experiment code was on the stack
    (the failure is jaxgan's or a library's alone).
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found, tb = None, error.__traceback__
        while tb is not None:
            path = tb.tb_frame.f_globals.get(EXPERIMENT_MARK)
            if path is not None:
                found = (path, tb.tb_lineno, tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        if found:
            return found
        error = error.__cause__
    return None


def describe_experiment_error(error: BaseException, doing: str) -> str:
    """One line for an error raised while experiment code ran: where (``experiment file F, line N,
    in FUNCTION``, from :func:`experiment_frame`; else ``doing``), the error's type and message
    (a bare ``assert``'s statement when it has no message)."""
    frame = experiment_frame(error)
    kind = "KeyError" if isinstance(error, MissingFieldError) else type(error).__name__
    text = str(error)  # a KeyError's is its key's repr ('hiden'); a MissingFieldError's its message
    text = "; ".join(line.strip() for line in text.splitlines() if line.strip())  # one line
    text = text if len(text) <= 1000 else text[:1000] + "..."
    if not text and frame is not None:
        statement = linecache.getline(frame[0], frame[1]).strip()
        text = f"`{statement}` failed" if statement else ""
    if frame is not None:
        scope = "while importing it" if frame[2] == "<module>" else f"in {frame[2]}"
        where = f"experiment file {frame[0]}, line {frame[1]}, {scope}"
    else:
        where = doing
    return f"{where}: {kind}{': ' + text if text else ''}"


def resolve(name_or_path: str, overrides: list[str] = (), smoke: bool = False
            ) -> tuple[Config, types.ModuleType]:
    """Loads an experiment, applies overrides, validates, and records where it came from.

    The config gains ``experiment`` (the file's absolute path), ``experiment_sha256`` (its hash: the
    workdir keeps a copy that ``sample``/``eval`` check against it) and ``smoke``.
    """
    from jaxgan.validate import validate

    path = find_experiment(name_or_path)
    module = load_experiment(str(path))
    config = experiment_config(module, smoke)
    for assignment in overrides:
        override(config, assignment)
    validate(config, module)
    config["experiment"] = str(path)
    config["experiment_sha256"] = file_sha256(path)
    config["smoke"] = bool(smoke)
    return config, module
