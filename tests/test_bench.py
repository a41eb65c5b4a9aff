"""jaxgan bench: its JSON record, the FLOP counts, and the hand-written step computing jaxgan's math.

No timing is asserted: only that the fields exist, are sane and agree with each other.
"""
import json
import math
import pathlib
import statistics
import tempfile

import chex
import jax
import numpy as np
import pytest

from jaxgan import bench, cli, compile_cache, config as config_lib, flops, run as run_lib, sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    return bench._load_benchmark_module(name)  # benchmarks/NAME.py, as jaxgan bench loads it


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _bench_json(tmp_path, *args):
    out = tmp_path / "bench.jsonl"
    assert cli.main(["bench", *args, "--json", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_bench_json_has_every_field_with_sane_values(tmp_path, monkeypatch, restore_compile_cache):
    temp = tmp_path / "temp"  # where the default, temporary compilation cache goes
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    # a cache this process opened before (as `jaxgan train` does), which the benchmark must not use
    earlier = tmp_path / "earlier_cache"
    compile_cache.enable(earlier, min_compile_time_s=0)
    jax.jit(lambda x: x * 3.0)(np.ones(3, np.float32)).block_until_ready()
    entries = sorted(earlier.iterdir())
    assert entries, "the earlier cache should hold the small program"
    options = {name: getattr(jax.config, name) for name in compile_cache.OPTIONS}
    r, hw = _bench_json(tmp_path, "ring8", "--smoke", "--steps", "2", "--windows", "3", "--peak", "0.5",
                        "--compare", "handwritten")
    # the fresh cache served the warm compile, was removed afterwards, and the settings came back
    assert r["compile_s"]["warm_cache_hit"] is True
    assert list(temp.iterdir()) == []
    assert {name: getattr(jax.config, name) for name in compile_cache.OPTIONS} == options
    assert sorted(earlier.iterdir()) == entries
    assert r["implementation"] == "jaxgan" and r["experiment"] == "ring8"
    assert r["backend"] == "cpu" and isinstance(r["device_kind"], str)
    assert r["device_count"] == 1 and r["process_count"] == 1
    assert all(isinstance(r["versions"][k], str) for k in ("jax", "jaxlib", "flax"))
    assert hw["source"] == r["source"] and r["source"]["utc"].endswith("Z")  # the code it measured, and when
    assert r["batch"] == 64 and r["dtype"] == "float32" and r["data"] == "synthetic"
    assert r["data_shape"] == hw["data_shape"] == [2]  # ring8's points; the comparison timed the same
    c = r["compile_s"]
    assert _positive(c["cold"]) and _positive(c["warm"]) and isinstance(c["warm_method"], str)
    assert isinstance(c["warm_cache_hit"], bool)
    s = r["step_ms"]
    assert len(s["all"]) == 3 and all(_positive(x) for x in s["all"])
    assert s["min"] <= s["median"] <= s["p90"] <= max(s["all"])
    assert r["images_per_sec"] == pytest.approx(r["images_per_step"] / (s["median"] / 1000), rel=1e-9)
    assert r["images_per_step"] == r["batch"] * r["n_critic"]
    f = r["flops_per_step"]
    assert _positive(f["hlo_lowered"]) and _positive(f["analytic"])
    assert f["ratio"] == pytest.approx(f["analytic"] / f["hlo_lowered"])
    assert f["model"] == f["analytic"] and f["model_source"] == "analytic"
    assert r["tflops_per_sec"] == pytest.approx(f["model"] / (s["median"] / 1000) / 1e12)
    assert r["peak_tflops"] == 0.5 and r["mfu"] == pytest.approx(r["tflops_per_sec"] / 0.5)
    m = r["memory"]
    assert _positive(m["argument_size_in_bytes"]) and _positive(m["temp_size_in_bytes"])
    assert "peak_bytes_in_use" in m  # None on CPU: the backend does not report it
    assert r["images_per_sec_vs_jaxgan"] == 1.0
    # the hand-written step, timed in the same rounds, on the same shapes, with about the same FLOPs
    assert hw["implementation"] == "handwritten" and hw["batch"] == r["batch"]
    assert len(hw["step_ms"]["all"]) == 3 and _positive(hw["images_per_sec"])
    assert hw["images_per_sec_vs_jaxgan"] == pytest.approx(hw["images_per_sec"] / r["images_per_sec"])
    assert hw["flops_per_step"]["hlo_lowered"] == pytest.approx(r["flops_per_step"]["hlo_lowered"], rel=0.1)
    assert hw["tflops_per_sec"] / r["tflops_per_sec"] == pytest.approx(hw["images_per_sec_vs_jaxgan"])


def test_table_reprints_saved_records_as_text_or_markdown(tmp_path, capsys):
    """`jaxgan bench --table FILE [--markdown]` renders what `--json FILE` saved, benchmarking nothing."""
    saved = ROOT / "benchmarks" / "results" / "cpu_shared_pass.jsonl"
    records = [json.loads(line) for line in saved.read_text().splitlines() if line.strip()]
    capsys.readouterr()
    assert cli.main(["bench", "--table", str(saved), "--markdown"]) == 0
    setting, table = capsys.readouterr().out.strip().split("\n\n")
    assert setting.startswith("cpu cpu, jax 0.10.2, flax 0.12.8, data synthetic; MFU vs measured")
    assert "jaxgan" not in setting  # these records predate the source field
    tagged = tmp_path / "tagged.jsonl"
    tagged.write_text("".join(json.dumps({**r, "source": {"commit": "4971345" + "0" * 33, "dirty": False}}) + "\n"
                              for r in records))
    assert cli.main(["bench", "--table", str(tagged), "--markdown"]) == 0
    assert capsys.readouterr().out.split("\n\n")[0].endswith("; jaxgan 4971345")  # the code it measured
    lines = table.splitlines()
    assert len(lines) == 2 + len(records) and set(lines[1]) == set("|-")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    head = cells[0]
    assert all(len(row) == len(head) == 14 for row in cells[2:])
    for r, row in zip(records, cells[2:]):
        got = dict(zip(head, row))
        assert (got["experiment"], got["impl"], got["batch"]) == (r["experiment"], r["implementation"], str(r["batch"]))
        assert got["img/s"] == f"{r['images_per_sec']:.1f}" and got["MFU"] == f"{100 * r['mfu']:.2f}%"
        assert got["vs jaxgan"] == f"{r['images_per_sec_vs_jaxgan']:.2f}x" and got["peak mem GiB"] == "-"
    assert cli.main(["bench", "--table", str(saved)]) == 0  # plain text: the table a run prints
    assert capsys.readouterr().out == bench.format_table(records) + "\n"


def _edited(line: str, **fields) -> str:
    return json.dumps({**json.loads(line), **fields}) + "\n"


def test_table_refuses_what_is_not_a_bench_record(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    good = (ROOT / "benchmarks" / "results" / "cpu_shared_pass.jsonl").read_text().splitlines()[0]
    for content, message in [(None, "cannot read it"), (f"{good}\nnot json\n", "line 2 is not JSON"),
                             (f'{good}\n\n{{"experiment": "x"}}\n', "line 3 is not a bench record (no implementation,"),
                             ("[1, 2]\n", "line 1 is not a bench record (not a JSON object)"),
                             (_edited(good, step_ms=3.2), "line 1 is not a bench record (step_ms is 3.2, not {"),
                             (_edited(good, batch="64", versions={"jax": "0.10"}),
                              "line 1 is not a bench record (batch is '64', not a number; versions is"),
                             (_edited(good, source="4971345"), "line 1 is not a bench record (source is '4971345', "
                                                               "not an object)"),
                             ("\n", "no records in the file")]:
        if content is not None:
            bad.write_text(content)
        capsys.readouterr()
        assert cli.main(["bench", "--table", str(bad)]) == 2
        err = capsys.readouterr().err
        assert message in err and "--table" in err and "Traceback" not in err, err


def test_bench_compares_the_shared_generator_pass_with_its_own_flop_count(tmp_path):
    r, shared = _bench_json(tmp_path, "ring8", "--smoke", "--steps", "1", "--windows", "2", "--peak", "1",
                            "--no-compile-timing", "--compare", "jaxgan-shared-pass")
    assert shared["implementation"] == "jaxgan-shared-pass" and shared["batch"] == r["batch"]
    assert _positive(shared["compile_s"]["cold"]) and _positive(shared["images_per_sec"])
    f, fs = r["flops_per_step"], shared["flops_per_step"]
    g = flops.mlp_layers(2, 16, 16, 2)[0]  # ring8 --smoke: data 2, latent 16, hidden 16, depth 2
    g_forward = 2 * sum(layer.macs for layer in g) * r["batch"]
    assert f["analytic"] - fs["analytic"] == pytest.approx(g_forward, rel=0.25)  # + G's per-element terms
    assert fs["hlo_lowered"] < f["hlo_lowered"]  # the compiled step does less work, not just the count
    assert shared["tflops_per_sec"] == pytest.approx(fs["analytic"] / (shared["step_ms"]["median"] / 1000) / 1e12)
    # a step that cannot share the pass is skipped with the reason, not run as something else (and
    # --json's missing directory is made, so that a long benchmark's records are not lost at the end)
    (only,) = _bench_json(tmp_path / "critic", "ring8", "--smoke", "--set", "train.n_critic=2", "--steps", "1",
                          "--windows", "1", "--no-compile-timing", "--compare", "jaxgan-shared-pass")
    assert only["implementation"] == "jaxgan" and "n_critic == 1" in only["skipped"]["jaxgan-shared-pass"]


def test_bench_devices_reruns_with_emulated_devices_and_constant_work_per_device(tmp_path):
    (r,) = _bench_json(tmp_path, "ring8", "--smoke", "--devices", "2", "--per-device-batch", "16",
                       "--steps", "1", "--windows", "1", "--peak", "1", "--no-compile-timing")
    assert r["device_count"] == 2 and r["batch"] == 32
    assert r["peak_tflops"] == 2.0  # the peak of the whole mesh
    f = r["flops_per_step"]  # the lowered program is one device's: the step is twice its count
    assert f["hlo_lowered"] == 2 * f["hlo_lowered_per_device"]
    # one device's share against the per-device program: the data-parallel work halves, each device
    # still updates all the replicated parameters (before: the analytic total against HLO x devices,
    # which counted the optimizer's update once on one side and twice on the other)
    assert f["analytic"] / 2 < f["analytic_per_device"] < f["analytic"]
    assert f["ratio"] == pytest.approx(f["analytic_per_device"] / f["hlo_lowered_per_device"])
    assert 0.7 < f["ratio"] < 1.3  # smoke nets: elementwise-heavy
    assert _positive(r["images_per_sec"])


def test_an_mfu_above_one_is_flagged_as_a_measurement_error():
    """A step cannot beat the peak: 2 TFLOP/s against a stated 0.5 is an error, not an MFU of 400%."""
    record = {"device_kind": "cpu", "dtype": "float32"}
    bad = bench._throughput_fields(2e12, 1000.0, record, "0.5", [None])
    assert bad["tflops_per_sec"] == pytest.approx(2.0) and bad["peak_tflops"] == 0.5
    assert bad["mfu"] is None and "measurement error" in bad["mfu_error"] and "400%" in bad["mfu_error"]
    good = bench._throughput_fields(0.25e12, 1000.0, record, "0.5", [None])
    assert good["mfu"] == pytest.approx(0.5) and "mfu_error" not in good
    base = {"experiment": "x", "implementation": "jaxgan", "device_count": 1, "batch": 8, "dtype": "float32",
            "step_ms": {"median": 1000.0, "p90": 1000.0}, "images_per_sec": 8.0, "images_per_sec_vs_jaxgan": 1.0,
            "backend": "cpu", "device_kind": "cpu", "versions": {"jax": "0", "flax": "0"}, "data": "synthetic"}
    table = bench.format_table([{**base, **bad}, {**base, **good}])
    assert "error >100%" in table.splitlines()[-2] and "50.00%" in table.splitlines()[-1]


def test_the_matmul_peak_is_timed_in_the_same_rounds_as_the_steps():
    """Each round times a window of every implementation and then one of the matmul peak, so a load
    change on a shared machine reaches both (the peak timed apart gave an MFU of 2.81)."""
    order = []

    def timed(name, calls=None):
        return bench.Timed(name, lambda k: order.append((name, k)) or 0.5 * k, {}, calls=calls)

    times = bench.interleaved_rounds([timed("jaxgan"), timed("handwritten"), timed(bench.MATMUL_PEAK, 3)],
                                     windows=3, steps=10)
    warmup = [("jaxgan", 2), ("handwritten", 2), (bench.MATMUL_PEAK, 2)]
    assert order == warmup + [("jaxgan", 10), ("handwritten", 10), (bench.MATMUL_PEAK, 3)] * 3
    assert times == {name: [0.5] * 3 for name in ("jaxgan", "handwritten", bench.MATMUL_PEAK)}
    assert bench.needs_measured_peak("auto", "cpu", "float32") and bench.needs_measured_peak("measure", "TPU v4", "bfloat16")
    assert not bench.needs_measured_peak("auto", "TPU v4", "bfloat16") and not bench.needs_measured_peak("2", "cpu", "float32")


def test_bench_measures_the_peak_in_its_rounds(tmp_path):
    (r,) = _bench_json(tmp_path, "ring8", "--smoke", "--steps", "1", "--windows", "2", "--peak", "measure",
                       "--no-compile-timing")
    rounds = r["peak_rounds_tflops"]
    assert len(rounds) == 2 and all(_positive(x) for x in rounds)
    assert r["peak_tflops"] == pytest.approx(statistics.median(rounds))  # one device
    assert "interleaved with the steps" in r["peak_source"]
    if r["mfu"] is None:  # flagged, never printed as an MFU above 100%
        assert "measurement error" in r["mfu_error"]
    else:
        assert 0 < r["mfu"] <= 1 and r["mfu"] == pytest.approx(r["tflops_per_sec"] / r["peak_tflops"])


def test_peak_table_and_errors():
    assert bench.peak_per_device("table", "NVIDIA H100 80GB HBM3", "bfloat16", None)[0] == 989.4
    assert bench.peak_per_device("table", "NVIDIA H100 PCIe", "bfloat16", None)[0] == 756.5
    assert bench.peak_per_device("table", "TPU v5 lite", "bfloat16", None)[0] == 197.0
    assert bench.peak_per_device("table", "cpu", "float32", None) == (None, None)
    with pytest.raises(ValueError, match="--peak"):
        bench.peak_per_device("fast", "cpu", "float32", None)


# -- FLOPs: the lowered HLO's count against the analytic one ---------------------------------------
# The transposed convolutions as XLA's own op: the sub-pixel form (the CPU default) does 2.25x their
# forward products, which the HLO counts and the analytic (model) count does not (checked below).
DCGAN28 = ["data.resolution=28", "data.channels=1", "model.ngf=32", "model.ndf=32", "model.upsample=transpose"]


@pytest.mark.parametrize("experiment,sets", [
    ("dcgan64", ["model.upsample=transpose"]),         # DCGAN-64, the PyTorch examples' layout
    ("dcgan64", DCGAN28),                              # DCGAN-28 (dcgan_mnist's networks)
    ("ring8", []),                                     # MLP with R1 (a double backward)
    ("ring8", ["penalty.r1_gamma=0.0", "model.hidden=256"]),
    ("ring8", ["train.share_generator_pass=true"]),    # one G forward fewer
    ("dcgan64", DCGAN28 + ["train.share_generator_pass=true"]),
])
def test_flop_count_matches_the_analytic_count(experiment, sets):
    hlo, config, run = _hlo_flops(experiment, sets)
    analytic = flops.step_flops_for_config(config, run.source.info.shape)
    assert analytic["total"] == pytest.approx(hlo, rel=0.05)
    assert analytic["matmul"] > 0.9 * analytic["total"]  # the products dominate, as they should


def _hlo_flops(experiment, sets):
    """XLA's FLOP count of the lowered train step, with the resolved config and run."""
    config, module = config_lib.resolve(experiment, sets)
    run = bench._build(config, module, jax.devices()[:1], "synthetic")
    ex = run_lib.example_batch(run)
    state = run.step.abstract_state(jax.tree.map(lambda x: x[0], ex))
    batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.batch_sharding(run.mesh)), ex)
    cost = run.step.lower(state, batch).cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]), config, run


