"""Fetching calendar feeds: conditional requests, limits, clear failures, no leaked secrets, a real CalDAV server."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from scheduling.feeds import (
    DEFAULT_LIMITS,
    Fetched,
    FetchFailed,
    FetchLimits,
    FetchResult,
    NotModified,
    Validators,
    feed_session,
    fetch_feed,
    http_url,
    redact,
)
from tests.calendar_servers import (
    TRUNCATED_ICS,
    WEEK_ICS,
    FeedServer,
    RadicaleServer,
    calendar_with_event,
)

# Short enough to keep the suite fast, long enough for a loaded CI machine to answer a local request.
QUICK = FetchLimits(connect_timeout=2.0, total_timeout=0.5, max_bytes=64 * 1024)
SMALL = FetchLimits(connect_timeout=2.0, total_timeout=5.0, max_bytes=64 * 1024)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    """A local feed server on a free port."""
    async with FeedServer() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The client session the bot fetches feeds with."""
    async with feed_session(limits=DEFAULT_LIMITS) as client:
        yield client


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    """A real Radicale CalDAV server, shared by this module's tests (each uses a calendar of its own)."""
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as running:
        yield running


def _fetched(result: FetchResult) -> Fetched:
    assert isinstance(result, Fetched), result
    return result


def _reason(result: FetchResult) -> str:
    assert isinstance(result, FetchFailed), result
    return result.reason


