"""Experts and their time: plain values, no I/O."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time-zone name that this machine's zone database knows."""


class Expert(BaseModel):
    """An outsourcing expert prospects can book."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,23}$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Annotated[str, Field(min_length=1, max_length=100)]
    timezone: TimeZoneName
    specialties: tuple[str, ...] = ()
    """Keys of the services this expert consults on."""
