"""Time zones: what a prospect types, the zones offered as buttons, and zones as people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduling import zones
from scheduling.zones import ZoneGuess, likely_zones, resolve_zone, zone_label

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
"""A Tuesday in the northern winter and the southern summer."""
JULY = datetime(2026, 7, 15, 9, 30, tzinfo=UTC)
MONTHS_OF_2026 = [datetime(2026, month, 15, tzinfo=UTC) for month in range(1, 13)]
NOT_PLACES = {"Factory", "localtime", "posixrules"}


def offset(zone: str, at: datetime = NOW) -> timedelta | None:
    """The UTC offset of `zone`'s clock at `at`."""
    return ZoneInfo(zone).utcoffset(at.astimezone(ZoneInfo(zone)))


def same_clock(first: str, second: str) -> bool:
    """Whether two zones read the same time all through 2026."""
    return all(offset(first, month) == offset(second, month) for month in MONTHS_OF_2026)


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("Asia/Kolkata", "Asia/Kolkata"),
        ("asia/kolkata", "Asia/Kolkata"),
        ("ASIA/KOLKATA", "Asia/Kolkata"),
        ("  Asia/Kolkata.  ", "Asia/Kolkata"),
        ("Asia / Kolkata", "Asia/Kolkata"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("america/argentina/buenos aires", "America/Argentina/Buenos_Aires"),
        ("América/São_Paulo", "America/Sao_Paulo"),
        ("Asia/Calcutta", "Asia/Calcutta"),
        ("Europe/Kiev", "Europe/Kiev"),
        ("Etc/GMT-5", "Etc/GMT-5"),
        ("UTC", "UTC"),
        ("utc", "UTC"),
    ],
)
def test_an_iana_name_resolves_to_itself_whatever_its_case_accents_or_padding(text: str, zone: str) -> None:
    """The database's own names, old aliases included, are taken as written and need no confirmation."""
    guess = resolve_zone(text, now=NOW)

    assert guess == ZoneGuess(zone=zone, certain=True, matched=zone)


