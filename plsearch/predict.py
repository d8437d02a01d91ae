"""`python -m plsearch.predict`: the predict command (plsearch.cli.predict)."""

from plsearch.cli.predict import main

raise SystemExit(main())
