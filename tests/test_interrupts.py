"""Interrupts (issue 14): SIGINT or SIGTERM at any moment of ``roi run`` leaves the earlier outputs
byte for byte, exits 128 + the signal number (130, 143) and says "interrupted" on stderr.

Each case runs ``roi run`` as a subprocess on a 600-customer world into a folder that holds an
earlier run's outputs, waits for a phase marker in the progress output on stderr (never a fixed
sleep) and sends the signal:

* SIGTERM during validation;
* SIGINT while nutpie samples the media-mix model (nutpie catches ``KeyboardInterrupt`` and
  returns the draws so far: the run used to carry on, exit 0 and replace every output with an
  unconverged model);
* SIGINT while the reports are written (the set is staged and moved into place together).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

FAST = "seed = 11\n[sampler]\nmodels = []\n"
# Long enough (about 10 s on 2 busy cores) that the signal lands while nutpie samples.
SAMPLING = "seed = 11\n[sampler]\nmodels = [\"paid_media\"]\ndraws = 1500\ntune = 1500\nchains = 2\n"


def hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every entry of ``folder`` (dot files and folders included: a run must leave
    no staging folder behind either)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A 600-customer world as CSV (``data/``), two configs, and ``earlier/``: the outputs of an
    earlier run (no Bayesian models) that every interrupted run must leave untouched."""
    from roi.simulate import simulate_world

    root = tmp_path_factory.mktemp("interrupts")
    simulate_world(n_customers=600, seed=3).write(root / "data")
    (root / "fast.toml").write_text(FAST)
    (root / "sampling.toml").write_text(SAMPLING)
    code, _, stderr = run_cli(["run", str(root / "data"), "--out", str(root / "earlier"),
                               "--config", str(root / "fast.toml"), "--no-pdf",
                               "--no-progress"])
    assert code == 0, stderr[-2000:]
    return root


# ``python -m roi.cli`` with SIGINT and SIGTERM as a terminal gives them. A test runner started
# as a background job (``cmd &`` in a script, as a CI harness may do) inherits SIGINT ignored,
# and roi rightly leaves an inherited "ignore" alone, which would make these tests meaningless.
# (Not ``preexec_fn``: forking a multithreaded process -- JAX's threads -- may deadlock.)
TERMINAL_SIGNALS = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); sys.argv[0] = 'roi'; "
    "runpy.run_module('roi.cli', run_name='__main__', alter_sys=True)")


class Run:
    """``roi`` in a subprocess with its stderr collected by a thread."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", TERMINAL_SIGNALS, *argv],
                                        cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env={**os.environ})
        self.chunks: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for chunk in iter(lambda: self.process.stderr.read1(4096), b""):
            self.chunks.append(chunk.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.chunks)

    def wait_for(self, marker: str, *, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.stderr:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"{marker!r} never appeared; stderr: {self.stderr[-2000:]}")
            time.sleep(0.02)

    def finish(self, *, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.2)   # the reader thread drains the pipe
        return code


def interrupted_run(world: Path, tmp_path: Path, *, config: str, marker: str,
                    signum: int) -> tuple[int, str, dict[str, str], dict[str, str]]:
    """Copy the earlier outputs, start ``roi run`` into them, signal at ``marker``; exit code,
    stderr, hashes before and after."""
    out = tmp_path / "out"
    shutil.copytree(world / "earlier", out)
    before = hashes(out)
    run = Run(["run", str(world / "data"), "--out", str(out), "--config",
               str(world / config), "--no-pdf"])
    run.wait_for(marker)
    run.process.send_signal(signum)
    code = run.finish()
    return code, run.stderr, before, hashes(out)


@pytest.mark.slow
def test_sigterm_during_validation_leaves_earlier_outputs(world, tmp_path):
    code, stderr, before, after = interrupted_run(world, tmp_path, config="fast.toml",
                                                  marker="roi: validate",
                                                  signum=signal.SIGTERM)
    assert code == 143, stderr[-2000:]
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert after == before


@pytest.mark.slow
def test_sigint_mid_sampling_stops_the_run_and_leaves_earlier_outputs(world, tmp_path):
    code, stderr, before, after = interrupted_run(world, tmp_path, config="sampling.toml",
                                                  marker="paid media (sampling)",
                                                  signum=signal.SIGINT)
    assert code == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert "roi: write results" not in stderr, "the run carried on after sampling was stopped"
    assert after == before


@pytest.mark.slow
def test_sigint_while_reports_are_written_leaves_earlier_outputs(world, tmp_path):
    code, stderr, before, after = interrupted_run(world, tmp_path, config="fast.toml",
                                                  marker="roi: write reports",
                                                  signum=signal.SIGINT)
    assert code == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert after == before


def test_an_output_set_moves_together_or_not_at_all(tmp_path, monkeypatch):
    """A signal that arrives while the staged files are being moved undoes every move."""
    from roi import interrupts
    from roi.outputs import staged_outputs

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("old results")
    (out / "report.html").write_text("old report")
    before = hashes(out)
    real_replace = os.replace

    def replace_then_signal(source, target):
        real_replace(source, target)
        os.kill(os.getpid(), signal.SIGTERM)   # recorded, held back until the moves are undone

    with pytest.raises(interrupts.Interrupted) as raised, interrupts.handling_interrupts(), \
            staged_outputs(out) as staged:
        for name in ("results.json", "report.html", "report.xlsx"):
            staged.path(name).write_text(f"new {name}")
        monkeypatch.setattr(os, "replace", replace_then_signal)
        try:
            staged.commit()
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
    assert raised.value.exit_code == 143
    assert hashes(out) == before


def test_an_interrupt_a_library_swallowed_is_raised_again():
    """What nutpie does with Ctrl-C (catch it, return the draws so far) no longer hides it."""
    from roi.interrupts import Interrupted, handling_interrupts, raise_if_interrupted

    # As in a terminal, even when the test runner inherited SIGINT ignored (a background job)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _swallowed_interrupt_is_raised_again(handling_interrupts, raise_if_interrupted,
                                             Interrupted)
    finally:
        signal.signal(signal.SIGINT, inherited)


def _swallowed_interrupt_is_raised_again(handling_interrupts, raise_if_interrupted,
                                         Interrupted) -> None:
    before = signal.getsignal(signal.SIGINT)
    with handling_interrupts():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
            pytest.fail("the signal was not raised")
        except KeyboardInterrupt:
            pass   # swallowed, as nutpie.sample does
        with pytest.raises(Interrupted) as raised:
            raise_if_interrupted()
    assert raised.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before   # restored on exit


def test_fewer_draws_than_asked_means_sampling_was_interrupted():
    import arviz as az
    import numpy as np

    from roi.inference.nuts import check_complete
    from roi.interrupts import Interrupted

    partial = az.from_dict(posterior={"beta": np.zeros((2, 37))})
    with pytest.raises(Interrupted):
        check_complete(partial, draws=150)
    check_complete(az.from_dict(posterior={"beta": np.zeros((2, 150))}), draws=150)
