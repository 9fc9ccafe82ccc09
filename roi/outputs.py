"""Write outputs atomically: a reader (or an interrupted run) never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
