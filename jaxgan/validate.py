"""Config validation: every value the engine reads is checked once, when the config is resolved.

:func:`validate` runs after ``--set`` overrides are applied (so ``jaxgan train --dry-run`` catches
bad values too) and raises :class:`jaxgan.errors.ConfigError` naming the dotted field, e.g.
``train.n_critic = 0: must be an integer >= 1``. It checks

* the fields the runner reads (:data:`RULES`): positive batch size, ``n_critic >= 1``,
  ``total_kimg > 0``, learning rates finite and > 0, seeds in [0, 2**63), known loss and schedule
  names, ``eval.num_samples >= 1``, ...;
* network sizes under ``model`` (``latent_dim``, ``hidden``, ``ngf``, ``ndf``, ``*_dim``,
  ``widths``, ...): integers >= 1;
* the views of the data specs ``data``, ``data_b`` and ``eval.data`` (``part = [k, n]``,
  ``transform``, ``sr_factor``);
* every float anywhere in the config: finite (no NaN, no infinity);
* then the experiment's own ``validate(config)``, when its file defines one, for its own fields.

An experiment whose ``build`` gives an engine field another meaning lists it in a module attribute
``CUSTOM_FIELDS = {"loss"}``; those fields are left to the experiment's ``validate``.
"""
from __future__ import annotations

import math
import types
from typing import Any, Callable

from jaxgan.errors import ConfigError

SEED_LIMIT = 2 ** 63
MAX_STEPS = 2 ** 31 - 1  # the step counter is int32
SCHEDULES = ("constant", "cosine")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
# jaxgan.nets.strided.FORMS (DCGAN) and jaxgan.nets.stylegan2.UPSAMPLE_FORMS (tests/test_nets.py checks)
UPSAMPLE_FORMS = ("auto", "transpose", "phases", "filter")
FIR_FORMS = ("auto", "slices", "conv")  # jaxgan.nets.stylegan2.FIR_FORMS (tests/test_stylegan2.py checks)

Check = Callable[[str, Any], None]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_at_least(lo: int) -> Check:
    def check(field: str, v: Any) -> None:
        if not _is_int(v) or v < lo:
            raise ConfigError(field, v, f"must be an integer >= {lo}")
    return check


def number_above(lo: float, *, inclusive: bool = False, below: float | None = None) -> Check:
    def check(field: str, v: Any) -> None:
        ok = _is_number(v) and math.isfinite(v) and (v >= lo if inclusive else v > lo)
        ok = ok and (below is None or v < below)
        if not ok:
            bound = f"{'>=' if inclusive else '>'} {lo:g}" + (f" and < {below:g}" if below is not None else "")
            raise ConfigError(field, v, f"must be a finite number {bound}")
    return check


def boolean(field: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ConfigError(field, v, "must be true or false")


def one_of(*names: str) -> Check:
    def check(field: str, v: Any) -> None:
        if v not in names:
            raise ConfigError(field, v, f"must be one of {', '.join(map(repr, names))}")
    return check


def seed(field: str, v: Any) -> None:
    if not _is_int(v) or not 0 <= v < SEED_LIMIT:
        raise ConfigError(field, v, "must be an integer in [0, 2**63)")


def loss_name(field: str, v: Any) -> None:
    from jaxgan.losses import BY_NAME

    if v not in BY_NAME:
        raise ConfigError(field, v, f"unknown loss: use one of {', '.join(sorted(BY_NAME))} (or build a "
                          "jaxgan.losses.Loss in the experiment's build() and list 'loss' in CUSTOM_FIELDS)")


def optional(check: Check) -> Check:
    """``check`` unless the value is None."""
    def wrapped(field: str, v: Any) -> None:
        if v is not None:
            check(field, v)
    return wrapped


def string(field: str, v: Any) -> None:
    if not isinstance(v, str):
        raise ConfigError(field, v, "must be a string")


def data_part(field: str, v: Any) -> None:
    """A data spec's ``part`` view: ``[k, n]``, two integers with ``0 <= k < n`` (examples ``i % n == k``)."""
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_int, v)) and 0 <= v[0] < v[1]):
        raise ConfigError(field, v, "must be [k, n], two integers with 0 <= k < n (the examples i with "
                          "i % n == k), e.g. [0, 2] and [1, 2] for two disjoint halves")


def data_transform(field: str, v: Any) -> None:
    """A data spec's ``transform`` view: a name of :data:`jaxgan.data.pairs.TRANSFORMS` or a list of them."""
    from jaxgan.data.pairs import TRANSFORMS

    names = [v] if isinstance(v, str) else v
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n in TRANSFORMS for n in names):
        raise ConfigError(field, v, f"must be a transform name or a list of them, from {', '.join(sorted(TRANSFORMS))}")


# Views any data spec may carry (jaxgan.data.factory.VIEW_OPTIONS), checked when set; the factory
# takes these values as "not set".
VIEW_RULES: dict[str, Check] = {"part": data_part, "transform": data_transform, "sr_factor": int_at_least(2)}
VIEW_UNSET = (None, "", [], 0)
DATA_SPECS = ("data", "data_b", "eval.data")  # the config fields that hold data specs


