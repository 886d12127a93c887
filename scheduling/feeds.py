"""Fetching experts' calendar feeds over HTTP(S) or from a local file: conditional, bounded, never raising."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import stat
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import aiohttp

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_REDIRECTS",
    "NO_VALIDATORS",
    "FetchFailed",
    "FetchLimits",
    "FetchResult",
    "Fetched",
    "NotModified",
    "Validators",
    "feed_session",
    "fetch_feed",
    "http_url",
    "redact",
]

MAX_REDIRECTS = 10
_CHUNK_BYTES = 64 * 1024
_WEB_SCHEMES = {"http": "http", "https": "https", "webcal": "https", "webcals": "https"}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_STARTS = (b"<!doctype", b"<html")
# A final path segment worth showing in a redacted URL: a plain word like "basic.ics" or "calendar.ics". Anything
# with digits or longer than this may be the secret token itself (Nextcloud and iCloud end their URLs with it).
_SAFE_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")
_SAFE_SEGMENT_LENGTH = 24
_SCRUBBED_LENGTH = 12

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchLimits:
    """How long a fetch may take and how large a feed may be."""

    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.total_timeout <= 0 or self.max_bytes <= 0:
            raise ValueError(f"fetch limits must be positive: {self}")


@dataclass(frozen=True)
class Validators:
    """What the previous successful fetch returned to make the next one conditional.

    For a local file, `etag` holds the file's modification time and size instead of a server's entity tag.
    """

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A feed's body as served, with the validators for the next fetch and the body's SHA-256 in hex."""

    body: bytes
    validators: Validators
    content_hash: str


@dataclass(frozen=True)
class NotModified:
    """The feed has not changed since the fetch that gave the validators."""


@dataclass(frozen=True)
class FetchFailed:
    """The feed could not be fetched; `reason` is one human-readable line with no secret in it."""

    reason: str


FetchResult = Fetched | NotModified | FetchFailed

NO_VALIDATORS = Validators()
"""What a first fetch sends: nothing to make it conditional."""
DEFAULT_LIMITS = FetchLimits()


def feed_session(*, limits: FetchLimits) -> aiohttp.ClientSession:
    """A client session for fetching feeds; the caller closes it."""
    return aiohttp.ClientSession(
        headers={"User-Agent": user_agent()},
        timeout=_client_timeout(limits),
    )


@cache
def user_agent() -> str:
    """The User-Agent feed requests carry, so a calendar provider can tell who is polling it."""
    try:
        installed = version("consultbot")
    except PackageNotFoundError:
        installed = "dev"
    return f"consultbot/{installed} (+calendar sync)"


async def fetch_feed(
    session: aiohttp.ClientSession,
    location: str,
    *,
    validators: Validators = NO_VALIDATORS,
    limits: FetchLimits = DEFAULT_LIMITS,
) -> FetchResult:
    """Fetch the feed at an http(s) or webcal URL or a local file path, conditionally on `validators`."""
    path = _local_path(location)
    if path is not None:
        result = await asyncio.to_thread(_read_file, path, validators, limits)
    elif (url := http_url(location)) is not None:
        result = await _fetch_http(session, url, validators, limits)
    else:
        result = FetchFailed(f"not an http(s), webcal or absolute file address: {redact(location)}")
    if isinstance(result, FetchFailed):
        # Defence in depth: no branch above should quote the address, but a secret must never leave this module.
        result = FetchFailed(_scrubbed(result.reason, location))
    _log.debug("feed %s: %s", redact(location), _describe(result))
    return result


def http_url(location: str) -> str | None:
    """The http(s) URL to fetch `location` from (webcal means https), or None when it is not a web address."""
    scheme, separator, rest = location.strip().partition("://")
    target = _WEB_SCHEMES.get(scheme.lower()) if separator else None
    return None if target is None else f"{target}://{rest}"


