"""Writing consultations to an expert's CalDAV collection: a real Radicale, and a small server for the rest."""

from __future__ import annotations

import asyncio
import base64
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote
from xml.etree import ElementTree

import aiohttp
import pytest
from aiohttp import web
from icalendar import Calendar, Event
from multidict import CIMultiDictProxy

from scheduling.caldav import (
    CALENDAR_TYPE,
    CalDavFailed,
    CalDavResult,
    CalDavWritten,
    delete_event,
    event_url,
    put_event,
)
from scheduling.invites import stored_event
from scheduling.model import CalDavAccount, Expert
from scheduling.records import Booking, booking_uid
from tests.calendar_servers import RadicaleServer
from tests.local_server import LocalServer

USERNAME = "amelia"
PASSWORD = "pä55-wörd:s3cret"
"""Non-ASCII and a colon: what Latin-1 Basic authentication, or a careless split, would get wrong."""
START = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
BOOKED_AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
AMELIA = Expert(
    key="amelia",
    name="Amelia Hart",
    role="Finance & Accounting Lead",
    timezone="Europe/London",
    email="amelia@meridian.example",
    meeting="https://meet.example.com/amelia-hart",
)
PROPFIND_MEMBERS = (
    b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><getetag/><getcontenttype/></prop></propfind>'
)


def _booking(uid: str, *, start: datetime = START, sequence: int = 0) -> Booking:
    """Jordan Lee's consultation with Amelia at `start`."""
    return Booking(
        uid=uid,
        expert_key="amelia",
        starts_at=start,
        ends_at=start + timedelta(minutes=45),
        blocked_from=start,
        blocked_until=start + timedelta(hours=1),
        prospect_ref=7,
        lead_ref=11,
        chat_id=4242,
        attendee_name="Jordan Lee",
        attendee_email="jordan@acme.example",
        attendee_zone="America/New_York",
        company="Acme Logistics",
        topic="Accounts payable",
        sequence=sequence,
        created_at=BOOKED_AT,
        updated_at=BOOKED_AT + timedelta(hours=sequence),
    )


def _body(booking: Booking) -> bytes:
    return stored_event(
        booking, AMELIA, company="Meridian Outsourcing Partners", fallback_email="bookings@meridian.example", now=START
    )


def _failed(result: CalDavResult) -> CalDavFailed:
    assert isinstance(result, CalDavFailed), result
    return result


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Received:
    """A request the small server got."""

    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes


class DavServer(LocalServer):
    """A stand-in CalDAV server answering PUT and DELETE as the first path segment says, recording every request.

    `/ok/…` stores (201 with an ETag; DELETE 204), `/status/{code}/…` answers that status, `/exists/…` answers 412
    to a PUT with If-None-Match and 204 otherwise, `/private/…` wants Basic authentication as amelia with PASSWORD,
    `/moved/…` redirects to `/ok/…` and `/slow/…` answers after ten seconds.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Received] = []

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application()
        app.router.add_route("*", "/{kind}/{rest:.*}", self._answer)
        await self._serve(app, shutdown_timeout=0.5)

    def account(self, kind: str, *, username: str | None = None, password_env: str | None = None) -> CalDavAccount:
        """An account whose collection is `/<kind>/calendar/` on this server."""
        return CalDavAccount(url=f"{self.url}/{kind}/calendar/", username=username, password_env=password_env)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(request.method, request.path, request.headers, await request.read()))
        kind = request.match_info["kind"]
        if kind == "status":
            return web.Response(status=int(request.match_info["rest"].split("/")[0]))
        if kind == "exists":
            return web.Response(status=412 if "If-None-Match" in request.headers else 204)
        if kind == "moved":
            raise web.HTTPMovedPermanently(f"/ok/{request.match_info['rest']}")
        if kind == "slow":
            await asyncio.sleep(10)
        if kind == "private" and not _signed_in(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="dav"'})
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.Response(status=201, headers={"ETag": '"v1"'})


def _signed_in(request: web.Request) -> bool:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Basic":
        return False
    # The user name cannot hold a colon, so the first one separates it from the password (RFC 7617 §2).
    login, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    return login == USERNAME and password == PASSWORD


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    """A real Radicale CalDAV server, shared by this module's tests (each uses a calendar of its own)."""
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
async def calendar(radicale: RadicaleServer) -> CalDavAccount:
    """A new calendar of Amelia's, made with MKCALENDAR as her calendar app would."""
    url = await radicale.make_calendar("amelia", f"consultations-{uuid.uuid4().hex[:8]}")
    return CalDavAccount(url=url)