# Fields the runner reads. Required ones must be present; the others are checked when present.
RULES: dict[str, tuple[Check, bool]] = {
    "seed": (seed, True),
    "compute_dtype": (optional(one_of(*COMPUTE_DTYPES)), False),
    "loss": (loss_name, False),
    "train.batch_size": (int_at_least(1), True),
    "train.n_critic": (int_at_least(1), True),
    "train.total_kimg": (number_above(0.0), True),
    "train.ema_half_life_kimg": (number_above(0.0, inclusive=True), False),
    "train.ema_rampup": (number_above(0.0, inclusive=True), False),
    "optim.g_lr": (number_above(0.0), False),
    "optim.d_lr": (number_above(0.0), False),
    "optim.b1": (number_above(0.0, inclusive=True, below=1.0), False),
    "optim.b2": (number_above(0.0, inclusive=True, below=1.0), False),
    "optim.schedule": (one_of(*SCHEDULES), False),
    "optim.final_lr_fraction": (number_above(0.0, inclusive=True), False),
    "penalty.r1_gamma": (number_above(0.0, inclusive=True), False),
    "penalty.r2_gamma": (number_above(0.0, inclusive=True), False),
    "penalty.gp_weight": (number_above(0.0, inclusive=True), False),
    "penalty.every": (int_at_least(1), False),
    "log_every_steps": (int_at_least(0), True),
    "input_workers": (int_at_least(0), False),
    "input_processes": (int_at_least(0), False),
    "input_steps_per_transfer": (int_at_least(0), False),
    "sample_every_steps": (int_at_least(0), True),
    "checkpoint_every_steps": (int_at_least(0), True),
    "keep_checkpoints": (int_at_least(1), True),
    "num_grid_samples": (int_at_least(1), True),
    "eval.num_samples": (int_at_least(1), True),
    "eval.every_kimg": (number_above(0.0, inclusive=True), True),
    "eval.best_metric": (string, False),
    "eval.best_mode": (one_of("max", "min"), False),
    "eval.inception_weights": (string, False),
    "eval.classifier_steps": (int_at_least(1), False),
    "eval.at_end": (boolean, False),
    "data.resolution": (optional(int_at_least(1)), False),
    "data.channels": (optional(one_of(1, 3)), False),
    "model.upsample": (one_of(*UPSAMPLE_FORMS), False),
    "model.fir": (one_of(*FIR_FORMS), False),
}

# Network sizes under ``model``: integers >= 1 (lists: every entry). ``depth`` may be 0 (no hidden layer).
SIZE_NAMES = {"latent_dim", "hidden", "ngf", "ndf", "width", "widths", "channels", "base_channels"}
SIZE_SUFFIXES = ("_dim", "_width", "_widths", "_channels", "_features")


def _get(config: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _leaves(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{prefix[:-1]}[{i}].")
    else:
        yield prefix[:-1], node


def _check_finite(config: dict) -> None:
    for field, v in _leaves(config):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(field, v, "must be a finite number (not NaN or infinity)")


def _check_model_sizes(config: dict, custom: set) -> None:
    model = config.get("model")
    if not isinstance(model, dict):
        return
    for key, v in model.items():
        field = f"model.{key}"
        if field in custom or not (key in SIZE_NAMES or key.endswith(SIZE_SUFFIXES)):
            continue
        for i, item in enumerate(v if isinstance(v, (list, tuple)) else [v]):
            if item is None:
                continue
            name = f"{field}[{i}]" if isinstance(v, (list, tuple)) else field
            int_at_least(1)(name, item)
    if "depth" in model and "model.depth" not in custom:
        int_at_least(0)("model.depth", model["depth"])


def _check_data_views(config: dict, custom: set) -> None:
    for spec_field in DATA_SPECS:
        present, spec = _get(config, spec_field)
        if not present or not isinstance(spec, dict):
            continue
        for key, check in VIEW_RULES.items():
            field = f"{spec_field}.{key}"
            if field not in custom and spec.get(key) not in VIEW_UNSET:
                check(field, spec[key])


def _check_length(config: dict) -> None:
    from jaxgan.experiment import images_per_step

    steps = math.ceil(config["train"]["total_kimg"] * 1000 / images_per_step(config))
    if steps > MAX_STEPS:
        raise ConfigError("train.total_kimg", config["train"]["total_kimg"],
                          f"means {steps} steps of {images_per_step(config)} images, more than the "
                          f"{MAX_STEPS} a run can count: lower it or raise train.batch_size")


def validate(config: dict, module: types.ModuleType | None = None) -> None:
    """Raises :class:`ConfigError` (naming the dotted field) for the first bad value in ``config``.

    Args:
      config: a resolved run config (after overrides).
      module: the experiment module; its ``validate(config)`` runs last, and its ``CUSTOM_FIELDS``
        (a set of dotted names) are skipped by the engine's checks.
    """
    if not isinstance(config, dict):
        raise ConfigError("config", type(config).__name__, "must be a dict (get_config() returns one)")
    custom = set(getattr(module, "CUSTOM_FIELDS", ()) or ())
    _check_finite(config)
    for field, (check, required) in RULES.items():
        if field in custom:
            continue
        present, value = _get(config, field)
        if not present:
            if required:
                raise ConfigError(field, None, "is missing: build the config with "
                                  "jaxgan.experiment.base_config(...), which sets every engine field")
            continue
        check(field, value)
    _check_model_sizes(config, custom)
    _check_data_views(config, custom)
    _check_length(config)
    extra = getattr(module, "validate", None)
    if callable(extra):
        extra(config)
