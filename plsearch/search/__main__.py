"""`python -m plsearch.search --space FILE`: the search command (plsearch.cli.search)."""

from plsearch.cli.search import main

raise SystemExit(main())
