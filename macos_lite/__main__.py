from macos_lite.cli import main

raise SystemExit(main())
