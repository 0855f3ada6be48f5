r"""The group graph: a PyG :class:`~torch_geometric.data.Data` that remembers
which pixels formed each node.

Besides the usual graph attributes, a group graph stores the sparse
assignment :math:`S` (paper, Sec. 4) of its image's pixels to its groups, in
coordinate format like a bipartite ``edge_index``: ``assign_index = [pixel;
group]`` (``[2, nnz]``, sorted by pixel) and ``assign_weight`` (``[nnz]``,
:math:`S_{pg}`, rows sum to one). Pixel ``p`` runs row-major over the image.
This is all :func:`~pyg_hgconv.unpool` needs to map group features back to the
grid (Eq. 6), and a decoder can re-use it to pool another feature map of the
same size.

A graph built by :class:`~pyg_hgconv.ImageToGroupGraph` also holds the same
:math:`S` in tiled form (:mod:`pyg_hgconv.nn.pool.tiling`), as three declared
attributes that survive ``.to()``, ``.clone()``, indexing and collation like
any other: ``tile_weight`` (the ``[tiles, m, pixels per tile]`` blocks,
flattened), ``tile_candidates`` (the group of every block row, flattened; its
increment is the number of nodes) and ``tiling`` (a tuple ``(H, W, tile_h,
tile_w, m)``; a list of them after collation). Pooling and unpooling use the
tiled form whenever a graph has it; code that replaces ``assign_weight`` must
also delete ``tile_weight`` (the two are the same matrix).

Many images form one graph in two ways, with the same attributes:

* the *disjoint union* of :func:`make_group_graph`: one :class:`GroupGraph`
  with ``batch`` and ``ptr`` vectors, built without a Python loop over images
  (what the HG modules run on);
* a PyG :class:`~torch_geometric.data.Batch` of per-image graphs
  (:meth:`GroupGraph.to_batch`, or PyG's ``DataLoader`` on per-image graphs);
  ``batch[i]`` and ``batch.to_data_list()`` give the images back.
"""
from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

#: attributes indexed by pixel rather than by group or edge
PIXEL_ATTRS = ("importance",)
#: attributes that hold one entry per element of the tiled assignment
TILE_ATTRS = ("tile_weight", "tile_candidates")
#: what a union made by :func:`make_group_graph` holds
UNION_ATTRS = frozenset({"x", "pos", "edge_index", "edge_type", "edge_weight", "assign_index",
                         "assign_weight", "mass", "center_pixel", "image_size", "importance",
                         "tile_weight", "tile_candidates", "tiling", "batch", "ptr", "num_nodes"})


class GroupGraph(Data):
    r"""A direction-typed group graph of one image (or the disjoint union of many).

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
        tile_weight, tile_candidates, tiling (optional): the tiled form of
            :math:`S` (module docstring).
        batch, ptr (LongTensor, optional): image of every node and node offsets
            of the images, in a disjoint union of several images.
    """

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key in PIXEL_ATTRS or key in TILE_ATTRS:
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "assign_index":
            return torch.tensor([[self.num_pixels], [self.num_nodes]])
        if key == "tile_candidates":
            return self.num_nodes
        if key in ("center_pixel", "tile_weight"):
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def num_images(self) -> int:
        """Images of the graph (from shapes only, no host synchronisation): one
        per ``ptr`` interval of a union or batch, else one per ``image_size`` row."""
        if "ptr" in self:
            return int(self.ptr.numel()) - 1
        return int(self.image_size.size(0))

    @property
    def num_pixels(self) -> int:
        """Number of pixels of the image(s): ``sum(H * W)``."""
        size = self.image_size
        return int((size[:, 0] * size[:, 1]).sum())

    def split_images(self) -> list[GroupGraph]:
        """The per-image graphs of a disjoint union (:func:`make_group_graph`),
        with image-local node and pixel indices; a graph of one image gives
        ``[self]``."""
        if "ptr" not in self:
            return [self]
        if self.num_images == 1:  # the union of one image is its graph
            graph = copy.copy(self)
            del graph.batch, graph.ptr
            return [graph]
        return _split_union(self)

    @property
    def num_graphs(self) -> int:
        """The images of the graph (:attr:`num_images`), as a PyG batch counts them."""
        return self.num_images

    def to_batch(self) -> Batch | GroupGraph:
        """A PyG :class:`~torch_geometric.data.Batch` of the graph's images: the
        batch :meth:`Batch.from_data_list` makes of :meth:`split_images`, built
        without splitting and collating again (the union's tensors already are the
        batch's; the two share them); a union of no images stays what it is (PyG
        has no empty batch)."""
        if isinstance(self, Batch) or self.num_images == 0:
            return self
        if "ptr" not in self or not set(self.keys()) <= UNION_ATTRS:
            return Batch.from_data_list(self.split_images())
        return _union_to_batch(self)


