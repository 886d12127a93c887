"""The business configuration: one TOML file, checked completely at start-up."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from leads.model import Question, Questionnaire, Scoring, Service
from scheduling.model import Expert, SlotRules, TimeZoneName

BUNDLED_EXAMPLE = Path(__file__).parent / "examples" / "consultbot.toml"

Location = tuple[str | int, ...]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key and the problem."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            key, problem = self.problems[0]
            return f"configuration error in {self.source}: {key}: {problem}"
        lines = "\n".join(f"  {key}: {problem}" for key, problem in self.problems)
        return f"configuration errors in {self.source}:\n{lines}"


class Section(BaseModel):
    """A configuration section: immutable, and a key it does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Company(Section):
    """Who the bot speaks for."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    timezone: TimeZoneName
    website: str | None = None
    privacy_contact: Annotated[str, Field(min_length=1)]
    """Where prospects write about their data."""
    markets: tuple[TimeZoneName, ...] = ()
    """Time zones of the company's markets, offered first when a prospect picks theirs."""
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    """The organizer of invites for experts without an e-mail address of their own."""


class StaffMember(Section):
    """A salesperson allowed to work leads."""

    user_id: StrictInt
    name: Annotated[str, Field(min_length=1, max_length=100)]
    services: tuple[str, ...] = ()
    """Service keys or service lines this person takes when leads are routed by service."""


class Sales(Section):
    """Where leads go, who works them, and how they are shared out."""

    chat_id: StrictInt | None = None
    """The Telegram group or channel that receives lead cards."""
    timezone: TimeZoneName
    """Consultations on lead cards are shown in this zone."""
    staff: tuple[StaffMember, ...] = ()
    routing: Literal["none", "round_robin", "by_service"] = "none"
    """Who a new qualified lead is routed to: nobody (first to claim it), each staff member in turn, or the
    staff member whose services match the lead's (in turn among them; in turn among all when none match)."""
    lost_reasons: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=40)], ...], Field(min_length=1)] = (
        "Price",
        "Chose another provider",
        "No budget",
        "No response",
        "Not a fit",
    )
    """The reasons offered when a lead is marked lost."""


class Crm(Section):
    """Where lead and booking events are POSTed, signed, for the firm's CRM."""

    webhook_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """No URL: no webhooks."""
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "CRM_WEBHOOK_SECRET"
    """The environment variable holding the signing secret (kept out of this file)."""
    max_attempts: Annotated[StrictInt, Field(gt=0, le=100)] = 12
    """After this many failed deliveries an event is parked as a dead letter (`consultbot outbox`)."""
    timeout_seconds: Annotated[StrictInt, Field(gt=0, le=120)] = 10


class Privacy(Section):
    """How long personal data is kept."""

    retention_days: Annotated[StrictInt, Field(ge=0, le=3650)] = 365
    """A prospect none of whose leads changed for this long is anonymised; 0 keeps data until /forget."""


class FollowUps(Section):
    """One nudge of each kind per lead, at most; /stop turns them all off. 0 hours turns a kind off."""

    unfinished_hours: Annotated[StrictInt, Field(ge=0, le=24 * 30)] = 24
    """A prospect who stopped in the middle of the questionnaire is nudged this long after their last answer."""
    unbooked_hours: Annotated[StrictInt, Field(ge=0, le=24 * 30)] = 2
    """A qualified prospect who has not booked is reminded this long after qualifying."""
    nurture_hours: Annotated[StrictInt, Field(ge=0, le=24 * 30)] = 24
    """A nurtured prospect gets the resources message this long after finishing."""
    resources: Annotated[str, Field(min_length=1, max_length=2000)] = (
        "As promised, some reading for when you plan your outsourcing: our guides and case studies are on our "
        "website. Whenever you are ready to talk to an expert, send /restart."
    )


class Messages(Section):
    """The firm's own words at the start and the end of the conversation."""

    welcome: Annotated[str, Field(min_length=1, max_length=2000)]
    qualified: Annotated[str, Field(min_length=1, max_length=2000)]
    nurture: Annotated[str, Field(min_length=1, max_length=2000)]


class Calendars(Section):
    """How experts' calendars are read, and what a calendar that cannot be read means."""

    sync_minutes: Annotated[StrictInt, Field(gt=0, le=24 * 60)] = 5
    """Every feed is read this often while the bot runs."""
    refresh_after_minutes: Annotated[StrictInt, Field(gt=0, le=24 * 60)] = 15
    """Before slots are offered, an expert's feeds not read for this long are read again."""
    stale_after_hours: Annotated[StrictInt, Field(gt=0, le=24 * 30)] = 24
    """A feed not read successfully for this long is stale."""
    when_stale: Literal["block", "warn"] = "block"
    """block: an expert with a stale feed cannot be booked; warn: offer slots from the last good data."""
    connect_timeout_seconds: Annotated[StrictInt, Field(gt=0, le=300)] = 10
    timeout_seconds: Annotated[StrictInt, Field(gt=0, le=600)] = 30
    max_feed_mb: Annotated[StrictInt, Field(gt=0, le=1024)] = 20


