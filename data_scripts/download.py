#!/usr/bin/env python
"""Download, verify and extract a real benchmark: the same as ``macos-lite download``.

    python data_scripts/download.py pf-willow [--root DIR] [--force] [--quiet]
    python data_scripts/download.py --list

All logic lives in ``macos_lite.data.download``; this script only makes it runnable from a checkout.
"""

import sys
from pathlib import Path

# Use the package of this checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from macos_lite.data.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
