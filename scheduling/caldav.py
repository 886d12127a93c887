"""Writing consultations to an expert's CalDAV collection (RFC 4791): one PUT or DELETE per call, never raising.

A durable outbox calls these and retries; each result says whether trying again later can help.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote

import aiohttp

from scheduling.feeds import client_error_reason, os_reason, redact
from scheduling.model import CalDavAccount

__all__ = [
    "CALENDAR_TYPE",
    "DEFAULT_TIMEOUT",
    "CalDavFailed",
    "CalDavResult",
    "CalDavWritten",
    "delete_event",
    "event_url",
    "put_event",
]

DEFAULT_TIMEOUT = 20.0
"""Seconds one request may take, connecting included."""
CALENDAR_TYPE = "text/calendar; charset=utf-8"

# Statuses that say "not now" rather than "not this": a timeout, a lock held by another client, rate limiting.
# Every 5xx is retried as well.
_TRY_AGAIN = frozenset(
    {HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.LOCKED, HTTPStatus.TOO_EARLY, HTTPStatus.TOO_MANY_REQUESTS}
)
_GONE = frozenset({HTTPStatus.NOT_FOUND, HTTPStatus.GONE})

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalDavWritten:
    """The collection holds what was asked: the event as sent (with its ETag, if the server gave one), or no event."""

    etag: str | None = None


@dataclass(frozen=True)
class CalDavFailed:
    """The write did not happen: `reason` is one line with no secret in it; `retry`, whether a later try may work."""

    reason: str
    retry: bool


CalDavResult = CalDavWritten | CalDavFailed


@dataclass(frozen=True)
class _Answer:
    status: int
    phrase: str
    etag: str | None


def event_url(account: CalDavAccount, uid: str) -> str:
    """The URL of a consultation's resource in the collection: "<uid>.ics", percent-encoded as one path segment."""
    # With safe="" a "/" in a UID is encoded too, so no UID can name a resource outside the collection. The "@"
    # becomes %40; aiohttp may send it as a plain "@", which a path allows and servers read as the same name.
    return f"{account.url.rstrip('/')}/{quote(f'{uid}.ics', safe='')}"


async def put_event(
    session: aiohttp.ClientSession,
    account: CalDavAccount,
    *,
    password: str | None,
    uid: str,
    body: bytes,
    create: bool,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - it never raises, so it keeps its own time limit
) -> CalDavResult:
    """Store `body` (one VEVENT, no METHOD) as the consultation's resource: new when `create`, else a replacement."""
    url = event_url(account, uid)
    headers = {"Content-Type": CALENDAR_TYPE}
    if create:
        # RFC 4791 §5.3.2: a client creating a resource asks the server not to overwrite one that is there.
        headers["If-None-Match"] = "*"
    answer = await _send(session, "PUT", url, account, password=password, headers=headers, body=body, seconds=timeout)
    if create and isinstance(answer, _Answer) and answer.status == HTTPStatus.PRECONDITION_FAILED:
        # The resource is named after the bot's own UID, so only an earlier try of this write can have made it: a
        # create whose response was lost (a timeout, a restart before the outbox recorded success). The body is the
        # booking as it stands now, so putting it over what is there is right, and makes a retried create idempotent.
        del headers["If-None-Match"]
        answer = await _send(
            session, "PUT", url, account, password=password, headers=headers, body=body, seconds=timeout
        )
    return _finished("PUT", url, _put_result(answer, account, url), password)