def test_subpixel_form_does_more_products_than_the_model_counts():
    """The HLO of the sub-pixel form counts its zero taps; MFU divides the model's (analytic) count."""
    base = [s for s in DCGAN28 if not s.startswith("model.upsample")]
    dilated, _, _ = _hlo_flops("dcgan64", base + ["model.upsample=transpose"])
    phases, _, _ = _hlo_flops("dcgan64", base + ["model.upsample=phases"])
    assert 1.1 * dilated < phases < 2.25 * dilated

def test_dcgan64_parameter_counts_match_the_networks():
    g, d = flops.dcgan_layers(64, 3, 100, 64, 64)
    assert sum(l.params for l in g) == 3_576_704 and sum(l.params for l in d) == 2_765_568


@pytest.mark.parametrize("n_in,kernel,stride", [(7, 4, 2), (4, 4, 2), (28, 4, 2), (5, 3, 1)])
def test_conv_pairs_count_the_real_products(n_in, kernel, stride):
    """A 1-D convolution by brute force: ones in, ones kernel, the sum of outputs = the products."""
    n_out, pairs = flops.conv_same(n_in, kernel, stride)
    out = jax.lax.conv_general_dilated(np.ones((1, 1, n_in), np.float32), np.ones((1, 1, kernel), np.float32),
                                       (stride,), "SAME")
    assert out.shape[-1] == n_out and float(out.sum()) == pairs
    n_out, pairs = flops.conv_transpose_same(n_in, kernel, stride)
    out = jax.lax.conv_transpose(np.ones((1, n_in, 1), np.float32), np.ones((kernel, 1, 1), np.float32),
                                 (stride,), "SAME")
    assert out.shape[1] == n_out and float(out.sum()) == pairs


