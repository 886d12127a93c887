"""A prospect's time zone from what they type, the zones worth offering as buttons, and zones as people read them.

Pure: the zone database is the only thing read, and the time is a parameter. Text is matched without regard to case,
accents, spacing or surrounding punctuation, in this order: abbreviations ("PST", "Eastern Time"), offsets
("UTC+05:30"), IANA names ("Asia/Kolkata"), then cities ("São Paulo", "Bengaluru"). Abbreviations come first because
the database also holds a few as fixed zones ("EST" is UTC-05:00 all year), which is not what people mean by them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

__all__ = ["ZoneGuess", "likely_zones", "resolve_zone", "zone_label"]


@dataclass(frozen=True)
class ZoneGuess:
    """A zone recognised in a prospect's answer, and whether to confirm it before storing it."""

    zone: str
    """An IANA name that `zoneinfo.ZoneInfo` accepts, e.g. "Asia/Kolkata"."""
    certain: bool
    """False for abbreviations, offsets and shared city names: the bot asks "Did you mean …?" first."""
    matched: str
    """What was recognised, as shown back in the confirmation, e.g. "PST", "UTC+05:30", "São Paulo"."""


_LONGEST_ANSWER = 80
"""Nothing recognisable is longer ("America/Argentina/ComodRivadavia" is 32); longer text is not normalised at all."""

_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})
"""Files in some zone databases that are not places: "localtime" is the host's own zone, which no prospect means."""

_UNIVERSAL = frozenset({"UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich"})
"""Names outside Etc/ that are UTC itself: labelled "UTC", not as a city."""

