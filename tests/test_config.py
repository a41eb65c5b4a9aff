"""Config overrides, experiment lookup, and that every experiment builds (full and smoke)."""
import jax
import pytest

from jaxgan import config as config_lib
from jaxgan.config import Config, override, parse_value
from jaxgan.errors import ConfigError, ExperimentError
from jaxgan.validate import validate
from jaxgan.experiment import base_config, images_per_step, total_steps

EXPERIMENTS = ["ring8", "grid25", "dcgan_mnist", "cgan_mnist", "dcgan_stacked_mnist"]


def test_override_parses_the_type_of_the_old_value():
    c = base_config()
    for assignment in ("train.batch_size=128", "optim.g_lr=1e-3", "loss=hinge", "train.n_critic=5"):
        override(c, assignment)
    assert (c.train.batch_size, c.optim.g_lr, c.loss, c.train.n_critic) == (128, 1e-3, "hinge", 5)
    assert parse_value("x", "false", True) is False
    assert parse_value("x", "[1, 2]", None) == [1, 2] and parse_value("x", "word", None) == "word"


@pytest.mark.parametrize("assignment, message", [
    ("train.batchsize=3", "did you mean 'batch_size'"),
    ("nothere.x=3", "unknown config key 'nothere'"),
    ("train.batch_size=1.5", "expected an integer"),
    ("optim.g_lr=fast", "expected a number"),
    ("train=3", "is a group of fields"),
    ("no_equals_sign", "expected KEY=VALUE"),
])
def test_bad_overrides_are_clear_errors(assignment, message):
    with pytest.raises((KeyError, ValueError), match=message):
        override(base_config(), assignment)


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ExperimentError, match="ring8"):
        config_lib.find_experiment("no_such_experiment")


def test_kimg_converts_to_steps_in_one_place():
    c = base_config(train={"batch_size": 64, "n_critic": 5, "total_kimg": 3.2})
    assert images_per_step(c) == 320 and total_steps(c) == 10


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("smoke", [False, True])
def test_every_experiment_resolves_and_builds(name, smoke, request):
    from jaxgan import run as run_lib

    config, module = config_lib.resolve(name, smoke=smoke)
    if config.data.get("dir"):  # the MNIST experiments read real files; ring8 and grid25 need none
        request.getfixturevalue("mnist_dir")  # skips where MNIST is absent
    assert config.experiment.endswith(f"{name}.py") and config.smoke is smoke
    doc = module.__doc__
    assert all(word in doc for word in ("Command:", "Machine:", "Time:", "Expected:")), name
    run = run_lib.build(config, module)
    shapes = jax.eval_shape(lambda: run.step.init_state(0, jax.tree.map(lambda x: x[0], run_lib.example_batch(run))))
    assert int(shapes.step.size) == 1 and run.total_steps >= 1
    assert Config(dict(config)) == config  # round-trips as plain JSON data


def test_validation_names_the_field_and_passes_every_experiment():
    for name in EXPERIMENTS:
        for smoke in (False, True):
            config, module = config_lib.resolve(name, smoke=smoke)  # resolve validates
            validate(config, module)
    c = base_config()
    c.train.n_critic = 0
    with pytest.raises(ConfigError, match=r"^train.n_critic = 0: must be an integer >= 1$"):
        validate(c)
    c = base_config()
    c.model.widths = [8, 0]
    with pytest.raises(ConfigError, match=r"model.widths\[1\] = 0"):
        validate(c)
    c = base_config()
    c.optim.g_lr = float("nan")
    with pytest.raises(ConfigError, match="optim.g_lr = nan"):
        validate(c)


def test_custom_fields_are_left_to_the_experiment():
    import types

    c = base_config(loss="my_own_loss")
    with pytest.raises(ConfigError, match="unknown loss"):
        validate(c)
    validate(c, types.SimpleNamespace(CUSTOM_FIELDS={"loss"}))