def test_every_name_in_the_zone_database_resolves_to_itself_unless_it_doubles_as_an_abbreviation() -> None:
    """ "EST" and "GMT+0" are names in the database, but people mean them as an abbreviation and an offset."""
    names = sorted(available_timezones() - NOT_PLACES)

    guesses = {name: resolve_zone(name, now=NOW) for name in names}

    assert {name: guess for name, guess in guesses.items() if guess is None} == {}
    assert [name for name, guess in guesses.items() if guess and guess.zone != name and guess.certain] == []
    assert resolve_zone("EST", now=NOW) == ZoneGuess(zone="America/New_York", certain=False, matched="EST")


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("new york", "America/New_York"),
        ("New York City", "America/New_York"),
        ("NewYork", "America/New_York"),
        ("Sao Paulo", "America/Sao_Paulo"),
        ("São Paulo", "America/Sao_Paulo"),
        ("SÃO PAULO", "America/Sao_Paulo"),
        ("los angeles", "America/Los_Angeles"),
        ("ho chi minh", "Asia/Ho_Chi_Minh"),
        ("Ho Chi Minh City", "Asia/Ho_Chi_Minh"),
        ("Toronto", "America/Toronto"),
        ("Vancouver", "America/Vancouver"),
        ("Montreal", "America/Montreal"),
        ("Melbourne", "Australia/Melbourne"),
        ("Buenos Aires", "America/Argentina/Buenos_Aires"),
        ("Indianapolis", "America/Indiana/Indianapolis"),
        ("St. John's", "America/St_Johns"),
        ("Port-au-Prince", "America/Port-au-Prince"),
        ("Dar es Salaam", "Africa/Dar_es_Salaam"),
        ("Kyiv", "Europe/Kyiv"),
    ],
)
def test_a_city_in_the_zone_database_resolves_with_certainty(text: str, zone: str) -> None:
    """The last part of a zone's name is a city, matched however it is spaced, cased or accented."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert (guess.zone, guess.certain) == (zone, True)


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        *[(city, "Asia/Kolkata") for city in ["Delhi", "New Delhi", "Mumbai", "Bangalore", "Bengaluru", "Chennai"]],
        ("Pune", "Asia/Kolkata"),
        ("Cebu", "Asia/Manila"),
        ("Cebu City", "Asia/Manila"),
        ("Davao", "Asia/Manila"),
        *[(city, "America/Los_Angeles") for city in ["San Francisco", "Seattle", "San Diego"]],
        *[(city, "America/New_York") for city in ["Boston", "Miami", "Atlanta", "Philadelphia", "Washington DC"]],
        ("Washington, D.C.", "America/New_York"),
        *[(city, "America/Chicago") for city in ["Dallas", "Houston", "Austin"]],
        *[(city, "Europe/Berlin") for city in ["Munich", "München", "MÜNCHEN", "Frankfurt", "Hamburg", "Cologne"]],
        ("Barcelona", "Europe/Madrid"),
        ("Krakow", "Europe/Warsaw"),
        ("Kraków", "Europe/Warsaw"),
        ("wroclaw", "Europe/Warsaw"),
        ("Łódź", "Europe/Warsaw"),
        ("Cluj", "Europe/Bucharest"),
        ("Cluj-Napoca", "Europe/Bucharest"),
        ("timisoara", "Europe/Bucharest"),
        *[(city, "Asia/Shanghai") for city in ["Beijing", "Shenzhen", "Guangzhou", "Xi'an"]],
        ("Rio de Janeiro", "America/Sao_Paulo"),
        ("Cape Town", "Africa/Johannesburg"),
        ("Abu Dhabi", "Asia/Dubai"),
        ("Edinburgh", "Europe/London"),
        ("Manchester", "Europe/London"),
        ("İzmir", "Europe/Istanbul"),
        ("Philippines", "Asia/Manila"),
        ("Samoa", "Pacific/Apia"),
    ],
)
def test_a_business_city_that_is_not_a_zone_name_resolves_with_certainty(text: str, zone: str) -> None:
    """Outsourcing hubs and their clients' cities are known by name, though the database names other cities."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert (guess.zone, guess.certain) == (zone, True)


@pytest.mark.parametrize(
    ("text", "shown"),
    [("sao paulo", "São Paulo"), ("krakow", "Kraków"), ("new york", "New York"), ("BOGOTA", "Bogotá")],
)
def test_a_city_is_shown_back_in_its_proper_spelling(text: str, shown: str) -> None:
    """The confirmation names the city as it is written, accents and all, not as it was typed."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert guess.matched == shown


def test_every_city_in_the_zone_database_resolves_to_a_zone_on_the_same_clock() -> None:
    """Where two names share a city (America/Buenos_Aires is an alias), either one keeps the city's time.

    The exceptions are city names deliberately read as a bigger city elsewhere; those are confirmed.
    """
    regions = {"Africa", "America", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
    skipped = zones._NOT_CITIES | zones._SHARED_CITY_NAMES
    cities = {
        name: name.rsplit("/", 1)[1].replace("_", " ")
        for name in available_timezones()
        if name.split("/")[0] in regions and name.rsplit("/", 1)[1].replace("_", " ") not in skipped
    }

    guesses = {name: resolve_zone(city, now=NOW) for name, city in cities.items()}

    wrong = {name: guess for name, guess in guesses.items() if guess is None or not same_clock(guess.zone, name)}
    assert wrong == {}


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("Hyderabad", "Asia/Kolkata"),
        ("San Jose", "America/Los_Angeles"),
        ("Portland", "America/Los_Angeles"),
        ("Birmingham", "Europe/London"),
        ("Valencia", "Europe/Madrid"),
        ("Washington", "America/New_York"),
        ("San Juan", "America/Puerto_Rico"),
    ],
)
def test_a_city_name_shared_across_zones_resolves_to_the_principal_city_and_is_confirmed(text: str, zone: str) -> None:
    """Hyderabad is India's unless the prospect says otherwise when asked "Did you mean …?"."""
    guess = resolve_zone(text, now=NOW)

    assert guess == ZoneGuess(zone=zone, certain=False, matched=text)


