"""`python -m plsearch VERB`: the one front door (plsearch.cli.main)."""

from plsearch.cli.main import main

raise SystemExit(main())
