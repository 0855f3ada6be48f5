"""FLOPs of HG and grid networks, counted on the group graphs each image gets.

* :mod:`.rules` -- the counting rules, pure functions of sizes (one per op);
* :mod:`.modules` -- the rules of leaf modules and :func:`register_module_rule`
  for other packages' layers;
* :mod:`.counter` -- :func:`count_flops`, :func:`average_flops`,
  :func:`conv_flops` and :class:`FlopCount`.

Graph convs carry their rule in their registry entry
(:class:`~pyg_hgconv.nn.conv.registry.ConvSpec`). Names are imported on first
use, so the pure rules can be imported without the counter.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "COMPONENTS": "pyg_hgconv.profile.counter",
    "FlopCount": "pyg_hgconv.profile.counter",
    "average_flops": "pyg_hgconv.profile.counter",
    "conv_flops": "pyg_hgconv.profile.counter",
    "count_flops": "pyg_hgconv.profile.counter",
    "GraphSize": "pyg_hgconv.profile.rules",
    "leaf_flops": "pyg_hgconv.profile.modules",
    "register_module_rule": "pyg_hgconv.profile.modules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyg_hgconv.profile' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
