"""`python -m plsearch.report`: the report command (plsearch.cli.report)."""

from plsearch.cli.report import main

raise SystemExit(main())
