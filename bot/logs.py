"""Log lines: plain text for a terminal, or one JSON object a line (LOG_FORMAT=json) with the update's ids."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

UPDATE_ID: ContextVar[int | None] = ContextVar("update_id", default=None)
CHAT_ID: ContextVar[int | None] = ContextVar("chat_id", default=None)
LEAD_ID: ContextVar[int | None] = ContextVar("lead_id", default=None)
"""Set around the handling of one update (each is handled in a task of its own), read by every log line."""

_CONTEXT = (("update_id", UPDATE_ID), ("chat_id", CHAT_ID), ("lead_id", LEAD_ID))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, and update_id, chat_id, lead_id when known."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, variable in _CONTEXT:
            # A value passed with extra={...} wins over the one of the update in hand.
            value = getattr(record, key, None)
            if value is None:
                value = variable.get()
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(*, level: str, style: Literal["text", "json"]) -> None:
    """Send the process's log lines to stderr at `level`, in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
