r"""The tiled (block-sparse) form of the assignment :math:`S`.

The pixel grid is cut into tiles of ``tile_h x tile_w`` pixels (the last row
and column of tiles are zero-padded). All pixels of a tile share one short
list of ``m`` candidate groups, as SSN [Jampani et al. 2018] lets every pixel
of a grid cell choose among the 9 surrounding superpixels
(:meth:`TileGrid.for_spacing`). Restricted to the
pixels of tile :math:`t` and to its candidates, :math:`S` is a small dense
block :math:`S_t` of shape ``[m, P]`` (``P = tile_h * tile_w``); every other
entry of :math:`S` is zero. The blocks of all tiles form one ``[T, m, P]``
tensor, so pooling (Eq. 5), unpooling (Eq. 6) and the clustering itself are
batched matrix products over tiles instead of gathers and scatters over
pixels, and :math:`S` never exists as an ``N_pix x N_grp`` matrix: it has
``T m P = m N_pix`` stored entries (padding aside).

:class:`TileGrid` is the geometry (feature map <-> tiles), :class:`TiledAssignment`
the assignment with its pooling and unpooling; :meth:`TiledAssignment.to_coo`
returns the coordinate form and :meth:`TiledAssignment.graph_attributes` the
declared attributes a group graph stores it in
(:mod:`pyg_hgconv.data.group_graph`, read back by :func:`tiled_assignment_of`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_hgconv.nn.pool.fused_coo import fused_coo_applies, fused_tiles_to_coo
from pyg_hgconv.nn.pool.fused_pooling import (
    fused_pool,
    fused_pool_applies,
    fused_unpool,
    fused_unpool_applies,
)
from pyg_hgconv.utils.checks import check_float_tensor, check_positive_int
from pyg_hgconv.utils.sparse import SegmentSum

_EPS = 1e-12


def mass_eps(t: Tensor) -> float:
    """The guard of a division by a mass of ``t``'s dtype: 1e-12, or the
    smallest normal number where that underflows (half precision)."""
    return max(_EPS, torch.finfo(t.dtype).tiny)


@dataclass(frozen=True)
class TileGrid:
    """Cut ``batch_size`` images of ``height x width`` pixels into tiles of
    ``tile_h x tile_w`` pixels, row-major, image-major: tile
    ``t = (b * tiles_y + ty) * tiles_x + tx``; pixel ``(a, c)`` of a tile is
    position ``a * tile_w + c``."""

    batch_size: int
    height: int
    width: int
    tile_h: int
    tile_w: int

    def __post_init__(self) -> None:
        for name in ("batch_size", "height", "width", "tile_h", "tile_w"):
            check_positive_int(getattr(self, name), name)

    @classmethod
    def for_spacing(cls, batch_size: int, height: int, width: int, spacing: float,
                    num_candidates: int = 12) -> TileGrid:
        """Tiles of about one by two centre spacings (``spacing`` is the mean
        distance between cluster centres) for at least 12 candidates, of one
        by one spacing for fewer; capped at the image size.

        SSN lets the pixels of a grid cell choose among the 3 x 3 cells around
        it; a tile one spacing tall and two wide has 3 x 4 spacings around it,
        hence 12 candidates. Each row of such a tile is a run of about
        ``2 * spacing`` pixels in memory, which makes the copies between the
        image and the tile layout much faster than with square tiles (for an
        8-pixel spacing: runs of 16 floats instead of 8). ``python -m
        benchmarks.hgconv_perf`` reports how often the candidates hold a
        pixel's nearest centre.
        """
        side = max(1, round(spacing))
        wide = 2 * side if num_candidates >= 12 else side
        return cls(batch_size, height, width, min(side, height), min(wide, width))

    @property
    def tiles_y(self) -> int:
        return math.ceil(self.height / self.tile_h)

    @property
    def tiles_x(self) -> int:
        return math.ceil(self.width / self.tile_w)

    @property
    def tiles_per_image(self) -> int:
        return self.tiles_y * self.tiles_x

    @property
    def num_tiles(self) -> int:
        return self.batch_size * self.tiles_per_image

    @property
    def tile_pixels(self) -> int:
        return self.tile_h * self.tile_w

    @property
    def padded(self) -> bool:
        return self.tiles_y * self.tile_h != self.height or self.tiles_x * self.tile_w != self.width

    def to_tiles(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[T, C, P]`` (padding pixels are zero)."""
        b, c = x.shape[:2]
        pad_h = self.tiles_y * self.tile_h - self.height
        pad_w = self.tiles_x * self.tile_w - self.width
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = x.reshape(b, c, self.tiles_y, self.tile_h, self.tiles_x, self.tile_w)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(b * self.tiles_per_image, c, self.tile_pixels)

    def from_tiles(self, t: Tensor) -> Tensor:
        """``[T, C, P]`` -> ``[B, C, H, W]`` (padding dropped)."""
        c = t.size(1)
        x = t.reshape(self.batch_size, self.tiles_y, self.tiles_x, c, self.tile_h, self.tile_w)
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(self.batch_size, c, self.tiles_y * self.tile_h,
                                                 self.tiles_x * self.tile_w)
        return x[:, :, :self.height, :self.width] if self.padded else x

    def valid(self, device=None, dtype=torch.float32) -> Tensor:
        """``[T, 1, P]``: 1 for the pixels of the image, 0 for padding (read-only)."""
        return _tile_constants(self, torch.device(device or "cpu"), dtype)[0]

    def origins(self, device=None, dtype=torch.float32) -> Tensor:
        """``[tiles_per_image, 2]``: ``(y, x)`` of the top-left pixel of every tile."""
        return _tile_constants(self, torch.device(device or "cpu"), dtype)[1]

    def centres(self, device=None, dtype=torch.float32) -> Tensor:
        """``[tiles_per_image, 2]``: ``(y, x)`` centre of the image part of every tile."""
        return _tile_constants(self, torch.device(device or "cpu"), dtype)[2]

    def local_yx(self, device=None, dtype=torch.float32) -> Tensor:
        """``[2, P]``: ``(y, x)`` of every tile position relative to the tile origin."""
        return _tile_constants(self, torch.device(device or "cpu"), dtype)[3]

    def to_pixels(self, t: Tensor) -> Tensor:
        """``[T, m, P]`` -> ``[B * H * W, m]``, pixel-major (row-major pixels)."""
        m = t.size(1)
        return self.from_tiles(t).permute(0, 2, 3, 1).reshape(-1, m)

    def per_pixel(self, t: Tensor) -> Tensor:
        """``[T, m]`` (one row per tile) -> ``[B * H * W, m]``: every pixel gets
        its tile's row."""
        return self.to_pixels(t.unsqueeze(2).expand(-1, -1, self.tile_pixels))


