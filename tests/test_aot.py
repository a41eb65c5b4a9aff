"""jaxgan compile: an experiment's step compiled for a Cloud TPU slice on this CPU (libtpu, no TPU).

The test extra installs libtpu (``jax[tpu]``); without it the tests that compile are skipped and the
refusal that names the missing package is checked instead. No timing is asserted.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from jaxgan import aot, cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
# TPU programs compile as they do for a user (jax_disable_most_optimizations would lower their backend level)
pytestmark = pytest.mark.optimized
needs_libtpu = pytest.mark.skipif(not aot.libtpu_installed(),
                                  reason="libtpu is not installed (pip install -e '.[test]' brings it)")


def _cli(argv, capsys):
    capsys.readouterr()
    try:
        code = cli.main(list(map(str, argv)))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code, err, expected):
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


@needs_libtpu
@pytest.mark.slow  # ~60-90 s on a loaded 2-core CPU: XLA:TPU compilations of the step and the generator
def test_compile_for_v5e_reports_sane_values_and_the_tpu_program(tmp_path):
    """dcgan_mnist's step (DCGAN-28, batch 64) compiled for v5e:2x2: the report's figures agree with
    each other, and the program is the TPU's (bfloat16, XLA's transposed convolution, not the CPU's
    sub-pixel form): XLA's FLOPs are within 5% of the analytic model (1.040x measured; with the
    sub-pixel form, which 'auto' chose on a CPU host before, 1.398x)."""
    out = tmp_path / "report.jsonl"
    env = dict(os.environ, JAX_PLATFORMS="cpu", TPU_SKIP_MDS_QUERY="1")
    proc = subprocess.run([sys.executable, "-m", "jaxgan.cli", "compile", "dcgan_mnist", "--topology", "v5e:2x2",
                           "--json", str(out), "--hlo", str(tmp_path / "hlo"), "--bytes", "5"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (r,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (r["topology"], r["chips"], r["hosts"], r["batch"], r["per_chip_batch"]) == ("v5e:2x2", 4, 1, 64, 16)
    assert r["chip"]["device_kind"] == "TPU v5 lite" and r["versions"]["libtpu"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (CI's fresh clone is one): the record names its commit
        assert r["source"]["commit"] == head.stdout.strip() and isinstance(r["source"]["dirty"], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["source"]["utc"])
    assert r["compute_dtype"] == "bfloat16" and r["upsample"] == "transpose"  # chosen for the TPU, not this CPU
    step = r["programs"]["train_step"]
    m = step["memory"]
    assert all(m[k] > 0 for k in ("argument", "output", "generated_code")) and m["temp"] >= 0
    assert m["alias"] > 0  # the donated state's buffers are reused for the new state
    assert m["total"] == m["argument"] + m["output"] - m["alias"] + m["temp"] + m["generated_code"]
    assert m["fits"] and m["total"] < m["hbm"] == 16 * 2 ** 30
    f = step["flops"]
    assert f["xla"] > 0 and f["model"] > 0
    assert 0.95 < f["xla_over_model"] < 1.05, f  # item 2 of issue 19: the TPU's own program
    assert step["flop_per_byte"] == pytest.approx(f["xla"] / step["bytes_accessed"])
    assert step["ridge_flop_per_byte"] == pytest.approx(197e12 / 819e9)
    b = step["bound"]
    assert b["seconds"] == pytest.approx(max(f["xla"] / 197e12, step["bytes_accessed"] / 819e9))
    assert b["limited_by"] in ("compute", "memory") and "not a measurement" in b["what"]
    assert b["images_per_s"] == pytest.approx(64 / b["seconds"]) and 0 < b["mfu"] <= 1
    ops = step["collectives"]
    assert ops and {c["op"] for c in ops} == {"all-reduce"}  # data-parallel: gradients, BatchNorm, metrics
    assert all(c["bytes"] > 0 and c["arrays"] >= 1 for c in ops)
    assert step["compile_s"] > 0
    assert step["float32_activations"] == {"count": 0, "bytes": 0, "arrays": [], "hbm_count": 0,
                                           "hbm_bytes": 0}  # bfloat16 between fusions
    hlo = (tmp_path / "hlo" / "train_step.hlo.txt").read_text()
    assert " conditional(" not in hlo  # the norms are fused into the optimizer's pass on TPU, no lax.cond
    # Each network's gradients cross the chips in one all-reduce (TrainStep.one_gradient_all_reduce):
    # the convolution kernels' float32 gradients (rank 4; activations are bfloat16) ride in exactly two,
    # one per network. Without the barrier D's travel in two, pipelined into G's update (measured).
    kernels = [re.findall(r"f32\[\d+,\d+,\d+,\d+\]", line.split(" all-reduce")[0])
               for line in hlo.splitlines() if re.search(r" all-reduce(-start)?\(", line)]
    assert len([k for k in kernels if k]) == 2, kernels
    gen = r["programs"]["generate"]
    assert gen["flops"]["xla"] > 0 and gen["memory"]["fits"] and gen["bound"]["images_per_s"] > 0
    # sample/eval are data parallel: each chip draws a quarter of the 1,000-latent chunk (28x28x1
    # images, at most float32) and nothing crosses the chips; a replicated chunk would be 4x that.
    assert 0 < gen["memory"]["output"] <= 250 * 28 * 28 * 4 and gen["collectives"] == []
    assert "fits" in proc.stdout and "not a measurement" in proc.stdout and "all-reduce" in proc.stdout
    # where the bytes go, read from the HLO: five groups, largest first, summing near XLA's own count
    by = step["bytes_by_op"]
    assert len(by["groups"]) == 5 and "bytes by op" in proc.stdout
    sizes = [g["bytes"] for g in by["groups"]]
    assert sizes == sorted(sizes, reverse=True) and 0 < sum(sizes) <= by["total"]
    assert 0.7 < by["total"] / step["bytes_accessed"] < 1.3, (by["total"], step["bytes_accessed"])
    # HBM's share of it (XLA's memory-space assignment keeps much of the rest on the chip) and the
    # roofline with it: the same compute time, a memory time from HBM's bytes alone
    h = step["hbm_traffic"]
    assert h["total"] == by["total"] and 0 < h["hbm"] < h["total"] and h["hbm"] + h["on_chip"] <= h["total"]
    assert h["flop_per_byte"] == pytest.approx(f["xla"] / h["hbm"]) and h["flop_per_byte"] > step["flop_per_byte"]
    assert h["bound_s"] == pytest.approx(max(f["xla"] / 197e12, h["hbm"] / 819e9)) and h["bound_s"] <= b["seconds"]
    assert "FLOP/HBM byte" in proc.stdout
    # DCGAN-28's 64 channels and fewer fill part of the 128 lanes: the report says how much
    assert 0 < h["padding"] < h["total"] and "is the padding of the chip's tiles" in proc.stdout


@needs_libtpu
def test_multi_host_slices_are_described_without_the_chips():
    devices, chip = aot.topology_devices("v5e:4x4")
    assert len(devices) == 16 and chip.name == "v5e"
    assert sorted({d.process_index for d in devices}) == [0, 1, 2, 3]  # 4 hosts of 4 chips
    assert {d.platform for d in devices} == {"tpu"}
    devices, chip = aot.topology_devices("v4:2x2x1")
    assert len(devices) == 4 and devices[0].device_kind == chip.device_kind == "TPU v4"


def test_compile_refuses_an_unknown_topology_in_one_line(capsys):
    code, _, err = _cli(["compile", "ring8", "--smoke", "--topology", "v9:2x2"], capsys)
    _one_line_error(code, err, "unknown TPU generation 'v9'")
    code, _, err = _cli(["compile", "ring8", "--smoke", "--topology", "v5e"], capsys)
    _one_line_error(code, err, "expected GENERATION:SHAPE")
    code, out, err = _cli(["train", "ring8", "--smoke", "--dry-run", "--topology", "v9:2x2"], capsys)
    _one_line_error(code, err, "unknown TPU generation 'v9'")
    assert out == ""  # refused before the config is printed


@needs_libtpu
def test_compile_refuses_a_shape_libtpu_does_not_know(capsys):
    code, _, err = _cli(["compile", "ring8", "--smoke", "--topology", "v5e:3x3"], capsys)
    _one_line_error(code, err, "--topology 'v5e:3x3' is not a v5e slice libtpu knows")


def test_compile_without_libtpu_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setattr(aot, "libtpu_installed", lambda: False)
    code, _, err = _cli(["compile", "ring8", "--smoke", "--topology", "v5e:2x2"], capsys)
    _one_line_error(code, err, "pip install 'jaxgan[tpu]'")


@needs_libtpu
def test_train_dry_run_topology_refuses_a_batch_that_does_not_divide(capsys):
    """ring8's smoke batch of 64 does not split over 6 chips... and 12 does not over v5e:2x4's 8."""
    code, _, err = _cli(["train", "ring8", "--smoke", "--dry-run", "--topology", "v5e:2x4",
                         "--set", "train.batch_size=12"], capsys)
    _one_line_error(code, err, "global batch 12 is not divisible by 8 devices")
    code, _, err = _cli(["compile", "ring8", "--smoke", "--topology", "v5e:2x4", "--batch", "12"], capsys)
    _one_line_error(code, err, "global batch 12 is not divisible by 8 devices")


def test_train_topology_needs_dry_run(capsys):
    code, _, err = _cli(["train", "ring8", "--smoke", "--topology", "v5e:2x2"], capsys)
    _one_line_error(code, err, "add --dry-run")


def test_collectives_are_read_from_tpu_hlo_with_their_bytes():
    hlo = "\n".join([
        "  %psum.1 = f32[2,16]{1,0:T(2,128)S(1)} all-reduce(%a), channel_id=1, replica_groups={{0,1}}",
        "  %all-reduce.5 = (bf16[16]{0:T(256)(128)(2,1)}, f32[4,4,8,16]{3,2,1,0:T(8,128)}, /*index=2*/f32[]{:T(128)}) "
        "all-reduce(%b, %c, %d), channel_id=2",
        "  %ags = ((f32[8,128]{1,0}), f32[32,128]{1,0}, u32[], u32[]) all-gather-start(%e), dimensions={0}",
        "  ROOT %cp = s32[10]{0} collective-permute(%f), source_target_pairs={{0,1}}",
        "  %fusion = f32[8]{0} fusion(%all-reduce.5), kind=kLoop",  # uses one, is not one
    ])
    assert aot.collectives(hlo) == [
        {"op": "all-reduce", "name": "psum.1", "bytes": 2 * 16 * 4, "arrays": 1},
        {"op": "all-reduce", "name": "all-reduce.5", "bytes": 16 * 2 + 4 * 4 * 8 * 16 * 4 + 4, "arrays": 3},
        {"op": "all-gather", "name": "ags", "bytes": 32 * 128 * 4, "arrays": 1},
        {"op": "collective-permute", "name": "cp", "bytes": 40, "arrays": 1},
    ]


def test_the_datasheet_table_and_roofline_are_consistent():
    for name, chip in aot.CHIPS.items():
        assert chip.name == name and chip.peak_flops > 1e14 and chip.hbm_bytes >= 16 * 2 ** 30
        assert chip.ridge == pytest.approx(chip.peak_flops / chip.hbm_bytes_per_s)
    assert aot.chip_for("v5e:4x4") is aot.CHIPS["v5e"] and aot.chip_for("v4:2x2x2") is aot.CHIPS["v4"]


def test_table_prints_saved_reports_as_markdown(tmp_path, capsys):
    program = {"compile_s": 12.3, "memory": {"total": 130e6, "fits": True},
               "flops": {"xla": 139.1e9, "model": 138.2e9, "xla_over_model": 139.1 / 138.2},
               "flop_per_byte": 70.0, "ridge_flop_per_byte": 240.5,
               "bound": {"seconds": 2.434e-3, "images_per_s": 512 / 2.434e-3, "mfu": 0.29},
               "collectives": [{"op": "all-reduce", "bytes": 14.3e6}, {"op": "all-reduce", "bytes": 11.1e6}],
               "hbm_traffic": {"flop_per_byte": 813.4},
               "float32_activations": {"count": 0, "bytes": 0, "arrays": []}}
    report = {"experiment": "dcgan64", "topology": "v5e:2x4", "batch": 512, "per_chip_batch": 64,
              "versions": {"jax": "0.10.2", "libtpu": "0.0.42.1"},
              "source": {"commit": "e88acec177d8c51471b95694daa178f05ff9770a", "dirty": False,
                         "utc": "2026-12-04T23:30:00Z"},
              "programs": {"train_step": program}}
    older = {**report, "source": None}  # a record from before the source was recorded
    saved = tmp_path / "reports.jsonl"
    saved.write_text(json.dumps(report) + "\n" + json.dumps({**report, "source": {**report["source"], "dirty": True,
                                                              "utc": "2026-12-05T01:00:00Z"}}) + "\n"
                     + json.dumps(older) + "\n")
    code, out, _ = _cli(["compile", "--table", saved], capsys)
    assert code == 0
    head, rule, row, _, _, blank, footer = out.strip().splitlines()
    assert blank == "" and footer == ("3 records: jax 0.10.2, libtpu 0.0.42.1; jaxgan e88acec (1), e88acec with "
                                      "uncommitted changes (1), no commit recorded (1); compiled "
                                      "2026-12-04T23:30:00Z to 2026-12-05T01:00:00Z.")
    cells = dict(zip([c.strip() for c in head.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["batch (per chip)"] == "512 (64)" and cells["HBM / chip"] == "130 MB" and cells["fits"] == "yes"
    assert cells["XLA / model"] == "1.007" and cells["FLOP/byte (ridge)"] == "70 (240)"
    assert cells["FLOP/HBM byte"] == "813"
    assert cells["collectives"] == "2 all-reduce (25.4 MB)" and cells["f32 act."] == "0"
    saved.write_text('{"experiment": "x"}\n')
    _one_line_error(*_cli(["compile", "--table", saved], capsys)[::2], "not a jaxgan compile --json record")


def test_fused_norms_equal_the_cond_norms():
    """The TPU form of the step's norms (computed every step, fused into the optimizer's pass, no
    lax.cond) gives the cond form's metrics and state, with norms on and off (here on CPU)."""
    import jax
    import numpy as np

    from jaxgan import config as config_lib, run as run_lib, sharding
    from jaxgan.step import NORM_KEYS, TrainStep

    config, module = config_lib.resolve("ring8", [], smoke=True)
    run = run_lib.build(config, module, jax.devices()[:1])
    assert run.step.fused_norms is False  # a CPU mesh keeps the cond
    s = run.step
    fused = TrainStep(s.game, s.g_tx, s.d_tx, s.mesh, n_critic=s.n_critic, ema_half_life_kimg=s.ema_half_life_kimg,
                      ema_rampup=s.ema_rampup, fused_norms=True)
    example = run_lib.example_batch(run)
    batch = sharding.global_batch(run.mesh, example)
    for norms in (True, False):
        outs = []
        for step in (s, fused):
            state = step.init_state(0, jax.tree.map(lambda x: x[0], example))
            outs.append(step(state, batch, norms=norms))
        (state_a, metrics_a), (state_b, metrics_b) = outs
        assert set(metrics_a) == set(metrics_b) and (set(NORM_KEYS) <= set(metrics_a)) == norms
        for k in metrics_a:
            np.testing.assert_allclose(metrics_a[k], metrics_b[k], rtol=1e-6, err_msg=k)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), state_a.g_params, state_b.g_params)


