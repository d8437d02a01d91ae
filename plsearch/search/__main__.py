"""``python -m plsearch.search --space FILE``: see ``plsearch.cli.search``."""

from plsearch.cli.search import main

if __name__ == "__main__":
    raise SystemExit(main())