@pytest.fixture
async def dav() -> AsyncIterator[DavServer]:
    """The small stand-in server on a free port."""
    async with DavServer() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session as the outbox worker holds one."""
    async with aiohttp.ClientSession() as client:
        yield client


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url) as response:
        return response.status, await response.read()


async def _stored(session: aiohttp.ClientSession, account: CalDavAccount, uid: str) -> Event:
    """The event the collection holds for `uid`, fetched and parsed."""
    status, body = await _get(session, event_url(account, uid))
    assert status == 200, body
    events = [event for event in Calendar.from_ical(body).walk("VEVENT") if isinstance(event, Event)]
    assert len(events) == 1
    return events[0]


async def _members(session: aiohttp.ClientSession, account: CalDavAccount) -> list[str]:
    """The names of the resources in the collection, as a PROPFIND with Depth 1 lists them."""
    async with session.request(
        "PROPFIND",
        account.url,
        data=PROPFIND_MEMBERS,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
    ) as response:
        assert response.status == 207
        tree = ElementTree.fromstring(await response.read())
    hrefs = [unquote(href.text or "") for href in tree.findall("{DAV:}response/{DAV:}href")]
    collection = unquote(account.url.split("//", 1)[1].split("/", 1)[1])
    return sorted(href.rsplit("/", 1)[1] for href in hrefs if href.strip("/") != collection.strip("/"))


def test_the_event_url_is_the_uid_as_one_encoded_segment_of_the_collection() -> None:
    """The "@" of a UID is percent-encoded, and a slash cannot lead out of the collection."""
    with_slash = CalDavAccount(url="https://dav.example.com/amelia/consultations/")
    without_slash = CalDavAccount(url="https://dav.example.com/amelia/consultations")

    assert (
        event_url(with_slash, "k3x9@consultbot") == "https://dav.example.com/amelia/consultations/k3x9%40consultbot.ics"
    )
    assert event_url(without_slash, "k3x9@consultbot") == event_url(with_slash, "k3x9@consultbot")
    assert (
        event_url(with_slash, "../../x?y#z") == "https://dav.example.com/amelia/consultations/..%2F..%2Fx%3Fy%23z.ics"
    )


async def test_a_created_consultation_is_stored_in_the_experts_calendar(
    calendar: CalDavAccount, session: aiohttp.ClientSession
) -> None:
    """The PUT stores the event under its UID; fetched back it is the consultation, and the collection lists it."""
    uid = booking_uid("k3x9f2")

    result = await put_event(session, calendar, password=None, uid=uid, body=_body(_booking(uid)), create=True)

    assert isinstance(result, CalDavWritten)
    assert result.etag
    event = await _stored(session, calendar, uid)
    assert str(event["UID"]) == uid
    assert event.start == START
    assert str(event["SUMMARY"]) == "Consultation with Jordan Lee (Acme Logistics)"
    assert await _members(session, calendar) == ["k3x9f2@consultbot.ics"]


async def test_a_create_retried_after_a_lost_response_overwrites_and_leaves_one_event(
    calendar: CalDavAccount, session: aiohttp.ClientSession
) -> None:
    """The second create meets 412, puts the booking as it stands now over the first copy, and succeeds."""
    uid = booking_uid("retry")
    await put_event(session, calendar, password=None, uid=uid, body=_body(_booking(uid)), create=True)
    moved = _booking(uid, start=START + timedelta(hours=2), sequence=1)

    result = await put_event(session, calendar, password=None, uid=uid, body=_body(moved), create=True)

    assert isinstance(result, CalDavWritten)
    assert await _members(session, calendar) == ["retry@consultbot.ics"]
    assert (await _stored(session, calendar, uid)).start == START + timedelta(hours=2)


async def test_a_rescheduled_consultation_replaces_the_stored_event(
    calendar: CalDavAccount, session: aiohttp.ClientSession
) -> None:
    """A plain PUT of the moved booking gives the new start and the raised SEQUENCE, still as one event."""
    uid = booking_uid("moved")
    first = await put_event(session, calendar, password=None, uid=uid, body=_body(_booking(uid)), create=True)
    later = START + timedelta(days=1, hours=1)

    result = await put_event(
        session, calendar, password=None, uid=uid, body=_body(_booking(uid, start=later, sequence=1)), create=False
    )

    assert isinstance(first, CalDavWritten)
    assert isinstance(result, CalDavWritten)
    assert result.etag not in (None, first.etag)
    event = await _stored(session, calendar, uid)
    assert event.start == later
    assert event["SEQUENCE"] == 1
    assert await _members(session, calendar) == ["moved@consultbot.ics"]


async def test_a_deleted_consultation_is_gone_and_deleting_it_again_is_done(
    calendar: CalDavAccount, session: aiohttp.ClientSession
) -> None:
    """After DELETE the resource answers 404; a retried DELETE meets that 404 and counts as done."""
    uid = booking_uid("cancelled")
    await put_event(session, calendar, password=None, uid=uid, body=_body(_booking(uid)), create=True)

    first = await delete_event(session, calendar, password=None, uid=uid)
    again = await delete_event(session, calendar, password=None, uid=uid)

    assert first == CalDavWritten()
    assert again == CalDavWritten()
    assert (await _get(session, event_url(calendar, uid)))[0] == 404
    assert await _members(session, calendar) == []


async def test_a_collection_that_does_not_exist_is_a_failure_not_worth_retrying(
    radicale: RadicaleServer, session: aiohttp.ClientSession
) -> None:
    """Radicale creates nothing on PUT into a missing calendar: it answers 409, which is a configuration to fix."""
    missing = CalDavAccount(url=radicale.collection_url("amelia", f"no-such-calendar-{uuid.uuid4().hex[:8]}"))
    uid = booking_uid("lost")

    failure = _failed(await put_event(session, missing, password=None, uid=uid, body=_body(_booking(uid)), create=True))

    assert failure.retry is False
    assert "HTTP 409" in failure.reason
    assert "check that the collection URL names an existing calendar" in failure.reason
    assert (await _get(session, missing.url))[0] == 404


async def test_deleting_from_a_collection_that_does_not_exist_is_done(
    radicale: RadicaleServer, session: aiohttp.ClientSession
) -> None:
    """A 404 for the collection means the event is not there either, which is what a DELETE asks for."""
    missing = CalDavAccount(url=radicale.collection_url("amelia", "no-such-calendar"))

    result = await delete_event(session, missing, password=None, uid=booking_uid("lost"))

    assert result == CalDavWritten()


@pytest.mark.parametrize("write", ["put", "delete"])
async def test_an_unreachable_server_is_worth_retrying_and_the_reason_keeps_secrets(
    session: aiohttp.ClientSession, write: str
) -> None:
    """A refused connection is a retryable failure whose one-line reason names neither the password nor the path."""
    account = CalDavAccount(
        url=f"http://127.0.0.1:{_closed_port()}/remote.php/dav/calendars/amelia/tok3n-9f8e7d/",
        username=USERNAME,
        password_env="CALDAV_AMELIA_PASSWORD",
    )
    uid = booking_uid("offline")

    if write == "put":
        result = await put_event(session, account, password=PASSWORD, uid=uid, body=b"BEGIN:VCALENDAR", create=True)
    else:
        result = await delete_event(session, account, password=PASSWORD, uid=uid)

    failure = _failed(result)
    assert failure.retry is True
    assert "cannot connect to 127.0.0.1" in failure.reason
    assert "\n" not in failure.reason
    for secret in (PASSWORD, "tok3n", "amelia", "dav/calendars"):
        assert secret not in failure.reason


async def test_the_configured_credentials_are_sent_as_utf_8_basic_authentication(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """The server checks the Authorization header; a non-ASCII password with a colon in it gets through."""
    account = dav.account("private", username=USERNAME, password_env="CALDAV_AMELIA_PASSWORD")

    result = await put_event(session, account, password=PASSWORD, uid=booking_uid("a"), body=b"x", create=True)

    assert result == CalDavWritten(etag='"v1"')
    assert dav.requests[0].headers["Authorization"].startswith("Basic ")


async def test_a_wrong_password_is_not_retried_and_names_the_variable_to_fix(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """A 401 will not heal by itself; the reason names the variable holding the password, and not the password."""
    account = dav.account("private", username=USERNAME, password_env="CALDAV_AMELIA_PASSWORD")

    failure = _failed(await delete_event(session, account, password="wrong-passw0rd", uid=booking_uid("a")))

    assert failure.retry is False
    assert "HTTP 401 Unauthorized" in failure.reason
    assert "$CALDAV_AMELIA_PASSWORD" in failure.reason
    assert "wrong-passw0rd" not in failure.reason


async def test_an_account_without_credentials_sends_no_authorization(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """No username and no password: no Authorization header at all."""
    await put_event(session, dav.account("ok"), password=None, uid=booking_uid("a"), body=b"x", create=False)

    assert "Authorization" not in dav.requests[0].headers


async def test_a_username_with_a_colon_is_refused_before_anything_is_sent(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """Basic authentication cannot carry a colon in the user name; that is a configuration to fix."""
    account = dav.account("ok", username="amelia:hart")

    failure = _failed(
        await put_event(session, account, password=PASSWORD, uid=booking_uid("a"), body=b"x", create=True)
    )

    assert failure.retry is False
    assert dav.requests == []


async def test_a_create_asks_for_a_new_resource_and_sends_calendar_data(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """If-None-Match: * and text/calendar; charset=utf-8, with the body unchanged, at the UID's URL."""
    body = _body(_booking(booking_uid("k3x9f2")))

    await put_event(session, dav.account("ok"), password=None, uid=booking_uid("k3x9f2"), body=body, create=True)

    [sent] = dav.requests
    assert sent.method == "PUT"
    assert unquote(sent.path) == "/ok/calendar/k3x9f2@consultbot.ics"
    assert sent.headers["If-None-Match"] == "*"
    assert sent.headers["Content-Type"] == CALENDAR_TYPE == "text/calendar; charset=utf-8"
    assert sent.body == body


