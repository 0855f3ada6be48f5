r"""The group graph: a PyG :class:`~torch_geometric.data.Data` that remembers
which pixels formed each node.

Besides the usual graph attributes, a group graph stores the sparse
assignment :math:`S` (paper, Sec. 4) of its image's pixels to its groups, in
coordinate format like a bipartite ``edge_index``: ``assign_index = [pixel;
group]`` (``[2, nnz]``, sorted by pixel) and ``assign_weight`` (``[nnz]``,
:math:`S_{pg}`, rows sum to one). Pixel ``p`` runs row-major over the image.
This is all :func:`~pyg_hgconv.unpool` needs to map group features back to the
grid (Eq. 6), and a decoder can re-use it to pool another feature map of the
same size. A batch built by :class:`~pyg_hgconv.ImageToGroupGraph` also keeps
the same :math:`S` in tiled form (a private attribute, not collated; see
:func:`~pyg_hgconv.nn.pool.tiling.tiled_assignment_of`), which pooling and unpooling
use while ``assign_weight`` is the tensor it was built with.

Many graphs are batched by :func:`make_group_batch` without a Python loop over
images; ``batch[i]`` / ``batch.to_data_list()`` recover the per-image graphs
with local indices, as for any PyG batch.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

#: attributes indexed by pixel rather than by group or edge
PIXEL_ATTRS = ("importance",)


class GroupGraph(Data):
    r"""A direction-typed group graph of one image (or a batch of them).

    Attributes:
        x (Tensor, optional): pooled group features :math:`[N_{grp}, C]` (Eq. 5).
        pos (Tensor): group centroids :math:`[N_{grp}, 2]` as ``(x, y)`` pixels.
        edge_index (LongTensor): ``[2, E]`` (source, target).
        edge_type (LongTensor): ``[E]`` direction type 0..8 (4 = self loop).
        edge_weight (Tensor): ``[E]`` adjacency weight :math:`\hat{A}^\delta`.
        assign_index (LongTensor): ``[2, nnz]`` (pixel, group) pairs of
            :math:`S`, sorted by pixel.
        assign_weight (Tensor): ``[nnz]`` assignment weights :math:`S_{pg}`.
        mass (Tensor): ``[N_{grp}]`` soft pixel count :math:`\sum_p S_{pg}`.
        center_pixel (LongTensor): ``[N_{grp}]`` row-major index of the sampled
            cluster centre of each group within its image.
        importance (Tensor, optional): ``[N_{pix}]`` the importance (or focus)
            map that drove the centre sampling.
        image_size (LongTensor): ``[1, 2]`` per image, ``(H, W)``.
    """

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key in PIXEL_ATTRS:
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "assign_index":
            return torch.tensor([[self.num_pixels], [self.num_nodes]])
        if key == "center_pixel":
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def num_pixels(self) -> int:
        """Number of pixels of the image(s): ``sum(H * W)``."""
        size = self.image_size
        return int((size[:, 0] * size[:, 1]).sum())


def _slices(counts: Tensor) -> Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def make_group_batch(
    *,
    x: Tensor | None,
    pos: Tensor,
    edge_index: Tensor,
    edge_type: Tensor,
    edge_weight: Tensor,
    assign_index: Tensor,
    assign_weight: Tensor,
    mass: Tensor,
    center_pixel: Tensor,
    groups_per_image: Tensor,
    image_size: tuple[int, int],
    importance: Tensor | None = None,
) -> Batch:
    r"""Assemble a batch of :class:`GroupGraph` from concatenated tensors.

    Node-level tensors are ordered image by image (``groups_per_image`` nodes
    each); pixel-level tensors hold ``H * W`` rows per image; ``edge_index``
    and ``assign_index`` use global node (and pixel) indices. Edges must be
    grouped by the image of their target and assignment entries by pixel.
    """
    device = pos.device
    batch_size = int(groups_per_image.numel())
    height, width = image_size
    num_pixels = height * width
    counts = groups_per_image.to(device=device, dtype=torch.long)
    node_slices = _slices(counts)
    batch_vec = torch.repeat_interleave(torch.arange(batch_size, device=device), counts)
    edge_slices = _slices(torch.bincount(batch_vec[edge_index[1]], minlength=batch_size))
    entry_slices = _slices(torch.bincount(assign_index[0] // num_pixels, minlength=batch_size))
    pixel_slices = torch.arange(batch_size + 1, device=device) * num_pixels
    graph_slices = torch.arange(batch_size + 1, device=device)
    node_inc = node_slices[:-1]
    zeros = torch.zeros(batch_size, dtype=torch.long, device=device)

    out = Batch(_base_cls=GroupGraph)
    slice_dict: dict[str, Tensor] = {}
    inc_dict: dict[str, Tensor] = {}

    def put(key: str, value: Tensor | None, slices: Tensor, inc: Tensor = zeros) -> None:
        if value is None:
            return
        out[key] = value
        slice_dict[key] = slices.cpu()
        inc_dict[key] = inc.cpu()

    put("x", x, node_slices)
    put("pos", pos, node_slices)
    put("edge_index", edge_index, edge_slices, node_inc)
    put("edge_type", edge_type, edge_slices)
    put("edge_weight", edge_weight, edge_slices)
    assign_inc = torch.stack([pixel_slices[:-1], node_inc], dim=1).unsqueeze(-1)
    put("assign_index", assign_index, entry_slices, assign_inc)
    put("assign_weight", assign_weight, entry_slices)
    put("mass", mass, node_slices)
    put("center_pixel", center_pixel, node_slices)
    put("importance", importance, pixel_slices)
    # One row per image; an empty batch keeps one row so (H, W) is not lost.
    put(
        "image_size",
        torch.tensor([[height, width]], device=device).repeat(max(batch_size, 1), 1),
        graph_slices,
    )
    out.batch = batch_vec
    out.ptr = node_slices
    out.num_nodes = int(node_slices[-1])
    out._num_graphs = batch_size
    out._slice_dict = slice_dict
    out._inc_dict = inc_dict
    return out
