"""Metric writers: one interface, several sinks (JSONL, TensorBoard, log lines, a progress bar).

Every sink is a :class:`MetricWriter`; :class:`MultiWriter` fans a call out to several, and
:func:`create_writers` builds the usual set for a workdir. Only process 0 writes: on other processes
:func:`create_writers` returns an empty :class:`MultiWriter`, so the loop calls it unconditionally.

Scalar names are hierarchical (``loss/d``, ``logits/real``, ``penalty/r1``). Three keys are read
specially by the human-facing sinks (:class:`LogWriter`, :class:`ProgressBar`): ``kimg`` (thousands
of images seen), ``steps_per_sec`` and ``images_per_sec``. Example::

    writer = create_writers(workdir, total_steps=10_000, is_main=jax.process_index() == 0)
    writer.write_scalars(1200, {"kimg": 76.8, "loss/d": 1.23, "loss/g": 0.98,
                                "steps_per_sec": 45.1})
    writer.write_images(1200, {"samples": image_grid(fakes)})
    writer.close()
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import shutil
import sys
from typing import Any, Callable, Iterable, Mapping, Protocol, TextIO, runtime_checkable

import numpy as np

_logger = logging.getLogger(__name__)

KIMG = "kimg"
STEPS_PER_SEC = "steps_per_sec"
IMAGES_PER_SEC = "images_per_sec"
MAIN_LOSSES = ("loss/d", "loss/g")


@runtime_checkable
class MetricWriter(Protocol):
    """What the training loop writes to. Images are ``uint8`` arrays of shape (H, W, C), C in {1, 3}."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: Any) -> str:
    """A compact number: 4 significant digits, but no exponent for 1e4 <= |v| < 1e9."""
    value = float(value)
    if math.isfinite(value) and 1e4 <= abs(value) < 1e9:
        return f"{value:.0f}"
    return f"{value:.4g}"


class JsonlWriter:
    """Appends one JSON object per :meth:`write_scalars` call to ``path``: ``{"step": step, **scalars}``.

    Values are written as floats; NaN and +-inf are written as ``null`` (JSON has no non-finite
    numbers), so every line is valid JSON. The file is opened for appending and line-buffered, so a
    resumed run continues the same file and a crash loses at most a partial last line; call
    :meth:`truncate_after` with the restored step on resume to drop lines the resumed run will
    write again. Images are ignored.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = None
        self._open()

    def _open(self) -> None:
        torn = self.path.exists() and self.path.stat().st_size > 0 and not self.path.read_bytes().endswith(b"\n")
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")
        if torn:  # A crash mid-line: start the next record on a line of its own.
            self._file.write("\n")

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        record = {"step": int(step), **{k: _finite_or_none(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        del step, images

    def truncate_after(self, step: int) -> int:
        """Drops every line with ``"step" > step`` and every line that is not a JSON object with a step.

        Rewrites the file atomically (temporary file, then rename) and reopens it for appending.

        Returns:
          the number of lines dropped.
        """
        self.close()
        kept, dropped = [], 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    ok = isinstance(record, dict) and int(record["step"]) <= step
                except (ValueError, KeyError, TypeError):
                    ok = False
                if ok:
                    kept.append(line + "\n")
                else:
                    dropped += bool(line.strip())
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, self.path)
        self._open()
        return dropped

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardWriter:
    """Writes scalars (under their hierarchical names) and images to TensorBoard event files in ``logdir``.

    Needs ``tensorboardX`` (ImportError otherwise; :func:`create_writers` skips it with a warning).
    """

    def __init__(self, logdir: str | os.PathLike, *, flush_secs: int = 60):
        from tensorboardX import SummaryWriter

        self.logdir = pathlib.Path(logdir)
        self._writer = SummaryWriter(logdir=str(self.logdir), flush_secs=flush_secs)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), global_step=int(step))

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        for name, image in images.items():
            image = np.asarray(image)
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            self._writer.add_image(name, image, global_step=int(step),
                                   dataformats="HW" if image.ndim == 2 else "HWC")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _scalar_line(step: int, scalars: Mapping[str, float], total_steps: int | None = None) -> str:
    """``step 1200[/10000] kimg 76.8 | loss/d 1.23 ... | 45.1 steps/s 2887 img/s``."""
    head = f"step {int(step)}" + (f"/{int(total_steps)}" if total_steps else "")
    if KIMG in scalars:
        head += f" kimg {float(scalars[KIMG]):.1f}"
    parts = [head]
    body = " ".join(f"{k} {_fmt(v)}" for k, v in scalars.items() if k not in (KIMG, STEPS_PER_SEC, IMAGES_PER_SEC))
    if body:
        parts.append(body)
    rates = []
    if STEPS_PER_SEC in scalars:
        rates.append(f"{_fmt(scalars[STEPS_PER_SEC])} steps/s")
    if IMAGES_PER_SEC in scalars:
        rates.append(f"{_fmt(scalars[IMAGES_PER_SEC])} img/s")
    if rates:
        parts.append(" ".join(rates))
    return " | ".join(parts)


class LogWriter:
    """One plain line per :meth:`write_scalars` call (4 significant digits)::

        step 1200 kimg 76.8 | loss/d 1.23 loss/g 0.98 | 45.1 steps/s 2887 img/s

    Args:
      log: a ``logging.Logger`` (lines go to ``.info``) or any ``str -> None`` callable such as
        ``print``; default the ``jaxgan`` logger.
    """

    def __init__(self, log: logging.Logger | Callable[[str], Any] | None = None):
        if log is None:
            log = logging.getLogger("jaxgan")
        self._emit = log.info if isinstance(log, logging.Logger) else log

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._emit(_scalar_line(step, scalars))

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        del step, images

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # No isatty, or a closed stream.
        return False


def terminal_columns(stream: Any) -> int:
    """The width of the terminal behind ``stream``: its own size when it has one, else ``$COLUMNS`` or
    the process's terminal (:func:`shutil.get_terminal_size`, 80 when unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # no fileno (a StringIO), or not a terminal
        return shutil.get_terminal_size().columns