# The first part of the names whose last part is a place. Legacy country and state folders (US/, Canada/, Brazil/)
# hold "Eastern", "Pacific" and "West", which are not cities; Antarctic research stations (Casey, Davis, Palmer) share
# their names with towns elsewhere and have no prospects.
_GEOGRAPHIC_REGIONS = frozenset(
    {"Africa", "America", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
)
# Last parts of geographic names that are states or countries, not cities: Australia's old state names, and
# Pacific/Samoa, an alias of American Samoa's Pago Pago, a day away from Samoa the country (Pacific/Apia).
_NOT_CITIES = frozenset(
    {"ACT", "LHI", "NSW", "North", "Queensland", "South", "Tasmania", "Victoria", "West", "Yancowinna", "Samoa"}
)

# Letters that Unicode does not decompose into a base letter and an accent.
_UNACCENTED = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ħ": "h", "\u0131": "i", "æ": "ae", "Æ": "AE"}
    | {"œ": "oe", "Œ": "OE", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D"}
)

# Keyboards and autocorrect write a minus in many ways (hyphens, dashes, U+2212); all of them are a sign in "UTC-3".
_MINUS_SIGNS = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d", "-"))
_OFFSET = re.compile(r"(?:utc|gmt|ut)?([+-])(\d{1,2})(?:[:.h]?(\d{2})|\.(5))?")
_HALF_HOUR_DECIMAL = 30
_OFFSET_MINUTES = frozenset({0, 30, 45})
_EARLIEST_OFFSET, _LATEST_OFFSET = timedelta(hours=-12), timedelta(hours=14)

# Offsets that are not whole hours, and the real zones that keep them at some time of year, the likeliest first.
# A fixed Etc zone cannot express them, so the zone whose clock reads so at `now` is taken, else the first one:
# "UTC+10:30" is Adelaide in the southern summer and Lord Howe Island in winter.
_FRACTIONAL_OFFSETS: dict[timedelta, tuple[str, ...]] = {
    timedelta(hours=-9, minutes=-30): ("Pacific/Marquesas",),
    timedelta(hours=-3, minutes=-30): ("America/St_Johns",),
    timedelta(hours=-2, minutes=-30): ("America/St_Johns",),
    timedelta(hours=3, minutes=30): ("Asia/Tehran",),
    timedelta(hours=4, minutes=30): ("Asia/Kabul",),
    timedelta(hours=5, minutes=30): ("Asia/Kolkata", "Asia/Colombo"),
    timedelta(hours=5, minutes=45): ("Asia/Kathmandu",),
    timedelta(hours=6, minutes=30): ("Asia/Yangon", "Indian/Cocos"),
    timedelta(hours=8, minutes=45): ("Australia/Eucla",),
    timedelta(hours=9, minutes=30): ("Australia/Darwin", "Australia/Adelaide"),
    timedelta(hours=10, minutes=30): ("Australia/Adelaide", "Australia/Lord_Howe"),
    timedelta(hours=12, minutes=45): ("Pacific/Chatham",),
    timedelta(hours=13, minutes=45): ("Pacific/Chatham",),
}

# Abbreviations and spelled-out names, each read as the zone most people who write it live in. Many are ambiguous
# (below), which is why every one of them is confirmed. Standard, daylight and generic forms name the same zone:
# people write "EST" in July and mean New York's clock, not UTC-05:00.
_ABBREVIATIONS: dict[str, str] = {
    **dict.fromkeys(
        ["PST", "PDT", "PT", "Pacific Time", "Pacific Standard Time", "Pacific Daylight Time"], "America/Los_Angeles"
    ),
    # Arizona keeps MST all year, but Denver's zone holds most of the people who say it.
    **dict.fromkeys(
        ["MST", "MDT", "MT", "Mountain Time", "Mountain Standard Time", "Mountain Daylight Time"], "America/Denver"
    ),
    # CST is also China Standard Time and Cuba's; the US one is the common reading in English.
    **dict.fromkeys(
        ["CST", "CDT", "CT", "Central Time", "Central Standard Time", "Central Daylight Time"], "America/Chicago"
    ),
    **dict.fromkeys(
        ["EST", "EDT", "ET", "Eastern Time", "Eastern Standard Time", "Eastern Daylight Time"], "America/New_York"
    ),
    **dict.fromkeys(["AKST", "AKDT"], "America/Anchorage"),
    **dict.fromkeys(["HST", "HDT"], "Pacific/Honolulu"),
    # AST is also Arabia Standard Time; Atlantic is the reading in North America, where the abbreviation is common.
    **dict.fromkeys(["AST", "ADT"], "America/Halifax"),
    **dict.fromkeys(["NST", "NDT"], "America/St_Johns"),
    # GMT is what Londoners call their clock, in winter and often in summer too; UTC+0 is what it means on paper.
    # London it is: a Londoner taken at their word for UTC would be an hour off from March to October, while someone
    # who means UTC sees "London (UTC+01:00)" in the summer confirmation and answers "UTC" instead.
    **dict.fromkeys(["GMT", "Greenwich Mean Time"], "Europe/London"),
    # BST is also Bangladesh Standard Time; British Summer Time is the common reading.
    **dict.fromkeys(["BST", "British Summer Time"], "Europe/London"),
    **dict.fromkeys(["IST", "India Standard Time", "Indian Standard Time"], "Asia/Kolkata"),
    **dict.fromkeys(["WET", "WEST", "Western European Time"], "Europe/Lisbon"),
    # Every CET country has changed clocks on the same EU dates since 1996, so the choice only shows in the label:
    # Berlin, as the largest of them.
    **dict.fromkeys(
        ["CET", "CEST", "MEZ", "MESZ", "Central European Time", "Central European Summer Time"], "Europe/Berlin"
    ),
    # Bucharest for the EU's EET countries (Athens, Sofia, Helsinki, Riga: same rules). Egypt and Lebanon say EET
    # too but change clocks on other dates, so their prospects should confirm a Cairo or Beirut zone instead.
    **dict.fromkeys(["EET", "EEST", "Eastern European Time", "Eastern European Summer Time"], "Europe/Bucharest"),
    "MSK": "Europe/Moscow",
    "TRT": "Europe/Istanbul",
    "WAT": "Africa/Lagos",
    "CAT": "Africa/Maputo",
    "EAT": "Africa/Nairobi",
    "SAST": "Africa/Johannesburg",
    "IDT": "Asia/Jerusalem",
    "IRST": "Asia/Tehran",
    # GST is also South Georgia Time (UTC-02:00), with a few dozen residents.
    **dict.fromkeys(["GST", "Gulf Standard Time"], "Asia/Dubai"),
    "PKT": "Asia/Karachi",
    "NPT": "Asia/Kathmandu",
    "ICT": "Asia/Bangkok",
    "WIB": "Asia/Jakarta",
    "WITA": "Asia/Makassar",
    "MYT": "Asia/Kuala_Lumpur",
    "SGT": "Asia/Singapore",
    "HKT": "Asia/Hong_Kong",
    # Filipinos also write PST for Philippine Standard Time; PST stays Pacific, and the confirmation catches it.
    **dict.fromkeys(["PHT", "PHST", "Philippine Time", "Philippine Standard Time"], "Asia/Manila"),
    "China Standard Time": "Asia/Shanghai",
    **dict.fromkeys(["JST", "Japan Standard Time"], "Asia/Tokyo"),
    "KST": "Asia/Seoul",
    **dict.fromkeys(["AEST", "AEDT"], "Australia/Sydney"),
    **dict.fromkeys(["ACST", "ACDT"], "Australia/Adelaide"),
    "AWST": "Australia/Perth",
    **dict.fromkeys(["NZST", "NZDT"], "Pacific/Auckland"),
    "BRT": "America/Sao_Paulo",
    "ART": "America/Argentina/Buenos_Aires",
    "COT": "America/Bogota",
    "PET": "America/Lima",
    **dict.fromkeys(["CLT", "CLST"], "America/Santiago"),
    # "Z" is UTC in ISO 8601, but a lone letter may be a slip of the thumb: confirmed like the rest.
    "Z": "UTC",
}

# Large business cities that are not zone names, especially outsourcing hubs and their clients' home cities,
# spelled as they are shown back. Sensible, not exhaustive: zone-database cities (Toronto, Melbourne) need no entry
# unless they want their accents back ("São Paulo"). A few single-zone countries are here too, for people who answer
# with one; countries spanning zones (the US, Brazil, Australia) are left out so that they are asked for a city.
# fmt: off
_CITIES_BY_ZONE: dict[str, tuple[str, ...]] = {  # packed by hand: one line per zone would run to hundreds of lines
    "Asia/Kolkata": (
        "Delhi", "New Delhi", "Mumbai", "Bombay", "Bangalore", "Bengaluru", "Hyderabad", "Chennai", "Madras", "Pune",
        "Noida", "Gurgaon", "Gurugram", "Ahmedabad", "Jaipur", "Kochi", "Cochin", "Coimbatore", "Chandigarh", "Mohali",
        "Indore", "Lucknow", "Nagpur", "Thiruvananthapuram", "Trivandrum", "Vadodara", "Visakhapatnam", "Bhubaneswar",
        "Mysuru", "Mysore", "India",
    ),
    "Asia/Manila": (
        "Cebu", "Davao", "Quezon City", "Makati", "Taguig", "Pasig", "Bonifacio Global City", "Bacolod", "Iloilo",
        "Baguio", "Cagayan de Oro", "Philippines",
    ),
    "Asia/Karachi": ("Lahore", "Islamabad", "Rawalpindi", "Faisalabad", "Pakistan"),
    "Asia/Dhaka": ("Chittagong", "Chattogram", "Bangladesh"),
    "Asia/Colombo": ("Kandy", "Sri Lanka"),
    "Asia/Kathmandu": ("Nepal",),
    "Asia/Ho_Chi_Minh": (
        "Hồ Chí Minh", "Ho Chi Minh City", "HCMC", "Hanoi", "Hà Nội", "Da Nang", "Vietnam", "Viet Nam",
    ),
    "Asia/Bangkok": ("Chiang Mai", "Phuket", "Pattaya", "Thailand"),
    "Asia/Kuala_Lumpur": ("Penang", "Johor Bahru", "Cyberjaya", "Putrajaya", "Malaysia"),
    "Asia/Jakarta": ("Bandung", "Surabaya", "Semarang"),
    "Asia/Makassar": ("Bali", "Denpasar"),
    "Asia/Shanghai": (
        "Beijing", "Peking", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Tianjin", "Xi'an",
        "Suzhou", "Dalian", "Xiamen", "China",
    ),
    "Asia/Taipei": ("Kaohsiung", "Taichung", "Taiwan"),
    "Asia/Tokyo": ("Osaka", "Kyoto", "Yokohama", "Nagoya", "Fukuoka", "Sapporo", "Kobe"),
    "Asia/Seoul": ("Busan", "Incheon", "Daegu", "South Korea", "Korea"),
    "Asia/Dubai": ("Abu Dhabi", "Sharjah", "Ajman", "UAE", "United Arab Emirates", "Emirates"),
    "Asia/Riyadh": ("Jeddah", "Dammam", "Mecca", "Saudi Arabia"),
    "Asia/Qatar": ("Doha",),
    "Asia/Bahrain": ("Manama",),
    "Asia/Kuwait": ("Kuwait City",),
    "Asia/Jerusalem": ("Haifa",),
    "Asia/Nicosia": ("Nicosia", "Limassol", "Cyprus"),
    "Europe/Istanbul": ("Istanbul", "Ankara", "İzmir", "Türkiye"),
    "America/Los_Angeles": (
        "San Francisco", "Seattle", "San Diego", "San Jose", "Portland", "Sacramento", "Oakland", "Palo Alto",
        "Mountain View", "Menlo Park", "Cupertino", "Sunnyvale", "Redmond", "Bellevue", "Las Vegas", "Silicon Valley",
    ),
    "America/Denver": ("Salt Lake City", "Albuquerque", "Colorado Springs", "Boulder"),
    "America/Phoenix": ("Tucson", "Scottsdale", "Mesa", "Tempe", "Arizona"),
    "America/Chicago": (
        "Dallas", "Houston", "Austin", "San Antonio", "Fort Worth", "Minneapolis", "St. Louis", "Saint Louis",
        "Kansas City", "New Orleans", "Nashville", "Memphis", "Milwaukee", "Oklahoma City", "Omaha",
    ),
    "America/New_York": (
        "Boston", "Washington", "Washington DC", "Miami", "Atlanta", "Philadelphia", "Charlotte", "Pittsburgh",
        "Baltimore", "Orlando", "Tampa", "Jacksonville", "Raleigh", "Cleveland", "Cincinnati", "Columbus", "Newark",
        "Jersey City", "Brooklyn", "Manhattan", "NYC", "Hartford", "Buffalo", "Providence",
    ),
    "America/St_Johns": ("St. John's",),
    "America/Toronto": ("Ottawa", "Mississauga", "Quebec City", "Québec"),
    "America/Edmonton": ("Calgary",),
    "America/Mexico_City": ("Ciudad de México", "CDMX", "Guadalajara", "Monterrey", "Puebla", "Querétaro"),
    "America/Bogota": ("Bogotá", "Medellín", "Cali", "Barranquilla", "Colombia"),
    "America/Lima": ("Peru",),
    "America/Guayaquil": ("Quito", "Ecuador"),
    "America/El_Salvador": ("San Salvador",),
    "America/Puerto_Rico": ("San Juan",),
    "America/Sao_Paulo": (
        "São Paulo", "Rio de Janeiro", "Rio", "Brasília", "Belo Horizonte", "Curitiba", "Porto Alegre",
        "Florianópolis", "Campinas",
    ),
    "America/Argentina/Buenos_Aires": ("Rosario", "Argentina"),
    "America/Asuncion": ("Asunción", "Paraguay"),
    "America/Montevideo": ("Uruguay",),
    "America/Caracas": ("Maracaibo", "Venezuela"),
    "Europe/London": (
        "Edinburgh", "Manchester", "Birmingham", "Glasgow", "Leeds", "Liverpool", "Bristol", "Cardiff", "Sheffield",
        "Nottingham", "Leicester", "Southampton", "Aberdeen", "Milton Keynes", "UK", "United Kingdom", "Great Britain",
        "Britain", "England", "Scotland", "Wales", "Northern Ireland",
    ),
    "Europe/Dublin": ("Cork", "Galway", "Limerick", "Ireland"),
    "Europe/Berlin": (
        "Munich", "München", "Frankfurt", "Frankfurt am Main", "Hamburg", "Cologne", "Köln", "Stuttgart",
        "Düsseldorf", "Leipzig", "Dresden", "Hanover", "Hannover", "Nuremberg", "Nürnberg", "Bremen", "Essen",
        "Dortmund", "Bonn", "Germany", "Deutschland",
    ),
    "Europe/Paris": ("Lyon", "Marseille", "Toulouse", "Nice", "Lille", "Bordeaux", "Nantes", "Strasbourg", "France"),
    # Spain's Canary Islands are an hour behind, but hold under a twentieth of its people.
    "Europe/Madrid": ("Barcelona", "Valencia", "Seville", "Sevilla", "Málaga", "Bilbao", "Zaragoza", "Spain", "España"),
    "Europe/Lisbon": ("Porto", "Braga"),
    "Europe/Rome": (
        "Milan", "Milano", "Naples", "Napoli", "Turin", "Torino", "Florence", "Firenze", "Bologna", "Genoa", "Italy",
    ),
    "Europe/Zurich": ("Zürich", "Geneva", "Genève", "Basel", "Bern", "Lausanne", "Switzerland"),
    "Europe/Vienna": ("Wien", "Graz", "Salzburg", "Linz", "Austria"),
    "Europe/Amsterdam": ("Rotterdam", "The Hague", "Den Haag", "Utrecht", "Eindhoven", "Netherlands", "Holland"),
    "Europe/Brussels": ("Antwerp", "Ghent", "Belgium"),
    "Europe/Warsaw": ("Kraków", "Wrocław", "Gdańsk", "Poznań", "Łódź", "Katowice", "Warszawa"),
    "Europe/Prague": ("Praha", "Brno", "Czechia", "Czech Republic"),
    "Europe/Budapest": ("Debrecen", "Hungary"),
    "Europe/Bucharest": (
        "București", "Cluj", "Cluj-Napoca", "Iași", "Timișoara", "Brașov", "Constanța", "Romania",
    ),
    "Europe/Sofia": ("Plovdiv", "Varna", "Bulgaria"),
    "Europe/Athens": ("Thessaloniki", "Greece"),
    "Europe/Kyiv": ("Kharkiv", "Lviv", "Odesa", "Odessa", "Dnipro", "Ukraine"),
    "Europe/Belgrade": ("Novi Sad", "Serbia"),
    "Europe/Stockholm": ("Gothenburg", "Göteborg", "Malmö", "Sweden"),
    "Europe/Oslo": ("Bergen", "Norway"),
    "Europe/Copenhagen": ("Aarhus", "Denmark"),
    "Europe/Helsinki": ("Espoo", "Tampere", "Finland"),
    "Europe/Moscow": ("Saint Petersburg", "St. Petersburg"),
    "Africa/Johannesburg": ("Cape Town", "Durban", "Pretoria", "Gqeberha", "Port Elizabeth", "South Africa"),
    "Africa/Lagos": ("Abuja", "Ibadan", "Port Harcourt", "Nigeria"),
    "Africa/Nairobi": ("Mombasa", "Kenya"),
    "Africa/Cairo": ("Alexandria", "Giza"),
    "Africa/Casablanca": ("Rabat", "Marrakesh", "Marrakech", "Tangier", "Morocco"),
    "Africa/Accra": ("Kumasi", "Ghana"),
    "Australia/Brisbane": ("Gold Coast",),
    "Pacific/Auckland": ("Wellington", "Christchurch", "New Zealand"),
    "Pacific/Apia": ("Samoa",),
}
# fmt: on

# City names that big cities in different zones share: the principal one is taken, and confirmed like an abbreviation.
_SHARED_CITY_NAMES = frozenset(
    {
        "Hyderabad",  # India's BPO hub; also Hyderabad, Pakistan, an hour and a half behind.
        "San Jose",  # California; also San José, Costa Rica, a nearshore outsourcing hub.
        "Portland",  # Oregon; also Portland, Maine, three hours ahead.
        "Birmingham",  # England; also Birmingham, Alabama.
        "Valencia",  # Spain, a business and outsourcing centre; also Valencia, Venezuela, five hours behind.
        "Washington",  # Washington, D.C.; also Washington State, on Pacific time.
        "San Juan",  # Puerto Rico, a nearshore hub; also San Juan, Argentina (America/Argentina/San_Juan).
    }
)

_ZONES_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    # English suggests nothing: it is spoken in every zone. Spanish, Portuguese and Arabic each span several zones:
    # the most populous first.
    "es": ("America/Mexico_City", "Europe/Madrid"),
    "pt": ("America/Sao_Paulo", "Europe/Lisbon"),
    "ar": ("Africa/Cairo", "Asia/Riyadh", "Asia/Dubai"),
    "bn": ("Asia/Dhaka", "Asia/Kolkata"),
    **dict.fromkeys(["hi", "ta", "te", "mr", "gu", "kn", "ml"], ("Asia/Kolkata",)),
    **dict.fromkeys(["tl", "fil", "ceb"], ("Asia/Manila",)),
    "ur": ("Asia/Karachi",),
    "ne": ("Asia/Kathmandu",),
    "si": ("Asia/Colombo",),
    "de": ("Europe/Berlin",),
    "fr": ("Europe/Paris",),
    "it": ("Europe/Rome",),
    "nl": ("Europe/Amsterdam",),
    "pl": ("Europe/Warsaw",),
    "ro": ("Europe/Bucharest",),
    "uk": ("Europe/Kyiv",),
    "ru": ("Europe/Moscow",),
    "be": ("Europe/Minsk",),
    "tr": ("Europe/Istanbul",),
    "el": ("Europe/Athens",),
    "bg": ("Europe/Sofia",),
    "cs": ("Europe/Prague",),
    "sk": ("Europe/Bratislava",),
    "hu": ("Europe/Budapest",),
    "sv": ("Europe/Stockholm",),
    "da": ("Europe/Copenhagen",),
    **dict.fromkeys(["nb", "nn", "no"], ("Europe/Oslo",)),
    "fi": ("Europe/Helsinki",),
    "et": ("Europe/Tallinn",),
    "lv": ("Europe/Riga",),
    "lt": ("Europe/Vilnius",),
    "hr": ("Europe/Zagreb",),
    "sr": ("Europe/Belgrade",),
    "sl": ("Europe/Ljubljana",),
    **dict.fromkeys(["ca", "eu", "gl"], ("Europe/Madrid",)),
    "ga": ("Europe/Dublin",),
    "cy": ("Europe/London",),
    **dict.fromkeys(["he", "iw"], ("Asia/Jerusalem",)),
    "fa": ("Asia/Tehran",),
    "az": ("Asia/Baku",),
    "ka": ("Asia/Tbilisi",),
    "hy": ("Asia/Yerevan",),
    "kk": ("Asia/Almaty",),
    "uz": ("Asia/Tashkent",),
    "ja": ("Asia/Tokyo",),
    "ko": ("Asia/Seoul",),
    "zh": ("Asia/Shanghai",),
    "id": ("Asia/Jakarta",),
    "ms": ("Asia/Kuala_Lumpur",),
    "vi": ("Asia/Ho_Chi_Minh",),
    "th": ("Asia/Bangkok",),
    "sw": ("Africa/Nairobi",),
    "am": ("Africa/Addis_Ababa",),
    **dict.fromkeys(["af", "zu", "xh"], ("Africa/Johannesburg",)),
    **dict.fromkeys(["yo", "ha", "ig"], ("Africa/Lagos",)),
}

