"""What every ``macos-lite`` sub-command shares: the user-error exception, bounded-number argparse types, the
writable-folder check, the one atomic file write, and the unwrapping of data-loader worker errors.

This module imports nothing else of the package, so that any module (the sub-commands, the data layer, the
training loop) can use it; :mod:`macos_lite.cli` only dispatches to the sub-commands.

Notebook 08 shows the command line these helpers serve.
"""

from __future__ import annotations

import argparse
import errno
import functools
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

DEBUG_ENV = "MACOS_LITE_DEBUG"
_debug = False  # set by macos_lite.cli.main for the command it runs (--debug)


class UserError(Exception):
    """A mistake in a command's arguments or inputs: the message says what is wrong and how to fix it.

    Raised by the sub-commands; :func:`macos_lite.cli.main` prints it as one paragraph and exits with code 2.
    """


class NoSpaceError(UserError, OSError):
    """The disk filled up while a file was written: the message names the file; what was there before is intact.

    Also an ``OSError`` with ``errno.ENOSPC``, so code that handles write errors handles it too.
    """

    def __init__(self, message: str, path=None):
        UserError.__init__(self, message)
        self.errno, self.strerror, self.filename = errno.ENOSPC, "no space left on device", path

    def __str__(self) -> str:
        return self.args[0]


