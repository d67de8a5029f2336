"""The classroom guard around a submission: an audit hook installed in the kernel, and process clean-up.

The grader injects :func:`guard_cell_source` as the first cell of every submission it runs. That cell
imports the heavy libraries (they load C code through ``ctypes`` at import time), then installs a
Python audit hook (``sys.addaudithook``, PEP 578) that lives as long as the kernel: Python offers no
way to remove one. The hook raises ``ContainmentError`` (a ``PermissionError``) for

* file writes, truncations, deletions, renames, links, new folders and permission/owner/time changes
  whose path lies outside the submission's working folder (``/dev/null`` excepted), symlinks resolved;
* starting processes: ``os.system``, ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn[p]``,
  ``os.spawn*``, ``os.fork``/``forkpty`` (so ``pty``, ``multiprocessing`` and ``concurrent.futures``' process
  pools too), and ``_posixsubprocess.fork_exec``, which raises no audit event: the guard replaces it
  (everywhere it is referenced) by a function that blocks, and refuses any later import of
  ``_posixsubprocess`` (a fresh copy of the module would hold the original);
* ``ctypes``: loading a library, looking up a symbol, reading memory at an address;
* signals to other processes, network connections, and ``gc``'s object-graph queries (the easy way
  to reach the hook's own state).

Each blocked action is also written to the guard's log, through a descriptor opened before the hook, so
the grader reports it even when the submission swallows the exception. The grader makes that log a
named pipe (:class:`LogPipe`) that it reads as the run goes: what was written cannot be rewritten,
truncated or deleted from inside the kernel (lines a submission adds are at worst believed against
itself: only the first ``pid`` and ``ready`` count). If the guard itself fails, it ends the kernel: no
submitted cell ever runs unguarded.

What this is not: a security sandbox. Code running in C (a C extension writing a file itself, such as
``torch.save`` to a path or numpy's ``tofile``), a submission that reaches the hook's state through
other interpreter internals, reads of any file the grading account can read, and memory or disk use
inside the folder are not stopped; the timeout and the process-tree kill bound only time. Grade
untrusted code as an unprivileged user, inside a container or VM.

Used when the course's exercises (notebooks 01-07) are graded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil

# imported before the guard: their C libraries load through ctypes, which the guard then forbids
PRELOAD = ("numpy", "torch", "torchvision", "timm", "matplotlib.pyplot", "macos_lite.checks", "macos_lite.model")

_GUARD = '''\
# macos_lite grader: containment guard (injected by the grader, not part of the submission)
def _macos_lite_guard(folder, log_path, preload):
    import os

    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def note(kind, text=""):
        line = kind + "\\t" + text.replace("\\n", " ")[:1000] + "\\n"
        os.write(log, line.encode("utf-8", "replace"))  # short lines: one atomic write to a pipe

    note("pid", str(os.getpid()))
    try:
        _install(folder, preload, note)
    except BaseException as exc:  # never run the submission unguarded: end the kernel instead
        note("failed", type(exc).__name__ + ": " + str(exc))
        os._exit(70)
    note("ready")


def _install(folder, preload, note):
    import importlib, os, sys

    for module in preload:  # before the hook: these load C libraries through ctypes at import
        importlib.import_module(module)
    sys.dont_write_bytecode = True
    folder = os.path.realpath(folder)
    own_pid = os.getpid()
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    # event -> (verb, index of its dir_fd argument or None); -1 / None there means "relative to the cwd"
    path_events = {
        "os.remove": ("delete", 1), "os.rmdir": ("delete", 1), "shutil.rmtree": ("delete", 1),
        "os.mkdir": ("create a folder at", 2), "os.chmod": ("change the permissions of", 2),
        "os.chown": ("change the owner of", 3), "os.utime": ("change the times of", 3),
        "os.truncate": ("truncate", None), "os.chflags": ("change the flags of", None),
        "os.setxattr": ("change the attributes of", None),
        "os.removexattr": ("change the attributes of", None),
    }
    # event -> (verb, which of the first two paths must stay inside); a symlink's target may be anywhere
    two_path_events = {"os.rename": ("rename", (0, 1)), "os.link": ("hard-link", (0, 1)),
                       "os.symlink": ("create a link at", (1,))}
    process_events = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                      "os.forkpty")
    ctypes_events = ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata",
                     "ctypes.cdata/buffer")
    network_events = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")
    # modules whose fresh copy would bring back an entry point the hook cannot see
    unaudited_modules = ("_posixsubprocess",)
    gc_events = ("gc.get_objects", "gc.get_referrers", "gc.get_referents")

    class ContainmentError(PermissionError):
        """A submission tried something the grader does not allow."""

    def block(what):
        message = "submission tried to " + what + ": blocked"
        note("blocked", message)
        raise ContainmentError(message)

    # _posixsubprocess.fork_exec starts processes without an audit event: replace it wherever it is held
    import _posixsubprocess

    original = _posixsubprocess.fork_exec

    def fork_exec(*args, **kwargs):
        block("start a process (_posixsubprocess.fork_exec)")

    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            for key, value in list(namespace.items()):
                if value is original:
                    namespace[key] = fork_exec
    del original

    def text(path):
        # a path-like object of the submission's own type would run its code inside this hook
        kind = type(path)
        if kind is str or kind is bytes or kind.__module__ in ("pathlib", "posix"):
            return os.fsdecode(os.fspath(path))
        block("use a path-like object of its own type (" + kind.__name__ + ")")

    def resolve(path, follow, dir_fd):
        path = text(path)
        if type(dir_fd) is int and dir_fd >= 0 and not os.path.isabs(path):
            try:  # relative to an open folder (shutil.rmtree works this way): find that folder
                path = os.path.join(os.readlink("/proc/self/fd/" + str(dir_fd)), path)
            except OSError:
                return "(a path relative to folder descriptor " + str(dir_fd) + ")"
        if follow:
            return os.path.realpath(path)
        head, tail = os.path.split(os.path.abspath(path))
        return os.path.join(os.path.realpath(head), tail)

    def outside(path, follow=False, dir_fd=None):
        """The resolved path if it lies outside the folder, else None."""
        if path is None or type(path) is int:  # an already open descriptor
            return None
        full = resolve(path, follow, dir_fd)
        if full == folder or full.startswith(folder + os.sep) or full == "/dev/null":
            return None
        return full

    def check(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(mode, str):
                writing = any(str.__contains__(mode, c) for c in "wax+")
            else:
                writing = type(flags) is not int or bool(flags & write_flags)
            full = outside(path, follow=True) if writing else None
            if full:
                block("write to " + full + " outside its folder")
        elif event in path_events:
            verb, fd_index = path_events[event]
            dir_fd = args[fd_index] if fd_index is not None and len(args) > fd_index else None
            full = outside(args[0], dir_fd=dir_fd)
            if full and not (event == "os.mkdir" and os.path.isdir(full)):  # makedirs(exist_ok=True)
                block(verb + " " + full + " outside its folder")
        elif event in two_path_events:
            verb, checked = two_path_events[event]
            for i in checked:
                dir_fd = args[2] if event == "os.symlink" else args[2 + i]
                full = outside(args[i], follow=event == "os.link" and i == 0, dir_fd=dir_fd)
                if full:
                    block(verb + " " + full + " outside its folder")
        elif str.startswith(event, process_events):
            block("start a process (" + event + ")")
        elif event in ctypes_events:
            block("use ctypes (" + event + ")")
        elif event in ("os.kill", "os.killpg") and not (type(args[0]) is int and args[0] == own_pid):
            block("send a signal to process " + str(args[0]))
        elif event in network_events:
            block("open a network connection (" + event + ")")
        elif event in gc_events:
            block("inspect the interpreter's objects (" + event + ")")
        elif event == "import" and str(args[0]).rpartition(".")[2] in unaudited_modules:
            block("import a fresh copy of " + str(args[0]))

    def hook(event, args):
        try:
            check(str.__str__(event), args)  # an exact str: a subclass could run code in here
        except ContainmentError:
            raise
        except Exception:  # an argument shape the guard does not know: never break the kernel's own work
            pass

    sys.addaudithook(hook)


_macos_lite_guard(FOLDER, LOG, PRELOAD)
del _macos_lite_guard, _install
'''


def guard_cell_source(folder: str, log_path: str, preload=PRELOAD) -> str:
    """Source of the injected first cell: confine the kernel to ``folder``, log to ``log_path``.

    preload: modules imported before the hook is installed (those that load C code through ctypes).
    """
    call = f"_macos_lite_guard({str(folder)!r}, {str(log_path)!r}, {tuple(preload)!r})"
    return _GUARD.replace("_macos_lite_guard(FOLDER, LOG, PRELOAD)", call)


@dataclass
class GuardLog:
    """What a guard log says: the kernel's pid, whether the hook is in place, what it blocked."""

    pid: int | None = None
    ready: bool = False
    failure: str = ""  # why the guard could not be installed ('' if it was, or not yet)
    blocked: list[str] = field(default_factory=list)