# Script subtags that say more than the language: Traditional Chinese is written in Taiwan and Hong Kong.
_ZONES_BY_SCRIPT: dict[tuple[str, str], tuple[str, ...]] = {("zh", "hant"): ("Asia/Taipei", "Asia/Hong_Kong")}

# Region subtags, which win over the language. Countries spanning zones offer their most populous ones; the US leaves
# out Denver (the fewest people) so that a market still fits among four buttons.
_ZONES_BY_REGION: dict[str, tuple[str, ...]] = {
    "us": ("America/New_York", "America/Chicago", "America/Los_Angeles"),
    "ca": ("America/Toronto", "America/Vancouver"),
    "au": ("Australia/Sydney", "Australia/Brisbane", "Australia/Perth"),
    "419": ("America/Mexico_City", "America/Bogota"),  # Latin America, as in es-419
    "mx": ("America/Mexico_City",),
    "br": ("America/Sao_Paulo",),
    "ar": ("America/Argentina/Buenos_Aires",),
    "co": ("America/Bogota",),
    "cl": ("America/Santiago",),
    "pe": ("America/Lima",),
    "ve": ("America/Caracas",),
    "ec": ("America/Guayaquil",),
    "uy": ("America/Montevideo",),
    "cr": ("America/Costa_Rica",),
    "gt": ("America/Guatemala",),
    "do": ("America/Santo_Domingo",),
    "pr": ("America/Puerto_Rico",),
    "jm": ("America/Jamaica",),
    "pa": ("America/Panama",),
    "gb": ("Europe/London",),
    "uk": ("Europe/London",),
    "ie": ("Europe/Dublin",),
    "de": ("Europe/Berlin",),
    "at": ("Europe/Vienna",),
    "ch": ("Europe/Zurich",),
    "fr": ("Europe/Paris",),
    "be": ("Europe/Brussels",),
    "nl": ("Europe/Amsterdam",),
    "lu": ("Europe/Luxembourg",),
    "es": ("Europe/Madrid",),
    "pt": ("Europe/Lisbon",),
    "it": ("Europe/Rome",),
    "pl": ("Europe/Warsaw",),
    "cz": ("Europe/Prague",),
    "sk": ("Europe/Bratislava",),
    "hu": ("Europe/Budapest",),
    "ro": ("Europe/Bucharest",),
    "bg": ("Europe/Sofia",),
    "gr": ("Europe/Athens",),
    "ua": ("Europe/Kyiv",),
    "ru": ("Europe/Moscow",),
    "tr": ("Europe/Istanbul",),
    "se": ("Europe/Stockholm",),
    "no": ("Europe/Oslo",),
    "dk": ("Europe/Copenhagen",),
    "fi": ("Europe/Helsinki",),
    "ee": ("Europe/Tallinn",),
    "lv": ("Europe/Riga",),
    "lt": ("Europe/Vilnius",),
    "rs": ("Europe/Belgrade",),
    "hr": ("Europe/Zagreb",),
    "si": ("Europe/Ljubljana",),
    "il": ("Asia/Jerusalem",),
    "ae": ("Asia/Dubai",),
    "sa": ("Asia/Riyadh",),
    "qa": ("Asia/Qatar",),
    "eg": ("Africa/Cairo",),
    "ma": ("Africa/Casablanca",),
    "ng": ("Africa/Lagos",),
    "gh": ("Africa/Accra",),
    "ke": ("Africa/Nairobi",),
    "za": ("Africa/Johannesburg",),
    "in": ("Asia/Kolkata",),
    "pk": ("Asia/Karachi",),
    "bd": ("Asia/Dhaka",),
    "lk": ("Asia/Colombo",),
    "np": ("Asia/Kathmandu",),
    "ph": ("Asia/Manila",),
    "sg": ("Asia/Singapore",),
    "my": ("Asia/Kuala_Lumpur",),
    "id": ("Asia/Jakarta",),
    "vn": ("Asia/Ho_Chi_Minh",),
    "th": ("Asia/Bangkok",),
    "cn": ("Asia/Shanghai",),
    "hk": ("Asia/Hong_Kong",),
    "tw": ("Asia/Taipei",),
    "jp": ("Asia/Tokyo",),
    "kr": ("Asia/Seoul",),
    "nz": ("Pacific/Auckland",),
}


