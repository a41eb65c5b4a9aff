"""The suite's XLA_FLAGS (tests/xla_env.py): one compile level for every process, device counts per process."""
import os

from xla_env import EQUIVALENCE_COMPILE_LEVEL, SUITE_COMPILE_LEVEL, host_devices, suite_flags


def test_this_process_and_its_children_compile_at_the_suite_level_unless_a_level_was_set():
    # conftest.py set it before jax was imported: the suite's level, or the one the caller's XLA_FLAGS gave
    assert "--xla_backend_optimization_level=" in os.environ["XLA_FLAGS"], os.environ["XLA_FLAGS"]
    assert suite_flags("") == SUITE_COMPILE_LEVEL
    assert suite_flags("--xla_backend_optimization_level=2 --xla_dump_to=/d") == \
        "--xla_backend_optimization_level=2 --xla_dump_to=/d"


def test_a_device_count_replaces_the_one_inherited_and_keeps_the_other_flags():
    flags = "--xla_dump_to=/d --xla_force_host_platform_device_count=4"
    assert host_devices(8, flags) == f"--xla_dump_to=/d {SUITE_COMPILE_LEVEL} --xla_force_host_platform_device_count=8"
    assert host_devices(2, "--xla_backend_optimization_level=2") == \
        "--xla_backend_optimization_level=2 --xla_force_host_platform_device_count=2"


def test_equivalence_processes_compile_at_o0_unless_the_caller_chose_a_level():
    assert host_devices(8, "--xla_dump_to=/d", equivalence=True) == \
        f"--xla_dump_to=/d {EQUIVALENCE_COMPILE_LEVEL} --xla_force_host_platform_device_count=8"
    assert host_devices(8, "--xla_backend_optimization_level=2", equivalence=True) == \
        "--xla_backend_optimization_level=2 --xla_force_host_platform_device_count=8"


def test_this_process_compiles_at_o0_except_inside_optimized():
    import jax
    import pytest

    from xla_env import level_chosen_by_suite, optimized

    if not level_chosen_by_suite():
        pytest.skip("the caller set a compile level in XLA_FLAGS: it holds for every test")
    assert jax.config.values["jax_disable_most_optimizations"] is True
    with optimized():
        assert jax.config.values["jax_disable_most_optimizations"] is False
    assert jax.config.values["jax_disable_most_optimizations"] is True
