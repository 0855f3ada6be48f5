"""Figures without global state: an Agg-backed :class:`~matplotlib.figure.Figure`,
atomic PNG writing and images prepared for display.

matplotlib is imported inside the functions, so ``import pyg_hgconv.viz`` does not
load it, and ``pyplot`` is never used: no figure is registered globally, no
backend is switched and nothing stays open after a plot is written.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from pyg_hgconv.io.atomic import atomic_write_bytes


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.5),
               mosaic: Any = None, squeeze: bool = False, **subplot_kw: Any
               ) -> tuple[Any, Any]:
    """A :class:`~matplotlib.figure.Figure` on an Agg canvas and its axes.

    Args:
        nrows, ncols: the grid of axes (ignored when ``mosaic`` is given).
        figsize: size in inches.
        mosaic: a layout for :meth:`~matplotlib.figure.Figure.subplot_mosaic`
            (e.g. ``"AB;AC"``), for panels that span rows or columns.
        squeeze: squeeze the axes array like ``Figure.subplots``.
        **subplot_kw: passed to every axes.

    Returns:
        ``(figure, axes)``: ``axes`` is an ``[nrows, ncols]`` array (unless
        ``squeeze=True``), or a ``{label: Axes}`` dict for a ``mosaic``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    if mosaic is not None:
        return fig, fig.subplot_mosaic(mosaic, subplot_kw=subplot_kw or None)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically and return the path.

    The image is rendered in memory and written with
    :func:`pyg_hgconv.io.atomic.atomic_write_bytes`, so an interrupted run never
    leaves a truncated PNG. Parent directories are created.

    Raises:
        ValueError: ``path`` does not end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"'path' must end in .png (got {str(path)!r})")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def display_image(image: Tensor | np.ndarray) -> np.ndarray:
    """Prepare an image for ``imshow``: ``float [H, W, 3]`` in ``[0, 1]``.

    Accepts a tensor ``[C, H, W]`` (``C`` = 1 or 3) or ``[H, W]``, or an array
    ``[H, W]`` / ``[H, W, C]``; ``uint8`` is divided by 255. Grey is repeated to
    RGB. A float image outside ``[0, 1]`` (e.g. standardised) is rescaled to its
    own minimum and maximum; a constant image becomes mid-grey.

    Raises:
        TypeError: ``image`` is not a tensor or array.
        ValueError: the shape is not one of the above.
    """
    if isinstance(image, Tensor):
        array = image.detach().cpu()
        if array.dim() == 3:
            array = array.permute(1, 2, 0)
        array = array.numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"'image' must be a torch.Tensor or numpy array "
                        f"(got {type(image).__name__})")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) == 0:
        raise ValueError(f"'image' must be [C, H, W] (tensor) or [H, W, C] (array) with "
                         f"C in (1, 3), or [H, W] (got shape {tuple(image.shape)})")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = np.nan_to_num(array.astype(np.float32))
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            array = (array - low) / (high - low) if high > low else np.full_like(array, 0.5)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.clip(array, 0.0, 1.0)


def as_numpy(x: Tensor) -> np.ndarray:
    """``x`` detached, on the CPU, as a float64/int64 numpy array."""
    x = x.detach().cpu()
    return (x.double() if x.is_floating_point() else x.long()).numpy()


__all__ = ["as_numpy", "display_image", "new_figure", "save_figure"]