@functools.lru_cache(maxsize=64)
def _tile_constants(grid: TileGrid, device: torch.device, dtype: torch.dtype
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(valid, origins, centres, local_yx)`` of ``grid`` (see its methods),
    computed once per tiling, device and dtype; shared, so never modified."""
    ones = torch.ones(1, 1, grid.height, grid.width, device=device, dtype=dtype)
    valid = grid.to_tiles(ones).repeat(grid.batch_size, 1, 1)
    ty = torch.arange(grid.tiles_y, device=device, dtype=dtype) * grid.tile_h
    tx = torch.arange(grid.tiles_x, device=device, dtype=dtype) * grid.tile_w
    origins = torch.stack(torch.meshgrid(ty, tx, indexing="ij"), dim=-1).reshape(-1, 2)
    size = torch.tensor([grid.height, grid.width], device=device, dtype=dtype)
    tile = torch.tensor([grid.tile_h, grid.tile_w], device=device, dtype=dtype)
    centres = (origins + torch.minimum(origins + tile, size) - 1) / 2
    a = torch.arange(grid.tile_h, device=device, dtype=dtype)
    c = torch.arange(grid.tile_w, device=device, dtype=dtype)
    local_yx = torch.stack(torch.meshgrid(a, c, indexing="ij"), dim=0).reshape(2, -1)
    return valid, origins, centres, local_yx


@dataclass
class TiledAssignment:
    r"""A sparse assignment :math:`S` (``N_pix x N_grp``) in tiled form.

    Attributes:
        grid (TileGrid): the tiling of the images.
        candidates (LongTensor): ``[T, m]`` node (group) index of every
            candidate of every tile, global over the batch.
        weight (Tensor): ``[T, m, P]``, :math:`S_{pj}` for the ``P`` pixels of
            tile ``t`` and its candidate ``j``; zero on padding pixels.
        num_groups (int): :math:`N_{grp}`.

    A candidate whose weight is zero on every pixel may point to any node.
    """

    grid: TileGrid
    candidates: Tensor
    weight: Tensor
    num_groups: int
    _to_groups: SegmentSum | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        t, p = self.grid.num_tiles, self.grid.tile_pixels
        if not isinstance(self.candidates, Tensor) or self.candidates.dtype != torch.long \
                or self.candidates.dim() != 2 or self.candidates.size(0) != t:
            raise ValueError(f"'candidates' must be a LongTensor [T, m] with T = {t} tiles")
        check_float_tensor(self.weight, "weight", ndim=3, shape_hint="[T, m, P]")
        if self.weight.shape != (t, self.candidates.size(1), p):
            raise ValueError(f"'weight' must have shape [T, m, P] = [{t}, "
                             f"{self.candidates.size(1)}, {p}] (got {tuple(self.weight.shape)})")
        check_positive_int(self.num_groups, "num_groups")

    def images(self, start: int, stop: int, first_group: int, num_groups: int
               ) -> TiledAssignment:
        """The assignment of images ``start .. stop - 1`` alone (views), whose
        groups are ``first_group .. first_group + num_groups - 1``, renumbered
        from 0."""
        grid = self.grid
        tiles = slice(start * grid.tiles_per_image, stop * grid.tiles_per_image)
        sub = TileGrid(stop - start, grid.height, grid.width, grid.tile_h, grid.tile_w)
        return TiledAssignment(sub, self.candidates[tiles] - first_group, self.weight[tiles],
                               num_groups)

    def validate(self) -> TiledAssignment:
        """Check that the candidates index groups in ``[0, num_groups)`` (reads
        the tensor: a host synchronisation); returns ``self``."""
        if self.candidates.numel() and (int(self.candidates.min()) < 0
                                        or int(self.candidates.max()) >= self.num_groups):
            raise ValueError(f"'candidates' must index groups in [0, {self.num_groups})")
        return self

    def graph_attributes(self) -> dict:
        """The declared attributes that store this assignment on a group graph:
        ``tile_weight``, ``tile_candidates`` (flattened) and ``tiling``
        (``(H, W, tile_h, tile_w, m)``); :func:`tiled_assignment_of` reads them."""
        grid = self.grid
        return {"tile_weight": self.weight.reshape(-1),
                "tile_candidates": self.candidates.reshape(-1),
                "tiling": (grid.height, grid.width, grid.tile_h, grid.tile_w,
                           int(self.candidates.size(1)))}

    def _segments(self) -> SegmentSum:
        if self._to_groups is None:
            self._to_groups = SegmentSum(self.candidates.reshape(-1), self.num_groups)
        return self._to_groups

    def sum_into_groups(self, values: Tensor) -> Tensor:
        """``values [T, m, C]`` (one row per candidate of every tile) ->
        ``[N_grp, C]``, summed over the rows of each group."""
        return self._segments()(values.reshape(-1, values.size(-1)))

    @classmethod
    def from_coo(cls, assign_index: Tensor, assign_weight: Tensor, batch_size: int,
                 height: int, width: int, num_groups: int) -> TiledAssignment:
        """Wrap an assignment in coordinate form (``[2, nnz]`` (pixel, group),
        ``[nnz]``; ``(pixel, group)`` pairs unique) as single-pixel tiles whose
        candidates are the pixel's entries (differentiable in ``assign_weight``)."""
        grid = TileGrid(batch_size, height, width, 1, 1)
        if not isinstance(assign_index, Tensor) or assign_index.dtype != torch.long \
                or assign_index.dim() != 2 or assign_index.size(0) != 2:
            raise TypeError("'assign_index' must be a LongTensor [2, nnz]")
        check_float_tensor(assign_weight, "assign_weight", ndim=1, shape_hint="[nnz]")
        if assign_weight.numel() != assign_index.size(1):
            raise ValueError(f"'assign_weight' must have shape [nnz] = [{assign_index.size(1)}] "
                             f"(got {tuple(assign_weight.shape)})")
        pixel, group = assign_index
        order = torch.argsort(pixel, stable=True)
        pixel, group, weight = pixel[order], group[order], assign_weight[order]
        counts = torch.bincount(pixel, minlength=grid.num_tiles)
        m = max(int(counts.max()) if counts.numel() else 0, 1)
        slot = torch.arange(pixel.numel(), device=pixel.device) - (counts.cumsum(0) - counts)[pixel]
        candidates = group.new_zeros(grid.num_tiles, m).index_put((pixel, slot), group)
        tiled = weight.new_zeros(grid.num_tiles, m).index_put((pixel, slot), weight)
        return cls(grid, candidates, tiled.unsqueeze(2), num_groups).validate()

    def mass(self) -> Tensor:
        r"""Column sums :math:`\sum_p S_{pj}` (soft pixel counts), ``[N_grp]``."""
        return self.sum_into_groups(self.weight.sum(2, keepdim=True)).view(-1)

    def pool(self, x: Tensor) -> Tensor:
        r"""Average the pixels of each group (Eq. 5): ``[B, C, H, W]`` -> ``[N_grp, C]``.

        .. math::
            \hat{X} = \bar{S}^\top X = Z^{-1} \sum_t S_t X_t,

        one ``[m, P] x [P, C]`` product per tile, summed into the groups (on
        a channels-last ``x`` without a gradient, the fused kernel of
        :mod:`~pyg_hgconv.nn.pool.fused_pooling` instead). A group without
        pixels gets zeros.
        """
        check_float_tensor(x, "x", ndim=4, shape_hint="[B, C, H, W]")
        grid = self.grid
        if tuple(x.shape[:1]) + tuple(x.shape[2:]) != (grid.batch_size, grid.height, grid.width):
            raise ValueError(f"'x' of shape {tuple(x.shape)} does not match the assignment's "
                             f"{grid.batch_size} images of size {(grid.height, grid.width)}")
        weight = self.weight.to(x.dtype)
        if fused_pool_applies(x, weight):
            return fused_pool(x, weight, self.candidates, self.num_groups, grid,
                              mass_eps(weight))
        tiles = grid.to_tiles(x)  # [T, C, P]
        total = self.sum_into_groups(torch.bmm(weight, tiles.transpose(1, 2)))  # [N_grp, C]
        mass = self.sum_into_groups(weight.sum(2, keepdim=True))
        return total / mass.clamp_min(mass_eps(mass))

    def centroids(self) -> Tensor:
        r"""The weighted mean pixel position of every group (Eq. 5 applied to
        the pixel coordinates), ``[N_grp, 2]`` as ``(x, y)``; no gradient."""
        weight = self.weight.detach()
        t, _, p = weight.shape
        local = self.grid.local_yx(weight.device, weight.dtype)  # [2, P]
        origin = self.grid.origins(weight.device, weight.dtype).repeat(self.grid.batch_size, 1)
        mass = weight.sum(2, keepdim=True)  # [T, m, 1]
        sums = torch.baddbmm(origin.unsqueeze(1) * mass, weight, local.T.expand(t, p, 2))
        total = self.sum_into_groups(torch.cat([sums, mass], dim=2))  # [N_grp, 3]
        return (total[:, :2] / total[:, 2:].clamp_min(mass_eps(total))).flip(1)

    def unpool(self, z: Tensor) -> Tensor:
        r"""Copy group features back to the pixels (Eq. 6): ``[N_grp, C]`` -> ``[B, C, H, W]``.

        .. math::
            X = \tilde{S} X', \qquad \tilde{S} = \tilde{Z}^{-1} S,

        one ``[C, m] x [m, P]`` product per tile (without a gradient, the
        fused kernel of :mod:`~pyg_hgconv.nn.pool.fused_pooling` instead,
        which writes a channels-last map).
        """
        check_float_tensor(z, "z", ndim=2, shape_hint="[N_grp, C]")
        if z.size(0) != self.num_groups:
            raise ValueError(f"'z' has {z.size(0)} rows but the assignment has "
                             f"{self.num_groups} groups")
        weight = self.weight.to(z.dtype)
        if fused_unpool_applies(z, weight):
            return fused_unpool(z, weight, self.candidates, self.grid, mass_eps(weight))
        rows = weight / weight.sum(1, keepdim=True).clamp_min(mass_eps(weight))
        gathered = z[self.candidates]  # [T, m, C]
        return self.grid.from_tiles(torch.bmm(gathered.transpose(1, 2), rows))

    def to_coo(self) -> tuple[Tensor, Tensor]:
        """The non-zero entries as ``(assign_index [2, nnz] = (pixel, group),
        assign_weight [nnz])``, sorted by pixel, then by candidate slot (by the
        fused kernel where no gradient is needed, :mod:`~pyg_hgconv.nn.pool.fused_coo`)."""
        if fused_coo_applies(self.weight):
            return fused_tiles_to_coo(self.weight, self.candidates, self.grid)
        m = self.candidates.size(1)
        weight = self.grid.to_pixels(self.weight)  # [N_pix, m]
        groups = self.grid.per_pixel(self.candidates)
        pixel, slot = (weight.detach() > 0).nonzero().unbind(1)
        return torch.stack([pixel, groups[pixel, slot]]), weight.view(-1, m)[pixel, slot]


def tiled_assignment_of(graph) -> TiledAssignment | None:
    """The tiled form of ``graph``'s assignment, rebuilt from its declared
    attributes ``tile_weight``, ``tile_candidates`` and ``tiling`` (see
    :mod:`pyg_hgconv.data.group_graph`), or ``None`` when the graph has none
    or its images are tiled differently (then use the coordinate form).

    Views, no copy, no host synchronisation: the sizes come from the ``tiling``
    tuple and the shapes of the tensors."""
    if "tile_weight" not in graph or "tiling" not in graph:
        return None
    tiling = graph.tiling  # a tuple; PyG's .to() and collation make lists of it
    if tiling and isinstance(tiling[0], (list, tuple)):  # collated per-image graphs
        if any(tuple(t) != tuple(tiling[0]) for t in tiling):
            return None
        tiling = tiling[0]
    height, width, tile_h, tile_w, m = (int(v) for v in tiling)
    num_images = graph.num_images
    if num_images < 1:
        return None
    grid = TileGrid(num_images, height, width, tile_h, tile_w)
    t, p = grid.num_tiles, grid.tile_pixels
    weight, candidates = graph.tile_weight, graph.tile_candidates
    if weight.numel() != t * m * p or candidates.numel() != t * m:
        return None
    return TiledAssignment(grid, candidates.view(t, m), weight.view(t, m, p),
                           int(graph.num_nodes))