def resolve_zone(text: str, *, now: datetime) -> ZoneGuess | None:
    """The zone a prospect means by `text` ("Mumbai", "PST", "UTC+5:30", "Asia/Kolkata"), or None."""
    _require_aware(now)
    answer = _trim(text)
    if not answer or len(answer) > _LONGEST_ANSWER:
        return None
    guess = _abbreviation(answer) or _offset(answer, now) or _iana_name(answer) or _city(answer)
    if guess is None:
        # "Berlin, Germany" and "Manila (Philippines)": the place comes first.
        head = _trim(re.split(r"[,(]", answer, maxsplit=1)[0])
        if head and head != answer:
            guess = _iana_name(head) or _city(head)
    return guess


def likely_zones(language_code: str | None, markets: Sequence[str], *, limit: int = 4) -> list[str]:
    """Zones to offer as buttons, likeliest first: those of the prospect's language, then the company's markets."""
    if isinstance(markets, str):
        raise TypeError(f"markets must be a sequence of zone names, not the string {markets!r}")
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    return list(dict.fromkeys([*_zones_for_language(language_code), *markets]))[:limit]


def zone_label(zone: str, *, now: datetime) -> str:
    """A zone as people read it at `now`: "Berlin (UTC+01:00)", "UTC", or "UTC+05:00" for a fixed Etc zone."""
    _require_aware(now)
    offset = _offset_at(ZoneInfo(zone), now)
    if zone.startswith("Etc/") or zone in _UNIVERSAL:
        return f"UTC{_written_offset(offset)}" if offset else "UTC"
    return f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} (UTC{_written_offset(offset)})"


