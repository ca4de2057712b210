"""Whether the webhook's deliveries are being lost: a pushed addon's fallback check comes late only because
its events are expected (:func:`~exporter.planner.policy.push_covered`); when events go missing, that late
check makes a lost backup slower to see than polling alone would. So each read of a pushed addon that finds
a newer backup end judges whether an event announced it (:func:`~exporter.planner.policy.unannounced`),
and while too many of the latest ends were unannounced, pushed addons are polled as if not pushed."""

from __future__ import annotations

from collections import deque

#: The estimate counts the losses among this many of the latest backup ends judged: one stray miss does
#: not flip it, and a recovered webhook is trusted again once this many ends came with their events.
LOSS_WINDOW = 100
#: Above this share of LOSS_WINDOW lost (three or more of 100), events are not waited for.
LOSS_TOLERANCE = 0.02


class DeliveryLosses:
    """A decaying estimate of the share of backup ends whose webhook delivery was lost."""

    def __init__(self, window: int = LOSS_WINDOW, tolerance: float = LOSS_TOLERANCE) -> None:
        if window < 1:
            raise ValueError("the loss window must hold at least one backup end")
        self._window = window
        self._tolerance = tolerance
        self._judged: deque[bool] = deque(maxlen=window)
        self._lost = 0

    def observe(self, lost: bool) -> bool:
        """One more backup end judged (``lost``: no event announced it); whether :attr:`lossy` changed."""
        before = self.lossy
        if len(self._judged) == self._window:
            self._lost -= self._judged[0]
        self._judged.append(lost)
        self._lost += lost
        return self.lossy != before

    @property
    def share(self) -> float:
        """Losses among the latest LOSS_WINDOW ends, over the whole window: a few ends judged so far with
        one loss among them do not already say the webhook loses a third of its deliveries."""
        return self._lost / self._window

    @property
    def lossy(self) -> bool:
        return self.share > self._tolerance


__all__ = ["LOSS_TOLERANCE", "LOSS_WINDOW", "DeliveryLosses"]
