"""Ctrl-C (SIGINT) and SIGTERM stop a run, whatever library is running when they arrive.

nutpie catches ``KeyboardInterrupt`` while it samples and returns the draws so far, so a plain
Ctrl-C used to let the run carry on with an unconverged model and replace the outputs. Inside
:func:`handling_interrupts` a signal is *recorded* before it is raised as :class:`Interrupted`
(a ``KeyboardInterrupt``); code that may have swallowed it calls :func:`raise_if_interrupted`
(the run does so between steps and before it moves its outputs into place). :func:`deferred`
holds signals back (recorded, not raised) while a few file renames must finish or be undone.

Exit codes follow the shell's convention: 128 + the signal number (130 SIGINT, 143 SIGTERM).

Examples
--------
>>> with handling_interrupts():
...     raise_if_interrupted()          # nothing received: returns
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum``; ``exit_code`` is what the CLI exits with."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    depth = 0                      # nesting of handling_interrupts
    received: int | None = None    # first signal number received inside it
    deferring = 0                  # nesting of deferred()
    previous: dict[int, Any] = {}


def _handler(signum: int, _frame: Any) -> None:
    if _State.received is None:
        _State.received = signum
    if not _State.deferring:
        raise Interrupted(_State.received)


@contextmanager
def handling_interrupts() -> Iterator[None]:
    """Record SIGINT and SIGTERM and raise them as :class:`Interrupted` (main thread only;
    elsewhere, and when nested, nothing is installed). Previous handlers come back on exit."""
    install = _State.depth == 0 and threading.current_thread() is threading.main_thread()
    if install:
        _State.received = None
        # A signal the process was told to ignore (SIGINT of a shell's background job) stays
        # ignored.
        _State.previous = {s: signal.signal(s, _handler) for s in SIGNALS
                           if signal.getsignal(s) is not signal.SIG_IGN}
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if install:
            for number, handler in _State.previous.items():
                signal.signal(number, handler)
            _State.received = None


def received() -> int | None:
    """The signal received inside :func:`handling_interrupts`, if any."""
    return _State.received


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` when a signal arrived (even if something swallowed it)."""
    if _State.received is not None:
        raise Interrupted(_State.received)


@contextmanager
def deferred() -> Iterator[None]:
    """Signals are recorded but not raised inside; :func:`received` says whether one came."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