async def test_an_unchanged_feed_is_fetched_once_and_then_answered_with_not_modified(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """The second fetch sends the ETag it was given and the server's 304 becomes NotModified."""
    url = server.publish("ada.ics", WEEK_ICS)

    first = _fetched(await fetch_feed(session, url, validators=Validators()))
    second = await fetch_feed(session, url, validators=first.validators)

    assert first.body == WEEK_ICS.encode()
    assert first.validators.etag is not None
    assert second == NotModified()
    assert server.requests_to("/feeds/ada.ics")[1].headers["If-None-Match"] == first.validators.etag


async def test_a_changed_feed_gives_the_new_body_and_new_validators(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """When the ETag changes the fetch returns the new body, its hash and the new ETag."""
    url = server.publish("ada.ics", WEEK_ICS)
    first = _fetched(await fetch_feed(session, url, validators=Validators()))
    changed = WEEK_ICS.replace("Client workshop", "Client workshop (moved)")
    server.publish("ada.ics", changed)

    second = _fetched(await fetch_feed(session, url, validators=first.validators))

    assert second.body == changed.encode()
    assert second.validators.etag not in (None, first.validators.etag)
    assert second.content_hash != first.content_hash


async def test_a_server_with_only_last_modified_gets_if_modified_since(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """Without an ETag the Last-Modified date is sent back as If-Modified-Since and a 304 is NotModified."""
    url = server.publish("ada.ics", WEEK_ICS, etag=False)

    first = _fetched(await fetch_feed(session, url, validators=Validators()))
    second = await fetch_feed(session, url, validators=first.validators)

    assert first.validators == Validators(etag=None, last_modified="Mon, 23 Nov 2026 08:00:00 GMT")
    assert second == NotModified()
    sent = server.requests_to("/feeds/ada.ics")[1].headers
    assert sent["If-Modified-Since"] == "Mon, 23 Nov 2026 08:00:00 GMT"
    assert "If-None-Match" not in sent


async def test_the_content_hash_is_the_sha256_of_the_body(server: FeedServer, session: aiohttp.ClientSession) -> None:
    """Equal bodies hash equal, so a sync can skip parsing a feed whose validators changed but content did not."""
    url = server.publish("ada.ics", WEEK_ICS)

    fetched = _fetched(await fetch_feed(session, url, validators=Validators()))

    assert fetched.content_hash == hashlib.sha256(WEEK_ICS.encode()).hexdigest()


@pytest.mark.parametrize(("code", "reason"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")])
async def test_an_http_error_fails_with_its_status_in_the_reason(
    server: FeedServer, session: aiohttp.ClientSession, code: int, reason: str
) -> None:
    """A 404 or 500 is a failure that says which status came back."""
    result = await fetch_feed(session, server.url_for(f"/status/{code}"), validators=Validators())

    assert _reason(result) == reason


async def test_a_slow_server_times_out_with_the_timeout_in_the_reason(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """A server that takes longer than the total timeout to answer is given up on."""
    result = await fetch_feed(session, server.url_for("/slow"), validators=Validators(), limits=QUICK)

    assert _reason(result) == "timed out after 0.5 s"


async def test_a_server_that_trickles_bytes_forever_is_cut_off_at_the_total_timeout(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """The total timeout bounds reading the body too, not only waiting for the headers."""
    result = await fetch_feed(session, server.url_for("/trickle"), validators=Validators(), limits=QUICK)

    assert _reason(result) == "timed out after 0.5 s"


async def test_a_redirect_is_followed_to_the_feed(server: FeedServer, session: aiohttp.ClientSession) -> None:
    """A 302 leads to the feed, whose body and validators are what the fetch returns."""
    server.publish("ada.ics", WEEK_ICS)

    fetched = _fetched(await fetch_feed(session, server.url_for("/redirect/ada.ics"), validators=Validators()))

    assert fetched.body == WEEK_ICS.encode()
    assert fetched.validators.etag is not None


async def test_a_redirect_to_an_html_sign_in_page_fails(server: FeedServer, session: aiohttp.ClientSession) -> None:
    """The final response counts: a revoked link redirecting to a login page is not a feed."""
    result = await fetch_feed(session, server.url_for("/login-redirect"), validators=Validators())

    assert _reason(result) == "an HTML page, not an iCalendar feed (text/html)"


async def test_a_body_declared_over_the_limit_fails_without_being_read(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """A Content-Length above max_bytes is refused before the body is downloaded."""
    result = await fetch_feed(session, server.url_for("/large/100000"), validators=Validators(), limits=SMALL)

    assert _reason(result) == "larger than the 64 KB limit (97.7 KB)"


async def test_a_body_at_the_limit_is_fetched(server: FeedServer, session: aiohttp.ClientSession) -> None:
    """The limit is inclusive: a feed of exactly max_bytes is accepted."""
    result = await fetch_feed(
        session, server.url_for(f"/large/{SMALL.max_bytes}"), validators=Validators(), limits=SMALL
    )

    assert len(_fetched(result).body) == SMALL.max_bytes


async def test_a_streamed_body_without_length_is_cut_off_once_it_passes_the_limit(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """A chunked body that never ends fails at the size limit, long before the timeout."""
    result = await fetch_feed(session, server.url_for("/endless"), validators=Validators(), limits=SMALL)

    assert _reason(result) == "larger than the 64 KB limit"


async def test_an_html_page_served_as_a_success_fails_as_not_icalendar(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """A 200 text/html page, such as a provider's sign-in form, is not taken for a calendar."""
    result = await fetch_feed(session, server.url_for("/html"), validators=Validators())

    assert _reason(result) == "an HTML page, not an iCalendar feed (text/html)"


async def test_html_behind_a_calendar_content_type_is_recognised_by_its_first_bytes(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """A body opening with a BOM, blank space and <!DOCTYPE html> fails whatever its Content-Type says."""
    result = await fetch_feed(session, server.url_for("/html-as-calendar"), validators=Validators())

    assert _reason(result) == "an HTML page, not an iCalendar feed (text/calendar)"


async def test_a_truncated_feed_is_fetched_as_is_for_the_parser_to_judge(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """The fetcher checks transport, not iCalendar syntax: a cut-off feed arrives byte for byte."""
    result = await fetch_feed(session, server.url_for("/truncated"), validators=Validators())

    assert _fetched(result).body == TRUNCATED_ICS.encode()


async def test_requests_carry_a_user_agent_naming_consultbot(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """Providers can tell who polls them and how to reach the project."""
    url = server.publish("ada.ics", WEEK_ICS)

    await fetch_feed(session, url, validators=Validators())

    user_agent = server.requests_to("/feeds/ada.ics")[0].headers["User-Agent"]
    assert user_agent.startswith("consultbot/")
    assert user_agent.endswith("(+calendar sync)")


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("webcal://calendar.example.com/ada.ics", "https://calendar.example.com/ada.ics"),
        ("WEBCALS://calendar.example.com/ada.ics", "https://calendar.example.com/ada.ics"),
        ("http://127.0.0.1:8080/ada.ics", "http://127.0.0.1:8080/ada.ics"),
        ("https://calendar.example.com/ada.ics?key=1", "https://calendar.example.com/ada.ics?key=1"),
        ("/srv/calendars/ada.ics", None),
        ("file:///srv/calendars/ada.ics", None),
        ("ftp://calendar.example.com/ada.ics", None),
    ],
)
def test_webcal_urls_are_fetched_over_https_and_files_are_not_web_addresses(location: str, url: str | None) -> None:
    """webcal:// is how calendar apps mark a subscription; the feed itself is served over https."""
    assert http_url(location) == url


async def test_a_local_file_is_read_and_then_not_modified_while_it_is_unchanged(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A demo feed on disk is fetched like a web one, with its modification time and size as the validator."""
    feed = tmp_path / "ada.ics"
    feed.write_text(WEEK_ICS)

    first = _fetched(await fetch_feed(session, str(feed), validators=Validators()))
    second = await fetch_feed(session, feed.as_uri(), validators=first.validators)

    assert first.body == WEEK_ICS.encode()
    assert second == NotModified()


async def test_a_local_file_that_changed_is_read_again(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Writing the file changes its modification time, so the next fetch returns the new content."""
    feed = tmp_path / "ada.ics"
    feed.write_text(WEEK_ICS)
    first = _fetched(await fetch_feed(session, str(feed), validators=Validators()))
    feed.write_text(TRUNCATED_ICS)
    # Pin a later modification time: a coarse file-system clock could give both writes the same one.
    os.utime(feed, ns=(feed.stat().st_atime_ns, feed.stat().st_mtime_ns + 1_000_000_000))

    second = _fetched(await fetch_feed(session, str(feed), validators=first.validators))

    assert second.body == TRUNCATED_ICS.encode()
    assert second.validators != first.validators


async def test_a_missing_local_file_fails_naming_the_path(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """The operator learns which file to fix."""
    missing = tmp_path / "nobody.ics"

    result = await fetch_feed(session, str(missing), validators=Validators())

    assert _reason(result) == f"no such file: {missing}"


async def test_a_relative_path_is_refused_rather_than_guessed(session: aiohttp.ClientSession) -> None:
    """A scheme-less address is more likely a URL missing https:// than a file, and its path stays hidden."""
    location = "calendar.google.com/calendar/ical/ada%40example.com/private-5f3e9a1c7b/basic.ics"

    result = await fetch_feed(session, location, validators=Validators())

    assert _reason(result) == ("not an http(s), webcal or absolute file address: calendar.google.com/…/basic.ics")


async def test_a_closed_port_fails_as_cannot_connect(session: aiohttp.ClientSession) -> None:
    """Nothing listening is a failure that names the host and port and the operating system's reason."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = await fetch_feed(session, f"http://127.0.0.1:{port}/feeds/ada.ics", validators=Validators())

    assert _reason(result) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_the_secret_in_a_feed_url_never_appears_in_a_failure_reason(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """Secret iCal URLs are credentials: neither the path token nor the query key is quoted back."""
    secret_path = "/calendar/ical/ada%40example.com/private-5f3e9a1c7b/basic.ics?key=s3cr3t-k3y"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    locations = [
        server.url_for(secret_path),
        f"http://127.0.0.1:{closed}{secret_path}",
        f"webcal://user:pa55word@127.0.0.1:{closed}{secret_path}",
    ]

    reasons = [
        _reason(await fetch_feed(session, location, validators=Validators(), limits=QUICK)) for location in locations
    ]

    for reason in reasons:
        assert "5f3e9a1c7b" not in reason
        assert "s3cr3t" not in reason
        assert "pa55word" not in reason


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (
            "https://calendar.google.com/calendar/ical/ada%40example.com/private-5f3e9a1c7b/basic.ics",
            "https://calendar.google.com/…/basic.ics",
        ),
        ("https://cloud.example.com/remote.php/dav/public-calendars/Xk3JdkEidk2?export", "https://cloud.example.com/…"),
        ("webcal://p01-caldav.icloud.com/published/2/MTIzNDU2Nzg5", "webcal://p01-caldav.icloud.com/…"),
        ("https://ada:pa55word@dav.example.com/ada/work/", "https://dav.example.com/…"),
        ("https://calendar.example.com/calendar.ics", "https://calendar.example.com/calendar.ics"),
        ("/srv/calendars/ada.ics", "/srv/calendars/ada.ics"),
    ],
)
def test_redact_keeps_the_scheme_and_host_and_masks_what_may_be_secret(location: str, shown: str) -> None:
    """Only a plain file name like basic.ics survives; tokens, queries and passwords become an ellipsis."""
    assert redact(location) == shown


async def test_a_caldav_collection_is_fetched_as_one_calendar_holding_its_events(
    radicale: RadicaleServer, session: aiohttp.ClientSession
) -> None:
    """Radicale serves a whole calendar collection on GET, so a CalDAV URL works as a feed."""
    calendar = await radicale.make_calendar("ada", f"work-{uuid.uuid4().hex[:8]}")
    monday = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    tuesday = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await radicale.put_event(calendar, "review", calendar_with_event("review", "Code review", monday, tuesday))
    await radicale.put_event(
        calendar, "offsite", calendar_with_event("offsite", "Offsite", tuesday, tuesday.replace(hour=17))
    )

    fetched = _fetched(await fetch_feed(session, calendar, validators=Validators()))

    body = fetched.body.decode()
    assert body.startswith("BEGIN:VCALENDAR")
    assert "UID:review" in body
    assert "SUMMARY:Offsite" in body
    assert "DTSTART:20261124T100000Z" in body


async def test_an_unchanged_caldav_collection_keeps_its_content_hash(
    radicale: RadicaleServer, session: aiohttp.ClientSession
) -> None:
    """Radicale ignores If-None-Match on GET, so the content hash is what tells a sync nothing changed."""
    calendar = await radicale.make_calendar("ada", f"work-{uuid.uuid4().hex[:8]}")
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    await radicale.put_event(
        calendar, "standup", calendar_with_event("standup", "Stand-up", start, start.replace(minute=30))
    )
    first = _fetched(await fetch_feed(session, calendar, validators=Validators()))

    second = _fetched(await fetch_feed(session, calendar, validators=first.validators))

    assert second.content_hash == first.content_hash
