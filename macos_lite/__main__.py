"""``python -m macos_lite``: the ``macos-lite`` command (:mod:`macos_lite.cli`); notebook 08 builds its parser."""

from macos_lite.cli import main

raise SystemExit(main())