def redact(location: str) -> str:
    """`location` fit for a log line or a message: a URL keeps its scheme and host, its secret parts become "…"."""
    if _local_path(location) is not None:
        # Local files are the operator's own demo calendars; their paths are not secrets, and are needed to fix them.
        return location
    text = location.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        host, port = "", None
    # Without a scheme, only something that looks like a host name is shown: a bare word may be a pasted token.
    if not host or (not parts.scheme and "." not in host):
        return f"{parts.scheme}://…" if parts.scheme else "…"
    origin = f"{parts.scheme}://" if parts.scheme else ""
    origin += f"[{host}]" if ":" in host else host
    if port is not None:
        origin += f":{port}"
    directory, _, last = parts.path.rpartition("/")
    shown = last if _is_plain_name(last) else ""
    hidden = [directory.strip("/"), "" if shown else last, parts.query, parts.fragment, parts.username, parts.password]
    return origin + ("/…" if any(hidden) else "") + (f"/{shown}" if shown else "")


def _is_plain_name(segment: str) -> bool:
    return 0 < len(segment) <= _SAFE_SEGMENT_LENGTH and set(segment) <= _SAFE_SEGMENT_CHARS


def _local_path(location: str) -> Path | None:
    """The file `location` names (an absolute path or a file:// URL), or None when it names no local file."""
    if location.startswith("file://"):
        return Path(url2pathname(urlsplit(location).path))
    # Only absolute paths: a relative one is more likely a URL missing its scheme, and its path may be a secret.
    path = Path(location)
    return path if "://" not in location and path.is_absolute() else None


def _client_timeout(limits: FetchLimits) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=limits.total_timeout, connect=limits.connect_timeout, sock_connect=limits.connect_timeout
    )


async def _fetch_http(
    session: aiohttp.ClientSession, url: str, validators: Validators, limits: FetchLimits
) -> FetchResult:
    headers: dict[str, str] = {}
    if validators.etag is not None:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified is not None:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        async with session.get(
            url, headers=headers, timeout=_client_timeout(limits), max_redirects=MAX_REDIRECTS
        ) as response:
            return await _read_response(response, validators, limits)
    # ServerTimeoutError is a TimeoutError too; without a sock_read timeout set, aiohttp raises it only on connect.
    except aiohttp.ServerTimeoutError:
        return FetchFailed(f"timed out connecting after {limits.connect_timeout:g} s")
    except TimeoutError:
        return FetchFailed(f"timed out after {limits.total_timeout:g} s")
    except aiohttp.ClientError as error:
        return FetchFailed(client_error_reason(error))
    except ValueError:
        # yarl and aiohttp refuse some malformed URLs (a bad port, a bad IDNA host) with a bare ValueError.
        return FetchFailed("not a valid URL")


