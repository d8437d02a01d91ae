"""`python -m plsearch.export`: the export command (plsearch.cli.export)."""

from plsearch.cli.export import main

raise SystemExit(main())
