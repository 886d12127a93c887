"""The dependency rule: the core knows nothing of Telegram, the database or the clock's source."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_MODULES = [
    "leads.model",
    "leads.answers",
    "leads.flow",
    "leads.scoring",
    "leads.records",
    "leads.pipeline",
    "leads.reports",
    "leads.followups",
    "scheduling.model",
    "scheduling.intervals",
    "scheduling.slots",
    "scheduling.records",
    "scheduling.ics",
    "scheduling.invites",
    "scheduling.zones",
]
CORE_PACKAGES = ["leads", "scheduling"]


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(output))


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_load_neither_telegram_nor_a_database_nor_an_http_stack(module: str) -> None:
    """The flow, scoring and models run anywhere: no Telegram, SQLAlchemy, SQLModel or aiohttp inside."""
    loaded = _modules_loaded_by(module)

    forbidden = {"telegram", "sqlalchemy", "sqlmodel", "aiohttp", "asyncpg", "aiosqlite", "bot", "httpx"}
    assert forbidden.isdisjoint({name.split(".")[0] for name in loaded})


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_packages_never_import_telegram_or_the_bot(package: str) -> None:
    """Only bot/ knows Telegram; leads/ and scheduling/ serve any front end."""
    modules = [f"{package}.{name}" for name in ("model", "service", "repository", "tables", "memory", "ports")]
    importable = [m for m in modules if _importable(m)]

    loaded = _modules_loaded_by(", ".join(importable)) if importable else set()

    assert importable
    assert not {name for name in loaded if name.split(".")[0] in {"telegram", "bot"}}


def test_leads_and_scheduling_do_not_import_each_other() -> None:
    """The bot orchestrates journeys across the two; neither reaches into the other."""
    loaded = _modules_loaded_by("leads.service, leads.repository")

    assert not {name for name in loaded if name.startswith("scheduling")}


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
