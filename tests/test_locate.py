"""The one dataset locator (macos_lite.data.locate): the search order and the one not-found error."""

import pytest

from macos_lite import paths
from macos_lite.data import locate
from macos_lite.data.imageio import DataNotFoundError


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.SHARED_DATA_ENV, raising=False)
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "downloads"))


def test_root_then_development_layout_then_downloads(tmp_path, no_env):
    assert locate.find_dataset("tss", tmp_path) is None
    (tmp_path / "tss-sample").mkdir()
    assert locate.find_dataset("tss", tmp_path) is None  # an empty folder is not a dataset
    (tmp_path / "tss-sample" / "x").write_text("")
    assert locate.find_dataset("tss", tmp_path) == tmp_path / "tss-sample"
    (tmp_path / "tss").mkdir()
    (tmp_path / "tss" / "y").write_text("")
    assert locate.find_dataset("tss", tmp_path) == tmp_path / "tss"  # <root>/<name> first
    (tmp_path / "downloads" / "spair").mkdir(parents=True)
    (tmp_path / "downloads" / "spair" / "z").write_text("")
    assert locate.find_dataset("spair") == tmp_path / "downloads" / "spair"


def test_a_given_root_is_the_dataset_folder(tmp_path, no_env):
    assert locate.dataset_root("pf-willow", tmp_path / "mine") == tmp_path / "mine"
    assert locate.dataset_root("pf-willow") == tmp_path / "downloads" / "pf-willow"


def test_one_not_found_error_names_the_folder_and_the_fix(tmp_path):
    (tmp_path / "inner").mkdir()
    assert locate.dataset_folder(tmp_path, ["missing", "inner"], "tss") == tmp_path / "inner"
    with pytest.raises(DataNotFoundError, match=r"missing.*macos-lite download tss"):
        locate.dataset_folder(tmp_path, ["missing"], "tss")