@needs_libtpu
def test_d_parameters_pass_a_barrier_where_d_keeps_batchnorm_statistics_on_several_chips():
    """TrainStep.one_gradient_all_reduce by default: on a 4-chip slice, D's new parameters pass an
    optimization barrier (one all-reduce of D's gradients) where D keeps BatchNorm statistics (DCGAN),
    not where it has none (StyleGAN2, whose all-reduce is one already and the barrier costs HBM), and
    not on one device; True forces it. Read from the lowered program (no compile)."""
    import jax

    from jaxgan import config as config_lib, run as run_lib, sharding
    from jaxgan.step import TrainStep

    def barriers(run, step=None):
        step = step or run.step
        example = run_lib.example_batch(run)
        batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(step.mesh))
                 for k, v in example.items()}
        state = step.abstract_state(jax.tree.map(lambda x: x[0], example))
        return step.lower(state, batch).as_text().count("optimization_barrier")

    chips, _ = aot.topology_devices("v5e:2x2")
    runs = {}
    for name in ("dcgan_mnist", "stylegan2_mnist"):
        config, module = config_lib.resolve(name, ["train.batch_size=8"], smoke=True)
        runs[name] = run_lib.build(config, module, chips, source=aot._source(config))
    assert barriers(runs["dcgan_mnist"]) == 1
    # built for TPU chips on this CPU, StyleGAN2 filters with depthwise convolutions (model.fir)
    game = runs["stylegan2_mnist"].step.game
    assert game.generator.fir == game.discriminator.fir == "conv" and runs["stylegan2_mnist"].config.model.fir == "auto"
    # StyleGAN2's game has barriers of its own (its kernels cast once per loss, in bfloat16)
    s = runs["stylegan2_mnist"].step
    forced = TrainStep(s.game, s.g_tx, s.d_tx, s.mesh, n_critic=s.n_critic, one_gradient_all_reduce=True)
    unforced = TrainStep(s.game, s.g_tx, s.d_tx, s.mesh, n_critic=s.n_critic, one_gradient_all_reduce=False)
    assert barriers(runs["stylegan2_mnist"]) == barriers(runs["stylegan2_mnist"], unforced)
    assert barriers(runs["stylegan2_mnist"], forced) == barriers(runs["stylegan2_mnist"], unforced) + 1
    config, module = config_lib.resolve("dcgan_mnist", ["train.batch_size=8"], smoke=True)
    assert barriers(run_lib.build(config, module, jax.devices()[:1], source=aot._source(config))) == 0


