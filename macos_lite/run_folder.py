"""The folder of a training run: one run per folder, nothing replaced silently, and its log.

Taught in notebook 08 (training). The trainer (:class:`macos_lite.training.Trainer`) writes ``<out>/``:

* :func:`open_run_folder` -- create the folder, take its lock (:class:`macos_lite.run_lock.RunLock`), refuse
  to replace another run (:class:`RunExistsError`) and remove the temp files of a killed checkpoint write;
* :func:`start_log` -- at the start of :meth:`~macos_lite.training.Trainer.fit`: ``config.json``, and an old
  run's ``log.jsonl`` kept apart when a fresh run starts in its folder;
* :func:`append_log`, :func:`write_log` -- the JSON-lines log ``log.jsonl`` (and TensorBoard's scalars).
"""

from __future__ import annotations

import atexit
import json
import time
from pathlib import Path

from .cli_common import atomic_write, writable_folder


class RunExistsError(FileExistsError):
    """``out`` already holds a run (``last.pt``/``best.pt``) and neither ``resume`` nor ``overwrite`` was set."""


# settings that may differ when the same run is started again (they do not change what is computed)
RESTART_MAY_CHANGE = ("progress", "overwrite", "resume", "max_steps", "device", "num_workers",
                      "checkpoint_every", "out")


def open_run_folder(out: Path, cfg):
    """Create the run folder ``out`` of the run set by ``cfg`` (a resolved
    :class:`~macos_lite.train_config.TrainConfig`), lock it, refuse to replace a run in it, and remove stale
    checkpoint temp files; returns the held :class:`~macos_lite.run_lock.RunLock` (released at exit).

    Raises :class:`RunExistsError` when ``out`` holds ``last.pt`` or ``best.pt`` and neither ``resume`` nor
    ``overwrite`` is set, or when its ``config.json`` belongs to another run; a
    :class:`~macos_lite.cli_common.UserError` naming the folder when it cannot be written, and
    :class:`~macos_lite.run_lock.RunFolderBusyError` when another live run holds its lock.
    """
    folder = writable_folder(out, "--out")  # the one writability check
    from .run_lock import RunLock

    lock = RunLock(folder).acquire()  # before anything in the folder is read, moved or deleted
    atexit.register(lock.release)
    if lock.note:
        print(lock.note)
    try:
        check_run_folder(out, cfg)
    except BaseException:
        lock.release()  # refused: the folder is as it was
        raise
    return lock


def check_run_folder(out: Path, cfg) -> None:
    """Refuse (:class:`RunExistsError`) or, with ``overwrite``, clear the checkpoints of a run held in ``out``;
    remove the temp files left by a killed checkpoint write."""
    held = [name for name in ("last.pt", "best.pt") if (out / name).is_file()]
    if not held and not cfg.resume and not cfg.overwrite:
        refuse_a_foreign_config(out, cfg)
    if held and not cfg.resume:
        if not cfg.overwrite:
            raise RunExistsError(
                f"--out {out} already holds a run ({', '.join(held)}); nothing was changed. Continue it with "
                f"--resume --out {out}, or start a new run with another --out (or replace this one with "
                "--overwrite)")
        for name in held:  # asked for explicitly: the new run must not mix with the old one's checkpoints
            (out / name).unlink()
    # left by a checkpoint write that was killed (safe: the lock says no other run writes this folder)
    for stale in [*out.glob(".*.pt.*.tmp"), *out.glob("*.pt.*.tmp")]:
        stale.unlink(missing_ok=True)
        print(f"removed {stale}, left by an interrupted checkpoint write")


def refuse_a_foreign_config(out: Path, cfg) -> None:
    """Refuse an ``out`` whose ``config.json`` belongs to another run (other settings, or not ours): a new
    run would replace it. The same command started again (e.g. after a crash before the first
    checkpoint) may go on."""
    path = out / "config.json"
    if not path.exists():
        return
    try:
        theirs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        theirs = None
    ours = json.loads(json.dumps(cfg.to_dict(), default=str))
    if isinstance(theirs, dict):
        differ = sorted(k for k in set(ours) | set(theirs) if k not in RESTART_MAY_CHANGE
                        and ours.get(k) != theirs.get(k))
        if not differ:
            return
        why = "the settings of another run (" + ", ".join(f"{k}: {theirs.get(k)!r}" for k in differ[:4]) + \
            ("..." if len(differ) > 4 else "") + ")"
    else:
        why = "a file that is not a macos_lite run's settings"
    raise RunExistsError(f"--out {out} already holds {path} with {why}; nothing was changed. Continue "
                         f"that run with --resume --out {out}, choose another --out, or replace it with "
                         "--overwrite")


def start_log(out: Path, config: dict, fresh: bool) -> None:
    """Write ``config`` to ``<out>/config.json``; for a ``fresh`` run (step 0), first rename an old run's
    ``log.jsonl`` to ``log-before-<date>-<time>.jsonl``."""
    log = out / "log.jsonl"
    if fresh and log.exists():  # a fresh run in an old run's folder: keep the old log apart
        log.rename(out / f"log-before-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    atomic_write(out / "config.json", json.dumps(config, indent=2, default=str))


def open_tensorboard(out: Path):
    """A TensorBoard ``SummaryWriter`` on ``<out>/tensorboard``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(out / "tensorboard"))
    except ImportError:
        return None


def append_log(out: Path, record: dict, tensorboard=None) -> None:
    """Append ``record`` as one JSON line to ``<out>/log.jsonl``; its numbers (but ``step``/``epoch``) also go
    to ``tensorboard`` (a ``SummaryWriter`` or None) at ``record["step"]``."""
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if tensorboard is not None:
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                tensorboard.add_scalar(k, v, record["step"])


def write_log(path: Path, records: list[dict]) -> None:
    """Replace the JSON-lines log at ``path`` by ``records`` (atomically)."""
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in records))