async def test_a_create_that_meets_412_is_sent_again_without_the_condition(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """The second PUT of a retried create carries the same body and no If-None-Match."""
    result = await put_event(
        session, dav.account("exists"), password=None, uid=booking_uid("a"), body=b"x", create=True
    )

    assert result == CalDavWritten()
    first, second = dav.requests
    assert "If-None-Match" in first.headers
    assert "If-None-Match" not in second.headers
    assert second.body == first.body == b"x"


async def test_a_reschedule_is_a_plain_put(dav: DavServer, session: aiohttp.ClientSession) -> None:
    """Replacing the event sends no precondition, and a 412 could not come back to it."""
    await put_event(session, dav.account("ok"), password=None, uid=booking_uid("a"), body=b"x", create=False)

    [sent] = dav.requests
    assert "If-None-Match" not in sent.headers
    assert "If-Match" not in sent.headers


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (500, True),
        (502, True),
        (503, True),
        (507, True),
        (408, True),
        (423, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (405, False),
        (409, False),
        (412, False),
        (415, False),
    ],
)
async def test_only_failures_that_may_pass_are_retried(
    dav: DavServer, session: aiohttp.ClientSession, status: int, retry: bool
) -> None:
    """Server errors, timeouts, locks and rate limits are worth another try; refusals of the request are not."""
    account = dav.account(f"status/{status}")

    failure = _failed(await put_event(session, account, password=None, uid=booking_uid("a"), body=b"x", create=False))

    assert failure.retry is retry
    assert f"HTTP {status} " in failure.reason
    assert failure.reason.startswith(f"PUT http://127.0.0.1:{dav.url.rsplit(':', 1)[1]}/…")


