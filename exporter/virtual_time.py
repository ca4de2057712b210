"""Virtual time for asyncio: an event loop whose clock jumps to the next timer instead of waiting for it.

For code that does no real I/O and starts no threads, such as the exporter talking to the in-process
simulator through ``httpx.ASGITransport``: every ``asyncio.sleep``, timeout and ``call_later`` still
fires in order, but when nothing is ready the loop moves its clock straight to the earliest timer
instead of blocking. Hours of polling then run in the CPU time their work takes, deterministically.

    loop = VirtualTimeLoop()
    clock = VirtualClock(loop, epoch=1_795_000_000.0)   # a ``Clock`` reading epoch + loop.time()
    loop.run_until_complete(main(clock))
    loop.close()

The loop refuses to wait for nothing: when no callback is ready and no timer is scheduled, every task
is waiting on something that only real I/O or another thread could set, so it raises
:class:`VirtualTimeDeadlockError` instead of hanging. The self-pipe (``call_soon_threadsafe``) is still
polled, without blocking.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class VirtualTimeDeadlockError(RuntimeError):
    """Nothing is ready and no timer is scheduled: waiting would never end in virtual time."""


class _VirtualSelector(selectors.SelectSelector):
    """Polls the registered file objects without blocking; a would-be wait moves the loop's clock."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        super().__init__()
        self._advance = advance

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise VirtualTimeDeadlockError(
                "nothing is ready and no timer is scheduled: every task waits for something that "
                "cannot happen in virtual time"
            )
        self._advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual, starting at ``start`` (seconds)."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = start
        super().__init__(selector=_VirtualSelector(self._advance))

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual_now += seconds


class VirtualClock:
    """A :class:`~exporter.clock.Clock` on a loop's time: ``epoch + loop.time()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float) -> None:
        self._loop = loop
        self._epoch = epoch - loop.time()

    def now(self) -> float:
        return self._epoch + self._loop.time()


def run_virtual(main: Callable[[VirtualClock], Awaitable[T]], *, epoch: float) -> T:
    """Run ``main(clock)`` to completion on a fresh virtual-time loop whose clock starts at ``epoch``."""
    loop = VirtualTimeLoop()
    try:
        clock = VirtualClock(loop, epoch)

        async def _main() -> T:
            return await main(clock)

        return loop.run_until_complete(_main())
    finally:
        try:
            # As asyncio.run does: whatever main left running is cancelled and awaited.
            loop.run_until_complete(_cancel_all())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


__all__ = ["VirtualClock", "VirtualTimeDeadlockError", "VirtualTimeLoop", "run_virtual"]
