"""Periodic-action helpers for the training loop: when to act, how fast it ran, whether to stop.

Time comes from an injected clock (``time.monotonic`` by default), so tests drive it by hand and
never sleep. Steps count *completed* train steps: after the first step, ``step == 1``.

    every_log, tp = Every(100), Throughput()
    with StopSignal() as stop:
        for step in range(start + 1, total + 1):
            state, metrics = train_step(state, batch)
            if step == start + 1:
                tp.reset(step, step * batch_size)       # drop the interval with compilation
            if every_log(step):
                tp.update(step, step * batch_size)
                writer.write_scalars(step, {**metrics, **tp.rates()})
            if stop.requested:
                break                                   # checkpoint, then exit
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Callable, Iterator

_logger = logging.getLogger(__name__)


class Every:
    """``Every(n)(step)`` is True when ``step > 0`` and ``step % n == 0``; ``Every(None)`` or ``Every(0)``: never."""

    def __init__(self, n: int | None):
        if n is not None and n < 0:
            raise ValueError(f"Every(n) needs n >= 0 or None (never), got {n}")
        self.n = n or None

    def __call__(self, step: int) -> bool:
        return self.n is not None and step > 0 and step % self.n == 0

    def __repr__(self) -> str:
        return f"Every({self.n})"


class Throughput:
    """Steps and images per second between successive measurement points.

    :meth:`reset` sets a mark without measuring (call it after the first step, so compilation is not
    counted); each :meth:`update` measures from the previous mark and becomes the new mark.
    Time spent inside :meth:`paused` (evaluation, checkpointing, sample grids) is not counted.

    Args:
      clock: seconds from an arbitrary origin, non-decreasing.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._mark: tuple[int, int | None, float] | None = None  # (step, images, time)
        self._excluded = 0.0
        self._rates: dict[str, float] = {}

    def reset(self, step: int, images: int | None = None) -> None:
        """Marks ``step`` (and the total ``images`` seen by then) as the start of the next interval.

        With ``images=None`` the images in the interval are taken as proportional to the steps
        (exact for a fixed batch size).
        """
        self._mark = (int(step), images, self._clock())
        self._excluded = 0.0

    def update(self, step: int, images: int) -> dict[str, float]:
        """Measures the interval from the last mark to ``step``; ``images`` is the total seen by then.

        Without a previous mark this only sets one. Returns :meth:`rates`.
        """
        now = self._clock()
        if self._mark is not None:
            step0, images0, t0 = self._mark
            dt = now - t0 - self._excluded
            steps = int(step) - step0
            if images0 is None:
                images0 = images * step0 / step if step else 0
            if dt > 0 and steps > 0:
                self._rates = {"steps_per_sec": steps / dt, "images_per_sec": (images - images0) / dt}
        self._mark = (int(step), images, now)
        self._excluded = 0.0
        return self.rates()

    def rates(self) -> dict[str, float]:
        """``{"steps_per_sec", "images_per_sec"}`` of the last measured interval; ``{}`` before the first."""
        return dict(self._rates)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Excludes the time spent in the ``with`` block from the current interval."""
        t0 = self._clock()
        try:
            yield
        finally:
            self._excluded += self._clock() - t0


class Stopped(BaseException):
    """Raised inside :meth:`StopSignal.interruptible` when a stop is requested: the work there is dropped.

    A ``BaseException`` (as ``KeyboardInterrupt`` is), so no ``except Exception`` on the way swallows it.
    """


# Signals that mean "stop": a preemption notice or ``kill`` (SIGTERM), Ctrl-C (SIGINT), the terminal
# or SSH session going away (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopSignal:
    """Turns SIGTERM, SIGINT and SIGHUP into a stop request, so a run can checkpoint and exit cleanly.

    Inside the ``with`` block a signal sets :attr:`requested` (and :attr:`signal_name`, e.g.
    ``"SIGTERM"``) instead of killing the process; the code checks the flag where stopping is safe.
    Inside :meth:`interruptible` (work that a rerun redoes anyway, such as a final evaluation) a stop
    raises :class:`Stopped` at once instead. A second SIGINT (Ctrl-C) while a stop is pending raises
    ``KeyboardInterrupt`` as usual; a second SIGTERM or SIGHUP is only logged.

    A signal that is ignored (``SIG_IGN``) when the block is entered stays ignored: ``nohup`` ignores
    SIGHUP, and a shell script's background job (``cmd &``) ignores SIGINT so that Ctrl-C in the
    script's terminal does not reach it; whoever started the process asked for that (Python itself
    keeps an ignored SIGINT ignored). The previous handlers are restored on exit. Entering the same
    object again (a caller's block around the run's own) is allowed; only the outermost installs
    and restores. Outside the main thread (where Python cannot install handlers) it installs nothing
    and :attr:`requested` stays False.

    :meth:`phase` names what the program is doing (the stop's log line says it) and calls
    ``on_phase(name, step)``: a hook that tests use to send a signal at a chosen moment, never by
    sleeping.

    Args:
      signals: the signals that request a stop.
      on_phase: called at every :meth:`phase` with its name and step (or None).
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
                 on_phase: Callable[[str, int | None], object] | None = None):
        self.signals = tuple(signals)
        self.requested = False
        self.signal_name: str | None = None
        self.phase_name: str | None = None  # the phase the stop was requested in, once requested
        self._current: str | None = None
        self._on_phase = on_phase
        self._interruptible = 0
        self._depth = 0
        self._previous: dict[signal.Signals, object] = {}

    def phase(self, name: str, step: int | None = None) -> None:
        """Records that the program enters phase ``name`` (at ``step``) and calls the ``on_phase`` hook."""
        self._current = name
        if self._on_phase is not None:
            self._on_phase(name, step)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block a stop request abandons at once: raises :class:`Stopped` on entry if a stop is
        already pending, or from the signal handler when one arrives inside it.

        Also on a normal exit of the block when a stop came inside it: Python may run the handler
        inside a garbage-collection callback, which swallows what it raises (as an "unraisable"
        exception), so the block always ends the same way whatever it was running.
        """
        if self.requested:
            raise Stopped(self.signal_name)
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1
        if self.requested:
            raise Stopped(self.signal_name)

    def _handle(self, signum: int, frame) -> None:
        del frame
        name = signal.Signals(signum).name
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            _logger.warning("%s received; a stop (%s) is already pending", name, self.signal_name)
            return
        self.requested, self.signal_name, self.phase_name = True, name, self._current
        where = f" during {self._current}" if self._current else ""
        if self._interruptible:
            _logger.warning("%s received%s: abandoning it and stopping (Ctrl-C again to abort at once)",
                            name, where)
            raise Stopped(name)
        _logger.warning("%s received%s: stopping at the next safe point (Ctrl-C again to abort at once)",
                        name, where)

    def __enter__(self) -> "StopSignal":
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                previous = signal.getsignal(sig)
                if previous is signal.SIG_IGN:
                    continue  # ignored by whoever started us (nohup, a background job): stays ignored
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth:
            return
        for sig, previous in self._previous.items():
            # None: the handler was not installed from Python; the default is the closest we can restore.
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