def _abbreviation(answer: str) -> ZoneGuess | None:
    """The zone of an abbreviation or spelled-out name such as "PST" or "Eastern Time", to confirm."""
    found = _abbreviation_index().get(_compact(answer))
    return ZoneGuess(zone=found[0], certain=False, matched=found[1]) if found else None


def _offset(answer: str, now: datetime) -> ZoneGuess | None:
    """A zone on the clock of an offset such as "UTC+5:30", "GMT-3" or "+0530", to confirm."""
    written = "".join(_fold(answer.translate(_MINUS_SIGNS)).split())
    match = _OFFSET.fullmatch(written)
    if match is None:
        return None
    sign, hours, minutes, half = match.groups()
    minute = _HALF_HOUR_DECIMAL if half else int(minutes or 0)
    offset = (-1 if sign == "-" else 1) * timedelta(hours=int(hours), minutes=minute)
    if minute not in _OFFSET_MINUTES or not _EARLIEST_OFFSET <= offset <= _LATEST_OFFSET:
        return None
    matched = f"UTC{_written_offset(offset)}"
    if not minute:
        # POSIX counts west as positive, so the fixed zone for UTC+5 is called Etc/GMT-5.
        whole = int(offset / timedelta(hours=1))
        return ZoneGuess(zone=f"Etc/GMT{-whole:+d}" if whole else "UTC", certain=False, matched=matched)
    candidates = _FRACTIONAL_OFFSETS.get(offset)
    if candidates is None:
        return None
    zone = next((z for z in candidates if _offset_at(ZoneInfo(z), now) == offset), candidates[0])
    return ZoneGuess(zone=zone, certain=False, matched=matched)


