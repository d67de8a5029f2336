"""Stopping a long run cleanly: SIGINT / SIGTERM become a request that the loop honours at a step boundary.

The trainer (:mod:`macos_lite.training`, notebook 08) checks :attr:`StopRequests.signum` between steps,
saves a resumable ``last.pt`` and stops with :class:`TrainingInterrupted`; a second signal stops at once (the previous save is then the last
state). Outside the main thread Python cannot install handlers, and nothing is installed.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training at a step boundary, after ``last.pt`` was saved.

    ``signum`` is the signal's number; ``out`` the run folder to ``--resume``.
    """

    def __init__(self, message: str, signum: int, out: Path):
        super().__init__(message)
        self.signum, self.out = signum, out


class StopRequests:
    """Context manager: while active, the first SIGINT/SIGTERM sets :attr:`signum` instead of stopping.

    ``announce``: print one line saying what will happen (the main process of a distributed run only).

    Example::

        with StopRequests() as stop:
            for step in range(n):
                work(step)
                if stop.signum is not None:
                    save(); break
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool = True):
        self.announce = announce
        self.signum: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signum = signum
        if self.announce:
            print(f"\n{signal.Signals(signum).name}: stopping after the current step (send it again to stop at once)",
                  flush=True)

    def __enter__(self) -> "StopRequests":
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)
        self._previous = {}
