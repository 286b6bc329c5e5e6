"""``python -m services.recorder [migrate | export ...]``; see ``services/recorder/cli.py``."""

from __future__ import annotations

from services.recorder.cli import main

raise SystemExit(main())
