import os

import pytest
import torch

from macos_lite.device import cap_threads
from macos_lite.paths import shared_data_root

cap_threads(2)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data():
    """The real development data (PF-WILLOW subset, TSS sample, Weizmann horses), or skip."""
    root = shared_data_root()
    if root is None:
        pytest.skip("real data not available: set MACOS_LITE_SHARED_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def lite_encoder():
    from macos_lite.backbones import build_encoder

    return build_encoder("lite", pretrained=True, mode="frozen").eval()