async def delete_event(
    session: aiohttp.ClientSession,
    account: CalDavAccount,
    *,
    password: str | None,
    uid: str,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - it never raises, so it keeps its own time limit
) -> CalDavResult:
    """Remove the consultation's resource; one that is already gone (404, 410) counts as removed."""
    url = event_url(account, uid)
    answer = await _send(session, "DELETE", url, account, password=password, headers={}, body=None, seconds=timeout)
    result: CalDavResult
    if isinstance(answer, CalDavFailed):
        result = answer
    # A 404 is also what a collection that no longer exists answers: either way the event is not in it.
    elif 200 <= answer.status < 300 or answer.status in _GONE:
        result = CalDavWritten()
    else:
        result = _failed("DELETE", url, answer, account)
    return _finished("DELETE", url, result, password)


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    account: CalDavAccount,
    *,
    password: str | None,
    headers: dict[str, str],
    body: bytes | None,
    seconds: float,
) -> _Answer | CalDavFailed:
    if account.username is not None and ":" in account.username:
        return CalDavFailed(
            "the CalDAV username contains a colon, which Basic authentication cannot carry", retry=False
        )
    authorization = _authorization(account.username, password)
    if authorization is not None:
        headers = {**headers, "Authorization": authorization}
    try:
        # Redirects are not followed: a PUT is not to be replayed elsewhere with the credentials, and a collection
        # that moved is a configuration to fix.
        async with session.request(
            method,
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            return _Answer(response.status, response.reason or _phrase(response.status), response.headers.get("ETag"))
    except TimeoutError:
        return CalDavFailed(f"{method} {redact(url)}: timed out after {seconds:g} s", retry=True)
    except aiohttp.InvalidURL:
        return CalDavFailed(f"{method} {redact(url)}: not a valid URL", retry=False)
    except aiohttp.ClientError as error:
        return CalDavFailed(f"{method} {redact(url)}: {client_error_reason(error)}", retry=True)
    except OSError as error:
        return CalDavFailed(f"{method} {redact(url)}: connection error: {os_reason(error)}", retry=True)
    except ValueError:
        # yarl and aiohttp refuse some malformed URLs (a bad port, a bad IDNA host) with a bare ValueError.
        return CalDavFailed(f"{method} {redact(url)}: the collection URL is not valid", retry=False)


def _authorization(username: str | None, password: str | None) -> str | None:
    """The Basic Authorization header value (RFC 7617), or None without credentials."""
    if username is None and password is None:
        return None
    # Written out rather than through aiohttp.BasicAuth, deprecated in aiohttp 3.14 while its replacement,
    # encode_basic_auth, is missing before it. UTF-8, as RFC 7617's charset="UTF-8" says: Latin-1 cannot carry
    # every password.
    credentials = f"{username or ''}:{password or ''}".encode()
    return f"Basic {base64.b64encode(credentials).decode('ascii')}"


def _put_result(answer: _Answer | CalDavFailed, account: CalDavAccount, url: str) -> CalDavResult:
    if isinstance(answer, CalDavFailed):
        return answer
    if 200 <= answer.status < 300:
        return CalDavWritten(etag=answer.etag)
    return _failed("PUT", url, answer, account)


def _failed(method: str, url: str, answer: _Answer, account: CalDavAccount) -> CalDavFailed:
    status = answer.status
    reason = f"{method} {redact(url)}: HTTP {status} {answer.phrase}".rstrip()
    hint = _hint(status, account)
    return CalDavFailed(
        f"{reason} ({hint})" if hint else reason,
        retry=status >= HTTPStatus.INTERNAL_SERVER_ERROR or status in _TRY_AGAIN,
    )


def _hint(status: int, account: CalDavAccount) -> str:
    if status == HTTPStatus.UNAUTHORIZED:
        where = f" in ${account.password_env}" if account.password_env else ""
        return f"check the username and the password{where}"
    if status == HTTPStatus.FORBIDDEN:
        return "the account may not write to this collection"
    # RFC 4918 §9.7.1: a PUT into a collection that does not exist is a 409; some servers answer 404.
    if status in (HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT):
        return "check that the collection URL names an existing calendar"
    if 300 <= status < 400:
        return "the collection has moved: configure its new URL"
    if status in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNSUPPORTED_MEDIA_TYPE):
        return "the server refused the calendar data"
    return ""


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _finished(method: str, url: str, result: CalDavResult, password: str | None) -> CalDavResult:
    """`result`, logged, its reason made one line without the password (no branch quotes it: defence in depth)."""
    if isinstance(result, CalDavFailed):
        line = " ".join(result.reason.split())
        result = CalDavFailed(line.replace(password, "…") if password else line, retry=result.retry)
    _log.debug("CalDAV %s %s: %s", method, redact(url), result)
    return result