def parse_log(text: str, max_blocked: int | None = None) -> GuardLog:
    """Parse the text of a guard log: the first ``pid`` and ``ready`` lines count (later ones are forged)."""
    log = GuardLog()
    for line in text.splitlines():
        kind, _, text = line.partition("\t")
        if kind == "pid" and text.isdigit() and log.pid is None:
            log.pid = int(text)
        elif kind == "ready":
            log.ready = True
        elif kind == "failed" and not log.ready:  # the guard fails only before `ready`: later lines are forged
            log.failure = text
        elif kind == "blocked" and (max_blocked is None or len(log.blocked) < max_blocked):
            if text not in log.blocked:
                log.blocked.append(text)
    return log


def read_log(log_path) -> GuardLog:
    """Parse a guard log file (a missing file means the kernel has not got that far)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return parse_log(f.read())
    except FileNotFoundError:
        return GuardLog()


class LogPipe:
    """The reading end of a guard log that is a named pipe (``os.mkfifo``), read without blocking.

    Use as a context manager around the run; :meth:`read` returns everything received so far. The pipe
    is opened before the kernel starts, so the guard's ``open`` never waits, and the grader keeps every
    line it has read: the kernel cannot take anything back.
    """

    def __init__(self, path, max_blocked: int | None = None):
        self.path, self.max_blocked = path, max_blocked
        self._fd: int | None = None
        self._data = bytearray()

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        return self

    def __exit__(self, *exc):
        self.read()
        os.close(self._fd)
        self._fd = None

    def read(self) -> GuardLog:
        while self._fd is not None:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:  # no writer (yet, or any more)
                break
            if len(self._data) < 16 * 2**20:  # a submission flooding the log is cut off, not believed
                self._data += chunk
        return parse_log(self._data.decode("utf-8", "replace"), self.max_blocked)


def kill_tree(pid: int | None, kernel: int | None = None, kernel_marker: str = "") -> None:
    """Kill process ``pid`` (still running, so its pid is ours) with its descendants, and the ``kernel``.

    The kernel runs in its own session (jupyter_client starts it so), so killing a process group would
    miss it, and it may outlive its parent; it is only killed when ``kernel_marker`` (the private folder
    holding its connection file) is on its command line, so that a reused pid is never hit.
    """
    procs = []
    for p, is_kernel in ((pid, False), (kernel, True)):
        if p is None:
            continue
        try:
            root = psutil.Process(p)
            if not is_kernel or kernel_marker in " ".join(root.cmdline()):
                procs.extend([root, *root.children(recursive=True)])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
