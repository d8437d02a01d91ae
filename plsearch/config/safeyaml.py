"""Read a user's YAML file with bounds: its size, and the size its aliases expand to.

A 1 kB file of nested aliases (``&a [*b, *b, ...]``, "billion laughs") loads as a small shared
Python structure but expands to millions of values as soon as it is copied, stored (a study's user
attributes are JSON) or printed. ``load_yaml`` refuses a file over ``MAX_BYTES`` and a document that
expands to more than ``MAX_NODES`` values, counting the composed node graph without expanding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_BYTES", "MAX_NODES", "YamlLimitError", "load_yaml", "expanded_nodes"]

MAX_BYTES = 1 << 20  # 1 MiB: a search space or config is a few kB
MAX_NODES = 100_000  # values after alias expansion


class YamlLimitError(ValueError):
    """The YAML file is too big, or its aliases expand too far; the message says which and the fix."""


def expanded_nodes(node: yaml.Node, limit: int = MAX_NODES) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (stops counting past ``limit``)."""
    memo: dict[int, int] = {}

    def count(n: yaml.Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a node that contains itself (a recursive alias) expands without end
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += count(child)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += count(k) + count(v)
                if total > limit:
                    break
        memo[key] = min(total, limit + 1)
        return memo[key]

    return count(node)


def load_yaml(path: str | Path, *, what: str = "file", max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load`` of ``path`` within the bounds; ``YamlLimitError`` (one line) when over them.

    YAML syntax errors propagate as ``yaml.YAMLError`` for the caller to place (line, column).
    """
    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise YamlLimitError(
            f"{what} {p} is {size:,} bytes, over the limit of {max_bytes:,}; a {what} is a few kB: pass the right file"
        )
    text = p.read_bytes()[: max_bytes + 1].decode("utf-8", errors="replace")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None
    n = expanded_nodes(node, max_nodes)
    if n > max_nodes:
        raise YamlLimitError(
            f"{what} {p} expands to more than {max_nodes:,} values through its aliases (&/*); "
            "write the values out or use fewer nested aliases"
        )
    return yaml.safe_load(text)
