"""Progress for long work: a bar in the terminal and in notebooks (tqdm.auto picks the widget)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


class Steps:
    """A bar that advances one named step at a time, and what each step cost.

    ``seconds`` (wall time per step) and ``peak_gib`` (the process's peak resident memory when
    the step ended) say where a large run spends its time and memory.

    Examples
    --------
    >>> with progress_steps(["load", "fit"], enabled=False) as steps:
    ...     steps.start("load")
    ...     steps.start("fit")
    >>> list(steps.seconds)
    ['load', 'fit']
    """

    def __init__(self, names: list[str], *, enabled: bool = True):
        self._bar = tqdm(total=len(names), desc="roi", unit="step", disable=not enabled,
                         leave=True, bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}")
        self._current: str | None = None
        self._clock = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.peak_gib: dict[str, float] = {}

    def start(self, name: str) -> None:
        self._finish()
        self._current = name
        self._bar.set_description_str(f"roi: {name}")

    def detail(self, text: str) -> None:
        """Say what the current step is doing (``roi: paid media (sampling)``)."""
        if self._current is not None:
            self._bar.set_description_str(f"roi: {self._current} ({text})")

    def _finish(self) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self._bar.update(1)
            self.seconds[self._current] = round(now - self._clock, 2)
            self.peak_gib[self._current] = peak_memory_gib()
        self._clock = now

    def close(self) -> None:
        self._finish()
        self._current = None
        self._bar.set_description_str("roi: done")
        self._bar.close()

    def table(self) -> str:
        """One line per step: seconds and peak memory so far."""
        return "\n".join(f"  {name}: {seconds:.1f} s, peak memory {self.peak_gib[name]:.2f} GiB"
                         for name, seconds in self.seconds.items())


def peak_memory_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024**3 if sys.platform == "darwin" else 1024**2), 2)


_ACTIVE: list[Steps] = []   # the bars of progress_steps now open, innermost last


def progress_detail(text: str) -> None:
    """Show ``text`` beside the current step of the innermost open bar (nothing when none is)."""
    if _ACTIVE:
        _ACTIVE[-1].detail(text)


@contextmanager
def progress_steps(names: list[str], *, enabled: bool = True) -> Iterator[Steps]:
    steps = Steps(names, enabled=enabled)
    _ACTIVE.append(steps)
    try:
        yield steps
    finally:
        _ACTIVE.remove(steps)
        steps.close()
