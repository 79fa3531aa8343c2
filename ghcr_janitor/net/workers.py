"""Worker threads for blocking requests, behind asyncio, with an adaptive in-flight limit.

Cheaper than `loop.run_in_executor` per request: no concurrent.futures.Future to chain, and
completions are handed to the event loop in batches (one wake-up for every result that is
ready, not one per result). Threads start on demand, at most `maximum` (the thread cap); how
many requests run at once is `limit.limit` (the adaptive limit, at most the thread cap).

Interrupts: `halt()` (Ctrl-C) stops every pool from starting calls; `Workers.close()` never waits
for a call that is still running (a request the server stalls): its daemon thread is abandoned,
its result goes nowhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from queue import SimpleQueue
from typing import Any, Callable

from ghcr_janitor.net.adaptive import AdaptiveLimit

_STOP = object()
_halt = threading.Event()


def halt() -> None:
    """An interrupt: no pool starts a call from now on (queued calls are cancelled, never sent)."""
    _halt.set()


def resume() -> None:
    """The start of a command: calls may start again (after an earlier in-process interrupt)."""
    _halt.clear()


def halted() -> bool:
    return _halt.is_set()


def _cancel(future: asyncio.Future) -> None:
    """Cancel `future` from any thread (on its own loop)."""
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        future.cancel()
        return
    try:
        loop.call_soon_threadsafe(future.cancel)
    except RuntimeError:     # that loop is closed: nobody waits
        pass


class _Inbox:
    """Results waiting for one event loop, and whether a wake-up is already on its way."""

    __slots__ = ("loop", "ready", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.ready: deque = deque()
        self.scheduled = False

    def put(self, future: asyncio.Future, ok: bool, value: Any) -> None:
        self.ready.append((future, ok, value))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:     # the loop is closed: nobody waits for the result any more
                pass

    def drain(self) -> None:
        self.scheduled = False       # before popping: a result added from now on schedules a new drain
        ready = self.ready
        while ready:
            future, ok, value = ready.popleft()
            if future.done():        # cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            elif isinstance(value, asyncio.CancelledError):     # not run: the pool was closed
                future.cancel()
            else:
                future.set_exception(value)


class Workers:
    """Run blocking calls on up to `maximum` threads, at most `limit.limit` at a time."""

    def __init__(self, maximum: int, limit: AdaptiveLimit | None = None, name: str = "janitor-http"):
        self.maximum = max(1, maximum)
        self.limit = limit or AdaptiveLimit(self.maximum, initial=self.maximum)
        self._name = name
        self._jobs: SimpleQueue = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._gate = threading.Condition()
        self._running = 0
        self.peak = 0
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._calls: dict[threading.Thread, asyncio.Future] = {}   # threads inside a call (under _gate)
        self._closed = False
        self.abandoned = 0          # calls still running when the pool was closed

    def __repr__(self) -> str:
        return f"Workers(threads={len(self._threads)}/{self.maximum}, {self.limit!r})"

    def submit(self, call: Callable[[], Any]) -> asyncio.Future:
        """Schedule `call` on a worker; the returned future (of the running loop) gets its result."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inboxes[loop] = _Inbox(loop)
        future = loop.create_future()
        self._jobs.put((call, future, inbox))
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.maximum:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _work(self) -> None:
        jobs, gate, limit, calls, halt = self._jobs, self._gate, self.limit, self._calls, _halt
        me = threading.current_thread()
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            call, future, inbox = job
            with gate:
                while self._running >= limit.limit and not self._closed:
                    gate.wait()
                self._running += 1
                if self._running > self.peak:
                    self.peak = self._running
                # Decided under the gate, where close() looks: a call either starts before the
                # pool closes (and may be abandoned) or never starts.
                start = not (self._closed or halt.is_set() or future.cancelled())
                if start:
                    calls[me] = future
            if not start:            # nobody waits for it (or an interrupt): never send it
                value, ok = asyncio.CancelledError(), False
            else:
                try:
                    value, ok = call(), True
                except BaseException as exc:  # handed to the awaiting task
                    value, ok = exc, False
            with gate:
                calls.pop(me, None)
                self._running -= 1
                free = limit.limit - self._running
                if free > 0:
                    gate.notify(free)
            inbox.put(future, ok, value)
            del job, call, future, value
            self._idle.release()

    def close(self) -> int:
        """Close the pool without waiting for a running call: calls not yet started are cancelled
        (never run); idle threads end; a thread still inside a call (a request the server stalls)
        is abandoned, its future cancelled — a daemon thread, it ends once its call returns (closing
        the client's connections makes that soon). Returns how many calls were abandoned."""
        with self._gate:
            self._closed = True
            running = dict(self._calls)
            self.limit.limit = max(self.limit.limit, 1)
            self._gate.notify_all()
        pending = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except Exception:
                break
            if job is not _STOP:
                pending.append(job)
        for _, future, _ in pending:
            _cancel(future)
        for future in running.values():
            _cancel(future)
        for _ in self._threads:
            self._jobs.put(_STOP)
        for thread in self._threads:
            if thread not in running:       # it will never start a call now: ends at once
                thread.join()
        self._threads.clear()
        self._inboxes.clear()
        self.abandoned += len(running)
        return len(running)