def _iana_name(answer: str) -> ZoneGuess | None:
    """The database's zone of that name, however it is cased or accented."""
    name = _zone_index().get(_zone_key(answer))
    return ZoneGuess(zone=name, certain=True, matched=name) if name else None


def _city(answer: str) -> ZoneGuess | None:
    """The zone of a city in the database or the table; certain unless bigger cities in other zones share the name."""
    key = _compact(answer)
    index = _city_index()
    # "New York City", "Cebu City": the zone database and the table name the city without the word.
    found = index.get(key) or (index.get(key.removesuffix("city")) if key.endswith("city") else None)
    if found is None:
        return None
    zone, name = found
    return ZoneGuess(zone=zone, certain=name not in _SHARED_CITY_NAMES, matched=name)


def _zones_for_language(language_code: str | None) -> tuple[str, ...]:
    """The zones an IETF language tag such as "pt-BR" or "zh-Hant" points to, if any."""
    if not language_code:
        return ()
    language, *subtags = re.split(r"[-_]", language_code.strip().casefold())
    for subtag in subtags:
        if subtag in _ZONES_BY_REGION and (len(subtag) == 2 or subtag.isdigit()):
            return _ZONES_BY_REGION[subtag]
    for subtag in subtags:
        if (language, subtag) in _ZONES_BY_SCRIPT:
            return _ZONES_BY_SCRIPT[language, subtag]
    return _ZONES_BY_LANGUAGE.get(language, ())