def test_comparisons_time_the_shape_jaxgans_row_timed_where_the_data_is_absent(tmp_path, monkeypatch):
    """`jaxgan bench dcgan_mnist --compare handwritten` without MNIST's files times synthetic batches of
    the declared shape; its comparisons took their shape from ``data.resolution``, which MNIST's spec
    has not, and the command stopped with an internal error (found by benchmarks/gpu_session.sh run
    without `prepare`). They now take the shape the jaxgan row's source (here the stand-in) gave."""
    monkeypatch.setenv("JAXGAN_MNIST_DIR", str(tmp_path / "absent"))
    config, module = config_lib.resolve("dcgan_mnist")
    run = bench._build(config, module, jax.devices()[:1], "synthetic")
    assert run.source.info.shape == (28, 28, 1)
    timed = {}
    monkeypatch.setattr(bench, "_handwritten_timed", lambda name, spec, seed, device: timed.setdefault(name, spec))
    bench._compare_timed("handwritten", config, {"data_shape": list(run.source.info.shape)}, jax.devices()[:1])
    assert timed["handwritten"]["data_shape"] == (28, 28, 1)


# -- the hand-written step computes jaxgan's math ----------------------------------------------------
@pytest.mark.parametrize("experiment,sets", [
    ("ring8", ["train.batch_size=32"]),  # MLP, R1, EMA, cosine learning rates
    ("dcgan64", ["data.resolution=28", "data.channels=1", "model.ngf=8", "model.ndf=8",
                 "model.latent_dim=16", "train.batch_size=8"]),
    pytest.param("dcgan64", ["data.resolution=32", "model.ngf=8", "model.ndf=8", "model.latent_dim=16",
                             "train.batch_size=8"], marks=pytest.mark.slow),
])
def test_handwritten_step_gives_jaxgans_parameters(experiment, sets):
    hw = _load("handwritten_jax")
    config, module = config_lib.resolve(experiment, sets)
    run = bench._build(config, module, jax.devices()[:1], "synthetic")
    spec = hw.Spec(**bench.handwritten_spec(config, run.source.info.shape))
    step = hw.HandwrittenStep(spec)
    ex = run_lib.example_batch(run)
    state = run.step.init_state(config.seed, jax.tree.map(lambda x: x[0], ex))
    mine = step.init(config.seed)
    chex.assert_trees_all_equal(mine["g_params"], state.g_params)   # same key splits, same draws
    chex.assert_trees_all_equal(mine["d_params"], state.d_params)
    rs = np.random.RandomState(3)
    for _ in range(3):
        x = rs.uniform(-1, 1, ex["x"].shape).astype(np.float32)
        state, metrics = run.step(state, sharding.global_batch(run.mesh, {"x": x}))
        mine, losses = step(mine, {"x": x})
    np.testing.assert_allclose(float(losses["loss/d"]), float(metrics["loss/d"]), rtol=1e-5)
    np.testing.assert_allclose(float(losses["loss/g"]), float(metrics["loss/g"]), rtol=1e-5)
    chex.assert_trees_all_close(mine["d_params"], state.d_params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(mine["g_params"], state.g_params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(mine["d_state"], state.d_state, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(mine["g_state"], state.g_state, rtol=1e-4, atol=1e-6)
    if spec.ema_half_life_images:
        chex.assert_trees_all_close(mine["g_ema"], state.g_ema, rtol=1e-4, atol=1e-6)
    # the tolerance is tight: three updates move the parameters by far more than it allows
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                         step.init(config.seed)["d_params"], state.d_params)
    assert max(jax.tree.leaves(moved)) > 100 * (1e-6 + 1e-4 * 0.05)


def test_torch_step_trains_its_networks():
    pytest.importorskip("torch")
    ts = _load("torch_step")
    spec = ts.Spec(family="dcgan", data_shape=(28, 28, 1), batch=4, latent_dim=8, ngf=4, ndf=4)
    runner = ts.TorchStep(spec)
    before = [p.detach().clone() for p in runner.g.parameters()]
    assert runner.window(2) > 0
    assert any(not (a == b.detach()).all() for a, b in zip(before, runner.g.parameters()))
    assert runner.g(runner._z()).shape == (4, 1, 28, 28)
    mlp = ts.TorchStep(ts.Spec(family="mlp", data_shape=(2,), batch=8, latent_dim=4, hidden=8, depth=2,
                               r1_gamma=1.0, ema_half_life_images=100.0))
    assert mlp.window(1) > 0 and mlp.info()["variant"] == "eager"


def test_conv_forms_compute_the_same_transposed_convolution():
    """benchmarks/conv_forms.py: the dilated and sub-pixel (phase) forms equal lax.conv_transpose."""
    forms = _load("conv_forms")
    rs = np.random.RandomState(0)
    x = rs.randn(2, 5, 5, 3).astype(np.float32)
    k = rs.randn(4, 4, 3, 2).astype(np.float32)
    ref = forms.conv_transpose(x, k)
    chex.assert_shape(ref, (2, 10, 10, 2))
    chex.assert_trees_all_close(forms.lhs_dilation(x, k), ref, atol=1e-5)
    chex.assert_trees_all_close(forms.phases(x, k), ref, atol=1e-5)
    chex.assert_shape(forms.upsample_conv(x, k[:3, :3]), (2, 10, 10, 2))
    x = rs.randn(2, 8, 6, 3).astype(np.float32)  # the discriminator's strided convolution
    chex.assert_trees_all_close(forms.space_to_depth(x, k), forms.strided_conv(x, k), atol=1e-5)
    chex.assert_shape(forms.strided_conv(x, k), (2, 4, 3, 2))