def test_a_states_name_in_the_zone_database_is_not_taken_for_a_city() -> None:
    """Australia/West and Australia/Victoria are states, and Pacific/Samoa is American Samoa, a day from Samoa."""
    guesses = [resolve_zone(text, now=NOW) for text in ["Victoria", "Queensland", "NSW", "Casey"]]

    assert guesses == [None, None, None, None]


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("UTC+5", 5),
        ("utc+1", 1),
        ("GMT-3", -3),
        ("UTC−3", -3),
        ("UTC –3", -3),
        ("UTC-03:00", -3),
        ("UTC +05:00", 5),
        ("+0300", 3),
        ("-0800", -8),
        ("GMT+0", 0),
        ("UTC+14", 14),
        ("UTC-12", -12),
    ],
)
def test_a_whole_hour_offset_resolves_to_a_fixed_zone_on_that_clock_and_is_confirmed(text: str, hours: int) -> None:
    """Etc zones count west as positive, so the zone must be checked by its clock, not by its name's sign."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert offset(guess.zone) == timedelta(hours=hours)
    assert guess.certain is False


@pytest.mark.parametrize(
    ("text", "zone"), [("UTC+5", "Etc/GMT-5"), ("GMT-3", "Etc/GMT+3"), ("UTC+14", "Etc/GMT-14"), ("GMT+0", "UTC")]
)
def test_a_whole_hour_offset_is_named_with_the_posix_inverted_sign(text: str, zone: str) -> None:
    """UTC+5 is "Etc/GMT-5": POSIX counts hours west of Greenwich."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert guess.zone == zone


