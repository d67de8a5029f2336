"""Strict JSON for results: NaN and infinities become ``null``, arrays and tensors become lists.

A mean over nothing (a class without valid keypoints) is NaN, which the JSON standard has no word for;
``json.dumps`` would write the non-standard ``NaN`` that strict readers reject. Every results file the
package writes (a notebook's ``RESULTS_PATH``, ``summary.json`` of ``macos-lite course`` and of
``macos-lite evaluate``) goes through :func:`jsonable`. Taught in notebook 09 (the evaluation summary).

Example:
    >>> import math
    >>> jsonable({"pck": math.nan, 1: (0.5, float("inf"))})
    {'pck': None, '1': [0.5, None]}
"""

from __future__ import annotations

import json
import math

__all__ = ["dumps", "jsonable"]


def jsonable(x):
    """``x`` with dict keys as strings, tuples as lists, numpy/torch values (anything with ``tolist``) as
    Python numbers or lists, and non-finite floats as None; other values unchanged."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):  # numpy arrays and scalars, torch tensors
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dumps(x, indent: int = 2) -> str:
    """:func:`jsonable` ``x`` as strict JSON text (``allow_nan=False``: a NaN left anywhere is an error)."""
    return json.dumps(jsonable(x), indent=indent, allow_nan=False)
