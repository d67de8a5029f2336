"""The lock of a run folder: one ``train`` at a time writes a ``--out`` folder.

The lock is the file ``<out>/.lock``, created with ``O_CREAT | O_EXCL`` (atomic: of two processes creating it,
exactly one succeeds) and holding the owner's pid and start time. A second run on the folder is refused,
naming the holder. A lock left by a process that no longer exists (killed, machine rebooted) is taken over
with a note.

Used by ``macos-lite train`` (notebook 08).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

from .cli_common import UserError

LOCK_NAME = ".lock"


class RunFolderBusyError(UserError):
    """Another live process holds the lock of the run folder."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


class RunLock:
    """Exclusive lock of run folder ``out`` (a context manager; also :meth:`acquire` / :meth:`release`).

    Raises :class:`RunFolderBusyError` ("--out X is in use by another run (pid N, started ...)") when a live
    process holds it. Example::

        with RunLock("runs/a"):
            ...  # only this process writes runs/a
    """

    def __init__(self, out, option: str = "--out"):
        self.out, self.option = Path(out), option
        self.path = self.out / LOCK_NAME
        self.held = False
        self.note = ""  # set when a stale lock was taken over

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid = holder.get("pid")
                same_host = holder.get("host") in (None, socket.gethostname())
                if isinstance(pid, int) and pid == os.getpid():
                    self.held = True  # this process already holds it
                    return self
                if isinstance(pid, int) and (_alive(pid) or not same_host):
                    where = "" if same_host else f" on {holder.get('host')}"
                    raise RunFolderBusyError(
                        f"{self.option} {self.out} is in use by another run (pid {pid}{where}, started "
                        f"{holder.get('started', '?')}); nothing was changed. Wait for it to finish, or choose "
                        f"another {self.option} (if that process is gone, delete {self.path})") from None
                if not holder and time.time() - _mtime(self.path) < 5:
                    time.sleep(0.2)  # being written by its creator this instant: read it again
                    if self._holder():
                        continue
                self.note = (f"note: took over the lock {self.path} of a run that no longer runs "
                             f"(pid {pid if pid is not None else 'unknown'})")
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise UserError(f"{self.option} {self.out}: cannot write the run folder ({exc.strerror}); "
                                    "choose a folder you can write") from None
                raise
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self.held = True
            return self
        raise RunFolderBusyError(f"{self.option} {self.out}: cannot take the lock {self.path} (other runs keep "
                                 "taking it); choose another folder")

    def release(self) -> None:
        """Remove the lock if this process holds it (safe to call twice)."""
        if self.held and self._holder().get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
