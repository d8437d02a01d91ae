"""`python -m plsearch.confirm`: the confirm command (plsearch.cli.confirm)."""

from plsearch.cli.confirm import main

raise SystemExit(main())
