"""Progress for long work: a bar in the terminal and in notebooks (tqdm.auto picks the widget)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


class Steps:
    """A bar that advances one named step at a time.

    Examples
    --------
    >>> with progress_steps(["load", "fit"], enabled=False) as steps:
    ...     steps.start("load")
    ...     steps.start("fit")
    """

    def __init__(self, names: list[str], *, enabled: bool = True):
        self._bar = tqdm(total=len(names), desc="roi", unit="step", disable=not enabled,
                         leave=True, bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}")
        self._started = False

    def start(self, name: str) -> None:
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_description_str(f"roi: {name}")

    def close(self) -> None:
        if self._started:
            self._bar.update(1)
        self._bar.set_description_str("roi: done")
        self._bar.close()


@contextmanager
def progress_steps(names: list[str], *, enabled: bool = True) -> Iterator[Steps]:
    steps = Steps(names, enabled=enabled)
    try:
        yield steps
    finally:
        steps.close()
