"""CRM webhooks: lead and booking events POSTed from the outbox to the firm's CRM, signed, retried, never lost.

The events are queued by leads/handoff.py in the transaction of the change; `CrmDeliverer` claims them with a
lease and POSTs each in its own background task, so a slow or absent CRM never slows a prospect's conversation.
Delivery is at least once: a receiver deduplicates by the `Idempotency-Key` header (the body's `id`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Literal, Self

import aiohttp

from bot.config import BusinessConfig, ConfigError
from bot.workers import keep_doing
from leads.outbox import DueMessage, SqlOutbox
from scheduling.feeds import user_agent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Consultbot-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "Consultbot-Event"
TOLERANCE = timedelta(minutes=5)
"""How old (or how far ahead) a signature's timestamp may be before a receiver treats it as a replay."""

CRM_EVERY = timedelta(seconds=5)
"""How often the running bot looks for due events; changes relayed in this process wake it at once."""
BATCH = 10
"""Events claimed per round trip. They are POSTed one after another, in the order they happened, so the lease
covers the whole batch timing out."""
LEASE_MARGIN = timedelta(minutes=1)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
SHORTEST_RETRY = timedelta(seconds=1)
"""Full jitter may draw zero; a floor keeps a failing event from being claimed again in the same round."""
RETRYABLE = frozenset({408, 409, 425, 429})
"""4xx answers that may pass: a timeout, a concurrent request with the same idempotency key, too early, too many."""

Outcome = Literal["done", "retry", "dead"]


def event_body(message: DueMessage) -> bytes:
    """The JSON document POSTed for an event: its id (the idempotency key), type, when it happened, and its data."""
    document = {
        "id": message.idempotency_key,
        "type": message.topic,
        "created_at": message.created_at.isoformat(),
        "data": message.payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `Consultbot-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: bytes, header: str, body: bytes, *, now: datetime, tolerance: timedelta = TOLERANCE) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance` of `now`."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = fields.get("t", "")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > tolerance.total_seconds():
        return False
    # Constant-time: a byte-by-byte compare would tell a forger how much of their guess is right.
    return hmac.compare_digest(_digest(secret, int(timestamp), body), fields.get("v1", ""))


def webhook_secret(config: BusinessConfig, environment: Mapping[str, str] = os.environ) -> bytes:
    """The signing secret from the variable `crm.secret_env` names; ConfigError naming the variable if it is unset."""
    name = config.crm.secret_env
    secret = environment.get(name, "")
    if not secret:
        raise ConfigError("the environment", [(name, "is not set; crm.secret_env names it for signing CRM webhooks")])
    return secret.encode()


def retry_delay(attempt: int, *, draw: float, retry_after: timedelta | None = None) -> timedelta:
    """How long to wait after the `attempt`-th failed try: the receiver's Retry-After if it gave one (up to an hour),
    else full jitter, `draw` in [0, 1] of a ceiling that starts at 30 s and doubles to an hour."""
    if retry_after is not None:
        return max(min(retry_after, LONGEST_RETRY), SHORTEST_RETRY)
    ceiling = min(FIRST_RETRY * (1 << min(max(attempt, 1) - 1, 30)), LONGEST_RETRY)
    return max(ceiling * draw, SHORTEST_RETRY)


def retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds, or an HTTP date) as a delay; None if absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when - now, timedelta()) if when.tzinfo is not None else None


@dataclass(frozen=True)
class Attempt:
    """How one POST went: done, retry (when the receiver asked, if it did), or dead; and why, for the operator."""

    outcome: Outcome
    error: str | None = None
    wait: timedelta | None = None


def judge(status: int, reason: str, *, headers: Mapping[str, str], now: datetime) -> Attempt:
    """What a receiver's answer means for the event.

    2xx is delivered. 408/409/425/429 and 5xx may pass and are retried. Any other 4xx, and a redirect, is dead at
    once: the receiver has refused this very signed body (bad request, wrong secret, no such endpoint), and sending
    it again cannot change the answer; an operator fixes the receiver or the configuration and retries the dead
    letters with `consultbot outbox retry`.
    """
    if 200 <= status < 300:
        return Attempt("done")
    error = f"HTTP {status} {reason}".strip()
    if status in RETRYABLE or status >= 500:
        wait = retry_after(headers.get("Retry-After"), now=now) if status in {429, 503} else None
        return Attempt("retry", error, wait)
    return Attempt("dead", error)


