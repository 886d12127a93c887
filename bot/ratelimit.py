"""Telegram's sending limits as sliding windows, and the back-off between retries: pure, on a clock passed in.

Telegram states its limits as "at most N messages in P seconds" (30 a second overall, 20 a minute to a group,
about one a second to a private chat). A sliding window of the last N send times keeps exactly that promise
in every window of P seconds; a token bucket of the same rate lets through up to twice N in a window that
starts with a full bucket, which is the burst Telegram answers with 429.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    """At most `count` messages in any `seconds`."""

    count: int
    seconds: float


@dataclass(frozen=True)
class SendLimits:
    """How fast the bot may send: overall, to one group (or channel), to one private chat."""

    overall: Limit = field(default_factory=lambda: Limit(30, 1.0))
    group: Limit = field(default_factory=lambda: Limit(20, 60.0))
    # One a second on average, with a burst of three: a reply is often two or three messages (the answer
    # acknowledged, the next question), which then go at once instead of trickling out a second apart.
    private: Limit = field(default_factory=lambda: Limit(3, 3.0))

    @classmethod
    def per_second(cls, *, overall: float, group_per_minute: float, private: float) -> SendLimits:
        """Limits from rates: `overall` and `private` messages a second, `group_per_minute` a minute."""
        return cls(
            overall=Limit(max(1, round(overall)), 1.0),
            group=Limit(max(1, round(group_per_minute)), 60.0),
            private=Limit(max(1, round(private * 3)), 3.0),
        )


class SlidingWindow:
    """At most `limit.count` sends in any `limit.seconds`; each caller reserves the earliest moment it may send."""

    def __init__(self, limit: Limit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        # The moments the last `count` sends were (or are to be) made, in order.
        self._times: deque[float] = deque(maxlen=limit.count)

    def reserve(self) -> float:
        """Book the next send: how many seconds from now the caller must wait before making it (0 for now)."""
        now = self._clock()
        at = now
        if self._times:
            at = max(at, self._times[-1])
        if len(self._times) == self._limit.count:
            at = max(at, self._times[0] + self._limit.seconds)
        self._times.append(at)
        return at - now

    def idle(self) -> bool:
        """True once no send of this window counts any more: it may be forgotten and made afresh."""
        return not self._times or self._times[-1] + self._limit.seconds <= self._clock()


class ChatWindows:
    """A sliding window for each chat: group limits for negative chat ids, private ones for positive."""

    FORGET_EVERY = 512
    """Idle chats' windows are dropped after this many reservations, so memory follows the active chats."""

    def __init__(self, limits: SendLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._windows: dict[int | str, SlidingWindow] = {}
        self._reservations = 0

    def reserve(self, chat_id: int | str) -> float:
        """Book the next send to `chat_id` (an @username is a channel or supergroup): seconds to wait."""
        self._reservations += 1
        if self._reservations % self.FORGET_EVERY == 0:
            self._windows = {chat: window for chat, window in self._windows.items() if not window.idle()}
        window = self._windows.get(chat_id)
        if window is None:
            limit = self._limits.group if isinstance(chat_id, str) or chat_id < 0 else self._limits.private
            window = self._windows[chat_id] = SlidingWindow(limit, self._clock)
        return window.reserve()

    def __len__(self) -> int:
        return len(self._windows)


def backoff(attempt: int, *, first: float, longest: float, jitter: float) -> float:
    """Seconds to wait after the `attempt`-th failure: `first` doubling to `longest`, ±50 % by `jitter` in [-1, 1]."""
    # Jitter spreads the retries of requests that failed together (a 502 storm), so they do not come back together.
    base = min(first * (1 << min(max(attempt, 1) - 1, 30)), longest)
    return base * (1 + 0.5 * jitter)
