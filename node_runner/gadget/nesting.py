"""Groups dotted field names into the nested object `-o json` prints, or refuses to.

`-o json` nests `proc.comm`, `proc.pid` as `{"proc": {"comm": ..., "pid": ...}}`, each parent
placed where its first field appears. A runner asked for nested data builds its JSON template
from this tree, so the tree must give exactly that object, key order included. When equality
is doubtful it returns None and the event data stays flat (the client decodes and nests): a name
that is also the parent of others (`src` and `src.addr`), a duplicate or empty key, or a top-level
key the container enrichment (`k8s.*`, `runtime.*`) also uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from node_runner.gadget.schema import ENRICHMENT_FIELDS

# A node's children in first-appearance order: (key, index of the field | subtree).
Tree = list[tuple[str, Union[int, "Tree"]]]

ENRICHMENT_ROOTS = frozenset(name.split(".")[0] for name in ENRICHMENT_FIELDS)


def nesting_tree(names: Sequence[str]) -> Tree | None:
    """The nested layout of `names` (leaves are indexes into `names`), or None to refuse."""
    root: Tree = []
    nodes: dict[tuple[str, ...], Tree] = {(): root}
    leaves: set[tuple[str, ...]] = set()
    for i, name in enumerate(names):
        parts = tuple(name.split("."))
        if "" in parts or parts[0] in ENRICHMENT_ROOTS or parts in leaves or parts in nodes:
            return None
        for depth in range(1, len(parts)):
            path = parts[:depth]
            if path in leaves:
                return None
            if path not in nodes:
                child: Tree = []
                nodes[parts[:depth - 1]].append((parts[depth - 1], child))
                nodes[path] = child
        leaves.add(parts)
        nodes[parts[:-1]].append((parts[-1], i))
    return root


def nests_cleanly(names: Sequence[str]) -> bool:
    """Whether `names` can be nested by the runner (see `nesting_tree`)."""
    return nesting_tree(names) is not None
