"""Write outputs atomically: a reader (or an interrupted run) never sees a half-written file, and
a run's outputs change together or not at all.

:func:`atomic_target` / :func:`write_atomic` write one file (temporary file + rename).
:func:`staged_outputs` writes a run's whole set (``results.json`` and the reports) into a staging
folder inside the output folder and moves the set into place at the very end
(:meth:`OutputSet.commit`); an interrupt before or during that move leaves every earlier output
byte for byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from roi.data.errors import RoiError
from roi.interrupts import deferred, raise_if_interrupted, received


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` only on success.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_target(folder / "a.txt") as temporary:
    ...     _ = temporary.write_text("done")
    >>> (folder / "a.txt").read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.",
                                         suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _file_mode())   # mkstemp makes 0600; outputs are shared as usual
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0666 less the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of ``path`` left by a process that no longer runs (a killed run).

    Temporaries are named ``.<name>.<pid>.<random><suffix>``; one whose process is alive (a
    concurrent writer) is left alone."""
    removed = []
    for leftover in Path(path).parent.glob(f".{Path(path).name}.*"):
        pid = leftover.name[len(Path(path).name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: Path, content: str | bytes) -> Path:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    with atomic_target(path) as temporary:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content)
    return Path(path)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    return write_atomic(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


# --------------------------------------------------------------------------- a run's output set

STAGING_PREFIX = ".roi-staging."
OUTPUT_NAMES = ("results.json", "report.html", "report.xlsx", "report.pdf")


class OutputError(RoiError, OSError):
    """The output folder cannot be used (a file, or not writable)."""


class OutputSet:
    """Files staged in ``folder`` (inside ``out``) until :meth:`commit` moves them together."""

    def __init__(self, out: Path, folder: Path) -> None:
        self.out, self.folder = out, folder

    def path(self, name: str) -> Path:
        """Where to write output ``name`` before the commit."""
        return self.folder / name

    def commit(self) -> list[Path]:
        """Move every staged file over its namesake in ``out``; the paths written.

        Signals are held back while the files move; if one came, every move is undone (earlier
        outputs restored from hard links) and :class:`roi.interrupts.Interrupted` is raised.
        """
        raise_if_interrupted()
        staged = sorted((p for p in self.folder.iterdir() if p.is_file()),
                        key=lambda p: p.name == "results.json")   # results.json last
        keep = self.folder / ".previous"
        keep.mkdir(exist_ok=True)
        moved: list[tuple[Path, Path | None]] = []
        with deferred():
            try:
                for source in staged:
                    target = self.out / source.name
                    backup = keep / source.name if target.is_file() else None
                    if backup is not None:
                        _link_or_copy(target, backup)
                    os.chmod(source, _file_mode())
                    os.replace(source, target)
                    moved.append((target, backup))
            except BaseException:
                _undo(moved)
                raise
            if received() is not None:
                _undo(moved)
        raise_if_interrupted()
        return [target for target, _ in moved]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:              # a file system without hard links
        shutil.copy2(source, target)


def _undo(moved: list[tuple[Path, Path | None]]) -> None:
    for target, backup in reversed(moved):
        if backup is None:
            target.unlink(missing_ok=True)
        else:
            os.replace(backup, target)


@contextmanager
def staged_outputs(out: str | Path) -> Iterator[OutputSet]:
    """An :class:`OutputSet` for folder ``out`` (checked and created first); the staging folder
    is removed on exit, committed or not.

    Raises
    ------
    OutputError
        ``out`` is a file, or the folder cannot be created or written to.

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> with staged_outputs(folder) as staged:
    ...     _ = staged.path("results.json").write_text("{}")
    ...     [p.name for p in staged.commit()]
    ['results.json']
    """
    created = not Path(out).exists()
    out = output_folder(out)
    remove_stale_staging(out)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {out}: "
                          f"{exc.strerror or exc}") from None
    try:
        yield OutputSet(out, folder)
    finally:
        with deferred():
            shutil.rmtree(folder, ignore_errors=True)
            if created and not any(out.iterdir()):   # a failed first run leaves no empty folder
                out.rmdir()


def output_folder(out: str | Path) -> Path:
    """``out`` as a folder that exists (created if missing); an :class:`OutputError` when it is a
    file or cannot be created, before any work is done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder: give a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") \
            from None
    return out


def remove_stale_staging(out: Path) -> list[Path]:
    """Delete staging folders left in ``out`` by a process that no longer runs (a killed run)."""
    removed = []
    for leftover in Path(out).glob(f"{STAGING_PREFIX}*"):
        pid = leftover.name[len(STAGING_PREFIX):].split(".", 1)[0]
        if leftover.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed
