"""`python -m plsearch.train`: the train command (plsearch.cli.train)."""

from plsearch.cli.train import main

raise SystemExit(main())
