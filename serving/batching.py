"""Dynamic batching: concurrent requests are gathered into one model call.

A batch starts with the oldest waiting request and takes whatever else is waiting, then waits
for more until ``max_batch_size`` rows or ``max_batch_tokens`` tokens are gathered, or the
oldest request has waited ``max_wait_s``.  Requests already queued while the model was busy
have used up their wait, so under load a batch goes out as soon as the model is free.  A request
that alone holds more rows or tokens than a batch goes out by itself (the model splits it into
calls within the limits).  The model runs on one worker thread (torch is not called from two
threads at once); ``max_batch_size=1`` turns batching off.

The queue is bounded: at most ``max_pending`` requests are admitted (waiting or in the model)
at once, and ``submit`` raises ``QueueFull`` beyond that at once, so an overloaded server
refuses work (HTTP 429) instead of letting latency and memory grow without limit."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class QueueFull(Exception):
    """The batcher already holds ``limit`` requests."""

    def __init__(self, limit: int):
        super().__init__(f"the server is at its limit of {limit} concurrent requests")
        self.limit = limit


@dataclass
class _Waiting:
    item: Any
    size: int
    tokens: int
    future: asyncio.Future
    timing: dict | None = None
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """``await batcher.submit(item, size, tokens)`` returns what ``run_batch`` produced for
    ``item``.

    ``run_batch(items)`` runs on ``executor`` and returns one result per item, in order; a
    result that is an ``Exception`` is raised to that item's caller only."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        executor: Executor,
        max_batch_size: int,
        max_wait_s: float,
        max_batch_tokens: int | None = None,
        max_pending: int | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        for name, value in (("max_batch_tokens", max_batch_tokens), ("max_pending", max_pending)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_pending = max_pending
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.pending = 0  # admitted and not yet answered: waiting or in the model
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._held: _Waiting | None = None  # did not fit the last batch; heads the next
        self._task: asyncio.Task | None = None

    @property
    def waiting(self) -> int:
        """Requests queued and not yet handed to the model."""
        queued = self._queue.qsize() if self._queue is not None else 0
        return queued + (self._held is not None)

    @property
    def full(self) -> bool:
        return self.max_pending is not None and self.pending >= self.max_pending

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

    async def submit(
        self, item: Any, size: int = 1, tokens: int = 0, timing: dict | None = None
    ) -> Any:
        """``timing``, when given, receives ``queue_s`` and ``inference_s`` for this item."""
        if self.full:
            raise QueueFull(self.max_pending)
        self.start()
        future = asyncio.get_running_loop().create_future()
        self.pending += 1
        try:
            self._queue.put_nowait(_Waiting(item, max(1, size), max(0, tokens), future, timing))
            return await future
        finally:
            self.pending -= 1

    def _fits(self, rows: int, tokens: int, waiting: _Waiting) -> bool:
        if rows + waiting.size > self.max_batch_size:
            return False
        return self.max_batch_tokens is None or tokens + waiting.tokens <= self.max_batch_tokens

    async def _next_batch(self) -> list[_Waiting]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, rows, tokens = [first], first.size, first.tokens
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
            if not self._fits(rows, tokens, waiting):
                self._held = waiting
                break
            batch.append(waiting)
            rows += waiting.size
            tokens += waiting.tokens
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [w for w in batch if not w.future.done()]  # a caller that gave up is skipped
            if not live:
                continue
            if self.on_batch is not None:
                self.on_batch(sum(w.size for w in live), sum(w.tokens for w in live))
            started = time.monotonic()
            try:
                results = await loop.run_in_executor(
                    self.executor, self.run_batch, [w.item for w in live]
                )
            except Exception as exc:  # the whole call failed: every caller hears why
                results = [exc] * len(live)
            finished = time.monotonic()
            for waiting, result in zip(live, results):
                if waiting.timing is not None:
                    waiting.timing["queue_s"] = started - waiting.enqueued
                    waiting.timing["inference_s"] = finished - started
                if waiting.future.done():
                    continue
                if isinstance(result, BaseException):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)
