"""Plumbing shared by the protocols: the error that names the failing pair, batching, progress.

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

from contextlib import contextmanager

from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..data.registry import collate


class EvaluationError(RuntimeError):
    """A method or a metric failed during an evaluation; the message names the pair or image."""


def _first(dataset, max_items: int | None):
    """The first ``max_items`` items of ``dataset`` (all when None)."""
    if max_items is None or max_items >= len(dataset):
        return dataset
    if max_items < 1:
        raise ValueError(f"max_pairs must be at least 1, got {max_items}")
    return Subset(dataset, range(max_items))


def _batches(dataset, batch_size: int, num_workers: int, progress: bool, desc: str):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate)
    from ..cli_common import unwrapped_batches  # a worker's error reads as the main process's

    return unwrapped_batches(tqdm(loader, desc=desc, unit="batch") if progress else loader)


def _pair_names(batch: dict, i: int | None = None) -> str:
    names = [f"{a} -> {b}" for a, b in zip(batch.get("name_A", []), batch.get("name_B", []), strict=True)]
    index = batch.get("index")
    if i is not None:
        where = f"pair {int(index[i])} " if index is not None else ""
        return f"{where}({names[i] if names else '?'})"
    if not names:
        return "a batch"
    return f"the batch of pairs {names[0]} ... {names[-1]}" if len(names) > 1 else f"pair {names[0]}"


@contextmanager
def _naming(what: str):
    """Re-raise any failure inside the block as an :class:`EvaluationError` that says ``what`` failed."""
    try:
        yield
    except EvaluationError:
        raise
    except Exception as exc:
        raise EvaluationError(f"evaluation failed on {what}: {type(exc).__name__}: {exc}") from exc


def _item(batch: dict, i: int) -> dict:
    """The i-th item of a collated batch (tensors indexed, lists picked)."""
    return {k: v[i] for k, v in batch.items()}


def _key(alpha: float) -> str:
    return f"{alpha:g}"
