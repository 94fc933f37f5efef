"""Dynamic batching: concurrent requests are gathered into one model call.

A batch starts with the oldest waiting request and takes whatever else is waiting, then waits
for more until either ``max_batch_size`` rows are gathered or the oldest request has waited
``max_wait_s``.  Requests already queued while the model was busy have used up their wait, so
under load a batch goes out as soon as the model is free.  The model runs on one worker thread
(torch is not called from two threads at once); ``max_batch_size=1`` turns batching off."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass
class _Waiting:
    item: Any
    size: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """``await batcher.submit(item, size)`` returns what ``run_batch`` produced for ``item``.

    ``run_batch(items)`` runs on ``executor`` and returns one result per item, in order; a
    result that is an ``Exception`` is raised to that item's caller only."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        executor: Executor,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._held: _Waiting | None = None  # did not fit the last batch; heads the next
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, item: Any, size: int = 1) -> Any:
        self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Waiting(item, max(1, size), future))
        return await future

    async def _next_batch(self) -> list[_Waiting]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, rows = [first], first.size
        deadline = first.enqueued + self.max_wait_s
        while rows < self.max_batch_size:
            if self._queue.empty():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    waiting = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
            else:
                waiting = self._queue.get_nowait()
            if rows + waiting.size > self.max_batch_size:
                self._held = waiting
                break
            batch.append(waiting)
            rows += waiting.size
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [w for w in batch if not w.future.done()]  # a caller that gave up is skipped
            if not live:
                continue
            if self.on_batch is not None:
                self.on_batch(sum(w.size for w in live))
            try:
                results = await loop.run_in_executor(
                    self.executor, self.run_batch, [w.item for w in live]
                )
            except Exception as exc:  # the whole call failed: every caller hears why
                results = [exc] * len(live)
            for waiting, result in zip(live, results):
                if waiting.future.done():
                    continue
                if isinstance(result, BaseException):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)
