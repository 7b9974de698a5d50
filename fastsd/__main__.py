"""``python -m fastsd`` is the ``fastsd`` command."""

from .cli import main

raise SystemExit(main())
