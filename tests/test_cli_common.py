"""The helpers every sub-command shares (macos_lite/cli_common.py)."""

from __future__ import annotations

import pytest

from macos_lite import cli_common
from macos_lite.assignments import solution


def test_command_error_prints_one_paragraph_and_returns_the_code(monkeypatch, capsys):
    monkeypatch.delenv(cli_common.DEBUG_ENV, raising=False)
    monkeypatch.setattr(cli_common, "_debug", False)
    try:
        raise ValueError("a.mat: not numbers\n\nconvert it")
    except ValueError as exc:
        assert cli_common.command_error(exc) == 2
        assert cli_common.command_error(exc, code=1, message="other words") == 1
    assert capsys.readouterr().err == "error: a.mat: not numbers\nconvert it\nerror: other words\n"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_command_error_re_raises_under_debug(how, monkeypatch):
    monkeypatch.setattr(cli_common, "_debug", how == "flag")
    if how == "environment":
        monkeypatch.setenv(cli_common.DEBUG_ENV, "1")
    error = ValueError("x")
    with pytest.raises(ValueError) as info:
        try:
            raise error
        except ValueError as exc:
            cli_common.command_error(exc)
    assert info.value is error


def test_a_sub_command_uses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(cli_common.DEBUG_ENV, raising=False)
    args = solution.argparse.Namespace(notebook="99", exercise=None, question=None, notebooks=tmp_path)
    assert solution.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
