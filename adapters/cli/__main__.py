"""``python -m adapters.cli``."""

from adapters.cli.evo import main

raise SystemExit(main())