class _AboveBar(logging.Handler):
    """Stands in for a console ``StreamHandler`` while a bar is shown: prints each record with
    ``tqdm.write``, which clears the bar, writes the line and redraws the bar below it."""

    def __init__(self, replaced: logging.StreamHandler, tqdm_class):
        super().__init__(replaced.level)
        self.replaced, self._tqdm = replaced, tqdm_class
        self.setFormatter(replaced.formatter)
        for f in replaced.filters:
            self.addFilter(f)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._tqdm.write(self.format(record), file=self.replaced.stream)
            self.replaced.stream.flush()
        except Exception:  # noqa: BLE001 -- logging's own policy for a failing handler
            self.handleError(record)


def _same_terminal(a: Any, b: Any) -> bool:
    return a is b or (a in (sys.stdout, sys.stderr) and b in (sys.stdout, sys.stderr))


class ProgressBar:
    """A `tqdm <https://tqdm.github.io>`_ progress bar on a terminal, redrawn on every :meth:`write_scalars`::

         12%|██▌                  | 1200/10000 [00:27<03:15, loss/d 1.235 loss/g 0.98 kimg 76.8 45.12 steps/s]

    The line always fits the terminal (its width is read at every redraw; what does not fit is left
    off the end, the bar keeping at least 10 cells while the losses fit), so it never wraps, and a
    redraw never starts a new line. While the bar is shown, log records of the root and ``jaxgan``
    loggers that a console handler would print to the same terminal are printed *above* the bar
    (the handler is swapped for one that calls ``tqdm.write``; :meth:`close` puts it back).

    Does nothing when ``stream`` is not a TTY (logs and CI get :class:`LogWriter` lines instead).
    :meth:`close` leaves the final bar on its own line.

    Args:
      total_steps: the run's last step.
      stream: the terminal (default ``sys.stderr``).
      ncols: a fixed width; default: the terminal's width (:func:`terminal_columns`), read at each redraw.
    """

    MIN_BAR = 10

    def __init__(self, total_steps: int, stream: TextIO | None = None, ncols: int | None = None):
        self.total_steps = int(total_steps)
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _isatty(self.stream)
        self.ncols = ncols
        self._bar = None  # created at the first write, starting at that step (a resumed run)
        self._swapped: list[tuple[logging.Logger, logging.Handler, logging.Handler]] = []

    def _open(self, step: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=max(self.total_steps, step), initial=step, file=self.stream,
                         ncols=self._columns(), mininterval=0, miniters=1, dynamic_ncols=False,
                         nrows=1 << 20,  # one bar: never hidden as tqdm hides bars when a pty reports 0 rows
                         bar_format="{percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}{postfix}]")
        for logger in (logging.getLogger(), logging.getLogger("jaxgan")):
            for i, h in enumerate(list(logger.handlers)):
                if (isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                        and _same_terminal(h.stream, self.stream)):
                    above = _AboveBar(h, tqdm)
                    logger.handlers[i] = above
                    self._swapped.append((logger, h, above))

    def _columns(self) -> int:
        return max(20, int(self.ncols or terminal_columns(self.stream)))

    def _postfix(self, step: int, scalars: Mapping[str, float], columns: int) -> str:
        """The most important fields that fit beside a bar of :attr:`MIN_BAR` cells."""
        total = max(self.total_steps, step)
        fixed = len(f"100%|| {total}/{total} [00:00<00:00, ]")
        parts = [f"{k} {_fmt(scalars[k])}" for k in MAIN_LOSSES if k in scalars]
        if KIMG in scalars:
            parts.append(f"kimg {float(scalars[KIMG]):.1f}")
        if STEPS_PER_SEC in scalars:
            parts.append(f"{_fmt(scalars[STEPS_PER_SEC])} steps/s")
        kept = []
        for part in parts:
            if fixed + self.MIN_BAR + len(" ".join(kept + [part])) > columns:
                break
            kept.append(part)
        return " ".join(kept)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        step = int(step)
        if self._bar is None:
            self._open(step)
        columns = self._columns()
        self._bar.ncols = columns
        if step > self._bar.total:
            self._bar.total = step
        if any(k in scalars for k in MAIN_LOSSES):  # an eval record keeps the training losses shown
            self._bar.set_postfix_str(self._postfix(step, scalars, columns), refresh=False)
        if step > self._bar.n:
            self._bar.update(step - self._bar.n)  # redraws (mininterval=0)
        else:
            self._bar.refresh()

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        del step, images

    def flush(self) -> None:
        if self.enabled:
            self.stream.flush()

    def close(self) -> None:
        for logger, original, above in reversed(self._swapped):
            if above in logger.handlers:
                logger.handlers[logger.handlers.index(above)] = original
        self._swapped = []
        if self._bar is not None:
            self._bar.close()  # leaves the final bar, then a newline
            self._bar = None


