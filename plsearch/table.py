"""`python -m plsearch.table`: the table command (plsearch.cli.table)."""

from plsearch.cli.table import main

raise SystemExit(main())
