"""`python -m plsearch.fidelity`: the fidelity command (plsearch.cli.fidelity)."""

from plsearch.cli.fidelity import main

raise SystemExit(main())
