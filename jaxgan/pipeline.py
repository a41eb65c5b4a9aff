"""The input pipeline: each step's global batch built on worker threads and placed on the devices
ahead of the step that consumes it.

A run's batch for step ``s`` is a pure function of ``s`` (:func:`jaxgan.run.host_batch`), so
prefetching changes nothing but timing: the prefetched stream is exactly the synchronous one, and a
resumed run starts it at the restored step. The host work (gathering examples, decoding, stacking,
``jax.make_array_from_process_local_data``) overlaps the device's work on the previous steps, and the
step itself never waits on numpy unless the host is slower than the device.

Threads, not processes: NumPy indexing and the device transfer release the GIL, and a thread shares
the source's caches (an image folder's decoded files, say). One worker keeps batches in order with
the least contention; more help when building a batch is slower than a step (large image decoding).
"""
from __future__ import annotations

import collections
import concurrent.futures
from typing import Any, Callable, Iterator


class Prefetcher:
    """Iterates ``(step, make_batch(step))`` for ``step = start, start+1, ... stop-1``, ``depth`` ahead.

    Args:
      make_batch: ``step -> batch`` (device arrays, already sharded); called on worker threads, in
        step order when ``workers == 1``.
      start, stop: the steps to produce (``stop`` excluded).
      depth: how many batches are built ahead of the one being consumed (2: the next step's batch is
        on the devices while this step runs, and one more is being built).
      workers: threads building batches; results are always returned in step order.

    Example::

        with Prefetcher(lambda s: sharding.global_batch(mesh, host_batch(run, s)), start, total) as it:
            for step, batch in it:
                state, metrics = compiled(state, batch)
    """

    def __init__(self, make_batch: Callable[[int], Any], start: int, stop: int, *, depth: int = 2,
                 workers: int = 1):
        if depth < 1 or workers < 1:
            raise ValueError(f"Prefetcher needs depth >= 1 and workers >= 1, got depth={depth}, "
                             f"workers={workers}")
        self._make, self._next, self._stop = make_batch, start, stop
        self._depth = depth
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="jaxgan-batches")
        self._pending: collections.deque = collections.deque()
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next < self._stop:
            self._pending.append((self._next, self._pool.submit(self._make, self._next)))
            self._next += 1

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self

    def __next__(self) -> tuple[int, Any]:
        if not self._pending:
            raise StopIteration
        step, future = self._pending.popleft()
        batch = future.result()  # re-raises a worker's exception here, in the loop's thread
        self._fill()
        return step, batch

    def close(self) -> None:
        """Stops building batches (those in flight finish and are dropped)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
