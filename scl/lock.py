"""One writer per output folder: ``scl run`` / ``scl resume`` hold ``<out>/.scl.lock``.

The lock is ``fcntl.flock`` on that file: the kernel releases it when the holding process exits or
is killed, so a lock left by a dead process never blocks (the file stays; its content, the
holder's pid and host, is only read to name the holder in the refusal). Re-entrant within one
process (``scl.simulate(out_dir=...)`` called from ``scl run`` takes it again).
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from scl.errors import ConfigError

LOCK_FILE = ".scl.lock"
_held: dict[str, list] = {}          # resolved folder -> [fd, depth]


@contextlib.contextmanager
def folder_lock(out_dir, field: str = "out_dir"):
    """Hold the lock of ``out_dir`` (created if missing) for the ``with`` block, or refuse in one line."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield folder
        finally:
            _held[key][1] -= 1
        return
    try:
        import fcntl
    except ImportError:                  # Windows: no lock
        yield folder
        return
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        os.close(fd)
        who = f"pid {holder[0]} on host {holder[1]}" if len(holder) >= 2 else "another process"
        raise ConfigError(field, f"{folder} is in use by a running scl ({who}); wait for it to "
                          "finish or stop it, or choose another folder") from None
    except OSError:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass                             # disk full: the lock still holds, only the name is missing
    _held[key] = [fd, 1]
    try:
        yield folder
    finally:
        del _held[key]
        os.close(fd)                     # releases the flock


@contextlib.contextmanager
def run_lock(out_dir, field: str = "out_dir"):
    """:func:`folder_lock` for a run of one or many processes (:mod:`scl.distributed`): process 0
    alone takes the lock; the others wait for its outcome and refuse with the same line if it was
    refused (so two processes of one run never lock each other out, and none runs on alone)."""
    from scl.distributed import on_primary

    with contextlib.ExitStack() as stack:
        on_primary("lock", lambda: stack.enter_context(folder_lock(out_dir, field)))
        yield Path(out_dir)