class MultiWriter:
    """Fans every call out to ``writers``, in order. Empty on processes other than 0.

    :meth:`close` closes every writer even if one raises (the first error is re-raised).
    Usable as a context manager that closes on exit.
    """

    def __init__(self, writers: Iterable[MetricWriter] = ()):
        self.writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for w in self.writers:
            w.write_scalars(step, scalars)

    def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        for w in self.writers:
            w.write_images(step, images)

    def flush(self) -> None:
        for w in self.writers:
            w.flush()

    def close(self) -> None:
        error = None
        for w in self.writers:
            try:
                w.close()
            except Exception as e:  # noqa: BLE001 -- close the rest, then re-raise.
                error = error or e
        if error is not None:
            raise error

    def __enter__(self) -> "MultiWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_writers(workdir: str | os.PathLike, *, total_steps: int, is_main: bool,
                   stream: TextIO | None = None,
                   log: logging.Logger | Callable[[str], Any] | None = None) -> MultiWriter:
    """The usual writers for a run in ``workdir``.

    On the main process (``jax.process_index() == 0``): JSONL at ``workdir/metrics.jsonl``,
    TensorBoard at ``workdir/tb/`` (skipped with one warning when tensorboardX is missing), and a
    :class:`ProgressBar` if ``stream`` (default ``sys.stderr``) is a TTY, else a :class:`LogWriter`
    (to ``log``). Elsewhere: an empty :class:`MultiWriter`.
    """
    if not is_main:
        return MultiWriter()
    workdir = pathlib.Path(workdir)
    stream = sys.stderr if stream is None else stream
    writers: list[MetricWriter] = [JsonlWriter(workdir / "metrics.jsonl")]
    try:
        writers.append(TensorBoardWriter(workdir / "tb"))
    except ImportError as e:
        _logger.warning("TensorBoard events are not written: %s (pip install tensorboardX)", e)
    writers.append(ProgressBar(total_steps, stream) if _isatty(stream) else LogWriter(log))
    return MultiWriter(writers)