@cache
def _zone_names() -> frozenset[str]:
    """Every zone the database knows, less the files that are not places."""
    return frozenset(available_timezones() - _NOT_ZONES)


@cache
def _zone_index() -> dict[str, str]:
    """The database's zone names by their case- and accent-free spelling."""
    return {_zone_key(name): name for name in _zone_names()}


@cache
def _abbreviation_index() -> dict[str, tuple[str, str]]:
    """Abbreviations and spelled-out zone names by compact key: their zone and their usual spelling."""
    return {_compact(name): (zone, name) for name, zone in _ABBREVIATIONS.items()}


@cache
def _city_index() -> dict[str, tuple[str, str]]:
    """Every city recognised, by compact key: its zone and its name as shown back."""
    index: dict[str, tuple[str, str]] = {}
    # Shallower names go first so that a deeper one sharing its city wins: America/Buenos_Aires is an old alias of
    # America/Argentina/Buenos_Aires. All such pairs in the database are aliases, so this only changes the label.
    for name in sorted(_zone_names(), key=lambda name: (name.count("/"), name)):
        region, _, city = name.rpartition("/")
        if region.split("/")[0] in _GEOGRAPHIC_REGIONS and city not in _NOT_CITIES:
            index[_compact(city)] = (name, city.replace("_", " "))
    # The table comes last: its spelling keeps the accents the database drops ("São Paulo").
    for zone, cities in _CITIES_BY_ZONE.items():
        index.update({_compact(city): (zone, city) for city in cities})
    return index


