"""When the state is saved and how it is loaded (``--storage.path``).

At start :meth:`StateSaver.load` reads the file and hands each component its part: the snapshot (served
at once, with the times it was read), the request budget's log (it keeps counting against the rolling
hour) and the planner's plans (resumed, not restarted). A file that cannot be used is ignored with one
warning line, and the exporter starts as it would without one.

While running, :meth:`StateSaver.run` saves at most every ``interval`` seconds, and only when something
changed; :meth:`StateSaver.save` saves once more at shutdown. The components' state is exported on the
event loop (a snapshot is immutable, the rest is copied), then encoded and written in a thread, so that a
large fleet's file does not hold up scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.snapshot import SnapshotStore
from exporter.state.codec import MAX_STATE_BYTES, SavedState, StateFileError, StateIdentity, decode, encode
from exporter.state.records import PlannerState
from exporter.state.store import StateStore

log = logging.getLogger(__name__)

#: At most one save per this many seconds while running.
SAVE_INTERVAL = 5.0


@runtime_checkable
class PlanState(Protocol):
    """What the saver needs of a scheduler that has plans to keep (the planner has)."""

    def export_state(self) -> PlannerState: ...

    def restore_state(self, state: PlannerState) -> None: ...


class StateSaver:
    def __init__(
        self,
        store: StateStore,
        identity: StateIdentity,
        *,
        snapshots: SnapshotStore,
        budget: RequestBudget,
        planner: object,
        clock: Clock,
        interval: float = SAVE_INTERVAL,
    ) -> None:
        self._store = store
        self._identity = identity
        self._snapshots = snapshots
        self._budget = budget
        #: A scheduler without plans (a test's) is saved without them.
        self._planner = planner if isinstance(planner, PlanState) else None
        self._clock = clock
        self._interval = interval
        self._last: tuple[object, ...] | None = None
        self._write_error: str | None = None
        self.saves = 0
        #: Saves that failed (northflank_exporter_state_save_failures_total): each one, though a
        #: problem that persists is logged only once.
        self.failures = 0
        #: When the state in the file was taken (the last save's, or at start the restored file's).
        self.last_saved_at: float | None = None

    # -- at start -------------------------------------------------------------------------------------

    def load(self) -> SavedState | None:
        """Restore the saved state into the components; None (and one warning) when there is none to use."""
        store = self._store
        try:
            data = store.read(MAX_STATE_BYTES)
        except OSError as error:
            log.warning(
                "--storage.path: cannot read %s (%s); starting afresh", store.path, error.strerror or error
            )
            return None
        finally:
            store.remove_leftovers()
        if data is None:
            log.info("--storage.path: no saved state in %s yet; starting afresh", store.directory)
            return None
        try:
            state = decode(data, self._identity, now=self._clock.now())
        except StateFileError as error:
            log.warning("--storage.path: ignoring %s: %s; starting afresh", store.path, error)
            return None
        self._snapshots.restore_state(state.snapshot)
        self._budget.restore_state(state.budget)
        if self._planner is not None:
            self._planner.restore_state(state.planner)
        self.last_saved_at = state.saved_at
        now = self._clock.now()
        log.info(
            "--storage.path: restored the state saved at %s: %d addons, %d requests in the last hour",
            datetime.fromtimestamp(state.saved_at, UTC).isoformat(timespec="seconds"),
            len(state.snapshot.addons),
            self._budget.spent(now),
        )
        return state

    # -- while running --------------------------------------------------------------------------------

    def collect(self) -> SavedState:
        """The components' state now (on the event loop: the planner and the budget change on it)."""
        return SavedState(
            saved_at=self._clock.now(),
            snapshot=self._snapshots.export_state(),
            planner=self._planner.export_state() if self._planner is not None else PlannerState(),
            budget=self._budget.export_state(),
        )

    def _changed(self, state: SavedState) -> tuple[object, ...] | None:
        """The state's fingerprint when it differs from the last saved one, else None."""
        # The snapshot is replaced whole on every change: identity says whether it moved, cheaply.
        fingerprint: tuple[object, ...] = (state.snapshot, state.planner, state.budget)
        last = self._last
        if last is not None and last[0] is state.snapshot and last[1:] == fingerprint[1:]:
            return None
        return fingerprint

    def write(self, state: SavedState) -> bool:
        """Encode and write ``state`` (any thread); whether it was written. A failure is logged once per
        distinct problem: the exporter carries on, and the previous file stays as it was."""
        try:
            self._store.write(encode(state, self._identity))
        except OSError as error:
            self.failures += 1
            problem = error.strerror or type(error).__name__
            if problem != self._write_error:
                self._write_error = problem
                log.warning(
                    "--storage.path: cannot save the state in %s (%s)", self._store.directory, problem
                )
            return False
        if self._write_error is not None:
            log.info("--storage.path: saving the state works again")
            self._write_error = None
        self.saves += 1
        self.last_saved_at = state.saved_at
        return True

    def save_now(self) -> bool:
        """Save at once on this thread when something changed (virtual-time benchmarks, tests)."""
        state = self.collect()
        fingerprint = self._changed(state)
        if fingerprint is None:
            return False
        if self.write(state):
            self._last = fingerprint
        return True

    async def save(self) -> bool:
        """Save when something changed since the last save, encoding and writing in a thread."""
        state = self.collect()
        fingerprint = self._changed(state)
        if fingerprint is None:
            return False
        if await asyncio.to_thread(self.write, state):
            self._last = fingerprint
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Save every ``interval`` seconds while something changes, until ``stop`` (the exporter saves
        once more when the poller has stopped)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if stop.is_set():
                break
            try:
                await self.save()
            except Exception:
                # A bug in saving must not end the exporter: the data it serves is still good.
                self.failures += 1
                log.exception("--storage.path: saving the state failed unexpectedly")


__all__ = ["SAVE_INTERVAL", "PlanState", "StateSaver"]
