"""Pieces every benchmark here shares: which databases, percentiles, progress lines."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

DATABASES = ("sqlite", "postgresql")


def database_list(value: str) -> list[str]:
    """The --databases list, checked and without repeats."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(DATABASES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(DATABASES)}, comma-separated")
    return list(dict.fromkeys(names))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else math.nan


def progress(text: str) -> None:
    """Say what is being measured, on stderr, so that stdout carries only the figures."""
    print(text, file=sys.stderr, flush=True)
