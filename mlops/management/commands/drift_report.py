"""Compare a current data file with a reference one: each column's drift and the dataset verdict.

    python manage.py drift_report --reference REF --current CUR [--column-type COL=TYPE ...]
        [--method COL=METHOD ...] [--threshold COL=VALUE ...] [--drift-share 0.5]
        [--format json|html] [--output FILE]

REF and CUR are CSV or Parquet files. JSON goes to stdout (or FILE): ``dataset_drift``, ``drift_share``
and, per column, ``column``, ``type``, ``method``, ``statistic``, ``p_value`` (null for distances),
``threshold`` and ``drifted``. ``--format html`` writes a self-contained report with its charts (to FILE,
or stdout). ``--method`` and ``--threshold`` take ``*`` as the column to set every column's. The exit
status is 0 whether or not there is drift, 2 on bad input with the message on stderr.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlops.drift import DriftInputError, DriftOptions, compare, read_table
from mlops.drift.methods import get_method
from mlops.drift.report import to_html, to_json
from mlops.drift.schema import parse_overrides
from mlops.drift.select import ColumnOptions


def _options(methods: dict[str, str], thresholds: dict[str, str], drift_share: float) -> DriftOptions:
    parsed: dict[str, float] = {}
    for name, value in thresholds.items():
        try:
            parsed[name] = float(value)
        except ValueError:
            raise ValueError(f"--threshold {name}={value}: not a number") from None
    for value in methods.values():
        get_method(value)  # names the choices when the method is unknown
    columns = {
        name: ColumnOptions(methods.get(name), parsed.get(name)) for name in (set(methods) | set(parsed)) - {"*"}
    }
    if not 0 < drift_share <= 1:
        raise ValueError(f"--drift-share {drift_share}: must be in (0, 1]")
    return DriftOptions(columns=columns, method=methods.get("*"), threshold=parsed.get("*"), drift_share=drift_share)


class Command(BaseCommand):
    # A file-to-file computation: no URL or model checks to wait for.
    requires_system_checks: list[str] = []
    help = "Data drift of a current CSV/Parquet file against a reference one, as JSON or a self-contained HTML report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reference", required=True, help="reference data: a CSV or Parquet file")
        parser.add_argument("--current", required=True, help="current data: a CSV or Parquet file")
        parser.add_argument(
            "--column-type",
            action="append",
            default=[],
            metavar="COL=TYPE",
            help="override an inferred type: numerical, categorical, boolean, text, datetime or id",
        )
        parser.add_argument(
            "--method", action="append", default=[], metavar="COL=METHOD", help="a column's method (* for all)"
        )
        parser.add_argument(
            "--threshold", action="append", default=[], metavar="COL=VALUE", help="a column's threshold (* for all)"
        )
        parser.add_argument("--drift-share", type=float, default=0.5, help="share of drifted columns for dataset drift")
        parser.add_argument("--format", choices=["json", "html"], default="json")
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args, **options) -> None:
        try:
            column_types = parse_overrides(options["column_type"])
            drift_options = _options(
                parse_overrides(options["method"]), parse_overrides(options["threshold"]), options["drift_share"]
            )
            reference = read_table(options["reference"])
            current = read_table(options["current"])
            report = compare(reference, current, column_types=column_types, options=drift_options)
            document = to_json(report) if options["format"] == "json" else to_html(report, reference, current)
        except (DriftInputError, ValueError) as error:
            raise CommandError(str(error), returncode=2) from None
        if options["output"]:
            try:
                Path(options["output"]).write_text(document, encoding="utf-8")
            except OSError as error:
                raise CommandError(f"{options['output']}: cannot write: {error.strerror}", returncode=2) from None
        else:
            self.stdout.write(document)