class CrmDeliverer:
    """POSTs due CRM events from the outbox, signed, and records how each went.

    Retry policy. A refused connection, a timeout, 5xx, 408, 409, 425 or 429 is tried again after a random wait of
    up to 30 s, 1 min, 2 min, … up to an hour (full jitter: failures that happened together do not retry together),
    or after the receiver's Retry-After on 429 and 503; after `max_attempts` tries the event is a dead letter. Other
    answers are judged by `judge`. Dead letters keep their last error for `consultbot outbox`.
    """

    def __init__(
        self,
        *,
        outbox: SqlOutbox,
        url: str,
        secret: bytes,
        clock: Callable[[], datetime],
        max_attempts: int,
        timeout: timedelta,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._url = url
        self._secret = secret
        self._clock = clock
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._lease = timeout * BATCH + LEASE_MARGIN
        self._draw = draw
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_config(
        cls,
        config: BusinessConfig,
        *,
        outbox: SqlOutbox,
        clock: Callable[[], datetime],
        environment: Mapping[str, str] = os.environ,
    ) -> CrmDeliverer:
        """The deliverer the `[crm]` section describes; ConfigError if it has no URL or the secret is unset."""
        crm = config.crm
        if crm.webhook_url is None:
            raise ConfigError("the configuration", [("crm.webhook_url", "is not set; no CRM to deliver to")])
        return cls(
            outbox=outbox,
            url=crm.webhook_url,
            secret=webhook_secret(config, environment),
            clock=clock,
            max_attempts=crm.max_attempts,
            timeout=timedelta(seconds=crm.timeout_seconds),
        )

    def wake(self) -> None:
        """Deliver now (an event was just committed in this process)."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """POST every due event not claimed by another deliverer; how many were delivered."""
        delivered = 0
        while True:
            claimed = await self._outbox.claim("crm", now=self._clock(), lease=self._lease, limit=BATCH)
            outcomes = [await self._deliver(message) for message in claimed]
            delivered += outcomes.count("done")
            # A whole batch that failed means the CRM is down: the rest waits for the next round rather than
            # hammering it (and events with a short back-off coming round again within this one).
            if len(claimed) < BATCH or "done" not in outcomes:
                return delivered

    async def keep_delivering(self, every: timedelta = CRM_EVERY) -> None:
        """Deliver due events now, then whenever woken or once per `every`, until cancelled."""
        try:
            await keep_doing(self.deliver_due, every=every, what="delivering CRM webhooks", wake=self._wake)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _deliver(self, message: DueMessage) -> Outcome:
        attempt = await self._post(message)
        now = self._clock()
        outcome = attempt.outcome
        if outcome == "retry" and message.attempts >= self._max_attempts:
            outcome = "dead"
        if outcome == "retry":
            at = now + retry_delay(message.attempts, draw=self._draw(), retry_after=attempt.wait)
            log.warning(
                "CRM event %s (%s) not delivered, try %d of %d; again at %s: %s",
                message.message_id,
                message.topic,
                message.attempts,
                self._max_attempts,
                at.isoformat(timespec="seconds"),
                attempt.error,
            )
        else:
            at = now
            if outcome == "dead":
                log.error("CRM event %s (%s) is a dead letter: %s", message.message_id, message.topic, attempt.error)
        await self._outbox.finish(message.message_id, outcome=outcome, error=attempt.error, at=at)
        return outcome

    async def _post(self, message: DueMessage) -> Attempt:
        body = event_body(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(self._clock().timestamp()), body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
            EVENT_HEADER: message.topic,
        }
        try:
            # No redirects: following one would re-send the event somewhere the operator did not configure.
            async with self._http().post(self._url, data=body, headers=headers, allow_redirects=False) as response:
                return judge(response.status, response.reason or "", headers=response.headers, now=self._clock())
        except (aiohttp.ClientError, TimeoutError) as error:
            # Names the host at most, never the URL's path, which may carry a token; `consultbot outbox` shows it.
            return Attempt("retry", f"{type(error).__name__}: {error or 'timed out'}")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": user_agent()},
                timeout=aiohttp.ClientTimeout(total=self._timeout.total_seconds()),
            )
        return self._session
