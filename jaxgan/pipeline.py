"""The input pipeline: each step's global batch built on worker threads and placed on the devices
ahead of the step that consumes it.

A run's batch for step ``s`` is a pure function of ``s`` (:func:`jaxgan.run.host_batch`), so
prefetching changes nothing but timing: the prefetched stream is exactly the synchronous one, and a
resumed run starts it at the restored step. The host work (gathering examples, decoding, stacking,
``jax.make_array_from_process_local_data``) overlaps the device's work on the previous steps, and the
step itself never waits on numpy unless the host is slower than the device.

Workers are threads: NumPy indexing, PIL's decoding and resizing and the device transfer release
the GIL, and a thread shares the source's memory map and caches. Workers build whole batches, each a
pure function of its step, and the stream is returned in step order however they finish. One worker
suffices for arrays and prepared stores, whose small batches cross to the devices several steps per
transfer (:func:`steps_per_transfer`: the fixed cost of a transfer is paid once for them); sources
that decode per batch (image folders, TFDS) get one per core (:func:`default_workers`). Decoding a
file also holds the GIL for part of its time (PIL parses a JPEG's header in Python), which caps what
the threads of one process decode however many cores there are: an image folder can decode in worker
processes instead (:func:`use_processes`, config ``input_processes``), the threads then only wait
for them. BENCHMARKS.md measures both.

The prefetcher counts the time the consumer waited for a batch and the time workers spent building
them; :class:`InputMeter` turns those into the ``input/`` metrics of the training loop.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import time
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

WAIT_WARNING = 0.2  # fraction of the step time spent waiting for input that is called input-bound


def decodes(source: Any) -> bool:
    """Whether building a batch of ``source`` decodes files (an image folder, TFDS), looking through
    views (``part``, ``transform``, ...) and both domains of a pair."""
    return any(getattr(inner, "decodes_per_batch", False) for inner in _sources(source))


def _sources(source: Any):
    """``source`` and every source inside it (a view's source, both domains of a pair), outermost first."""
    yield source
    for key in ("source", "a", "b"):
        if getattr(source, key, None) is not None:
            yield from _sources(getattr(source, key))


def _takes_processes(source: Any) -> bool:
    return hasattr(source, "processes") and hasattr(source, "close")


def use_processes(source: Any, processes: int) -> int:
    """Has each source in ``source`` that can (an image folder; looking through views and both
    domains of a pair) decode its batches in ``processes`` worker processes, 0: in the calling
    thread (config ``input_processes``). The batches are the same either way.

    Returns:
      How many sources took it (0 where none decodes in processes: the setting does nothing).
    """
    found = 0
    for inner in filter(_takes_processes, _sources(source)):
        if inner.processes != processes:
            inner.close()  # a pool of the old size stops; the next batch starts one of the new size
        inner.processes = processes
        found += 1
    return found


def can_use_processes(source: Any) -> bool:
    """Whether some source in ``source`` can decode in worker processes (:func:`use_processes`)."""
    return any(_takes_processes(inner) for inner in _sources(source))


def close_processes(source: Any) -> None:
    """Stops the decoding processes of every source in ``source`` (see :func:`use_processes`); a
    later batch starts new ones. The train loop calls it when it ends."""
    for inner in filter(_takes_processes, _sources(source)):
        inner.close()


def decoding_processes(source: Any) -> int:
    """The most decoding processes any source in ``source`` uses (see :func:`use_processes`)."""
    return max(getattr(inner, "processes", 0) or 0 for inner in _sources(source))


TRANSFER_BYTES = 4 << 20  # a transfer of several steps' batches carries about this much (see steps_per_transfer)
MAX_STEPS_PER_TRANSFER = 32


def steps_per_transfer(source: Any, bytes_per_step: int, setting: int = 0) -> int:
    """Train steps whose batches cross to the devices in one transfer (config
    ``input_steps_per_transfer``; 0: this choice).

    Each transfer costs the host a fixed tens of microseconds besides its bytes (BENCHMARKS.md,
    ``benchmarks/input_transfers.py``: 139-163 us a step for dcgan_mnist's 100 kB batches one at a
    time on one CPU device here, 47-53 us in transfers of 32), which a step of a small network on an
    accelerator does not cover (139 us for that step on a v5e chip by the TPU compiler's bound). So
    batches of a few hundred kB travel several steps at once, up to :data:`TRANSFER_BYTES` a transfer (at most
    :data:`MAX_STEPS_PER_TRANSFER` steps); batches that are large already, and sources that decode
    per batch (their decoding, not the transfer, is the cost; several workers share it by step), one
    step at a time. The stream is the same for any value.
    """
    if setting:
        return int(setting)
    if decodes(source):
        return 1
    return int(max(1, min(MAX_STEPS_PER_TRANSFER, TRANSFER_BYTES // max(1, int(bytes_per_step)))))


def default_workers(source: Any, cpu_count: int | None = None) -> int:
    """Batch-building threads for ``source``: one per core where batches are decoded (at least one
    per decoding process, so that each has a batch to build), else one."""
    if not decodes(source):
        return 1
    return max(1, cpu_count or os.cpu_count() or 1, decoding_processes(source))


class Prefetcher:
    """Iterates ``(step, batch)`` for ``step = start, start+1, ... stop-1``, built ahead on worker threads.

    Args:
      make_batch: ``step -> batch`` (device arrays, already sharded); called on worker threads, in
        step order when ``workers == 1``. With ``chunk``: ``(step, n) -> n batches``, those of steps
        ``step .. step+n-1`` (``n <= chunk``; :func:`jaxgan.run.input_pipeline` makes one).
      start, stop: the steps to produce (``stop`` excluded).
      depth: how many calls of ``make_batch`` are built ahead of the one being consumed (2: the next
        step's batch is on the devices while this step runs, and one more is being built).
      workers: threads building batches; results are always returned in step order.
      chunk: steps per call of ``make_batch(step, n)`` (:func:`steps_per_transfer`); the last call
        may have fewer. None: one per call of ``make_batch(step)``.

    Example::

        with Prefetcher(lambda s: sharding.global_batch(mesh, host_batch(run, s)), start, total) as it:
            for step, batch in it:
                state, metrics = compiled(state, batch)
    """

    def __init__(self, make_batch: Callable[..., Any], start: int, stop: int, *, depth: int = 2,
                 workers: int = 1, chunk: int | None = None):
        if depth < 1 or workers < 1 or (chunk is not None and chunk < 1):
            raise ValueError(f"Prefetcher needs depth >= 1, workers >= 1 and chunk >= 1, got "
                             f"depth={depth}, workers={workers}, chunk={chunk}")
        self._make, self._next, self._stop = make_batch, start, stop
        self._depth, self.workers, self.chunk = depth, workers, chunk
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="jaxgan-batches")
        self._pending: collections.deque = collections.deque()
        self._ready: collections.deque = collections.deque()  # (step, batch, build seconds) of a taken chunk
        self.waited = 0.0  # seconds the consumer was blocked waiting for a batch
        self.build_seconds = 0.0  # seconds workers spent building the batches consumed so far
        self.consumed = 0
        self._fill()

    def _timed(self, step: int, n: int) -> tuple[Any, float]:
        t0 = time.perf_counter()
        batches = [self._make(step)] if self.chunk is None else list(self._make(step, n))
        if len(batches) != n:
            raise ValueError(f"make_batch({step}, {n}) returned {len(batches)} batches, not {n}")
        return batches, time.perf_counter() - t0

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next < self._stop:
            n = min(self.chunk or 1, self._stop - self._next)
            self._pending.append((self._next, self._pool.submit(self._timed, self._next, n)))
            self._next += n

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self

    def __next__(self) -> tuple[int, Any]:
        if not self._ready:
            if not self._pending:
                raise StopIteration
            step, future = self._pending.popleft()
            t0 = time.perf_counter()
            try:
                batches, seconds = future.result()  # re-raises a worker's exception here, in the loop's thread
            finally:
                self.waited += time.perf_counter() - t0
            self._ready.extend((step + i, b, seconds / len(batches)) for i, b in enumerate(batches))
            self._fill()
        step, batch, seconds = self._ready.popleft()
        self.build_seconds += seconds
        self.consumed += 1
        return step, batch

    def close(self) -> None:
        """Stops building batches (those in flight finish and are dropped)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._ready.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InputMeter:
    """The ``input/`` metrics of a training loop fed by a :class:`Prefetcher`.

    Between two calls of :meth:`update`:

    * ``input/wait_fraction``: the share of the interval's step time the loop spent blocked waiting
      for the next batch, ``waited / (steps / steps_per_sec)``: 0 when the pipeline keeps ahead, near
      1 when the devices idle for input;
    * ``input/images_per_sec``: what the pipeline can deliver, ``images built / build seconds x
      workers`` (its workers' throughput, whether or not the step asked for that much).

    The first time the wait fraction exceeds :data:`WAIT_WARNING`, it logs one warning with the remedy.

    Args:
      prefetcher: the loop's prefetcher.
      images_per_batch: images in one batch (``run.images_per_step``).
      remedy: what to do about an input-bound run (appended to the warning).
    """

    def __init__(self, prefetcher: Prefetcher, images_per_batch: int, remedy: str = ""):
        self._p, self._images, self._remedy = prefetcher, images_per_batch, remedy
        self._mark = (0.0, 0.0, 0)
        self.warned = False

    def reset(self) -> None:
        """Starts the next interval now (call it where the throughput clock starts)."""
        self._mark = (self._p.waited, self._p.build_seconds, self._p.consumed)

    def update(self, steps_per_sec: float | None) -> dict[str, float]:
        """The interval's metrics (``{}`` without a step rate or a batch); starts the next interval."""
        waited0, built0, consumed0 = self._mark
        waited, built, batches = self._p.waited - waited0, self._p.build_seconds - built0, self._p.consumed - consumed0
        self.reset()
        out = {}
        if batches and steps_per_sec and steps_per_sec > 0:
            out["input/wait_fraction"] = min(1.0, waited * steps_per_sec / batches)
        if batches and built > 0:
            out["input/images_per_sec"] = batches * self._images / built * self._p.workers
        fraction = out.get("input/wait_fraction", 0.0)
        if fraction > WAIT_WARNING and not self.warned:
            self.warned = True
            rate = out.get("input/images_per_sec")
            log.warning("input-bound: the step waited for its batch %.0f%% of the time (the input pipeline makes "
                        "%s images/s on %d worker(s))%s", 100 * fraction, f"{rate:,.0f}" if rate else "?",
                        self._p.workers, f": {self._remedy}" if self._remedy else "")
        return out