@pytest.mark.parametrize(("status", "retry"), [(410, None), (503, True), (403, False)])
async def test_a_delete_counts_gone_as_done_and_retries_only_what_may_pass(
    dav: DavServer, session: aiohttp.ClientSession, status: int, retry: bool | None
) -> None:
    """410 Gone is done; a 503 is retried; a 403 is not."""
    result = await delete_event(session, dav.account(f"status/{status}"), password=None, uid=booking_uid("a"))

    if retry is None:
        assert result == CalDavWritten()
    else:
        assert _failed(result).retry is retry


async def test_a_redirect_is_not_followed_and_asks_for_the_new_url(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """The PUT and its credentials go nowhere but the configured collection; a moved collection is fixed in config."""
    account = dav.account("moved", username=USERNAME)

    failure = _failed(
        await put_event(session, account, password=PASSWORD, uid=booking_uid("a"), body=b"x", create=True)
    )

    assert failure.retry is False
    assert "HTTP 301" in failure.reason
    assert "configure its new URL" in failure.reason
    assert [request.path.split("/")[1] for request in dav.requests] == ["moved"]


async def test_a_server_that_does_not_answer_in_time_is_worth_retrying(
    dav: DavServer, session: aiohttp.ClientSession
) -> None:
    """The call gives up after its time limit and says so, instead of raising or hanging."""
    failure = _failed(
        await put_event(
            session, dav.account("slow"), password=None, uid=booking_uid("a"), body=b"x", create=True, timeout=0.2
        )
    )

    assert failure.retry is True
    assert failure.reason.endswith("timed out after 0.2 s")