def test_the_analytic_count_is_for_dcgan_and_mlps_only():
    """CycleGAN's config names ngf/ndf too; it was counted as a DCGAN (jaxgan compile showed XLA at
    32x that count). SRGAN and CycleGAN have no analytic count."""
    from jaxgan import config as config_lib, flops

    def count(name, shape):
        return flops.step_flops_for_config(config_lib.resolve(name, [])[0], shape)

    assert count("cyclegan_mnist", (28, 28, 1)) is None and count("srgan_mnist", (28, 28, 1)) is None
    assert count("dcgan_mnist", (28, 28, 1))["total"] > 0 and count("ring8", (2,))["total"] > 0


def test_lazy_phases_of_a_period():
    """The distinct phases of lazy terms, a step that runs each and the share of steps that do."""
    from jaxgan.game import lazy_phases

    assert lazy_phases({4, 16}) == [(0, 1 / 16), (1, 12 / 16), (4, 3 / 16)]  # StyleGAN2: PL every 4, R1 every 16
    assert lazy_phases({2}) == [(0, 0.5), (1, 0.5)]
    assert lazy_phases({3, 4}) == [(0, 1 / 12), (1, 6 / 12), (3, 3 / 12), (4, 2 / 12)]
    assert lazy_phases(set()) == [(0, 1.0)] == lazy_phases({1})


