"""``plsearch VERB [ARGS]`` (console script) and ``python -m plsearch VERB``: the one front door.

Each verb is a module of this package with ``main(argv) -> int``; ``python -m plsearch.VERB`` reaches the same
function through a three-line entry shim.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

# verb -> what it does (one line, shown by ``plsearch --help``)
VERBS: dict[str, str] = {
    "search": "search a space: Pareto front of accuracy against size, plots, kept weights",
    "train": "train one config (a preset, a YAML, a search trial) with the paper's protocol",
    "evaluate": "a checkpoint's metrics on a split, with figures",
    "predict": "masks for image files or folders",
    "profile": "params, MACs, latency and memory of a model",
    "export": "TorchScript / ONNX export of a checkpoint",
    "report": "rewrite a study's tables and plots",
    "confirm": "retrain a front with seeds and judge it on the test split",
    "fidelity": "does a low fidelity rank configs like a high one?",
    "table": "record a truth table of a space, in chunks",
    "runs": "one worker of a runs study (started by --workers)",
}


def _command(verb: str) -> Callable[[Sequence[str] | None], int]:
    if verb == "search":
        from plsearch.cli.search import main
    elif verb == "train":
        from plsearch.cli.train import main
    elif verb == "evaluate":
        from plsearch.cli.evaluate import main
    elif verb == "predict":
        from plsearch.cli.predict import main
    elif verb == "profile":
        from plsearch.cli.profile import main
    elif verb == "export":
        from plsearch.cli.export import main
    elif verb == "report":
        from plsearch.cli.report import main
    elif verb == "confirm":
        from plsearch.cli.confirm import main
    elif verb == "fidelity":
        from plsearch.cli.fidelity import main
    elif verb == "table":
        from plsearch.cli.table import main
    else:
        from plsearch.cli.runs import main
    return main


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [
        "usage: plsearch VERB [ARGS]  (or python -m plsearch VERB; plsearch VERB --help for its flags)",
        "",
        "verbs:",
    ]
    lines += [f"  {v:<{width}}  {what}" for v, what in VERBS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        import plsearch

        print(f"plsearch {plsearch.__version__}")
        return 0
    verb = args[0]
    if verb not in VERBS:
        print(f"error: unknown verb {verb!r}; choose one of {', '.join(VERBS)} (plsearch --help)", file=sys.stderr)
        return 2
    return int(_command(verb)(args[1:]) or 0)
