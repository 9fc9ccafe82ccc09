"""Command line: ``roi validate SOURCE``, ``roi run SOURCE --out DIR``, ``roi report
RESULTS``, ``roi demo``.

SOURCE is a folder of table files or a SQLAlchemy URL. Invalid data exits with code 2 and a
message naming table, column, rule, row count and examples; no traceback reaches the user
(``--debug`` shows one for internal errors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from roi.config import load_config
from roi.data.errors import RoiError
from roi.data.source import mask_url

EXIT_INVALID = 2
EXIT_INTERNAL = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roi", description=(
        "What does a brand's community earn compared with its paid ads?"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a source against the data contract")
    validate.add_argument("source", help="folder of table files, or a SQLAlchemy URL")
    validate.add_argument("--config", help="TOML config file")
    run = commands.add_parser("run", help="run every model and write results")
    run.add_argument("source", help="folder of table files, or a SQLAlchemy URL")
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--config", help="TOML config file")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--no-pdf", action="store_true", help="skip report.pdf (needs Chromium)")
    report = commands.add_parser("report", help="write the reports again from a results.json")
    report.add_argument("results", help="results.json, or the folder holding it")
    report.add_argument("--out", help="output folder (default: beside results.json)")
    report.add_argument("--no-pdf", action="store_true", help="skip report.pdf (needs Chromium)")
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
    dataset = load_dataset(open_source(args.source, tables=config.source_tables or None),
                           config.data)
    print(json.dumps(dataset.report, indent=2))
    print(f"OK: {mask_url(args.source)} satisfies the data contract.")
    return 0


def _report(args: argparse.Namespace) -> int:
    from roi.reports import write_reports

    path = Path(args.results)
    path = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RoiError(f"cannot read {path}: {exc}") from None
    for name, written in write_reports(results, args.out or path.parent,
                                       pdf=not args.no_pdf).items():
        print(f"{name}: {written}")
    return 0


def _run(source: str | Path, *, out: str, config_path: str | None, progress: bool,
         pdf: bool = True) -> int:
    from roi.run import run_models

    outputs = run_models(source, out=out, config=load_config(config_path), progress=progress,
                         pdf=pdf)
    results = outputs.results
    data = results["data"]
    print(f"Data: {data['customers']:,} customers, {data['orders']:,} orders, "
          f"{data['members']:,} member rows, {data['start']} to {data['end']}.")
    for name, estimate in results["community_revenue_lift"]["estimates"].items():
        print(f"Revenue lift [{name}]: {estimate['estimate']:.2f} per member-month "
              f"({estimate['interval']} {estimate['low']:.2f} to {estimate['high']:.2f})")
    for name, estimate in results["community_retention_lift"]["estimates"].items():
        print(f"Churn hazard ratio, members vs non-members [{name}]: "
              f"{estimate['hazard_ratio']:.2f} ({estimate['interval']} {estimate['low']:.2f} "
              f"to {estimate['high']:.2f})")
    print_bottom_line(results)
    print(f"Outputs written to {Path(out).resolve()}:")
    for path in sorted(Path(out).iterdir()):
        if not path.name.startswith("."):
            print(f"  {path}")
    print(f"Time and memory by step:\n{outputs.steps.table()}", file=sys.stderr)
    return 0


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
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "run":
            return _run(args.source, out=args.out, config_path=args.config,
                        progress=not args.no_progress, pdf=not args.no_pdf)
        if args.command == "report":
            return _report(args)
        return _run(sample_folder(), out=args.out, config_path=None,
                    progress=not args.no_progress)
    except RoiError as exc:
        print(f"error: {mask_url(str(exc))}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted; earlier outputs are left as they were", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        if args.debug:
            raise
        print(f"internal error: {mask_url(f'{type(exc).__name__}: {exc}')}\n"
              "Run again with --debug for details and report it.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