def _trim(text: str) -> str:
    """`text` without surrounding whitespace, punctuation or control characters; a leading sign or dash stays."""
    start, end = 0, len(text)
    while start < end and _is_padding(text[start]):
        start += 1
    while end > start and _is_padding(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_padding(char: str) -> bool:
    """Whether `char` is whitespace or punctuation that may surround an answer."""
    category = unicodedata.category(char)
    # Dashes (Pd) may be minus signs, as in "-0300".
    return char.isspace() or (category[0] in "PCZ" and category != "Pd")


def _fold(text: str) -> str:
    """`text` without accents or case, so that "São Paulo", "SAO PAULO" and "sao paulo" read alike."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNACCENTED))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def _compact(text: str) -> str:
    """Only the letters and digits of `text`, folded: "St. John's", "st johns" and "StJohns" are one key."""
    return "".join(char for char in _fold(text) if char.isalnum())


def _zone_key(text: str) -> str:
    """`text` folded as a zone name: "asia / ho chi minh" and "Asia/Ho_Chi_Minh" are one key."""
    return re.sub(r"[\s_]+", "_", re.sub(r"\s*/\s*", "/", _fold(text)))


def _offset_at(zone: ZoneInfo, now: datetime) -> timedelta:
    """How far ahead of UTC the zone's clock is at `now`."""
    offset = now.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one; the type allows None for other tzinfos
    return offset


def _written_offset(offset: timedelta) -> str:
    """An offset as "+05:30" or "-03:00": an ASCII hyphen, so that a pasted label still parses as an offset."""
    sign = "-" if offset < timedelta(0) else "+"
    hours, seconds = divmod(int(abs(offset).total_seconds()), 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _require_aware(now: datetime) -> None:
    """Refuse a naive time, which would be read on the host's clock."""
    if now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
