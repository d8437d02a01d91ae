"""`python -m plsearch.runs`: the runs command (plsearch.cli.runs)."""

from plsearch.cli.runs import main

raise SystemExit(main())
