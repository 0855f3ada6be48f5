"""Plots of learned TVConv affinity maps (Fig. 6 of the paper).

Uses matplotlib's object API with the Agg canvas, so it never touches the
global pyplot state or needs a display.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from torch import nn

from pyg_hgconv.viz.figure import new_figure, save_figure

from .conv import TVConv, tvconv_layers

__all__ = ["plot_affinity_maps", "tvconv_layers"]


def _named_layers(model_or_layers: nn.Module | Iterable) -> list[tuple[str, TVConv]]:
    if isinstance(model_or_layers, nn.Module):
        layers = tvconv_layers(model_or_layers)
    else:
        layers = []
        for i, item in enumerate(model_or_layers):
            name, layer = item if isinstance(item, tuple) else (f"layer {i}", item)
            if not isinstance(layer, TVConv):
                raise TypeError(f"'model_or_layers' item {i} is a {type(layer).__name__}, "
                                "expected a TVConv or a (name, TVConv) pair")
            layers.append((str(name), layer))
    if not layers:
        raise ValueError("'model_or_layers' contains no TVConv layer")
    return layers


def plot_affinity_maps(model_or_layers: nn.Module | Iterable, path: str | os.PathLike, *,
                       cmap: str = "viridis", dpi: int = 100, max_layers: int | None = None,
                       title: str | None = None) -> Path:
    """Save the affinity maps of TVConv layers as a PNG grid (paper Fig. 6).

    One column per layer (shallow to deep, left to right) and one row per
    affinity channel; each map has its own colour scale (a constant map is
    drawn flat, in the colour-map middle) and the column title gives the
    layer name and map size.

    Args:
        model_or_layers: a model (all its TVConv layers), a TVConv, or an
            iterable of TVConv layers or ``(name, TVConv)`` pairs.
        path: output ``.png`` path (parent directories are created). The file
            is written atomically.
        cmap: matplotlib colour map.
        dpi: resolution.
        max_layers: plot at most this many layers, evenly spaced over depth.
        title: optional figure title.

    Returns:
        The path of the written PNG.
    """

    layers = _named_layers(model_or_layers)
    if max_layers is not None:
        if max_layers < 1:
            raise ValueError(f"'max_layers' must be >= 1, got {max_layers}")
        if len(layers) > max_layers:
            step = (len(layers) - 1) / max(1, max_layers - 1)
            layers = [layers[round(i * step)] for i in range(max_layers)]
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"'path' must end in .png, got {str(path)!r}")
    rows = max(layer.affinity_channels for _, layer in layers)
    cols = len(layers)
    fig, axes = new_figure(rows, cols, figsize=(1.6 * cols + 0.4,
                                                1.6 * rows + (0.8 if title else 0.5)))
    for col, (name, layer) in enumerate(layers):
        maps = layer.affinity_maps.detach().float().cpu()
        for row in range(rows):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if row >= maps.shape[0]:
                ax.set_axis_off()
                continue
            image = maps[row].numpy()
            low, high = float(image.min()), float(image.max())
            if high - low < 1e-12:
                low, high = low - 1.0, high + 1.0
            ax.imshow(image, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
            if row == 0:
                ax.set_title(f"{name or 'tvconv'}\n{layer.size[0]}x{layer.size[1]}", fontsize=7)
            if col == 0:
                ax.set_ylabel(f"A[{row}]", fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=dpi)
