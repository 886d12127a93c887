"""`consultbot leads list|show|export`: the staff commands' reports in a terminal or a script."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from bot import staff_view
from bot.texts import plain
from leads.model import LeadId
from leads.pipeline import STATUSES
from leads.report_service import ReportService
from leads.reports import csv_row, csv_text, export_header, json_line

LIST_LIMIT = 50
"""Leads `leads list` shows unless told otherwise."""


def add_parser(commands: Any) -> None:
    """Add `leads` and its subcommands to the `consultbot` parser's subcommands."""
    leads = commands.add_parser("leads", help="list, show or export leads")
    leads_commands = leads.add_subparsers(dest="leads_command", required=True)
    listing = leads_commands.add_parser("list", help="leads, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only leads in this pipeline status")
    listing.add_argument("--limit", type=int, default=LIST_LIMIT, metavar="N", help=f"at most N (default {LIST_LIMIT})")
    show = leads_commands.add_parser("show", help="one lead: answers, outcome and the history of events")
    show.add_argument("lead_id", type=int, metavar="ID")
    export = leads_commands.add_parser("export", help="every lead, as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", type=Path, metavar="FILE", help="write here instead of standard output")


async def run(arguments: argparse.Namespace, reports: ReportService, out: TextIO = sys.stdout) -> int:
    """Run a `leads` subcommand, writing to `out`; the exit status."""
    match arguments.leads_command:
        case "list":
            records, more = await reports.page(arguments.status, size=max(arguments.limit, 1))
            view = staff_view.leads_page(
                records, status=arguments.status, before=None, more=False, zone=reports.sales_zone
            )
            print(plain(view.html), file=out)
            if more:
                print(f"(older leads not shown: --limit {arguments.limit * 2} shows more)", file=out)
            return 0
        case "show":
            history = await reports.history(LeadId(arguments.lead_id))
            if history is None:
                print(f"consultbot: no lead {arguments.lead_id}", file=sys.stderr)
                return 1
            parts = staff_view.lead_record(history, reports.questionnaire, zone=reports.sales_zone)
            print(plain("\n".join(parts)), file=out)
            return 0
        case "export":
            if arguments.output is None:
                await export(reports, arguments.format, out)
                return 0
            with arguments.output.open("w", encoding="utf-8", newline="") as file:
                await export(reports, arguments.format, file)
            return 0
    raise AssertionError(f"unhandled leads command {arguments.leads_command}")


async def export(reports: ReportService, form: str, out: TextIO) -> None:
    """Every lead to `out`, oldest first, batch by batch: CSV with a header row, or a JSON array of objects."""
    questionnaire = reports.questionnaire
    if form == "csv":
        out.write(csv_text([export_header(questionnaire)]))
        async for batch in reports.everything():
            out.write(csv_text(csv_row(record, questionnaire) for record in batch))
        return
    separator = "\n"
    out.write("[")
    async for batch in reports.everything():
        for record in batch:
            out.write(separator + json_line(record, questionnaire))
            separator = ",\n"
    out.write("\n]\n")
