"""``python -m kta ...``: the ``kta`` command (how the supervisor starts its children)."""

from kta.cli import main

raise SystemExit(main())
