"""Command line: ``roi validate SOURCE``, ``roi run SOURCE --out DIR``, ``roi report
RESULTS``, ``roi demo``.

SOURCE is a folder of table files or a SQLAlchemy URL. Invalid data exits with code 2 and a
message naming table, column, rule, row count and examples; no traceback reaches the user
(``--debug`` shows one for internal errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from roi.config import load_config
from roi.data.errors import RoiError
from roi.redaction import redact, redact_document

EXIT_INVALID = 2
ENGINES = ("duckdb", "spark")   # connectors.ENGINES (not imported here: the CLI starts fast)
ENGINE_HELP = ("where a folder's files are read and aggregated: the embedded DuckDB (default) "
               "or a local Apache Spark session (needs the 'spark' extra and Java 17)")
EXIT_INTERNAL = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roi", description=(
        "What does a brand's community earn compared with its paid ads?"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a source against the data contract")
    validate.add_argument("source", help="folder of table files, or a SQLAlchemy URL")
    validate.add_argument("--config", help="TOML config file")
    validate.add_argument("--engine", choices=ENGINES, default="duckdb", help=ENGINE_HELP)
    run = commands.add_parser("run", help="run every model and write results")
    run.add_argument("source", help="folder of table files, or a SQLAlchemy URL")
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--config", help="TOML config file")
    run.add_argument("--engine", choices=ENGINES, default="duckdb", help=ENGINE_HELP)
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--no-pdf", action="store_true", help="skip report.pdf (needs Chromium)")
    run.add_argument("--paper", choices=["A4", "Letter"], help="report.pdf page size (default "
                     "$ROI_PAPER, else A4)")
    report = commands.add_parser("report", help="write the reports again from a results.json")
    report.add_argument("results", help="results.json, or the folder holding it")
    report.add_argument("--out", help="output folder (default: beside results.json)")
    report.add_argument("--no-pdf", action="store_true", help="skip report.pdf (needs Chromium)")
    report.add_argument("--paper", choices=["A4", "Letter"], help="report.pdf page size "
                        "(default $ROI_PAPER, else A4)")
    demo = commands.add_parser("demo", help="run on the bundled sample data")
    demo.add_argument("--out", default="out", help="output folder (default: out)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def sample_folder() -> Path:
    """The bundled sample: ./data/sample, else the one beside the installed source tree."""
    for candidate in (Path("data/sample"), Path(__file__).resolve().parents[1] / "data/sample"):
        if (candidate / "customers.csv").is_file():
            return candidate
    raise RoiError("bundled sample data not found (expected data/sample/customers.csv); "
                   "generate one with: python -m roi.simulate --out data/sample")


def _validate(args: argparse.Namespace) -> int:
    from connectors import open_source
    from roi.data import load_dataset

    config = load_config(args.config)
    dataset = load_dataset(open_source(args.source, tables=config.source_tables or None,
                                       columns=config.columns or None, engine=args.engine),
                           config.data)
    print(json.dumps(redact_document(dataset.report), indent=2))
    print(f"OK: {redact(args.source)} satisfies the data contract.")
    return 0


def _report(args: argparse.Namespace) -> int:
    from roi.outputs import staged_outputs
    from roi.run import _not_rewritten, _write_reports

    path = Path(args.results)
    path = path / "results.json" if path.is_dir() else path
    results = read_results(path)
    out = Path(args.out) if args.out else path.parent
    with staged_outputs(out) as staged:
        print(f"roi report: writing the reports into {out}", file=sys.stderr)
        _write_reports(results, staged.folder, pdf=not args.no_pdf)
        written = staged.commit()
    for written_path in written:
        print(f"{written_path.suffix.lstrip('.')}: {written_path}")
    for note in _not_rewritten(out, [path, *written]):
        print(f"note: {note}")
    return 0


def read_results(path: Path) -> dict:
    """``results.json`` as a dict; a clear error naming the file (and where JSON broke)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RoiError(f"cannot read {path}: {reason}") from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoiError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                       f"{exc.colno}") from None
    if not isinstance(results, dict) or "schema_version" not in results:
        raise RoiError(f"{path} is not a results.json written by roi run (no schema_version)")
    return results


def _run(source: str | Path, *, out: str, config_path: str | None, progress: bool,
         pdf: bool = True, engine: str = "duckdb") -> int:
    from roi.run import run_models

    outputs = run_models(source, out=out, config=load_config(config_path), progress=progress,
                         pdf=pdf, engine=engine)
    print(run_summary(outputs.results))
    print_bottom_line(outputs.results)
    print(f"Outputs written to {Path(out).resolve()}:")
    for path in outputs.written:
        print(f"  {path}")
    for note in outputs.notes:
        print(f"note: {note}")
    print(f"Time and memory by step:\n{outputs.steps.table()}", file=sys.stderr)
    return 0


