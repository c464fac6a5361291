"""`python -m ginie_server` runs `ginie-server`."""

from ginie_server.cli import main

raise SystemExit(main())
