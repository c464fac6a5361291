"""`python -m ginie_tui` runs the console command line."""

from ginie_tui.cli import main

raise SystemExit(main())
