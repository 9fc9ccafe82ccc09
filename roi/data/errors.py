"""Errors a user sees when the input breaks a rule of the contract.

Every problem names the table, the column, the rule, how many rows break it and up to five
examples. The CLI prints them without a traceback and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roi.redaction import redact

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class DataProblem:
    """One broken rule: ``orders.revenue: non-numeric amount (3 rows), e.g. 'abc', 'n/a'``."""

    table: str
    column: str
    rule: str
    n_rows: int
    examples: tuple[Any, ...] = field(default_factory=tuple)
    found: tuple[str, ...] | None = None   # a missing column: the columns the table has

    def __post_init__(self) -> None:
        # Examples and column names come from the data: no raw e-mail (a customer_id that is an
        # address) or connection secret may be echoed in an error.
        object.__setattr__(self, "column", redact(self.column))
        object.__setattr__(self, "examples", tuple(
            redact(e) if isinstance(e, str) else e for e in self.examples))
        if self.found is not None:
            object.__setattr__(self, "found", tuple(redact(str(c)) for c in self.found))

    def __str__(self) -> str:
        if self.found is not None:  # the columns are not example rows: list them all
            columns = ", ".join(_short(c) for c in self.found) or "none"
            return f"{self.table}.{self.column}: {self.rule}; columns found: {columns}"
        shown = ", ".join(repr(_short(e)) for e in self.examples[:MAX_EXAMPLES])
        example_text = f"; e.g. {shown}" if shown else ""
        rows = "row" if self.n_rows == 1 else "rows"
        return f"{self.table}.{self.column}: {self.rule} ({self.n_rows:,} {rows}{example_text})"


EXAMPLE_CHARS = 60


def _short(example: Any) -> Any:
    """Long examples (a 400-digit number, a pasted paragraph) cut to a readable length."""
    if isinstance(example, str) and len(example) > EXAMPLE_CHARS:
        return example[:EXAMPLE_CHARS] + "..."
    return example


class RoiError(Exception):
    """Base class of errors the CLI turns into a message and a non-zero exit code."""


class DataValidationError(RoiError, ValueError):
    """The input breaks one or more rules; ``problems`` lists each of them."""

    def __init__(self, problems: list[DataProblem]):
        self.problems = list(problems)
        lines = [f"  - {p}" for p in self.problems]
        n = len(self.problems)
        super().__init__(f"invalid input data: {n} problem{'s' if n != 1 else ''}\n"
                         + "\n".join(lines))


class SourceError(RoiError, OSError):
    """A source could not be opened or read (missing folder, unreadable file, bad URL)."""