# Group graphs saved by torch.save (e.g. a PyG dataset's processed files) hold
# only tensors, tuples and this class: allow torch.load(weights_only=True) to
# rebuild it, as it does PyG's own data classes.
torch.serialization.add_safe_globals([GroupGraph])


def _counts_to_ptr(counts: Tensor) -> Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def make_group_graph(
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
    tile_weight: Tensor | None = None,
    tile_candidates: Tensor | None = None,
    tiling: tuple[int, int, int, int, int] | None = None,
) -> GroupGraph:
    r"""The disjoint union of the group graphs of ``B`` images of one size.

    Node-level tensors are ordered image by image (``groups_per_image`` nodes
    each), pixel-level tensors hold ``H * W`` rows per image; ``edge_index`` and
    ``assign_index`` use global node (and pixel) indices. Edges must be grouped
    by the image of their target and assignment entries by pixel (what
    :meth:`GroupGraph.split_images` relies on). The result has ``batch`` and
    ``ptr`` like a PyG batch; :meth:`GroupGraph.to_batch` makes it one.
    """
    device = pos.device
    counts = groups_per_image.to(device=device, dtype=torch.long)
    height, width = image_size
    batch_size = int(counts.numel())
    graph = GroupGraph(
        pos=pos, edge_index=edge_index, edge_type=edge_type, edge_weight=edge_weight,
        assign_index=assign_index, assign_weight=assign_weight, mass=mass,
        center_pixel=center_pixel,
        # one row per image; an empty union keeps one row so (H, W) is not lost
        image_size=torch.tensor([[height, width]], device=device).repeat(max(batch_size, 1), 1),
        batch=torch.repeat_interleave(torch.arange(batch_size, device=device), counts),
        ptr=_counts_to_ptr(counts), num_nodes=int(pos.size(0)))
    if x is not None:
        graph.x = x
    if importance is not None:
        graph.importance = importance
    if tile_weight is not None:
        graph.tile_weight = tile_weight
        graph.tile_candidates = tile_candidates
        graph.tiling = tuple(int(v) for v in tiling)
    return graph


class _ImageRows(NamedTuple):
    """Which image the edges and assignment entries of a union belong to."""
    num_pixels: int      # pixels per image
    edge_image: Tensor   # [E]: the image of every edge (of its target)
    entry_image: Tensor  # [nnz]: the image of every entry of S (of its pixel)
    edge_counts: Tensor  # [B] edges per image, on the CPU
    entry_counts: Tensor  # [B] entries per image, on the CPU


def _image_rows(graph: GroupGraph) -> _ImageRows:
    """:class:`_ImageRows` of a union of images of one size."""
    b = graph.num_images
    height, width = (int(v) for v in graph.image_size[0])
    num_pixels = height * width
    edge_image = graph.batch[graph.edge_index[1]]
    entry_image = graph.assign_index[0] // num_pixels
    return _ImageRows(num_pixels, edge_image, entry_image,
                      torch.bincount(edge_image, minlength=b).cpu(),
                      torch.bincount(entry_image, minlength=b).cpu())


def _image_tiling(tiling: Any, i: int) -> tuple:
    """The ``tiling`` tuple of image ``i``: a union holds one for all its images,
    PyG's ``.to()`` and collation make a list of them."""
    return tuple(tiling[i] if isinstance(tiling[0], (list, tuple)) else tiling)