def test_a_phase_step_traces_only_the_lazy_terms_it_runs():
    """A step with a lazy term (R1 every 2 steps, a lax.cond) traced under ``game.phase_step(s)`` is
    the step as it runs at step s: without that cond, with the term at step 0 and without it at step
    1 (XLA's count of the program with the cond includes the branch). On CPU, lowered: ring8's MLPs
    (StyleGAN2's R1 and path length use the same ``game.every``)."""
    import jax

    from jaxgan import config as config_lib, game, run as run_lib, sharding

    config, module = config_lib.resolve("ring8", ["penalty.r1_gamma=1", "penalty.every=2"], smoke=True)
    run = run_lib.build(config, module, jax.devices()[:1])
    example = run_lib.example_batch(run)
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(run.mesh))
             for k, v in example.items()}
    state = run.step.abstract_state(jax.tree.map(lambda x: x[0], example))
    run.step.max_traces = None

    def lowered(step=None):
        if step is None:
            with game.recording_intervals() as seen:
                low = run.step.lower(state, batch, fresh=True)
            assert seen == {2}
        else:
            with game.phase_step(step):
                low = run.step.lower(state, batch, fresh=True)
        return low.as_text().count("stablehlo.case"), float(low.cost_analysis()["flops"])

    (conds, both), (c0, r1), (c1, plain) = lowered(), lowered(0), lowered(1)
    # the term's cond appears twice (the loss and its gradient); the step's other conds (the norms'
    # on CPU) stay
    assert c0 == c1 == conds - 2
    assert plain * 1.2 < r1 <= both * 1.001


