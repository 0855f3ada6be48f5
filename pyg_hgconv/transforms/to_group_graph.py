r"""An image as a group graph, as a PyG transform (the twin of PyG's ``ToSLIC``)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.data.datapipes import functional_transform
from torch_geometric.transforms import BaseTransform

from pyg_hgconv.data.group_graph import GroupGraph
from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph
from pyg_hgconv.utils.checks import all_finite

__all__ = ["ToGroupGraph"]


@functional_transform("to_group_graph")
class ToGroupGraph(BaseTransform):
    r"""Converts an image into an HG-Conv group graph (functional name:
    :obj:`to_group_graph`): the pixels are clustered by differentiable SLIC
    into about ``num_groups`` groups (Algorithm 1, parameter-free: no learned
    embedding, fixed scales), and the groups become nodes with their mean
    colour in ``x``, their centroid in ``pos``, and direction-typed, weighted
    edges (Eqs. 4 and 7) in ``edge_index``, ``edge_type``, ``edge_weight``,
    plus the assignment that maps them back to the pixels
    (:func:`~pyg_hgconv.unpool`; see :class:`~pyg_hgconv.GroupGraph`).

    Deterministic: an image always gives the same graph (the centre sampling
    is seeded with ``seed`` per image), the same graph the batched module
    :class:`~pyg_hgconv.ImageToGroupGraph` gives it in any batch, so PyG's
    ``DataLoader`` over these graphs collates exactly what the batched module
    computes. Composable with PyG's transforms::

        import torch_geometric.transforms as T
        from pyg_hgconv.transforms import ToGroupGraph

        transform = T.Compose([ToGroupGraph(num_groups=75), T.Cartesian()])
        graph = transform(image)          # image: [C, H, W] float tensor

    Args:
        num_groups (int, optional): groups per image (default 75 when neither
            it nor ``ratio`` is given).
        ratio (float, optional): groups per pixel instead.
        image_key (str): the attribute holding the image when the input is a
            :class:`~torch_geometric.data.Data` (default ``"img"``); its other
            attributes (e.g. the label ``y``) are carried over.
        add_img (bool): keep the image on the graph (``img``, ``[1, C, H, W]``,
            as :class:`~torch_geometric.transforms.ToSLIC` does).
        **kwargs: options of :class:`~pyg_hgconv.ImageToGroupGraph`
            (``sampler``, ``num_iterations``, ``direction_rule``,
            ``edge_threshold``, ``seed``, ...).

    Input: a float tensor ``[C, H, W]`` (or ``[H, W]``, one channel), or a
    :class:`~torch_geometric.data.Data` holding one under ``image_key``.
    Output: a :class:`~pyg_hgconv.GroupGraph`.
    """

    def __init__(self, num_groups: int | None = None, ratio: float | None = None, *,
                 image_key: str = "img", add_img: bool = False, **kwargs: Any):
        if num_groups is None and ratio is None:
            num_groups = 75
        for forbidden in ("embed_channels", "learnable", "in_channels"):
            if forbidden in kwargs:
                raise TypeError(f"ToGroupGraph is parameter-free: '{forbidden}' is not an "
                                "option (use ImageToGroupGraph for a learned clustering)")
        self.image_key = image_key
        self.add_img = add_img
        self.module = ImageToGroupGraph(num_groups=num_groups, ratio=ratio, embed_channels=None,
                                        learnable=False, **kwargs).eval()

    def image_of(self, data: Tensor | Data) -> Tensor:
        """The ``[C, H, W]`` image of an input (with the checks of the class docstring)."""
        image = data
        if isinstance(data, Data):
            if self.image_key not in data:
                raise ValueError(f"'data' has no image under {self.image_key!r} (keys: "
                                 f"{sorted(data.keys())}); set image_key=")
            image = data[self.image_key]
        if not isinstance(image, Tensor):
            raise TypeError(f"the image must be a torch.Tensor [C, H, W] "
                            f"(got {type(image).__name__})")
        if image.dim() == 2:
            image = image.unsqueeze(0)
        if image.dim() == 4 and image.size(0) == 1:
            image = image[0]
        if image.dim() != 3:
            raise ValueError(f"the image must have shape [C, H, W] (got {tuple(image.shape)})")
        if not torch.is_floating_point(image):
            raise TypeError(f"the image must be a floating-point tensor (got {image.dtype}); "
                            "convert it, e.g. image.float() / 255")
        if image.numel() == 0:
            raise ValueError(f"the image is empty (shape {tuple(image.shape)})")
        num_groups = self.module.num_groups
        if num_groups is not None and num_groups > image.size(1) * image.size(2):
            raise ValueError(f"'num_groups' ({num_groups}) exceeds the {image.size(1)} x "
                             f"{image.size(2)} pixels of the image")
        if not all_finite(image):
            raise ValueError("the image must be finite (it holds NaN or infinite values)")
        return image

    @torch.no_grad()
    def forward(self, data: Tensor | Data) -> GroupGraph:
        image = self.image_of(data)
        graph = self.module(image.unsqueeze(0), as_batch=False).split_images()[0]
        if self.add_img:
            graph.img = image.unsqueeze(0)
        if isinstance(data, Data):
            for key, value in data.items():
                if key != self.image_key and key not in graph:
                    graph[key] = value
        return graph

    def __repr__(self) -> str:
        size = (f"num_groups={self.module.num_groups}" if self.module.num_groups is not None
                else f"ratio={self.module.ratio:g}")
        return f"{self.__class__.__name__}({size})"