class Booking(Section):
    """How qualified prospects book consultations, and how they are reminded."""

    assignment: Literal["fewest_upcoming", "first_available"] = "fewest_upcoming"
    """fewest_upcoming: the eligible expert with the fewest consultations ahead; first_available: any of them."""
    days_per_page: Annotated[StrictInt, Field(gt=0, le=10)] = 5
    reminder_minutes: tuple[Annotated[StrictInt, Field(gt=0, le=14 * 24 * 60)], ...] = (24 * 60, 60)
    """Reminders go this many minutes before a consultation."""
    change_notice_hours: Annotated[StrictInt, Field(ge=0, le=24 * 14)] = 12
    """Prospects can move or cancel a consultation until this many hours before it."""
    contact: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Whom a prospect asks to change a consultation after that (an e-mail address or phone number)."""
    services_question: str = "services"
    name_question: str = "name"
    email_question: str = "email"
    company_question: str = "company"
    """The questions whose answers a booking takes: the services wanted, who and which company is coming."""


class BusinessConfig(Section):
    """Everything a consultancy configures about its bot."""

    company: Company
    services: Annotated[tuple[Service, ...], Field(min_length=1)]
    questions: Annotated[tuple[Question, ...], Field(min_length=1)]
    scoring: Scoring
    experts: tuple[Expert, ...] = ()
    sales: Sales
    messages: Messages
    slots: SlotRules = SlotRules()
    calendars: Calendars = Calendars()
    booking: Booking = Booking()
    crm: Crm = Crm()
    followups: FollowUps = FollowUps()
    privacy: Privacy = Privacy()

    def questionnaire(self) -> Questionnaire:
        """The questions with catalogue options filled in, and their scoring."""
        options = tuple({"key": s.key, "label": s.label} for s in self.services)
        questions = tuple(
            Question.model_validate({**q.model_dump(exclude={"options_from"}), "options": options})
            if q.options_from == "services"
            else q
            for q in self.questions
        )
        return Questionnaire(questions=questions, scoring=self.scoring)


def load_config(path: Path) -> BusinessConfig:
    """Read and check the configuration file; raise ConfigError naming every problem."""
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, [("(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(source, [("(file)", f"cannot be read: {error}")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, [("(syntax)", f"not valid TOML: {error}")]) from None
    _resolve_calendar_paths(raw, relative_to=path.parent)
    try:
        config = BusinessConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, [_describe(e["loc"], e["type"], e["msg"], raw) for e in error.errors()]) from None
    problems = [(_key(location, raw), problem) for location, problem in _reference_problems(config)]
    if problems:
        raise ConfigError(source, problems)
    return config


def _reference_problems(config: BusinessConfig) -> Iterable[tuple[Location, str]]:
    services = {service.key for service in config.services}
    if len(services) != len(config.services):
        yield ("services",), "service keys must be unique"
    yield from config.questionnaire().reference_problems()
    for index, expert in enumerate(config.experts):
        for unknown in sorted(set(expert.specialties) - services):
            yield ("experts", index, "specialties"), f"{unknown!r} is not a service key"
        for number, location in enumerate(expert.calendars):
            if "://" not in location and not Path(location).is_file():
                yield ("experts", index, "calendars", number), f"no such file: {location}"
    experts = [expert.key for expert in config.experts]
    if len(experts) != len(set(experts)):
        yield ("experts",), "expert keys must be unique"
    lines = {service.line for service in config.services}
    for index, member in enumerate(config.sales.staff):
        for unknown in sorted(set(member.services) - services - lines):
            yield ("sales", "staff", index, "services"), f"{unknown!r} is neither a service key nor a service line"
    staff_ids = [member.user_id for member in config.sales.staff]
    if len(staff_ids) != len(set(staff_ids)):
        yield ("sales", "staff"), "staff user_id values must be unique"
    if config.sales.routing != "none" and not config.sales.staff:
        yield ("sales", "routing"), f"{config.sales.routing!r} routing needs sales.staff"
    questions = {question.key for question in config.questions}
    for setting in ("services_question", "name_question", "email_question", "company_question"):
        if getattr(config.booking, setting) not in questions:
            yield ("booking", setting), f"{getattr(config.booking, setting)!r} is not a question key"


def _resolve_calendar_paths(raw: Any, *, relative_to: Path) -> None:
    """Make calendar file paths relative to the configuration file absolute, so they work from any directory."""
    experts = raw.get("experts") if isinstance(raw, dict) else None
    for expert in experts if isinstance(experts, list) else ():
        calendars = expert.get("calendars") if isinstance(expert, dict) else None
        if isinstance(calendars, list):
            expert["calendars"] = [
                str(relative_to / c) if isinstance(c, str) and c and "://" not in c and not Path(c).is_absolute() else c
                for c in calendars
            ]


def _describe(location: Location, kind: str, message: str, raw: Any) -> tuple[str, str]:
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    # Pydantic reports failures inside a union per member type; the member name is noise here.
    location = tuple(part for part in location if not (isinstance(part, str) and "[" in part))
    return _key(location, raw), message


def _key(location: Location, raw: Any) -> str:
    """A location as a reader finds it in the file: questions[2] ("timeline").ask_when.question."""
    text = ""
    node = raw
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("key"), str):
                text += f' ("{node["key"]}")'
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"