@needs_libtpu
def test_compile_phases_counts_each_phase_and_the_average_step():
    """``jaxgan compile --phases``: a step with R1 every 2 steps, compiled for v5e:2x2 as it runs on
    even steps (R1) and odd steps (none); the average step weighs them half and half, and is below
    XLA's count of the program with the cond (which counts the R1 branch on every step)."""
    from jaxgan import config as config_lib

    config, module = config_lib.resolve("ring8", ["penalty.r1_gamma=1", "penalty.every=2"], smoke=True)
    r = aot.compile_for_topology(config, module, "v5e:2x2", generate=False, phases=True)
    step = r["programs"]["train_step"]
    assert step["lazy_intervals"] == [2]
    (r1, plain), avg = step["phases"], step["average"]
    assert (r1["step"], r1["weight"], r1["runs_every"]) == (0, 0.5, [2])
    assert (plain["step"], plain["weight"], plain["runs_every"]) == (1, 0.5, [])
    assert plain["flops"] * 1.05 < r1["flops"] <= step["flops"]["xla"] * 1.001
    assert avg["flops"] == pytest.approx((r1["flops"] + plain["flops"]) / 2)
    assert avg["bytes_accessed"] == pytest.approx((r1["bytes_accessed"] + plain["bytes_accessed"]) / 2)
    assert avg["bound_s"] == pytest.approx((r1["bound_s"] + plain["bound_s"]) / 2)
    assert avg["flops"] < step["flops"]["xla"] and avg["bound_s"] <= step["bound"]["seconds"]
    text = aot.format_report(r)
    assert "step 0   (50% of steps; every 2)" in text and "average step:" in text
    line = next(l for l in text.splitlines() if "step 0   (50% of steps" in l)
    assert r1["hbm_traffic"] > 0 and "FLOP/HBM byte" in line and "of HBM" in line.split("holds")[-1]