def _amount(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _estimate_line(label: str, estimate: dict, *, key: str, unit: str, reason: str | None) -> str:
    """One estimate; a refused one (null numbers) shows why instead of numbers."""
    if estimate.get(key) is None:
        return f"{label}: not estimated ({reason or 'refused; see diagnostics'})"
    return (f"{label}: {_amount(estimate[key])}{unit} ({estimate.get('interval', '')} "
            f"{_amount(estimate.get('low'))} to {_amount(estimate.get('high'))})")


def _reason(results: dict, model: str) -> str | None:
    """Why a model has no number: its refusal (``checks.refused``, the bare reason), else its
    last warning (which may already say "<method>: not estimated: ...")."""
    diagnostics = results.get("diagnostics", {}).get(model, {})
    refused = (diagnostics.get("checks") or {}).get("refused")
    if isinstance(refused, str) and refused:
        return refused
    warnings = diagnostics.get("warnings") or []
    return warnings[-1] if warnings else None


def run_summary(results: dict) -> str:
    """The terminal summary of a run: data, then every estimate or why it was refused."""
    data = results["data"]
    lines = [f"Data: {data['customers']:,} customers, {data['orders']:,} orders, "
             f"{data['members']:,} member rows, {data['start']} to {data['end']}."]
    for name, estimate in results["community_revenue_lift"]["estimates"].items():
        lines.append(_estimate_line(f"Revenue lift [{name}]", estimate, key="estimate",
                                    unit=" per member-month",
                                    reason=_reason(results, f"revenue_{name}")))
    for name, estimate in results["community_retention_lift"]["estimates"].items():
        lines.append(_estimate_line(f"Churn hazard ratio, members vs non-members [{name}]",
                                    estimate, key="hazard_ratio", unit="",
                                    reason=_reason(results, f"retention_{name}")))
    lines += _sensitivity_lines(results)
    lines += [f"note: {note}" for note in
              results.get("diagnostics", {}).get("run", {}).get("warnings", [])]
    return "\n".join(lines)


def _sensitivity_lines(results: dict) -> list[str]:
    """How fragile each headline is (issue 17): the sensitivity blocks' sentences."""
    lines = []
    for section in ("community_revenue_lift", "community_retention_lift"):
        block = results.get(section, {}).get("sensitivity") or {}
        summaries = [block.get("summary"), (block.get("robustness_value") or {}).get("summary")]
        lines += [f"Sensitivity: {text}" for text in summaries if text]
    return lines


def print_bottom_line(results: dict) -> None:
    """The bottom line per paid channel and community (revenue and profit per dollar, verdict,
    caveats on the same line), after the estimates; a malformed comparison never fails a run
    whose results are already written."""
    from roi.bottom_line import bottom_line_text

    try:
        print(bottom_line_text(results))
    except (KeyError, TypeError, ValueError) as exc:
        print(f"Bottom line not shown ({type(exc).__name__}: {exc}); see report.html.")


def main(argv: list[str] | None = None) -> int:
    from roi.interrupts import Interrupted, handling_interrupts, raise_if_interrupted

    args = _parser().parse_args(argv)
    if getattr(args, "paper", None):   # read by roi.reports.pdf wherever the PDF is printed
        os.environ["ROI_PAPER"] = args.paper
    try:
        with handling_interrupts():
            try:
                return _command(args)
            except Exception:
                # A library may turn the signal into its own error (DuckDB's "Interrupted!"):
                # the run was interrupted all the same.
                raise_if_interrupted()
                raise
    except RoiError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt as exc:   # SIGINT or SIGTERM (Interrupted), or a bare Ctrl-C
        print("interrupted; earlier outputs are left as they were", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Interrupted) else 130
    except Exception as exc:  # the last line of defence: no traceback for users
        if args.debug:   # the traceback, with the same masking (driver errors echo the URL)
            print(redact(traceback.format_exc()), file=sys.stderr)
            return EXIT_INTERNAL
        print(f"internal error: {redact(f'{type(exc).__name__}: {exc}')}\n"
              "Run again with --debug for details and report it.", file=sys.stderr)
        return EXIT_INTERNAL


def _command(args: argparse.Namespace) -> int:
    if args.command == "validate":
        return _validate(args)
    if args.command == "run":
        return _run(args.source, out=args.out, config_path=args.config,
                    progress=not args.no_progress, pdf=not args.no_pdf, engine=args.engine)
    if args.command == "report":
        return _report(args)
    return _run(sample_folder(), out=args.out, config_path=None,
                progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