@pytest.mark.parametrize(
    ("text", "zone", "typed"),
    [
        ("UTC+5:30", "Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("UTC +05:30", "Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("+0530", "Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("GMT+5.30", "Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("UTC+5.5", "Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("UTC+5:45", "Asia/Kathmandu", timedelta(hours=5, minutes=45)),
        ("UTC+6:30", "Asia/Yangon", timedelta(hours=6, minutes=30)),
        ("UTC+9:30", "Australia/Darwin", timedelta(hours=9, minutes=30)),
        ("UTC+3:30", "Asia/Tehran", timedelta(hours=3, minutes=30)),
        ("UTC+4:30", "Asia/Kabul", timedelta(hours=4, minutes=30)),
        ("UTC-3:30", "America/St_Johns", timedelta(hours=-3, minutes=-30)),
        ("UTC−3:30", "America/St_Johns", timedelta(hours=-3, minutes=-30)),
        ("UTC+8:45", "Australia/Eucla", timedelta(hours=8, minutes=45)),
        ("UTC-9:30", "Pacific/Marquesas", timedelta(hours=-9, minutes=-30)),
        ("UTC+10:30", "Australia/Adelaide", timedelta(hours=10, minutes=30)),
        ("UTC+13:45", "Pacific/Chatham", timedelta(hours=13, minutes=45)),
    ],
)
def test_a_fractional_offset_resolves_to_a_real_zone_whose_clock_reads_it_now(
    text: str, zone: str, typed: timedelta
) -> None:
    """No Etc zone has a half hour, so a real one stands in: Adelaide is UTC+10:30 in the southern summer."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert (guess.zone, guess.certain) == (zone, False)
    assert offset(guess.zone) == typed


@pytest.mark.parametrize(
    ("text", "now", "zone"),
    [
        ("UTC+10:30", JULY, "Australia/Lord_Howe"),
        ("UTC+12:45", NOW, "Pacific/Chatham"),
        ("UTC-2:30", NOW, "America/St_Johns"),
        ("UTC+9:30", JULY, "Australia/Darwin"),
    ],
)
def test_an_offset_a_zone_keeps_only_in_another_season_still_finds_that_zone(
    text: str, now: datetime, zone: str
) -> None:
    """Chatham is UTC+13:45 in November; someone who types its standard UTC+12:45 is there, and is asked."""
    guess = resolve_zone(text, now=now)

    assert guess is not None
    assert (guess.zone, guess.certain) == (zone, False)


@pytest.mark.parametrize(
    ("text", "shown"),
    [("utc+5:30", "UTC+05:30"), ("GMT−3", "UTC-03:00"), ("+0530", "UTC+05:30"), ("gmt+0", "UTC+00:00")],
)
def test_an_offset_is_shown_back_in_one_canonical_form(text: str, shown: str) -> None:
    """The confirmation writes the offset as zone labels do, with an ASCII hyphen for a minus."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert guess.matched == shown


@pytest.mark.parametrize(
    "text", ["UTC+15", "UTC-13", "UTC+14:30", "UTC-12:30", "UTC+5:15", "UTC+5:60", "UTC+1:30", "utc+99", "UTC+"]
)
def test_an_offset_that_no_clock_keeps_is_not_a_zone(text: str) -> None:
    """Clocks run from UTC-12 to UTC+14, in whole, half and three-quarter hours, and UTC+1:30 is nowhere."""
    guess = resolve_zone(text, now=NOW)

    assert guess is None


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        *[(name, "America/Los_Angeles") for name in ["PST", "PDT", "PT", "pst", "Pacific Time"]],
        *[(name, "America/Denver") for name in ["MST", "MDT"]],
        *[(name, "America/Chicago") for name in ["CST", "CDT", "CT"]],
        *[(name, "America/New_York") for name in ["EST", "EDT", "ET", "Eastern Standard Time"]],
        ("AKST", "America/Anchorage"),
        ("HST", "Pacific/Honolulu"),
        ("GMT", "Europe/London"),
        ("BST", "Europe/London"),
        *[(name, "Europe/Lisbon") for name in ["WET", "WEST"]],
        *[(name, "Europe/Berlin") for name in ["CET", "CEST"]],
        *[(name, "Europe/Bucharest") for name in ["EET", "EEST"]],
        ("MSK", "Europe/Moscow"),
        ("IST", "Asia/Kolkata"),
        ("PKT", "Asia/Karachi"),
        ("SGT", "Asia/Singapore"),
        ("HKT", "Asia/Hong_Kong"),
        *[(name, "Asia/Manila") for name in ["PHT", "PHST"]],
        ("JST", "Asia/Tokyo"),
        ("KST", "Asia/Seoul"),
        *[(name, "Australia/Sydney") for name in ["AEST", "AEDT"]],
        ("ACST", "Australia/Adelaide"),
        ("AWST", "Australia/Perth"),
        *[(name, "Pacific/Auckland") for name in ["NZST", "NZDT"]],
        ("BRT", "America/Sao_Paulo"),
        ("ART", "America/Argentina/Buenos_Aires"),
        ("SAST", "Africa/Johannesburg"),
        ("GST", "Asia/Dubai"),
        ("WAT", "Africa/Lagos"),
        ("EAT", "Africa/Nairobi"),
        ("Z", "UTC"),
    ],
)
def test_an_abbreviation_resolves_to_the_zone_most_who_write_it_live_in_and_is_confirmed(text: str, zone: str) -> None:
    """IST is India's, Ireland's and Israel's: every abbreviation is a guess the prospect confirms."""
    guess = resolve_zone(text, now=NOW)

    assert guess is not None
    assert (guess.zone, guess.certain) == (zone, False)


def test_an_abbreviation_is_shown_back_in_capitals() -> None:
    """ "pst" is confirmed as "PST"."""
    guess = resolve_zone(" pst ", now=NOW)

    assert guess == ZoneGuess(zone="America/Los_Angeles", certain=False, matched="PST")


def test_bare_gmt_is_read_as_london_time_as_londoners_use_it() -> None:
    """A Londoner who says GMT in July means their own clock; UTC is there for those who mean UTC+0."""
    in_july, in_november = resolve_zone("GMT", now=JULY), resolve_zone("GMT", now=NOW)

    assert in_july == in_november == ZoneGuess(zone="Europe/London", certain=False, matched="GMT")
    assert resolve_zone("UTC", now=JULY) == ZoneGuess(zone="UTC", certain=True, matched="UTC")


@pytest.mark.parametrize(
    "text",
    [
        "banana",
        "",
        "   ",
        "?!",
        "12345",
        "utc+99",
        "Europe/Atlantis",
        "Asia/",
        "/",
        "localtime",
        "Factory",
        "x" * 500,
        "Berlin" * 100,
        "🙂",
        "\x00",
        "5:30",
    ],
)
def test_nonsense_is_not_a_zone(text: str) -> None:
    """Anything else is not a zone, and the bot asks again."""
    guess = resolve_zone(text, now=NOW)

    assert guess is None


@given(st.text(max_size=120))
def test_any_text_resolves_to_nothing_or_to_a_zone_the_database_has(text: str) -> None:
    """Whatever a prospect types, resolving it neither raises nor invents a zone."""
    guess = resolve_zone(text, now=NOW)

    assert guess is None or ZoneInfo(guess.zone).key == guess.zone


@given(st.sampled_from(["Mumbai", "PST", "UTC+5:30", "Asia/Kolkata"]), st.text(" \t\n.,;:!?¿¡()[]\"'«»…"))
def test_surrounding_whitespace_and_punctuation_change_nothing(text: str, padding: str) -> None:
    """'"Mumbai."' and "(UTC+5:30)" are answered as "Mumbai" and "UTC+5:30"."""
    padded = resolve_zone(padding + text + padding[::-1], now=NOW)

    assert padded == resolve_zone(text, now=NOW)


def test_a_city_followed_by_its_country_resolves_as_the_city() -> None:
    """ "Berlin, Germany" and "Manila (Philippines)" are common answers."""
    guesses = [resolve_zone(text, now=NOW) for text in ["Berlin, Germany", "Manila (Philippines)", "Pune, India"]]

    assert [guess.zone if guess else None for guess in guesses] == ["Europe/Berlin", "Asia/Manila", "Asia/Kolkata"]


def test_every_zone_in_the_tables_is_in_the_zone_database() -> None:
    """A misspelt zone in a table would be offered to prospects, then fail when a consultation is booked."""
    named = {
        *zones._ABBREVIATIONS.values(),
        *zones._CITIES_BY_ZONE,
        *(zone for candidates in zones._FRACTIONAL_OFFSETS.values() for zone in candidates),
        *(zone for suggested in zones._ZONES_BY_LANGUAGE.values() for zone in suggested),
        *(zone for suggested in zones._ZONES_BY_SCRIPT.values() for zone in suggested),
        *(zone for suggested in zones._ZONES_BY_REGION.values() for zone in suggested),
    }

    assert named - available_timezones() == set()


def test_every_zone_offered_for_a_fractional_offset_keeps_it_at_some_time_of_year() -> None:
    """Tehran dropped daylight time in 2022; a table entry that no longer holds would send prospects astray."""
    stale = {
        (typed, zone)
        for typed, candidates in zones._FRACTIONAL_OFFSETS.items()
        for zone in candidates
        if all(offset(zone, month) != typed for month in MONTHS_OF_2026)
    }

    assert stale == set()


@pytest.mark.parametrize(
    ("language_code", "expected"),
    [
        ("de", ["Europe/Berlin"]),
        ("fr", ["Europe/Paris"]),
        ("it", ["Europe/Rome"]),
        ("nl", ["Europe/Amsterdam"]),
        ("pl", ["Europe/Warsaw"]),
        ("ro", ["Europe/Bucharest"]),
        ("hi", ["Asia/Kolkata"]),
        ("tl", ["Asia/Manila"]),
        ("fil", ["Asia/Manila"]),
        ("ja", ["Asia/Tokyo"]),
        ("zh", ["Asia/Shanghai"]),
        ("zh-hans", ["Asia/Shanghai"]),
        ("zh-Hant", ["Asia/Taipei", "Asia/Hong_Kong"]),
        ("uk", ["Europe/Kyiv"]),
        ("ru", ["Europe/Moscow"]),
        ("tr", ["Europe/Istanbul"]),
        ("id", ["Asia/Jakarta"]),
        ("vi", ["Asia/Ho_Chi_Minh"]),
        ("th", ["Asia/Bangkok"]),
        ("ko", ["Asia/Seoul"]),
        ("es", ["America/Mexico_City", "Europe/Madrid"]),
        ("pt", ["America/Sao_Paulo", "Europe/Lisbon"]),
        ("ar", ["Africa/Cairo", "Asia/Riyadh", "Asia/Dubai"]),
    ],
)
def test_the_language_alone_suggests_the_zones_where_it_is_mostly_spoken(
    language_code: str, expected: list[str]
) -> None:
    """A German-speaking prospect is offered Berlin first."""
    suggested = likely_zones(language_code, [])

    assert suggested == expected


@pytest.mark.parametrize(
    ("language_code", "expected"),
    [
        ("es-MX", ["America/Mexico_City"]),
        ("es-ES", ["Europe/Madrid"]),
        ("pt-br", ["America/Sao_Paulo"]),
        ("pt-PT", ["Europe/Lisbon"]),
        ("en-IN", ["Asia/Kolkata"]),
        ("en-GB", ["Europe/London"]),
        ("en_GB", ["Europe/London"]),
        ("en-PH", ["Asia/Manila"]),
        ("en-US", ["America/New_York", "America/Chicago", "America/Los_Angeles"]),
        ("zh-Hant-HK", ["Asia/Hong_Kong"]),
        ("es-419", ["America/Mexico_City", "America/Bogota"]),
        ("de-XX", ["Europe/Berlin"]),
    ],
)
def test_a_region_in_the_language_code_wins_over_the_language(language_code: str, expected: list[str]) -> None:
    """Spanish from Mexico suggests Mexico City, not Madrid; an unknown region falls back to the language."""
    suggested = likely_zones(language_code, [])

    assert suggested == expected


@pytest.mark.parametrize("language_code", ["en", "EN", None, "", "xx", "klingon", "-"])
def test_english_or_an_unknown_language_suggests_only_the_markets(language_code: str | None) -> None:
    """English is spoken in every zone, so it says nothing about the prospect's."""
    markets = ["Europe/London", "America/New_York"]

    suggested = likely_zones(language_code, markets)

    assert suggested == markets


def test_the_languages_zones_come_before_the_markets_without_repeating_one() -> None:
    """A German prospect of a company selling in Berlin and London sees Berlin once, first."""
    markets = ["Europe/London", "Europe/Berlin", "Europe/London"]

    suggested = likely_zones("de", markets)

    assert suggested == ["Europe/Berlin", "Europe/London"]


def test_no_more_zones_are_offered_than_the_limit() -> None:
    """Four buttons fit a phone's width; the most likely are kept."""
    markets = ["Europe/Berlin", "Asia/Manila", "Asia/Kolkata"]

    four, two, none = (
        likely_zones("en-US", markets),
        likely_zones("de", markets, limit=2),
        likely_zones("de", [], limit=0),
    )

    assert four == ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/Berlin"]
    assert two == ["Europe/Berlin", "Asia/Manila"]
    assert none == []


def test_a_negative_limit_or_a_single_string_of_markets_is_a_mistake() -> None:
    """A string is a sequence of letters: taken as markets it would offer "E", "u", "r"…"""
    with pytest.raises(ValueError, match="limit"):
        likely_zones("de", [], limit=-1)
    with pytest.raises(TypeError, match="markets"):
        likely_zones("de", "Europe/Berlin")


@pytest.mark.parametrize(
    ("zone", "now", "label"),
    [
        ("Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), "Berlin (UTC+01:00)"),
        ("Europe/Berlin", datetime(2026, 3, 30, 12, tzinfo=UTC), "Berlin (UTC+02:00)"),
        ("America/New_York", datetime(2026, 3, 7, 12, tzinfo=UTC), "New York (UTC-05:00)"),
        ("America/New_York", datetime(2026, 3, 9, 12, tzinfo=UTC), "New York (UTC-04:00)"),
        ("Australia/Sydney", datetime(2026, 4, 4, 12, tzinfo=UTC), "Sydney (UTC+11:00)"),
        ("Australia/Sydney", datetime(2026, 4, 6, 12, tzinfo=UTC), "Sydney (UTC+10:00)"),
    ],
)
def test_a_label_shows_the_offset_on_the_clock_at_that_moment(zone: str, now: datetime, label: str) -> None:
    """Either side of a clock change the same zone reads differently: Berlin is UTC+02:00 from 29 March 2026."""
    shown = zone_label(zone, now=now)

    assert shown == label


@pytest.mark.parametrize(
    ("zone", "label"),
    [
        ("Asia/Kolkata", "Kolkata (UTC+05:30)"),
        ("Asia/Kathmandu", "Kathmandu (UTC+05:45)"),
        ("America/St_Johns", "St Johns (UTC-03:30)"),
        ("America/Argentina/Buenos_Aires", "Buenos Aires (UTC-03:00)"),
        ("Pacific/Chatham", "Chatham (UTC+13:45)"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("Etc/GMT", "UTC"),
        ("Zulu", "UTC"),
        ("Etc/GMT-5", "UTC+05:00"),
        ("Etc/GMT+3", "UTC-03:00"),
        ("Etc/GMT-14", "UTC+14:00"),
    ],
)
def test_a_label_names_the_city_or_reads_as_utc_for_a_fixed_zone(zone: str, label: str) -> None:
    """The city is the last part of the name; Etc zones have no city and read as their offset."""
    shown = zone_label(zone, now=NOW)

    assert shown == label


def test_a_label_uses_an_ascii_hyphen_so_that_it_can_be_pasted_back() -> None:
    """A prospect who pastes "UTC-05:00" from a label into the "Other" answer gets the same clock back."""
    label = zone_label("Etc/GMT+5", now=NOW)

    guess = resolve_zone(label, now=NOW)

    assert "\u2212" not in label
    assert guess is not None
    assert offset(guess.zone) == timedelta(hours=-5)


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Chatham"]
)
def test_the_city_in_a_label_resolves_back_to_its_zone(zone: str) -> None:
    """A prospect who types the city from a button's label gets that button's zone."""
    city = zone_label(zone, now=NOW).split(" (")[0]

    guess = resolve_zone(city, now=NOW)

    assert guess is not None
    assert guess.zone == zone


def test_a_naive_time_is_refused() -> None:
    """Without a zone, "now" would be read on the server's clock."""
    naive = datetime(2026, 11, 24, 9, 30)  # noqa: DTZ001  # the naive input under test

    with pytest.raises(ValueError, match="aware"):
        resolve_zone("Berlin", now=naive)
    with pytest.raises(ValueError, match="aware"):
        zone_label("Europe/Berlin", now=naive)
