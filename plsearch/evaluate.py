"""`python -m plsearch.evaluate`: the evaluate command (plsearch.cli.evaluate)."""

from plsearch.cli.evaluate import main

raise SystemExit(main())