def _union_to_batch(graph: GroupGraph) -> Batch:
    """:meth:`GroupGraph.to_batch` of a union of images: the union's tensors with
    the slices and increments PyG's collation records (per image: its rows of
    every attribute, and what was added to its indices), so that ``batch[i]`` and
    ``batch.to_data_list()`` give :meth:`GroupGraph.split_images` back."""
    b = graph.num_images
    nodes = graph.ptr.to("cpu", copy=True)  # the record's own, not the batch's ptr
    rows = _image_rows(graph)
    images = torch.arange(b + 1)
    edges, entries = _counts_to_ptr(rows.edge_counts), _counts_to_ptr(rows.entry_counts)
    offsets, none = nodes[:-1], torch.zeros(b, dtype=torch.long)
    layout = {  # attribute -> (slices, increments)
        "image_size": (images, none), "x": (nodes, none), "pos": (nodes, none),
        "mass": (nodes, none), "center_pixel": (nodes, none),
        "edge_index": (edges, offsets), "edge_type": (edges, none), "edge_weight": (edges, none),
        "assign_index": (entries, torch.stack([images[:-1] * rows.num_pixels, offsets], 1)
                         .unsqueeze(-1)),
        "assign_weight": (entries, none), "importance": (images * rows.num_pixels, none)}
    if "tile_weight" in graph:
        layout["tile_weight"] = (images * (graph.tile_weight.numel() // b), none)
        layout["tile_candidates"] = (images * (graph.tile_candidates.numel() // b), offsets)
    batch = Batch(_base_cls=GroupGraph)
    slices, incs = {}, {}
    for key, (slice_, inc) in layout.items():
        if key in graph:
            batch[key] = graph[key]
            slices[key], incs[key] = slice_, inc
    if "tiling" in graph:
        batch.tiling = [_image_tiling(graph.tiling, i) for i in range(b)]
        slices["tiling"], incs["tiling"] = images, None
    counts = nodes.diff().tolist()
    batch._store._num_nodes = counts
    batch.num_nodes = sum(counts)
    batch.batch, batch.ptr = graph.batch, graph.ptr
    batch._num_graphs, batch._slice_dict, batch._inc_dict = b, slices, incs
    return batch


def _split_union(graph: GroupGraph) -> list[GroupGraph]:
    """:meth:`GroupGraph.split_images` of a union of several images."""
    b = graph.num_images
    ptr = graph.ptr
    rows = _image_rows(graph)
    num_pixels, edge_image, entry_image = rows.num_pixels, rows.edge_image, rows.entry_image
    node_counts = ptr.diff().tolist()
    edge_counts, entry_counts = rows.edge_counts.tolist(), rows.entry_counts.tolist()
    # image-local indices, computed for all images at once
    edge_index = graph.edge_index - ptr[edge_image]
    assign_index = graph.assign_index - torch.stack([entry_image * num_pixels,
                                                     ptr[entry_image]])
    per_node = {k: graph[k].split(node_counts) for k in ("x", "pos", "mass", "center_pixel")
                if k in graph}
    per_edge = {"edge_index": edge_index.split(edge_counts, dim=1)}
    for key in ("edge_type", "edge_weight"):
        if key in graph:
            per_edge[key] = graph[key].split(edge_counts)
    per_entry = {"assign_index": assign_index.split(entry_counts, dim=1),
                 "assign_weight": graph.assign_weight.split(entry_counts)}
    per_pixel = ({"importance": graph.importance.split(num_pixels)}
                 if "importance" in graph else {})
    tiles = {}
    if "tile_weight" in graph:
        per_image = graph.tile_weight.numel() // b
        tiles["tile_weight"] = graph.tile_weight.split(per_image)
        slots = graph.tile_candidates.numel() // b
        cand = graph.tile_candidates.view(b, slots) - ptr[:-1].view(b, 1)
        tiles["tile_candidates"] = cand.unbind(0)
    graphs = []
    for i in range(b):
        data = GroupGraph(image_size=graph.image_size[i:i + 1], num_nodes=node_counts[i])
        for group in (per_node, per_edge, per_entry, per_pixel, tiles):
            for key, parts in group.items():
                data[key] = parts[i]
        if "tiling" in graph:
            data.tiling = _image_tiling(graph.tiling, i)
        graphs.append(data)
    return graphs
