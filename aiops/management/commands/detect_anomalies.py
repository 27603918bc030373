"""Score NAB-format series files with a streaming anomaly detector.

    python manage.py detect_anomalies --input-dir DIR --output-dir OUT [--detector NAME]
    python manage.py detect_anomalies --input FILE --output FILE [--detector NAME]

Every CSV under DIR (header `timestamp,value`, other columns ignored) is written to the same relative path
under OUT as `timestamp,value,anomaly_score`, one row per input row, in the input's order. Scores come from
the same detector code the live path runs (`aiops.anomaly`), fed from a fresh state, so a run is
deterministic. Every input is read and checked before anything is written: a missing column, a value or
timestamp that does not parse, or a missing directory stops the command with the file and line named.
"""

from __future__ import annotations

import csv
import datetime
import math
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from aiops import anomaly

COLUMNS = ("timestamp", "value")


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; elsewhere (a CI log) a line per 10% step."""

    def __init__(self, out: OutputWrapper, total: int, width: int = 30) -> None:
        self.out = out
        self.total = max(total, 1)
        self.width = width
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.started = time.monotonic()
        self.last_step: int | None = None
        self.drawn = False

    def update(self, done: int, points: int, name: str) -> None:
        fraction = min(done / self.total, 1.0)
        filled = int(self.width * fraction)
        elapsed = time.monotonic() - self.started
        text = (
            f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total} files {fraction:4.0%} "
            f"{points} points {elapsed:.1f}s  {name}"
        )
        if self.tty:
            self.out.write(f"\r\x1b[K{text}", ending="")
            self.out.flush()
            self.drawn = True
        else:
            step = int(fraction * 10)
            if step != self.last_step:
                self.out.write(text)
                self.out.flush()
                self.last_step = step

    def close(self) -> None:
        if self.drawn:
            self.out.write("")
            self.out.flush()


class Series:
    """One parsed input file: its raw rows (written back as they were) and the numbers the detector reads."""

    def __init__(self, source: Path, target: Path, rows: list[tuple[str, str]], stamps: np.ndarray,
                 values: np.ndarray) -> None:  # fmt: skip
        self.source = source
        self.target = target
        self.rows = rows
        self.stamps = stamps
        self.values = values


def parse_timestamp(text: str) -> int:
    """Unix seconds of an ISO 8601 time (naive times are UTC) or of a number of seconds since the epoch."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return int(number)
        raise ValueError(text)
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def read_series(source: Path, target: Path, label: str) -> Series:
    try:
        handle = source.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"{label}: cannot read ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise CommandError(f"{label}: line 1: empty file, expected a header 'timestamp,value'") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CommandError(f"{label}: line 1: not a CSV file ({exc})") from None
        names = [name.strip().lower() for name in header]
        missing = [column for column in COLUMNS if column not in names]
        if missing:
            raise CommandError(
                f"{label}: line 1: no {' or '.join(repr(c) for c in missing)} column "
                f"(header: {','.join(header)}; expected timestamp,value)"
            )
        ti, vi = names.index("timestamp"), names.index("value")
        rows, stamps, values = [], [], []
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) <= max(ti, vi):
                    raise CommandError(f"{label}: line {line}: {len(row)} columns, expected at least {len(header)}")
                stamp_text, value_text = row[ti], row[vi]
                try:
                    stamps.append(parse_timestamp(stamp_text))
                except ValueError:
                    raise CommandError(f"{label}: line {line}: timestamp {stamp_text!r} is not a time") from None
                try:
                    value = float(value_text)
                except ValueError:
                    raise CommandError(f"{label}: line {line}: value {value_text!r} is not a number") from None
                if not math.isfinite(value):
                    raise CommandError(f"{label}: line {line}: value {value_text!r} is not a finite number")
                values.append(value)
                rows.append((stamp_text, value_text))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise CommandError(f"{label}: line {reader.line_num}: not valid CSV ({exc})") from None
    return Series(source, target, rows, np.array(stamps, dtype=np.int64), np.array(values, dtype=float))


class Command(BaseCommand):
    help = "Write anomaly scores (timestamp,value,anomaly_score) for NAB-format CSV series."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--input-dir", help="Score every *.csv under this directory (recursively).")
        parser.add_argument("--output-dir", help="Write the scored files here, at the same relative paths.")
        parser.add_argument("--input", help="Score this one CSV file.")
        parser.add_argument("--output", help="Where to write the scored --input file.")
        parser.add_argument(
            "--detector",
            default=anomaly.DEFAULT_DETECTOR,
            help=f"Detector name: {', '.join(anomaly.detector_names())} (default {anomaly.DEFAULT_DETECTOR}).",
        )

    def handle(self, *args, **options) -> None:
        try:
            detector = anomaly.get_detector(options["detector"])
        except KeyError as exc:
            raise CommandError(f"--detector: {exc.args[0]}") from None
        series = [read_series(source, target, label) for source, target, label in self._files(options)]
        progress = ProgressBar(self.stderr, len(series))
        points = 0
        try:
            for done, item in enumerate(series, start=1):
                scores = detector.catch_up(detector.initial_state(), item.stamps, item.values)
                self._write(item, scores)
                points += len(item.values)
                progress.update(done, points, str(item.source.name))
        finally:
            progress.close()
        self.stdout.write(f"Scored {points} points in {len(series)} files with detector {detector.name}.")

    def _files(self, options: dict) -> list[tuple[Path, Path, str]]:
        one = options["input"] or options["output"]
        many = options["input_dir"] or options["output_dir"]
        if one and many:
            raise CommandError("Give either --input-dir/--output-dir or --input/--output, not both.")
        if one:
            if not options["input"] or not options["output"]:
                raise CommandError("--input and --output go together.")
            source = Path(options["input"])
            if not source.is_file():
                raise CommandError(f"--input: no file {source}")
            return [(source, Path(options["output"]), str(source))]
        if not options["input_dir"] or not options["output_dir"]:
            raise CommandError("Give --input-dir and --output-dir (or --input and --output).")
        root = Path(options["input_dir"])
        if not root.is_dir():
            raise CommandError(f"--input-dir: no directory {root}")
        out = Path(options["output_dir"])
        if out.resolve() == root.resolve():
            raise CommandError("--output-dir must differ from --input-dir (the inputs would be overwritten).")
        sources = sorted(path for path in root.rglob("*.csv") if path.is_file())
        if not sources:
            raise CommandError(f"--input-dir: no .csv files under {root}")
        return [(path, out / path.relative_to(root), str(path)) for path in sources]

    @staticmethod
    def _write(item: Series, scores: np.ndarray) -> None:
        try:
            item.target.parent.mkdir(parents=True, exist_ok=True)
            with item.target.open("w", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(["timestamp", "value", "anomaly_score"])
                for (stamp, value), score in zip(item.rows, scores.tolist(), strict=True):
                    writer.writerow([stamp, value, repr(score)])
        except OSError as exc:
            raise CommandError(f"{item.target}: cannot write ({exc.strerror})") from None
