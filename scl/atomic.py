"""Durable files: write to a temporary file in the same folder, flush to disk, then rename.

A reader (or a run killed half-way) sees either the old file or the complete new one, never a
truncated one. Temporary files are named ``.<name>.scl-tmp-*``; one left by a killed process is
removed by :func:`remove_stale` (``scl run`` / ``scl resume`` call it while holding the folder's
lock). The renamed file gets the mode an ordinary ``open()`` would give it (``0o666 & ~umask``),
not ``mkstemp``'s 0600, so results and figures are readable by the group like any other output.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_TAG = ".scl-tmp-"


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` creates files with."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_TAG}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale(folder) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` (not recursive); return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and TMP_TAG in p.name and p.is_file()]
    for p in stale:
        with contextlib.suppress(OSError):
            p.unlink()
    return stale


def write_text(path, text: str) -> Path:
    """Atomically replace the text file ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_figure(fig, path) -> Path:
    """Atomically save a matplotlib figure (format from the suffix of ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    return path
