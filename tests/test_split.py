"""Hold-out splits of a training set (macos_lite.data.split), against hand-made record lists."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from macos_lite.data.items import ImageRecord
from macos_lite.data.split import holdout_categories, only_images, without_images


def _images(groups: dict) -> SimpleNamespace:
    records = [ImageRecord(Path(f"{g}/{i}.jpg"), c, g, f"{g}/{i}")
               for c, (g, n) in enumerate(groups.items()) for i in range(n)]
    return SimpleNamespace(records=records)


def test_whole_groups_evenly_spread_over_the_sorted_names():
    # 7 groups sorted a..g; round(0.3 * 7) = 2 -> positions linspace(0, 6, 2) = 0, 6 -> "a" and "g"
    images = _images({name: 3 for name in "gfedcba"})
    held = holdout_categories(images, 0.3)
    assert held == {f"{g}/{i}" for g in "ag" for i in range(3)}
    # 10 groups, 0.3 -> 3 groups at positions 0, 4.5 -> 4 (round half to even), 9
    ten = _images({f"g{k}": 2 for k in range(10)})
    assert {n.split("/")[0] for n in holdout_categories(ten, 0.3)} == {"g0", "g4", "g9"}


def test_a_group_always_remains_for_training():
    assert holdout_categories(_images({"a": 4}), 0.5) == set()  # one group: nothing to hold out
    two = holdout_categories(_images({"a": 2, "b": 2}), 0.9)  # never both
    assert {n.split("/")[0] for n in two} == {"a"}
    assert holdout_categories(_images({"a": 2, "b": 2}), 0.0) == set()
    with pytest.raises(ValueError, match="fraction"):
        holdout_categories(_images({"a": 2, "b": 2}), 1.0)


def test_only_and_without_are_complements():
    images = _images({"a": 2, "b": 3})
    held = {"b/0", "b/2"}
    kept, rest = only_images(images, held), without_images(images, held)
    assert [r.name for r in kept.records] == ["b/0", "b/2"]
    assert [r.name for r in rest.records] == ["a/0", "a/1", "b/1"]
    assert len(images.records) == 5  # the original is left whole