def test_bytes_by_op_reads_tiled_layouts_slices_and_fusions():
    """The HLO reading behind ``--bytes``: tile padding (64 channels on 128 lanes count twice), a
    slice counted as its result read and written, a fusion as its operands and result, the fused
    computation's own instructions not again, grouped by op and jax operation."""
    assert aot.padded_bytes("bf16", "64,32,32,64", "{3,0,2,1:T(8,128)(2,1)S(1)}") == 2 * 64 * 32 * 32 * 64 * 2
    assert aot.padded_bytes("f32", "4,4,256,512", "{3,2,1,0:T(8,128)}") == 4 * 4 * 256 * 512 * 4
    assert aot.padded_bytes("f32", "3", "{0:T(256)}") == 256 * 4 and aot.padded_bytes("f32", "7,5") == 140
    hlo = """HloModule m

%fused_computation (p0: bf16[8,128]) -> bf16[8,128] {
  %p0 = bf16[8,128]{1,0:T(8,128)(2,1)} parameter(0)
  ROOT %neg = bf16[8,128]{1,0:T(8,128)(2,1)} negate(%p0), metadata={op_name="jit(f)/neg"}
}

ENTRY %main (a: bf16[8,128], k: f32[4,256]) -> bf16[8,128] {
  %a = bf16[8,128]{1,0:T(8,128)(2,1)} parameter(0)
  %k = f32[4,256]{1,0:T(8,128)} parameter(1)
  %slice.1 = f32[1,256]{1,0:T(1,128)} slice(%k), slice={[0:1], [0:256]}
  ROOT %fusion.1 = bf16[8,128]{1,0:T(8,128)(2,1)} fusion(%a), kind=kLoop, calls=%fused_computation, metadata={op_name="jit(g)/f/net/neg"}
}
"""
    by = aot.bytes_by_op(hlo)
    groups = {(g["op"], g["jax_op"]): (g["bytes"], g["count"]) for g in by["groups"]}
    assert groups == {("fusion", "f/net/neg"): (2 * 8 * 128 * 2, 1), ("slice", "f32[4,256]"): (2 * 256 * 4, 1)}
    assert by["total"] == 2 * 8 * 128 * 2 + 2 * 256 * 4
    assert by["hbm"] == by["total"] and by["on_chip"] == 0  # no array in on-chip memory (no S(1))
    assert by["padding"] == 0 and by["padded_arrays"] == []  # every array moved fills its tiles