async def _read_response(response: aiohttp.ClientResponse, validators: Validators, limits: FetchLimits) -> FetchResult:
    if response.status == HTTPStatus.NOT_MODIFIED:
        if validators == NO_VALIDATORS:
            return FetchFailed("HTTP 304 Not Modified to a request that was not conditional")
        return NotModified()
    if not 200 <= response.status < 300:
        return FetchFailed(f"HTTP {response.status} {response.reason or _phrase(response.status)}".rstrip())
    if response.content_type in _HTML_TYPES:
        return FetchFailed(f"an HTML page, not an iCalendar feed ({response.content_type})")
    if response.content_length is not None and response.content_length > limits.max_bytes:
        return FetchFailed(f"larger than the {_size(limits.max_bytes)} limit ({_size(response.content_length)})")
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        # Checked per chunk, so a body with no Content-Length (or a lying one) is cut off near the limit.
        if len(body) > limits.max_bytes:
            return FetchFailed(f"larger than the {_size(limits.max_bytes)} limit")
    if _looks_like_html(body):
        return FetchFailed(f"an HTML page, not an iCalendar feed ({response.content_type})")
    return _fetched(
        bytes(body),
        Validators(etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")),
    )


def _read_file(path: Path, validators: Validators, limits: FetchLimits) -> FetchResult:
    """Blocking: read a local feed, or NotModified when its modification time and size are unchanged."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return FetchFailed(f"no such file: {path}")
    except OSError as error:
        return FetchFailed(f"cannot read {path}: {os_reason(error)}")
    if not stat.S_ISREG(status.st_mode):
        return FetchFailed(f"not a regular file: {path}")
    stamp = f"file:{status.st_mtime_ns}:{status.st_size}"
    if validators.etag == stamp:
        return NotModified()
    if status.st_size > limits.max_bytes:
        return FetchFailed(f"larger than the {_size(limits.max_bytes)} limit ({_size(status.st_size)}): {path}")
    try:
        with path.open("rb") as file:
            body = file.read(limits.max_bytes + 1)
    except OSError as error:
        return FetchFailed(f"cannot read {path}: {os_reason(error)}")
    if len(body) > limits.max_bytes:
        return FetchFailed(f"larger than the {_size(limits.max_bytes)} limit: {path}")
    if _looks_like_html(body):
        return FetchFailed(f"an HTML page, not an iCalendar feed: {path}")
    return _fetched(body, Validators(etag=stamp))


def _fetched(body: bytes, validators: Validators) -> Fetched:
    return Fetched(body=body, validators=validators, content_hash=hashlib.sha256(body).hexdigest())


def _looks_like_html(body: bytes | bytearray) -> bool:
    start = bytes(body[:1024]).removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return start.startswith(_HTML_STARTS)


def client_error_reason(error: aiohttp.ClientError) -> str:
    """A reason for an aiohttp failure, built from its parts: the str() of most of them quotes the full URL.

    Shared with the CalDAV client: a secret in a calendar URL must not leak through an error message there either.
    """
    if isinstance(error, aiohttp.TooManyRedirects):
        return f"too many redirects (more than {MAX_REDIRECTS})"
    if isinstance(error, aiohttp.RedirectClientError):
        return "redirected to an address that is not http(s)"
    if isinstance(error, aiohttp.InvalidURL):
        return "not a valid URL"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {error.host} is not valid: {error.certificate_error}"
    if isinstance(error, aiohttp.ClientSSLError):
        return f"the TLS handshake with {error.host} failed"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}: {os_reason(error.os_error)}"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete answer"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the server broke off the response body"
    if isinstance(error, aiohttp.ClientResponseError):
        return "the server sent a malformed HTTP response"
    if isinstance(error, aiohttp.ClientOSError):
        return f"connection error: {os_reason(error)}"
    return f"HTTP client error ({type(error).__name__})"


def os_reason(error: OSError) -> str:
    """An operating-system error in a few words, without the addresses some of them quote."""
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror
    # asyncio's ConnectionRefusedError carries "Connect call failed ('127.0.0.1', 1)" as strerror; the errno says more.
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or type(error).__name__


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _size(count: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _scrubbed(reason: str, location: str) -> str:
    text = location.strip()
    if not text or _local_path(location) is not None:
        return reason
    parts = urlsplit(text)
    path_and_query = f"{parts.path}?{parts.query}" if parts.query else parts.path
    userinfo = parts.netloc.rpartition("@")[0]
    # Short pieces are skipped: a path like "/html" would match ordinary words, and a token that short is no secret.
    pieces = {text, http_url(text) or "", path_and_query, parts.path, parts.query, userinfo}
    for piece in sorted((piece for piece in pieces if len(piece) >= _SCRUBBED_LENGTH), key=len, reverse=True):
        reason = reason.replace(piece, redact(location))
    return reason


def _describe(result: FetchResult) -> str:
    if isinstance(result, Fetched):
        return f"fetched {len(result.body)} bytes"
    if isinstance(result, NotModified):
        return "not modified"
    return f"failed: {result.reason}"
