"""Deprecated location: the downloader lives in :mod:`macos_lite.data.download`.

Importing this module gives that module itself, so old imports (``from macos_lite import download``) and
``python -m macos_lite.download`` keep working.
"""

import sys

from .data import download as _download

if __name__ == "__main__":
    sys.exit(_download.main())
else:
    sys.modules[__name__] = _download
