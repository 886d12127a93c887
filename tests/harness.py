"""Running the real bot against the fake Bot API, in this process or as a `consultbot run` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.application import BotApplication, build_application
from bot.config import BUNDLED_EXAMPLE, load_config
from bot.settings import Settings
from bot.wiring import Services, open_services, utc_now
from tests.fake_telegram import FakeTelegram

CONSULTBOT = str(Path(sys.executable).parent / "consultbot")

UNPACED: dict[str, Any] = {
    "telegram_messages_per_second": 10_000,
    "telegram_group_messages_per_minute": 600_000,
    "telegram_chat_messages_per_second": 10_000,
}
"""Sending limits no test reaches: Telegram's own would make a quick test wait a second for every message; the
etiquette tests (tests/test_telegram_etiquette.py) set their own."""


@dataclass
class RunningBot:
    """The bot's Application and services while it serves the fake Bot API."""

    application: BotApplication
    services: Services


@asynccontextmanager
async def running_bot(
    fake: FakeTelegram,
    database_url: str,
    config: Path = BUNDLED_EXAMPLE,
    *,
    clock: Callable[[], datetime] = utc_now,
    limits: Mapping[str, Any] = UNPACED,
) -> AsyncIterator[RunningBot]:
    """The bot, long polling the fake server in this process, as `consultbot run` would (on a clock tests may set)."""
    settings = Settings(telegram_bot_token=fake.token, telegram_base_url=fake.url, database_url=database_url, **limits)
    async with open_services(settings, load_config(config), clock=clock) as services:
        application = build_application(settings, services)
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0, timeout=1)
            try:
                yield RunningBot(application, services)
            finally:
                await application.updater.stop()
                await application.stop()


class BotProcess:
    """`consultbot run` as a separate process, which a test can stop or kill."""

    def __init__(self, fake: FakeTelegram, database_url: str, **environment: str) -> None:
        self._environment = {
            **{k: v for k, v in os.environ.items() if k not in {"CONSULTBOT_CONFIG", "LOG_LEVEL"}},
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_BASE_URL": fake.url,
            "DATABASE_URL": database_url,
            # A free port: a fixed one collides with any other bot or suite running on the machine.
            "HTTP_PORT": "0",
            **{name.upper(): str(value) for name, value in UNPACED.items()},
            **environment,
        }
        self._process: asyncio.subprocess.Process | None = None
        self.logged = ""
        # A file, not a pipe: nobody reads while the bot runs, and a full pipe would stall it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())

    @property
    def pid(self) -> int:
        """The process id, once started."""
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        """Start serving; returns once the process is up (it may still be connecting)."""
        self._process = await asyncio.create_subprocess_exec(
            CONSULTBOT, "run", env=self._environment, stdout=subprocess.DEVNULL, stderr=self._log
        )

    async def stop(self, signum: int = signal.SIGTERM, grace: float = 20) -> int:
        """Send a signal and wait for the process to exit; its exit status. What it logged is kept in `logged`."""
        assert self._process is not None
        if self._process.returncode is None:
            self._process.send_signal(signum)
        try:
            await asyncio.wait_for(self._process.wait(), grace)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
            raise
        finally:
            self._log.seek(0)
            self.logged = self._log.read().decode(errors="replace")
            self._log.close()
        return self._process.returncode if self._process.returncode is not None else -1
