"""Writers, sample images and periodic helpers: JSONL, TensorBoard, log lines, progress bar, grids,
PNGs, scatter plots, Every, Throughput (fake clock) and StopSignal (real signals to this process)."""
import errno
import gc
import io
import json
import logging
import os
import signal
import struct
import threading

import numpy as np
import pytest

from jaxgan import periodic, samples, writers


# --- JSONL -------------------------------------------------------------------------------------

def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_content_append_and_non_finite(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    w = writers.JsonlWriter(path)
    w.write_scalars(1, {"loss/d": np.float32(1.5), "loss/g": 2})
    w.write_scalars(2, {"loss/d": float("nan"), "loss/g": float("inf"), "x": -float("inf")})
    # Line-buffered: visible before flush/close.
    assert _read_jsonl(path) == [{"step": 1, "loss/d": 1.5, "loss/g": 2.0},
                                 {"step": 2, "loss/d": None, "loss/g": None, "x": None}]
    w.close()
    for line in path.read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    w2 = writers.JsonlWriter(path)  # Reopening appends.
    w2.write_scalars(3, {"loss/d": 0.25})
    w2.close()
    assert [r["step"] for r in _read_jsonl(path)] == [1, 2, 3]


def test_jsonl_truncate_after(tmp_path):
    path = tmp_path / "metrics.jsonl"
    w = writers.JsonlWriter(path)
    for step in (10, 20, 30, 40):
        w.write_scalars(step, {"loss/d": step / 10})
    w.close()
    with open(path, "a") as f:  # A crash mid-line.
        f.write('{"step": 50, "loss/d"')
    w = writers.JsonlWriter(path)  # Resumed from the checkpoint at step 20.
    assert w.truncate_after(20) == 3
    assert [r["step"] for r in _read_jsonl(path)] == [10, 20]
    w.write_scalars(30, {"loss/d": 9.0})  # Still appending after the rewrite.
    w.close()
    assert _read_jsonl(path)[-1] == {"step": 30, "loss/d": 9.0}
    assert not (tmp_path / "metrics.jsonl.tmp").exists()


def test_jsonl_torn_last_line_starts_new_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"')
    w = writers.JsonlWriter(path)
    w.write_scalars(2, {"a": 2.0})
    w.close()
    assert json.loads(path.read_text().splitlines()[-1]) == {"step": 2, "a": 2.0}


# --- TensorBoard -------------------------------------------------------------------------------

def _read_events(path):
    """Decodes a TFRecord event file with tensorboardX's protos (no tensorflow/tensorboard needed)."""
    from tensorboardX.proto import event_pb2

    data, events, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        pos += 12  # length, masked crc of length
        event = event_pb2.Event()
        event.ParseFromString(data[pos:pos + length])
        events.append(event)
        pos += length + 4  # data, masked crc of data
    return events


def test_tensorboard_scalars_and_images(tmp_path):
    pytest.importorskip("tensorboardX")
    w = writers.TensorBoardWriter(tmp_path / "tb")
    w.write_scalars(5, {"loss/d": 1.25, "loss/g": np.float32(0.5)})
    w.write_images(5, {"grid/gray": np.zeros((8, 8, 1), np.uint8), "grid/rgb": np.full((8, 6, 3), 200, np.uint8)})
    w.close()
    files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        values = {}
        for event in _read_events(files[0]):
            for v in event.summary.value:
                values[v.tag] = (event.step, v.simple_value if v.WhichOneof("value") == "simple_value" else v.image)
        assert values["loss/d"] == (5, 1.25) and values["loss/g"] == (5, 0.5)
        assert (values["grid/rgb"][1].height, values["grid/rgb"][1].width) == (8, 6)
        assert values["grid/gray"][1].height == 8
    else:
        acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
        acc.Reload()
        (scalar,) = acc.Scalars("loss/d")
        assert (scalar.step, scalar.value) == (5, 1.25)
        assert {"grid/gray", "grid/rgb"} <= set(acc.Tags()["images"])


# --- LogWriter and ProgressBar -----------------------------------------------------------------

SCALARS = {"kimg": 76.8, "loss/d": 1.23456, "loss/g": 0.98, "logits/real": 12345.6,
           "steps_per_sec": 45.12, "images_per_sec": 2887.7}


def test_log_writer_line_format():
    lines = []
    writers.LogWriter(lines.append).write_scalars(1200, SCALARS)
    assert lines == ["step 1200 kimg 76.8 | loss/d 1.235 loss/g 0.98 logits/real 12346 | 45.12 steps/s 2888 img/s"]
    lines.clear()
    writers.LogWriter(lines.append).write_scalars(3, {"loss/d": float("nan")})
    assert lines == ["step 3 | loss/d nan"]


def test_log_writer_to_logger(caplog):
    with caplog.at_level(logging.INFO, logger="jaxgan"):
        writers.LogWriter().write_scalars(7, {"loss/d": 0.5})
    assert "step 7 | loss/d 0.5" in caplog.text


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def terminal(text, columns):
    """What a terminal of ``columns`` shows after ``text`` (\\r returns, \\n starts a line), plus the
    number of characters written beyond the last column (a real terminal would wrap them)."""
    screen, row, col, overflow = [[]], 0, 0, 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            if row == len(screen):
                screen.append([])
        else:
            assert ch.isprintable(), f"unexpected control character {ch!r}"
            line = screen[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            overflow += col >= columns
            col += 1
    return ["".join(line).rstrip() for line in screen], overflow


def console_logger(stream):
    """The 'jaxgan' logger printing to ``stream`` as the CLI's basicConfig does (restored after use)."""
    logger = logging.getLogger("jaxgan")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return logger, handler


@pytest.mark.parametrize("columns", [80, 60])
def test_progress_bar_fits_the_terminal_and_logs_go_above_it(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = FakeTTY()
    logger, handler = console_logger(stream)
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    bar = writers.ProgressBar(10_000, stream)
    logged = []
    for step in range(200, 10_001, 200):
        bar.write_scalars(step, {**SCALARS, "kimg": step * 0.064})
        if step % 2000 == 0:
            logged.append(f"INFO saved checkpoint at step {step}")
            logger.info("saved checkpoint at step %d", step)
    bar.write_scalars(10_000, {"classifier_fid1k": 3.5})  # an eval record at the last step
    assert logger.handlers[0] is not handler  # swapped while the bar is shown...
    bar.close()
    assert logger.handlers == [handler]  # ...and put back
    out = stream.getvalue()
    # One newline per log line and one at close: redraws never start a new line.
    assert out.count("\n") == len(logged) + 1
    screen, overflow = terminal(out, columns)
    assert overflow == 0  # no redraw wrote past the last column (a wrapped bar would)
    # The terminal shows the log lines in order, each on its own line, then the final bar.
    assert screen[:len(logged)] == logged and screen[-1] == ""
    final = screen[len(logged)]
    assert final.startswith("100%|") and "10000/10000" in final and "loss/d 1.235" in final
    assert "logits/real" not in final and "classifier_fid" not in final
    assert len(final) <= columns
    if columns == 80:  # room for the losses and kimg beside a bar of >= 10 cells
        assert "loss/g 0.98" in final and "kimg 640.0" in final


def test_progress_bar_resumed_run_starts_at_its_step(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = FakeTTY()
    bar = writers.ProgressBar(1000, stream)
    bar.write_scalars(600, {"loss/d": 1.0})
    bar.write_scalars(700, {"loss/d": 0.5})
    bar.close()
    screen, overflow = terminal(stream.getvalue(), 80)
    assert overflow == 0 and screen[0].startswith(" 70%|") and "700/1000" in screen[0]
    assert "loss/d 0.5" in screen[0] and stream.getvalue().count("\n") == 1


class GoneTTY(FakeTTY):
    """A terminal that went away after ``ok`` writes: every later write fails with EIO (as a closed
    pty does after SIGHUP)."""

    def __init__(self, ok):
        super().__init__()
        self.ok = ok

    def write(self, text):
        if self.ok <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.ok -= 1
        return super().write(text)


def test_progress_bar_whose_terminal_went_away_does_not_raise(monkeypatch):
    """SIGHUP (the terminal closed) stops a run with a checkpoint: on the way there the bar and the log
    lines above it must not raise on the dead terminal (tqdm turns itself off on EIO; logging drops
    the record), or the run would end without its final save."""
    monkeypatch.setenv("COLUMNS", "80")
    stream = GoneTTY(ok=3)
    logger, handler = console_logger(stream)
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    bar = writers.ProgressBar(100, stream)
    for step in range(1, 11):
        bar.write_scalars(step, SCALARS)
        logger.warning("SIGHUP received during training: stopping at the next safe point")
    bar.close()
    assert logger.handlers == [handler] and stream.ok == 0


def test_progress_bar_silent_without_tty():
    stream = io.StringIO()
    bar = writers.ProgressBar(100, stream)
    bar.write_scalars(1, SCALARS)
    bar.close()
    assert stream.getvalue() == ""


# --- create_writers / MultiWriter --------------------------------------------------------------

def test_create_writers_main_process(tmp_path):
    pytest.importorskip("tensorboardX")
    stream = FakeTTY()
    with writers.create_writers(tmp_path, total_steps=10, is_main=True, stream=stream) as w:
        kinds = [type(x) for x in w.writers]
        w.write_scalars(1, {"loss/d": 1.0})
        w.write_images(1, {"samples": np.zeros((4, 4, 3), np.uint8)})
    assert kinds == [writers.JsonlWriter, writers.TensorBoardWriter, writers.ProgressBar]
    assert _read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 1, "loss/d": 1.0}]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert "1/10" in stream.getvalue()
    for x in w.writers:
        assert isinstance(x, writers.MetricWriter)


def test_create_writers_without_tty_uses_log_lines(tmp_path):
    lines = []
    w = writers.create_writers(tmp_path, total_steps=10, is_main=True, stream=io.StringIO(), log=lines.append)
    assert isinstance(w.writers[-1], writers.LogWriter)
    w.write_scalars(2, {"loss/g": 3.0})
    w.close()
    assert lines == ["step 2 | loss/g 3"]


def test_create_writers_without_tensorboardx(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_tbx(name, *args, **kwargs):
        if name.startswith("tensorboardX"):
            raise ImportError("No module named 'tensorboardX'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tbx)
    with caplog.at_level(logging.WARNING, logger="jaxgan.writers"):
        w = writers.create_writers(tmp_path, total_steps=10, is_main=True, stream=io.StringIO())
    w.close()
    assert [type(x) for x in w.writers] == [writers.JsonlWriter, writers.LogWriter]
    assert len([r for r in caplog.records if "TensorBoard" in r.getMessage()]) == 1


def test_create_writers_other_process_writes_nothing(tmp_path):
    w = writers.create_writers(tmp_path / "wd", total_steps=10, is_main=False, stream=FakeTTY())
    w.write_scalars(1, {"loss/d": 1.0})
    w.close()
    assert w.writers == [] and not (tmp_path / "wd").exists()


def test_multi_writer_closes_all_then_raises():
    class Boom:
        def close(self):
            raise RuntimeError("boom")

    class Rec:
        closed = False

        def close(self):
            self.closed = True

    rec = Rec()
    with pytest.raises(RuntimeError, match="boom"):
        writers.MultiWriter([Boom(), rec]).close()
    assert rec.closed


# --- samples -----------------------------------------------------------------------------------

def test_image_grid_rgb_shape_padding_values():
    x = np.stack([np.full((4, 5, 3), v, np.float32) for v in (-1.0, 0.0, 1.0, 2.0, -3.0)])
    grid = samples.image_grid(x, nrow=3, padding=2, pad_value=7)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 4 + 2, 3 * 5 + 2 * 2, 3)
    tile = lambda r, c: grid[r * 6:r * 6 + 4, c * 7:c * 7 + 5]  # noqa: E731
    assert (tile(0, 0) == 0).all() and (tile(0, 1) == 128).all() and (tile(0, 2) == 255).all()
    assert (tile(1, 0) == 255).all() and (tile(1, 1) == 0).all()  # Clipped.
    assert (tile(1, 2) == 7).all()  # Empty cell.
    assert (grid[4:6] == 7).all() and (grid[:, 5:7] == 7).all()  # Padding between tiles.


def test_image_grid_gray_default_nrow():
    x = np.linspace(-1, 1, 9 * 3 * 3).reshape(9, 3, 3, 1)
    grid = samples.image_grid(x, padding=0)
    assert grid.shape == (9, 9, 1)
    assert grid[0, 0, 0] == 0 and grid[-1, -1, 0] == 255
    assert samples.image_grid(x[:1], padding=5).shape == (3, 3, 1)
    with pytest.raises(ValueError, match="channel axis"):
        samples.image_grid(x[..., 0])


@pytest.mark.parametrize("shape", [(6, 7, 3), (6, 7, 1), (6, 7)])
def test_save_png_round_trip(tmp_path, shape):
    from PIL import Image

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = samples.save_png(tmp_path / "a" / "b" / "grid.png", image)
    with Image.open(path) as im:
        back = np.asarray(im)
    np.testing.assert_array_equal(back, image.reshape(back.shape))
    assert back.ndim == (3 if shape[-1] == 3 else 2)


def test_scatter_plot_and_image(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    fake, real = rng.normal(size=(200, 2)), rng.normal(size=(100, 2)) * 2
    path = tmp_path / "plots" / "step_100.png"
    samples.scatter_plot(fake, real, path, title="step 100", lim=3.0, size_inches=2, dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (100, 100)
    image = samples.scatter_image(fake, None, lim=(-3, 3), size_inches=2, dpi=50)
    assert image.dtype == np.uint8 and image.shape == (100, 100, 3)
    assert image.min() < 128 < image.max()  # Something was drawn on a white background.


# --- periodic ----------------------------------------------------------------------------------

def test_every():
    every = periodic.Every(3)
    assert [s for s in range(10) if every(s)] == [3, 6, 9]
    assert not any(periodic.Every(None)(s) for s in range(10))
    assert not any(periodic.Every(0)(s) for s in range(10))
    with pytest.raises(ValueError):
        periodic.Every(-1)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_throughput_with_fake_clock():
    clock = FakeClock()
    tp = periodic.Throughput(clock)
    assert tp.rates() == {}
    clock.t += 30.0  # First step, with compilation: excluded.
    tp.reset(1, 64)
    clock.t += 2.0
    assert tp.update(101, 101 * 64) == {"steps_per_sec": 50.0, "images_per_sec": 3200.0}
    clock.t += 1.0
    with tp.paused():  # An evaluation: not counted.
        clock.t += 60.0
    clock.t += 1.0
    rates = tp.update(201, 201 * 64)
    assert rates == {"steps_per_sec": 50.0, "images_per_sec": 3200.0}
    tp.reset(201)  # images inferred as proportional to steps
    clock.t += 4.0
    assert tp.update(301, 301 * 64) == {"steps_per_sec": 25.0, "images_per_sec": 1600.0}


def test_throughput_first_update_only_marks():
    clock = FakeClock()
    tp = periodic.Throughput(clock)
    assert tp.update(10, 640) == {}
    clock.t += 1.0
    assert tp.update(20, 1280)["steps_per_sec"] == 10.0


@pytest.fixture
def entry_handlers():
    """``set(SIGNAL=handler, ...)``: the handlers a test's process is entered with (the suite itself may
    run from a terminal, from a background job with SIGINT ignored, or under nohup); the suite's own
    come back afterwards."""
    saved = {s: signal.getsignal(s) for s in periodic.STOP_SIGNALS}

    def set_(**handlers):
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)
        return {s: signal.getsignal(s) for s in periodic.STOP_SIGNALS}

    yield set_
    for s, handler in saved.items():
        signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _send(sig):
    """A signal to this process, handled before this returns (collection off: a handler run inside a
    garbage-collection callback has its exception swallowed)."""
    gc.disable()
    try:
        os.kill(os.getpid(), sig)
    finally:
        gc.enable()


def test_stop_signal_sigterm_sets_flag_and_restores(entry_handlers):
    before = entry_handlers(SIGTERM=signal.SIG_DFL, SIGINT=signal.default_int_handler, SIGHUP=signal.SIG_DFL)
    with periodic.StopSignal() as stop:
        assert not stop.requested
        _send(signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        _send(signal.SIGTERM)  # A second SIGTERM is ignored.
        _send(signal.SIGHUP)  # and so is a SIGHUP after it
    assert {s: signal.getsignal(s) for s in before} == before


def _custom_handler(signum, frame):
    raise AssertionError("a handler StopSignal replaced ran")


@pytest.mark.parametrize("entry", [signal.default_int_handler, _custom_handler], ids=["default", "custom"])
def test_stop_signal_second_ctrl_c_raises_and_restores_what_was_there(entry, entry_handlers):
    before = entry_handlers(SIGINT=entry)
    with pytest.raises(KeyboardInterrupt):
        with periodic.StopSignal() as stop:
            _send(signal.SIGINT)
            assert stop.requested and stop.signal_name == "SIGINT"
            _send(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before  # restored to what it was, whatever that was


def test_stop_signal_keeps_ignored_signals_ignored(entry_handlers):
    """``nohup cmd &`` from a script: SIGHUP and SIGINT are ignored on entry and stay ignored (whoever
    started the process asked for that); SIGTERM still requests the stop."""
    before = entry_handlers(SIGINT=signal.SIG_IGN, SIGHUP=signal.SIG_IGN, SIGTERM=signal.SIG_DFL)
    with periodic.StopSignal() as stop:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        _send(signal.SIGINT)
        _send(signal.SIGHUP)
        assert not stop.requested
        _send(signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_signal_sighup_requests_a_stop_and_names_the_phase(entry_handlers, caplog):
    before = entry_handlers(SIGHUP=signal.SIG_DFL)
    seen = []
    with periodic.StopSignal(on_phase=lambda name, step: seen.append((name, step))) as stop:
        stop.phase("compile")
        stop.phase("training", 7)
        _send(signal.SIGHUP)
        stop.phase("save", 8)
    assert seen == [("compile", None), ("training", 7), ("save", 8)]
    assert (stop.requested, stop.signal_name, stop.phase_name) == (True, "SIGHUP", "training")
    assert "SIGHUP received during training: stopping at the next safe point" in caplog.text
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_signal_interruptible_blocks_are_abandoned(entry_handlers):
    before = entry_handlers(SIGTERM=signal.SIG_DFL)
    with periodic.StopSignal() as stop:
        with stop.interruptible():  # nothing requested: runs to its end
            pass
        with pytest.raises(periodic.Stopped):
            with stop.interruptible():
                _send(signal.SIGTERM)
                raise AssertionError("the block went on after the signal")
        assert stop.requested
        with pytest.raises(periodic.Stopped):  # once requested, such a block does not start
            with stop.interruptible():
                raise AssertionError("the block started")
    stop = periodic.StopSignal()
    with stop:
        with pytest.raises(periodic.Stopped):  # the handler ran inside a gc callback, which swallowed its raise:
            with stop.interruptible():       # the flag it set still ends the block the same way
                stop.requested, stop.signal_name = True, "SIGTERM"
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_signal_entered_again_restores_only_at_the_outermost_exit(entry_handlers):
    before = entry_handlers(SIGTERM=signal.SIG_DFL)
    stop = periodic.StopSignal()
    with stop:
        with stop:  # e.g. jaxgan train's block around train()'s own
            pass
        assert signal.getsignal(signal.SIGTERM) == stop._handle  # still installed
        _send(signal.SIGTERM)
        assert stop.requested
    assert {s: signal.getsignal(s) for s in before} == before


def test_stop_signal_outside_main_thread_is_noop():
    before = signal.getsignal(signal.SIGTERM)
    seen = {}

    def run():
        with periodic.StopSignal() as stop:
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            seen["requested"] = stop.requested

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == {"handler": before, "requested": False}


def test_diversity_is_one_for_the_data_zero_for_one_digit_and_blind_to_pixel_noise(mnist_dir):
    from jaxgan.data.idx import mnist_idx
    digits = mnist_idx(str(mnist_dir), seed=0, split="test", resolution=32).get_batch(0, 128)["x"]
    a, b = digits[:64], digits[64:]
    assert samples.diversity(a, a) == pytest.approx(1.0)
    assert 0.8 < samples.diversity(a, b) < 1.25  # other real digits vary as much
    one = np.repeat(a[:1], 64, axis=0)
    assert samples.diversity(one, b) == 0.0  # mode collapse: one drawing for every latent
    # StyleGAN2's per-pixel noise inputs make every sample differ pixel by pixel; that is not variety
    noisy = np.clip(one + np.random.default_rng(0).normal(0, 0.3, one.shape), -1, 1).astype(np.float32)
    assert noisy.std(axis=0).mean() / b.std(axis=0).mean() > 0.5  # unpooled: half the data's variety
    assert samples.diversity(noisy, b) < 0.25
    # points are taken as they are
    ring = np.random.default_rng(1).normal(size=(256, 2))
    assert samples.diversity(ring[:128] * 0.1, ring[128:]) == pytest.approx(0.1, rel=0.2)
    with pytest.raises(ValueError, match="at least two samples"):
        samples.spread(a[:1])
