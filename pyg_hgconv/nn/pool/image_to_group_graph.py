r"""Learned superpixel pooling: feature map -> batch of direction-typed group graphs."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pyg_hgconv.data.group_graph import make_group_graph
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES, build_group_adjacency
from pyg_hgconv.nn.pool.fused_clustering import fused_cluster_images, fused_clustering_applies
from pyg_hgconv.nn.pool.fused_embedding import fused_embedding_applies, fused_pixel_embedding
from pyg_hgconv.nn.pool.importance import FOCUS_ALPHA, focus_map, importance_map
from pyg_hgconv.nn.pool.sampling import SAMPLERS, sample_centers
from pyg_hgconv.nn.pool.slic import (
    ASSIGN_THRESHOLD,
    SLIC_WEIGHTS,
    nearest_candidate,
    nearest_centers,
    slic_assignment,
)
from pyg_hgconv.nn.pool.tiling import TiledAssignment, TileGrid, mass_eps
from pyg_hgconv.utils.checks import all_finite, check_image_features, check_positive_int
from pyg_hgconv.utils.directions import TAN_SECTOR
from pyg_hgconv.utils.sparse import HALF_DTYPES, no_autocast

#: paper default downsampling ratio (Sec. 5.1)
DEFAULT_RATIO = 1 / 64
#: the default rule that gives a pair of groups its one direction type
DIRECTION_RULE = "centroid"
#: the default edge threshold: pairs of groups in contact over less than half a
#: pixel pair (the soft assignment's tails) get no edge
EDGE_THRESHOLD = 0.5
#: what the importance map can be computed on
IMPORTANCE_SOURCES = ("embedding", "features")
#: how the centres are sampled in training mode: ``'random'``, from the global
#: generator with keys of their own for every image; ``'seeded'``, as in evaluation
TRAIN_SAMPLINGS = ("random", "seeded")


def num_groups_for(num_pixels: int, num_groups: int | None, ratio: float | None) -> int:
    """Number of cluster centres for an image of ``num_pixels`` pixels."""
    if num_groups is not None:
        if num_groups > num_pixels:
            raise ValueError(f"'num_groups' ({num_groups}) exceeds the number of pixels "
                             f"({num_pixels})")
        return num_groups
    return min(num_pixels, max(1, round(ratio * num_pixels)))


def standardize_per_image(e: Tensor) -> Tensor:
    r"""Scale-free clustering features: ``[B, D, N]`` -> zero mean, unit RMS per image.

    Features are first divided by their largest magnitude (so neither huge nor
    tiny scales overflow or underflow), then centred and divided by their
    root-mean-square deviation. A constant image maps to zeros.
    """
    peak = e.detach().abs().flatten(1).amax(1).clamp_min(torch.finfo(e.dtype).tiny)
    e = e / peak.view(-1, 1, 1)
    e = e - e.mean(2, keepdim=True)
    rms = e.square().mean((1, 2), keepdim=True).sqrt()
    return e / rms.clamp_min(1e-6)


class ImageToGroupGraph(nn.Module):
    r"""Turn a feature map into a batch of HG-Conv group graphs (paper, Sec. 4.1-4.3).

    For features :math:`X` ``[B, C, H, W]`` the transform

    1. computes the importance map (L2 distance of each pixel's clustering
       feature to its neighbours', Sec. 4.1), modulated by an optional
       attention map (active focus, Eq. 11); the clustering feature is the
       learned embedding when there is one (it is ``embed_channels`` wide
       instead of :math:`C`, which makes the map cheap), else the input;
    2. samples :math:`K` cluster centres per image (``sampler``);
    3. clusters the pixels by differentiable SLIC (Algorithm 1) on a learnable
       embedding of the features plus scaled pixel coordinates; the pixels
       are cut into tiles of about one by two centre spacings and every pixel
       of a tile is restricted to the ``num_candidates`` centres spatially nearest
       to the tile (as SSN restricts a grid cell to the 9 surrounding
       superpixels); the assignment :math:`S` is sparse (``m`` entries per
       pixel, stored per tile, :class:`~pyg_hgconv.nn.pool.tiling.TiledAssignment`),
       groups that receive no pixel are dropped;
    4. pools the features (Eq. 5) and the pixel coordinates (centroids);
    5. builds :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4), cancels noise
       (Eq. 7), keeps the strongest direction per pair, drops weights below
       :math:`10^{-7}` and adds identity self loops (supplementary B).

    The clustering distance is

    .. math::
        d^2(p, c) = \frac{s_f^2}{D} \lVert \hat{\mathbf{e}}_p - \hat{\mathbf{e}}_c
        \rVert^2 + s_p^2 \frac{\lVert (y_p, x_p) - (y_c, x_c) \rVert^2}{r^2},

    with :math:`\hat{\mathbf{e}}` the embedding (a 1x1 convolution to
    ``embed_channels``, or the features themselves) standardised per image,
    :math:`r = \sqrt{HW / K}` the mean centre spacing and :math:`s_f, s_p`
    the feature and position scales (learnable when ``learnable=True``).
    "Learned" means trained end to end through :math:`S`: gradients reach the
    embedding, the scales and the input features through pooling, unpooling
    and the adjacency weights. With ``embed_channels=None, learnable=False``
    the transform has no parameters and works on raw images, like PyG's
    :class:`~torch_geometric.transforms.ToSLIC` but with typed edges.

    In ``eval()`` mode the centre sampling uses a generator seeded with
    ``seed`` at every call and one row of random keys for the whole batch, so
    an image always gets the same groups, whatever else is in its batch. In
    training it draws new centres at every call (``train_sampling='random'``,
    the default), or samples them as in evaluation (``'seeded'``): the
    grouping then changes only as the embedding and the scales learn, and the
    network trains on the graphs it is evaluated on.

    Where no gradient is needed on the CPU (inference, ``torch.no_grad()``),
    the importance map, the sampling and steps 3-5 run as fused kernels
    (:mod:`~pyg_hgconv.nn.pool.fused_importance`,
    :mod:`~pyg_hgconv.nn.pool.fused_sampling`,
    :mod:`~pyg_hgconv.nn.pool.fused_clustering`), one image per thread; they
    build the same graphs as the step-by-step path that runs otherwise.

    Args:
        in_channels (int): input channels :math:`C` (``-1``: lazy); only used
            by the embedding.
        num_groups (int, optional): number of cluster centres per image.
        ratio (float, optional): centres per pixel in ``(0, 1]`` (used when
            ``num_groups`` is not given; default :math:`1/64`).
        embed_channels (int, optional): width of the learnable 1x1 clustering
            embedding (an :class:`~torch.nn.Linear` on each pixel's features);
            ``None`` clusters the (standardised) features directly.
        sampler (str): ``'random' | 'importance' | 'topk_random'``.
        oversample (float): PointRend's :math:`k` (default 7).
        beta (float): PointRend's :math:`\beta` (default 0.75).
        num_iterations (int): SLIC iterations (paper: 1-3; default 3).
        num_candidates (int): candidate centres per pixel :math:`m` (default
            12: the 3 x 4 centre spacings around a tile one spacing tall and
            two wide; with fewer, tiles are one spacing square and 9 is the
            3 x 3 of SSN).
        tile_size (int or (int, int), optional): ``(height, width)`` of the
            tiles whose pixels share their candidates (default: one mean
            centre spacing :math:`r = \sqrt{HW / K}` tall and two wide,
            :meth:`~pyg_hgconv.nn.pool.tiling.TileGrid.for_spacing`; ``1`` gives every
            pixel its own ``m`` nearest centres).
        feature_scale (float): initial :math:`s_f`.
        position_scale (float): initial :math:`s_p`.
        learnable (bool): learn :math:`s_f, s_p` (the embedding, when present,
            is always learnable).
        noise_cancel (bool): apply Eq. 7 (Table 7).
        max_direction (bool): keep one direction per pair of groups (Table 7).
        direction_rule (str): how that direction is chosen
            (:func:`~pyg_hgconv.nn.pool.adjacency.build_group_adjacency`):
            ``'paper'``, the strongest weight (Sec. 4.3); ``'length'``, the
            strongest weight per unit of offset length; ``'centroid'``, the
            direction of the displacement between the two group centroids,
            with the pair's whole contact as weight.
        slic_weights (str): ``'softmax'`` (SSN's per-pixel normalisation in
            the loop) or ``'paper'`` (Algorithm 1 as written), see
            :func:`~pyg_hgconv.nn.pool.slic.slic_assignment`.
        importance_from (str): the map the importance (Sec. 4.1) is computed
            on: ``'embedding'`` (the clustering embedding, ``embed_channels``
            wide: cheap) or ``'features'`` (the input features, as the paper
            writes).
        edge_threshold (float): adjacency weights below it are dropped
            (default :data:`EDGE_THRESHOLD` = 0.5; supplementary B:
            :math:`10^{-7}`). Weights count pixel contacts, so 0.5 keeps the
            groups that really touch and drops the links that the soft
            assignment's tails create between groups two apart (with
            :math:`10^{-7}` a group has about twice the neighbours of a
            partition of the plane).
        alpha (float): attention weight of active focus (Eq. 11, paper 10).
        seed (int): seed of the evaluation-mode sampler.
        train_sampling (str): the centre sampling in training mode,
            ``'random'`` or ``'seeded'`` (as in evaluation; see above).

    Shapes:
        - **input:** features :math:`(B, C, H, W)`, attention
          :math:`(B, 1, H, W)` with values in ``[0, 1]`` *(optional)*
        - **output:** a :class:`~pyg_hgconv.GroupGraph` batch with ``x``
          :math:`(N_{grp}, C)`, ``pos`` :math:`(N_{grp}, 2)`, ``edge_index``
          :math:`(2, E)`, ``edge_type`` :math:`(E)`, ``edge_weight``
          :math:`(E)`, ``batch``, ``assign_index`` :math:`(2, nnz)` (pixel, group),
          ``assign_weight`` :math:`(nnz)`, ``mass``, ``center_pixel`` and
          ``importance``.
    """

    def __init__(
        self,
        in_channels: int = -1,
        num_groups: int | None = None,
        ratio: float | None = None,
        embed_channels: int | None = None,
        sampler: str = "topk_random",
        oversample: float = 7.0,
        beta: float = 0.75,
        num_iterations: int = 3,
        num_candidates: int = 12,
        tile_size: int | tuple[int, int] | None = None,
        feature_scale: float = 4.0,
        position_scale: float = 3.0,
        learnable: bool = True,
        noise_cancel: bool = True,
        max_direction: bool = True,
        direction_rule: str = DIRECTION_RULE,
        slic_weights: str = "softmax",
        importance_from: str = "embedding",
        edge_threshold: float = EDGE_THRESHOLD,
        alpha: float = FOCUS_ALPHA,
        seed: int = 0,
        train_sampling: str = "random",
    ):
        super().__init__()
        if num_groups is not None and ratio is not None:
            raise ValueError("give either 'num_groups' or 'ratio', not both")
        if num_groups is not None:
            check_positive_int(num_groups, "num_groups")
        if ratio is None and num_groups is None:
            ratio = DEFAULT_RATIO
        if ratio is not None and not (isinstance(ratio, (int, float)) and 0 < ratio <= 1):
            raise ValueError(f"'ratio' must lie in (0, 1] (got {ratio!r})")
        if sampler not in SAMPLERS:
            raise ValueError(f"'sampler' must be one of {SAMPLERS} (got {sampler!r})")
        if not isinstance(num_iterations, int) or num_iterations < 0:
            raise ValueError(f"'num_iterations' must be an int >= 0 (got {num_iterations!r})")
        check_positive_int(num_candidates, "num_candidates")
        if tile_size is not None:
            if isinstance(tile_size, (tuple, list)):
                if len(tile_size) != 2:
                    raise ValueError(f"'tile_size' must be an int or a pair (got {tile_size!r})")
                tile_size = tuple(check_positive_int(v, "tile_size") for v in tile_size)
            else:
                tile_size = (check_positive_int(tile_size, "tile_size"),) * 2
        if feature_scale <= 0 or position_scale <= 0:
            raise ValueError("'feature_scale' and 'position_scale' must be > 0")
        if in_channels != -1:
            check_positive_int(in_channels, "in_channels")

        self.in_channels = in_channels
        self.num_groups = num_groups
        self.ratio = ratio
        self.embed_channels = embed_channels
        self.sampler = sampler
        self.oversample = oversample
        self.beta = beta
        self.num_iterations = num_iterations
        self.num_candidates = num_candidates
        self.tile_size = tile_size
        self.noise_cancel = noise_cancel
        self.max_direction = max_direction
        if direction_rule not in DIRECTION_RULES:
            raise ValueError(f"'direction_rule' must be one of {DIRECTION_RULES} "
                             f"(got {direction_rule!r})")
        if slic_weights not in SLIC_WEIGHTS:
            raise ValueError(f"'slic_weights' must be one of {SLIC_WEIGHTS} "
                             f"(got {slic_weights!r})")
        if importance_from not in IMPORTANCE_SOURCES:
            raise ValueError(f"'importance_from' must be one of {IMPORTANCE_SOURCES} "
                             f"(got {importance_from!r})")
        self.direction_rule = direction_rule
        self.slic_weights = slic_weights
        self.importance_from = importance_from
        if edge_threshold < 0:
            raise ValueError(f"'edge_threshold' must be >= 0 (got {edge_threshold})")
        self.edge_threshold = edge_threshold
        self.alpha = alpha
        self.seed = seed
        if train_sampling not in TRAIN_SAMPLINGS:
            raise ValueError(f"'train_sampling' must be one of {TRAIN_SAMPLINGS} "
                             f"(got {train_sampling!r})")
        self.train_sampling = train_sampling

        if embed_channels is None:
            self.embed = None
        else:
            check_positive_int(embed_channels, "embed_channels")
            # a 1x1 convolution, applied as a Linear to the pixel-major features
            # that pooling needs anyway (one GEMM instead of a strided conv)
            self.embed = (nn.LazyLinear(embed_channels) if in_channels == -1
                          else nn.Linear(in_channels, embed_channels))
        log_scales = torch.tensor([math.log(feature_scale), math.log(position_scale)])
        if learnable:
            self.log_scales = nn.Parameter(log_scales)
        else:
            self.register_buffer("log_scales", log_scales)

    def reset_parameters(self) -> None:
        if self.embed is not None and not isinstance(self.embed, nn.LazyLinear):
            self.embed.reset_parameters()

    def forward(self, x: Tensor, attention: Tensor | None = None,
                generator: torch.Generator | None = None, *, as_batch: bool = True):
        """Cluster ``x`` ``[B, C, H, W]`` and return the group graphs of its images.

        Args:
            x (Tensor): features ``[B, C, H, W]``.
            attention (Tensor, optional): active-focus map ``[B, 1, H, W]``
                in ``[0, 1]`` (see :func:`~pyg_hgconv.object_attention` and
                :func:`~pyg_hgconv.uncertainty_attention`).
            generator (torch.Generator, optional): randomness of the centre
                sampling (default: seeded with ``seed`` in eval mode and with
                ``train_sampling='seeded'``, else the global generator).
            as_batch (bool): return a PyG :class:`~torch_geometric.data.Batch`
                of per-image graphs (default); ``False`` returns their disjoint
                union as one :class:`~pyg_hgconv.GroupGraph` with ``batch`` and
                ``ptr`` (the same attributes, built without a loop over images:
                what the HG modules run on).
        """
        check_image_features(x)
        b, c, h, w = x.shape
        if self.in_channels != -1 and c != self.in_channels:
            raise ValueError(f"'x' has {c} channels but the transform expects {self.in_channels}")
        n = h * w
        k = num_groups_for(n, self.num_groups, self.ratio)
        if b == 0:
            graph = self._empty_graph(x, h, w)
            return graph.to_batch() if as_batch else graph
        if generator is None and self._samples_as_in_evaluation():
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        dtype = x.dtype
        with no_autocast(x.device):  # the clustering runs in float32 for half inputs
            graph = self._cluster(x.float() if dtype in HALF_DTYPES else x, attention,
                                  generator, k)
        if dtype in HALF_DTYPES:  # features and weights in the input's dtype
            for key in ("x", "edge_weight", "assign_weight", "tile_weight", "mass"):
                graph[key] = graph[key].to(dtype)
        return graph.to_batch() if as_batch else graph

    def _cluster(self, x: Tensor, attention: Tensor | None, generator: torch.Generator | None,
                 k: int):
        """Steps 1-5 of the class docstring on ``x`` ``[B, C, H, W]``: the union graph."""
        b, _, h, w = x.shape

        # 1-2. importance / focus map on the clustering embedding and centre
        # sampling (no gradient).
        embedding = self._embed(x)  # [B, D, H, W]
        if not all_finite(embedding):  # checked on the (narrow) embedding
            raise ValueError("'x' must be finite: NaN or infinite features cannot be clustered")
        importance = importance_map((embedding if self.importance_from == "embedding"
                                     else x).detach())
        if attention is not None:
            importance = focus_map(importance, attention, self.alpha)
        centers = sample_centers(importance.flatten(1), k, self.sampler, self.oversample,
                                 self.beta, generator,
                                 batch_invariant=self._samples_as_in_evaluation())
        if fused_clustering_applies(embedding, x, self.log_scales):  # steps 3-5 in one op
            return self._cluster_fused(x, embedding, centers, importance)

        # 3. differentiable SLIC on [embedding, coordinates], tile by tile.
        grid, candidates, weight = self._slic(embedding, centers)
        # soft pixel count of every sampled centre; centres without pixels are dropped
        centre_mass = weight.new_zeros(b * k).index_add_(
            0, candidates.reshape(-1), weight.detach().sum(2).reshape(-1))
        keep = centre_mass > 0
        num_groups = int(keep.sum())
        groups_per_image = keep.view(b, k).sum(1)
        new_id = keep.long().cumsum(0) - 1
        # a dropped centre has no weight anywhere; its candidate slots point to
        # the first group of the same image, so that every image's slots index
        # its own groups (per-image graphs then have local indices)
        first_group = (groups_per_image.cumsum(0) - groups_per_image).repeat_interleave(
            grid.tiles_per_image).unsqueeze(1)
        assignment = TiledAssignment(grid, torch.where(keep[candidates], new_id[candidates],
                                                       first_group), weight, num_groups)
        assign_index, assign_weight = assignment.to_coo()

        # 4. pooling (Eq. 5) of features and coordinates (centroids).
        x_grp = assignment.pool(x)
        pos = assignment.centroids()

        # 5. typed adjacency.
        edge_index, edge_type, edge_weight = build_group_adjacency(
            assignment, noise_cancel=self.noise_cancel, max_direction=self.max_direction,
            threshold=self.edge_threshold, direction_rule=self.direction_rule, pos=pos,
            groups_per_image=groups_per_image)

        graph = make_group_graph(
            x=x_grp, pos=pos, edge_index=edge_index, edge_type=edge_type,
            edge_weight=edge_weight, assign_index=assign_index, assign_weight=assign_weight,
            mass=centre_mass[keep], center_pixel=centers.reshape(-1)[keep],
            groups_per_image=groups_per_image, image_size=(h, w),
            importance=importance.reshape(-1), **assignment.graph_attributes())
        return graph

    def _cluster_fused(self, x: Tensor, embedding: Tensor, centers: Tensor,
                       importance: Tensor):
        """Steps 3-5 by the fused kernel (:mod:`~pyg_hgconv.nn.pool.fused_clustering`,
        no gradient): the same graph as the steps of :meth:`_cluster`."""
        b, d, h, w = embedding.shape
        k = centers.size(1)
        grid, spacing = self._tile_grid(b, h, w, k)
        feature_scale, position_scale = self._scales(d, spacing, embedding.dtype)
        # the kernel's own edges (per image, any number of groups) for the 'centroid'
        # rule; the other rules rank direction weights, which take the adjacency steps
        edges = self.max_direction and self.direction_rule == "centroid"
        out = fused_cluster_images(
            embedding, centers, x, grid, min(self.num_candidates, k), float(feature_scale),
            float(position_scale), self.num_iterations, ASSIGN_THRESHOLD,
            self.slic_weights == "softmax", edges, self.noise_cancel, self.edge_threshold,
            TAN_SECTOR, mass_eps(embedding))
        assignment = TiledAssignment(grid, out.tile_candidates, out.tile_weight,
                                     int(out.mass.numel()))
        edge_index, edge_type, edge_weight = out.edge_index, out.edge_type, out.edge_weight
        if not edges:
            edge_index, edge_type, edge_weight = build_group_adjacency(
                assignment, noise_cancel=self.noise_cancel, max_direction=self.max_direction,
                threshold=self.edge_threshold, direction_rule=self.direction_rule, pos=out.pos,
                groups_per_image=out.groups_per_image)
        return make_group_graph(
            x=out.x, pos=out.pos, edge_index=edge_index,
            edge_type=edge_type, edge_weight=edge_weight, assign_index=out.assign_index,
            assign_weight=out.assign_weight, mass=out.mass, center_pixel=out.center_pixel,
            groups_per_image=out.groups_per_image, image_size=(h, w),
            importance=importance.reshape(-1), **assignment.graph_attributes())

    def _samples_as_in_evaluation(self) -> bool:
        """Whether the centres come from the seeded, batch-invariant sampling."""
        return not self.training or self.train_sampling == "seeded"

    def _tile_grid(self, b: int, h: int, w: int, k: int) -> tuple[TileGrid, float]:
        r"""The tiling of ``b`` images of ``h x w`` pixels for ``k`` centres, and
        the mean centre spacing :math:`r = \sqrt{HW / K}`."""
        spacing = math.sqrt(h * w / k)
        if self.tile_size is None:
            return TileGrid.for_spacing(b, h, w, spacing, min(self.num_candidates, k)), spacing
        tile_h, tile_w = self.tile_size
        return TileGrid(b, h, w, min(tile_h, h), min(tile_w, w)), spacing

    def _scales(self, channels: int, spacing: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        r"""The factors of the standardised embedding and of the pixel coordinates
        in the clustering distance: :math:`s_f / \sqrt{D}` and :math:`s_p / r`
        (0-dim tensors of ``dtype``, differentiable in the learnable scales)."""
        scales = self.log_scales.exp().to(dtype)
        return scales[0] / math.sqrt(channels), scales[1] / spacing

    def _embed(self, x: Tensor) -> Tensor:
        """The clustering embedding ``[B, D, H, W]``: a 1x1 convolution
        (the ``Linear`` ``self.embed`` on every pixel; by the fused op where no
        gradient is needed, :mod:`~pyg_hgconv.nn.pool.fused_embedding`), or
        ``x`` itself."""
        if self.embed is None:
            return x
        if isinstance(self.embed, nn.LazyLinear) and self.embed.has_uninitialized_params():
            self.embed(x[:1, :, 0, 0])  # materialise the lazy weight
        b, c, h, w = x.shape
        weight = self.embed.weight.to(x.dtype)
        bias = None if self.embed.bias is None else self.embed.bias.to(x.dtype)
        if fused_embedding_applies(x, weight, bias):  # in the memory format of x
            return fused_pixel_embedding(x, weight, bias)
        # one [D, C] x [C, HW] product per image: no pixel-major copy of x, and
        # an image's embedding does not depend on the rest of the batch
        out = torch.bmm(weight.expand(b, -1, -1), x.reshape(b, c, h * w))
        if bias is not None:
            out = out + bias.view(1, -1, 1)
        return out.view(b, -1, h, w)

    def _slic(self, embedding: Tensor, centers: Tensor):
        """Differentiable SLIC of the pixels' ``[embedding, coordinates]``.

        Returns ``(grid, candidates [T, m], weight [T, m, P])``; candidates
        index the ``B K`` sampled centres.
        """
        b, d, h, w = embedding.shape
        k = centers.size(1)
        device = embedding.device
        grid, spacing = self._tile_grid(b, h, w, k)
        e = standardize_per_image(embedding.flatten(2))  # [B, D, N]
        dtype = e.dtype
        feature_scale, pos_scale = self._scales(d, spacing, dtype)
        e = e * feature_scale

        # candidates: the m centres nearest to each tile (no gradient)
        center_yx = torch.stack([centers // w, centers % w], dim=-1).to(dtype)  # [B, K, 2]
        m = min(self.num_candidates, k)
        nearest = nearest_centers(center_yx, grid.centres(device, dtype), m)
        candidates = (nearest + (torch.arange(b, device=device) * k).view(b, 1, 1)).view(-1, m)

        # tile features; coordinates relative to the tile origin
        local = grid.local_yx(device, dtype)  # [2, P]
        t = grid.num_tiles
        features = torch.cat([grid.to_tiles(e.view(b, d, h, w)),
                              (local * pos_scale).expand(t, -1, -1)], dim=1)
        origin_yx = grid.origins(device, dtype).repeat(b, 1)  # [T, 2]
        origins = torch.cat([e.new_zeros(t, d), origin_yx * pos_scale], dim=1)
        own = e.gather(2, centers.unsqueeze(1).expand(b, d, k)).transpose(1, 2)  # [B, K, D]
        fallback = torch.cat([own, center_yx * pos_scale], dim=2).reshape(b * k, d + 2)

        init = nearest_candidate(center_yx.view(b * k, 2)[candidates] - origin_yx.unsqueeze(1),
                                 local)
        weight = slic_assignment(features, grid.valid(device, dtype), origins, candidates, init,
                                 fallback, self.num_iterations, ASSIGN_THRESHOLD,
                                 self.slic_weights, grid.tiles_per_image)
        return grid, candidates, weight

    def _empty_graph(self, x: Tensor, h: int, w: int):
        long = dict(dtype=torch.long, device=x.device)
        empty = torch.empty(0, **long)
        return make_group_graph(
            x=x.new_zeros(0, x.size(1)), pos=x.new_zeros(0, 2),
            edge_index=empty.view(2, 0), edge_type=empty, edge_weight=x.new_zeros(0),
            assign_index=empty.view(2, 0), assign_weight=x.new_zeros(0),
            mass=x.new_zeros(0), center_pixel=empty, groups_per_image=empty,
            image_size=(h, w), importance=x.new_zeros(0))

    def extra_repr(self) -> str:
        size = (f"num_groups={self.num_groups}" if self.num_groups is not None
                else f"ratio={self.ratio:.4g}")
        return (f"{size}, sampler={self.sampler!r}, num_iterations={self.num_iterations}, "
                f"num_candidates={self.num_candidates}, embed_channels={self.embed_channels}, "
                f"noise_cancel={self.noise_cancel}, max_direction={self.max_direction}, "
                f"direction_rule={self.direction_rule!r}, "
                f"edge_threshold={self.edge_threshold:g}"
                + (f", train_sampling={self.train_sampling!r}"
                   if self.train_sampling != "random" else ""))