def test_bytes_by_op_finds_the_tile_padding_of_narrow_channels_and_the_report_says_so():
    """8 channels on the TPU's 128 lanes: a convolution's operands and result move 16x their elements'
    bytes, and the report names the array and says what to do; a full-width array pads nothing."""
    hlo = """HloModule m

ENTRY %main (x: bf16[8,32,32,8], k: bf16[3,3,8,128]) -> bf16[8,32,32,128] {
  %x = bf16[8,32,32,8]{3,0,2,1:T(8,128)(2,1)} parameter(0)
  %k = bf16[3,3,8,128]{3,2,1,0:T(8,128)(2,1)} parameter(1)
  ROOT %conv.1 = bf16[8,32,32,128]{3,0,2,1:T(8,128)(2,1)} convolution(%x, %k), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, metadata={op_name="jit(g)/net/conv0/conv_general_dilated"}
}
"""
    narrow, wide, kernel = 8 * 32 * 32 * 128 * 2, 8 * 32 * 32 * 128 * 2, 3 * 3 * 8 * 128 * 2
    by = aot.bytes_by_op(hlo)
    assert by["total"] == narrow + wide + kernel
    assert by["padding"] == narrow - 8 * 32 * 32 * 8 * 2  # 15/16 of the narrow input's tiles
    assert by["padded_arrays"] == [{"array": "bf16[8,32,32,8]", "padding": by["padding"], "fill": 1 / 16}]
    assert by["groups"][0]["padding"] == by["padding"]
    h = {"total": by["total"], "padding": by["padding"], "padded_arrays": by["padded_arrays"]}
    line, advice = aot._padding_lines(h)
    assert "(47%) is the padding" in line and "bf16[8,32,32,8] (6% filled)" in line
    assert "widen the network's channels to multiples of 128" in advice
    few = {**h, "padding": int(0.2 * by["total"])}  # below the advice's threshold: the figure alone
    assert len(aot._padding_lines(few)) == 1


def test_bytes_by_op_tells_hbm_from_on_chip_memory():
    """XLA's memory-space assignment puts arrays in the chip's vector memory (``S(1)``): a prefetch
    reads HBM and writes on-chip memory (its source once: the copy-start's tuple repeats it), a
    slice reads where its operand is, and a fusion whose operands and result are on the chip moves
    nothing in HBM. The flag and scalar spaces are neither."""
    assert [aot.memory_space(x) for x in ("{1,0:T(8,128)}", "{1,0:T(8,128)S(1)}", "{:S(2)}", None)] == [0, 1, 2, 0]
    hlo = """HloModule m

%fused_computation (p0: f32[8,128]) -> f32[8,128] {
  %p0 = f32[8,128]{1,0:T(8,128)S(1)} parameter(0)
  ROOT %neg = f32[8,128]{1,0:T(8,128)S(1)} negate(%p0)
}

ENTRY %main (w: f32[8,128], k: f32[4,256]) -> f32[8,128] {
  %w = f32[8,128]{1,0:T(8,128)} parameter(0)
  %k = f32[4,256]{1,0:T(8,128)} parameter(1)
  %copy-start.1 = (f32[8,128]{1,0:T(8,128)S(1)}, f32[8,128]{1,0:T(8,128)}, u32[]{:S(2)}) copy-start(%w)
  %copy-done.1 = f32[8,128]{1,0:T(8,128)S(1)} copy-done(%copy-start.1)
  %slice.1 = f32[1,256]{1,0:T(1,128)S(1)} slice(%k), slice={[0:1], [0:256]}
  %fusion.1 = f32[8,128]{1,0:T(8,128)S(1)} fusion(%copy-done.1), kind=kLoop, calls=%fused_computation, metadata={op_name="jit(g)/f/net/neg"}
  ROOT %copy.2 = f32[8,128]{1,0:T(8,128)} copy(%fusion.1)
}
"""
    a, row = 8 * 128 * 4, 256 * 4
    by = aot.bytes_by_op(hlo)
    groups = {(g["op"], g["jax_op"]): (g["bytes"], g["hbm"]) for g in by["groups"]}
    assert groups == {("copy-start", "f32[8,128]"): (2 * a, a),  # read from HBM, written on the chip
                      ("slice", "f32[4,256]"): (2 * row, row),  # its part read from HBM
                      ("fusion", "f/net/neg"): (2 * a, 0),  # all on the chip
                      ("copy", "f32[8,128]"): (2 * a, a)}  # back to HBM for the result
    assert (by["total"], by["hbm"], by["on_chip"]) == (6 * a + 2 * row, 2 * a + row, 4 * a + row)
