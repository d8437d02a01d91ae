"""`python -m plsearch.profile`: the profile command (plsearch.cli.profile)."""

from plsearch.cli.profile import main

raise SystemExit(main())