def debug_enabled() -> bool:
    """True when ``--debug`` was given to the running command or ``$MACOS_LITE_DEBUG`` is set (not 0):
    commands that print their own error messages re-raise instead, so that the traceback shows.

    Raises :class:`UserError` for a value of ``$MACOS_LITE_DEBUG`` other than 0, 1, true, false, yes, no.
    """
    value = os.environ.get(DEBUG_ENV, "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise UserError(f"${DEBUG_ENV} is {os.environ[DEBUG_ENV]!r}; set it to 1 to show tracebacks, or 0 (or "
                        "unset it) to hide them")
    return _debug or value in ("1", "true", "yes", "on")


def paragraph(text) -> str:
    """``text`` as one paragraph: no blank lines, no trailing space; a data-loader worker's wrapped error is
    reduced to the original message (:func:`worker_error_message`)."""
    return re.sub(r"\n\s*\n+", "\n", worker_error_message(str(text)).strip())


_WORKER_PREFIX = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\s*Original Traceback", re.S)


def worker_error_message(text: str) -> str:
    """The original message of an exception re-raised by a ``torch.utils.data.DataLoader`` worker.

    PyTorch re-raises a worker's exception with the message "Caught DataError in DataLoader worker process 0.
    Original Traceback (most recent call last): ... DataError: <message>"; this returns ``<message>``, the
    sentence the main process would have shown. Any other text is returned unchanged.

    Example:
        >>> worker_error_message("Caught DataError in DataLoader worker process 0.\\nOriginal Traceback (most "
        ...                      "recent call last):\\n  File \\"x.py\\", line 1\\nDataError: a.png: truncated")
        'a.png: truncated'
    """
    match = _WORKER_PREFIX.match(text)
    if not match:
        return text
    name = match.group(1)
    # the last "Name: message" line of the traceback starts the original message (which may span lines)
    found = [m for m in re.finditer(rf"^(?:[\w.]+\.)?{re.escape(name)}: ", text, re.M)]
    return text[found[-1].end():].strip() if found else text


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """``exc`` itself, or -- for an exception re-raised by a DataLoader worker -- the same kind of exception
    with the worker's original message (:func:`worker_error_message`), so that a corrupt file is reported
    the same way with ``--num-workers 0`` and ``--num-workers 2``."""
    text = str(exc)
    message = worker_error_message(text)
    if message == text:
        return exc
    try:
        new = type(exc)(message)
    except Exception:  # noqa: BLE001 -- an exception type with other arguments
        new = RuntimeError(message)
    new.__cause__ = None
    return new


def unwrapped_batches(batches):
    """Iterate ``batches`` (a DataLoader, or a progress bar over one), re-raising a worker's error as
    :func:`unwrap_worker_error` does."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 -- re-raised, only its message changes
            new = unwrap_worker_error(exc)
            if new is exc:
                raise
            raise new from None
        yield batch


# ---------------------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------------------

def bounds_text(kind=float, minimum=None, maximum=None, above=None, below=None) -> str:
    """The phrase "a number above 0" (or "a whole number from 0 to 1" ...) that names what a setting accepts."""
    if minimum is not None and maximum is not None:
        parts = [f"from {minimum} to {maximum}"]
    else:
        parts = [f"of at least {minimum}" if minimum is not None else "",
                 f"of at most {maximum}" if maximum is not None else ""]
    parts += [f"above {above}" if above is not None else "", f"below {below}" if below is not None else ""]
    return " ".join(["a whole number" if kind is int else "a number", " and ".join(x for x in parts if x)]).strip()


def within_bounds(value, minimum=None, maximum=None, above=None, below=None) -> bool:
    """Whether ``value`` is finite and within the bounds (``minimum``/``maximum`` inclusive, ``above``/``below``
    exclusive)."""
    return math.isfinite(value) and not ((minimum is not None and value < minimum) or (
        maximum is not None and value > maximum) or (above is not None and value <= above) or (
        below is not None and value >= below))


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


@functools.lru_cache(maxsize=None)
def number(kind=float, minimum=None, maximum=None, above=None, below=None):
    """argparse type: a finite ``kind`` (int or float) within the given bounds, else a message naming them.

    ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive. NaN and infinities are refused; text
    that is not a ``kind`` is named as such. The same bounds give the same function (``positive_int`` is
    ``number(int, minimum=1)``).

    Example:
        >>> number(float, above=0)("3e-4")
        0.0003
        >>> number(float, minimum=0, maximum=1)("1.5")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: must be a number from 0 to 1, got 1.5
    """
    bounds = dict(minimum=minimum, maximum=maximum, above=above, below=below)
    what = bounds_text(kind, **bounds)

    def convert(text: str):
        try:
            value = _int(text) if kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}") from None
        if not within_bounds(value, **bounds):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in some messages
    return convert


positive_int = number(int, minimum=1)  # --batch-size, --steps-per-epoch ...
non_negative_int = number(int, minimum=0)  # --epochs, --pretrain-steps, --num-workers ...


# ---------------------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------------------

def available_memory() -> int | None:
    """Bytes of memory this machine can still give (``MemAvailable`` of /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def pair_memory(image_size: int, pairs: int, model: bool = True, feature_stride: int = 16) -> float:
    """Rough bytes of a forward pass on ``pairs`` image pairs at ``image_size`` (float32): the images, and for
    a model the two 4-D correlations of each pair, ``(S / stride)^4`` values each (the term that explodes).
    A lower bound, used to refuse sizes that cannot fit before anything is allocated."""
    images = pairs * 2 * 3 * image_size ** 2 * 4
    cells = -(-image_size // feature_stride)
    return images + (pairs * 2 * cells ** 4 * 4 if model else 0)


def check_fits_in_memory(nbytes: float, what: str) -> None:
    """Refuse, before anything is allocated, work that needs ``nbytes`` bytes when the machine has fewer.

    ``what`` names the flag and its value, e.g. ``"--image-size 30000"``. Raises :class:`UserError` saying
    how much is needed and how much there is; does nothing when the free memory cannot be read.
    """
    free = available_memory()
    if free is not None and nbytes > free:
        raise UserError(f"{what}: this needs about {nbytes / 2**30:,.1f} GiB of memory and the machine has "
                        f"{free / 2**30:,.1f} GiB free; choose a smaller value")


# ---------------------------------------------------------------------------------------------------------
# files and folders
# ---------------------------------------------------------------------------------------------------------

def _file_in_the_way(path: Path) -> Path | None:
    """The first component of ``path`` (itself included) that exists and is not a folder, or None."""
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            return part
    return None


def _folder_problem(path: Path) -> str | None:
    """Create folder ``path`` (parents too) and write a probe file in it; the reason it cannot be, or None."""
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot create or write this folder ({exc.strerror or exc})"
    return None


def writable_folder(path, option: str = "--out") -> Path:
    """Create folder ``path`` (parents too) and check that files can be written in it.

    Returns it as a ``Path``; raises :class:`UserError` naming ``option`` and the path otherwise: "X is a file,
    not a folder" when a component of the path is a file, else the reason (no permission, a read-only disk).
    """
    path = Path(path)
    problem = _folder_problem(path)
    if problem:
        raise UserError(f"{option} {path}: {problem}; choose a folder you can write")
    return path


def writable_file(path, option: str, overwrite: bool = False, flag: str = "--overwrite",
                  consequence: str = "Nothing was done.") -> Path:
    """Check, *before* any long work, that file ``path`` may be written: not a folder, its folder writable
    (created if missing), and -- unless ``overwrite`` -- not an existing file.

    Raises :class:`UserError` naming ``option`` and the path (and ``flag`` to replace an existing file).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    problem = _folder_problem(path.parent)
    if problem:
        raise UserError(f"{option} {path}: {problem}; choose a path you can write. {consequence}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise UserError(f"{option} {path} already exists and is left as it is; choose another name, or add "
                        f"{flag} to replace it")
    return path


def _disk_is_full(folder: Path, exc: BaseException) -> bool:
    """Whether ``exc``, raised while writing in ``folder``, comes from a full disk: ``errno.ENOSPC``, or a
    writer's own error (e.g. torch's ``inline_container`` "unexpected pos") while the disk has no room left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, (RuntimeError, OSError)):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def _mode_for(path: Path) -> int:
    """The permissions of a new ``path``: those of the file it replaces, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(path, content: bytes | str | Callable, overwrite: bool = True, fsync: bool = False,
                 what: str | None = None) -> Path:
    """Write file ``path`` atomically: to a temporary file in the same folder, then renamed over ``path``,
    so that a reader never sees half a file and an interrupted write leaves the old file intact.

    Args:
        path: the file to write; its folder is created.
        content: bytes, text (UTF-8), or a function given the open binary file to write into
            (e.g. ``lambda f: torch.save(state, f)``).
        overwrite: False to refuse an existing ``path`` (then ``FileExistsError`` naming it; checked by
            the rename itself, so two writers cannot both succeed).
        fsync: flush the data to the disk before the rename (checkpoints).
        what: how messages name the file (default: the path).

    Raises :class:`NoSpaceError` ("no space left on device while writing <what>") when the disk is full; the
    temporary file is removed and ``path`` keeps its previous content. Other errors propagate unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp's 0600 would make the result private
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError when path exists: no replacing, no race
            os.unlink(tmp)
    except BaseException as exc:
        full = isinstance(exc, Exception) and _disk_is_full(path.parent, exc)  # before the space is given back
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, FileExistsError) and not overwrite:
            raise FileExistsError(errno.EEXIST, f"{what or path} already exists and is left as it is; choose "
                                  "another name, or ask to overwrite it", str(path)) from None
        if full:
            raise NoSpaceError(f"no space left on device while writing {what or path}; it was not written "
                               "(any previous version is intact): free some space and run again", path) from exc
        raise
    return path


def stderr(message: str) -> None:
    """Print ``error: <message>`` as one paragraph on stderr."""
    print(f"error: {paragraph(message)}", file=sys.stderr)


def command_error(exc: BaseException, code: int = 2, message: str | None = None) -> int:
    """A sub-command's answer to an error it expects: with ``--debug`` (or ``$MACOS_LITE_DEBUG``) ``exc`` is
    re-raised so that its traceback shows; otherwise ``error: <message>`` (default: ``exc``'s own message) is
    printed as one paragraph on stderr and ``code`` (2: a user mistake, 1: a failure) is returned as the exit code.

    Use it in an ``except`` block: ``except AssignmentError as exc: return command_error(exc)``.
    """
    if debug_enabled():
        raise exc
    stderr(str(exc) if message is None else message)
    return code
