"""The ``Example`` sections of the docstrings run as written (doctest), in the modules a learner tries first."""

import doctest
import importlib

import pytest

MODULES = ["macos_lite.cli_common", "macos_lite.geometry", "macos_lite.metrics", "macos_lite.correlation", "macos_lite.evaluation.summary",
           "macos_lite.presets", "macos_lite.train_config", "macos_lite.sweep", "macos_lite.strict_json",
           "macos_lite.pretrain", "macos_lite.guided_filter"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no Example to check"
    assert result.failed == 0
