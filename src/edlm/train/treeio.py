"""Nested state (an optimizer's `state_dict()`, say) as flat safetensors tensors plus JSON, and back.

`split_tree(tree)` returns `(tensors, skeleton)`: every tensor leaf goes into `tensors` under its
dotted path ("state.0.exp_avg") and is replaced in the skeleton by `{"$tensor": path}`. Dicts are
stored as `{"$dict": [[key, value], ...]}` and tuples as `{"$tuple": [...]}`, so integer keys and
tuples come back exactly; everything else must be a JSON scalar or list. `join_tree` inverts it.
Nothing is pickled.
"""

from __future__ import annotations

import torch

JSON_SCALARS = (str, int, float, bool, type(None))


def split_tree(tree, prefix: str = "") -> tuple[dict[str, torch.Tensor], object]:
    """(tensors by dotted path, JSON-serialisable skeleton) of a nested dict/list/tuple of tensors and scalars."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(node, path: str):
        if isinstance(node, torch.Tensor):
            if path in tensors:
                raise ValueError(f"two tensors share the path {path!r}")
            tensors[path] = node.detach().cpu().contiguous()
            return {"$tensor": path}
        if isinstance(node, dict):
            return {"$dict": [[key, encode(value, f"{path}.{key}" if path else str(key))] for key, value in node.items()]}
        if isinstance(node, tuple):
            return {"$tuple": [encode(value, f"{path}.{i}") for i, value in enumerate(node)]}
        if isinstance(node, list):
            return [encode(value, f"{path}.{i}") for i, value in enumerate(node)]
        if isinstance(node, JSON_SCALARS):
            return node
        raise TypeError(f"cannot store a {type(node).__name__} at {path!r} without pickling")

    return tensors, encode(tree, prefix)


def join_tree(tensors: dict[str, torch.Tensor], skeleton):
    """Rebuild the nested structure that `split_tree` took apart."""
    if isinstance(skeleton, list):
        return [join_tree(tensors, value) for value in skeleton]
    if isinstance(skeleton, dict):
        if "$tensor" in skeleton:
            return tensors[skeleton["$tensor"]]
        if "$tuple" in skeleton:
            return tuple(join_tree(tensors, value) for value in skeleton["$tuple"])
        return {key: join_tree(tensors, value) for key, value in skeleton["$dict"]}
    return skeleton
