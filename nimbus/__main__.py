"""``python -m nimbus``: the same as the ``nimbus`` command."""

from nimbus.cli import main

raise SystemExit(main())
