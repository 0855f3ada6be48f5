r"""Learned superpixel pooling: feature map -> batch of direction-typed group graphs."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pyg_hgconv._checks import check_image_features, check_positive_int
from pyg_hgconv.adjacency import EDGE_THRESHOLD, build_group_adjacency
from pyg_hgconv.assignment import group_mass, pool
from pyg_hgconv.group_graph import make_group_batch
from pyg_hgconv.importance import FOCUS_ALPHA, focus_map, importance_map
from pyg_hgconv.sampling import SAMPLERS, sample_centers
from pyg_hgconv.slic import ASSIGN_THRESHOLD, nearest_centers, slic_assignment

#: paper default downsampling ratio (Sec. 5.1)
DEFAULT_RATIO = 1 / 64


def num_groups_for(num_pixels: int, num_groups: int | None, ratio: float | None) -> int:
    """Number of cluster centres for an image of ``num_pixels`` pixels."""
    if num_groups is not None:
        if num_groups > num_pixels:
            raise ValueError(f"'num_groups' ({num_groups}) exceeds the number of pixels "
                             f"({num_pixels})")
        return num_groups
    return min(num_pixels, max(1, round(ratio * num_pixels)))


def standardize_per_image(e: Tensor) -> Tensor:
    r"""Scale-free clustering features: ``[B, N, D]`` -> zero mean, unit RMS per image.

    Features are first divided by their largest magnitude (so neither huge nor
    tiny scales overflow or underflow), then centred and divided by their
    root-mean-square deviation. A constant image maps to zeros.
    """
    peak = e.detach().abs().flatten(1).amax(1).clamp_min(torch.finfo(e.dtype).tiny)
    e = e / peak.view(-1, 1, 1)
    e = e - e.mean(1, keepdim=True)
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
       embedding of the features plus scaled pixel coordinates, each pixel
       restricted to its ``num_candidates`` spatially nearest centres; the
       assignment :math:`S` is sparse (``[N_pix, m]``), groups that receive no
       pixel are dropped;
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
    an image always gets the same groups, whatever else is in its batch.

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
        num_candidates (int): candidate centres per pixel :math:`m` (default 9).
        feature_scale (float): initial :math:`s_f`.
        position_scale (float): initial :math:`s_p`.
        learnable (bool): learn :math:`s_f, s_p` (the embedding, when present,
            is always learnable).
        noise_cancel (bool): apply Eq. 7 (Table 7).
        max_direction (bool): keep only the strongest direction (Table 7).
        edge_threshold (float): adjacency weights below it are dropped
            (supplementary B: :math:`10^{-7}`). Weights count pixel contacts,
            so a higher value (e.g. 0.5) keeps only groups that really touch
            and drops the links that soft assignment tails create between
            groups two apart; useful for convolutions that ignore weights.
        alpha (float): attention weight of active focus (Eq. 11, paper 10).
        seed (int): seed of the evaluation-mode sampler.

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
        num_candidates: int = 9,
        feature_scale: float = 4.0,
        position_scale: float = 3.0,
        learnable: bool = True,
        noise_cancel: bool = True,
        max_direction: bool = True,
        edge_threshold: float = EDGE_THRESHOLD,
        alpha: float = FOCUS_ALPHA,
        seed: int = 0,
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
        self.noise_cancel = noise_cancel
        self.max_direction = max_direction
        if edge_threshold < 0:
            raise ValueError(f"'edge_threshold' must be >= 0 (got {edge_threshold})")
        self.edge_threshold = edge_threshold
        self.alpha = alpha
        self.seed = seed

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
                generator: torch.Generator | None = None):
        """Cluster ``x`` ``[B, C, H, W]`` and return the batch of group graphs.

        Args:
            x (Tensor): features ``[B, C, H, W]``.
            attention (Tensor, optional): active-focus map ``[B, 1, H, W]``
                in ``[0, 1]`` (see :func:`~pyg_hgconv.object_attention` and
                :func:`~pyg_hgconv.uncertainty_attention`).
            generator (torch.Generator, optional): randomness of the centre
                sampling (default: seeded with ``seed`` in eval mode, the
                global generator in training mode).
        """
        check_image_features(x)
        b, c, h, w = x.shape
        if self.in_channels != -1 and c != self.in_channels:
            raise ValueError(f"'x' has {c} channels but the transform expects {self.in_channels}")
        n = h * w
        k = num_groups_for(n, self.num_groups, self.ratio)
        if b == 0:
            return self._empty_batch(x, h, w)
        if generator is None and not self.training:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)

        # 1-2. importance / focus map on the clustering embedding and centre
        # sampling (no gradient).
        x_pix = x.permute(0, 2, 3, 1).reshape(b * n, c)  # [B*H*W, C], pixel-major
        emb_pix = self.embed(x_pix) if self.embed is not None else x_pix
        embedding = emb_pix.view(b, h, w, -1).permute(0, 3, 1, 2)  # [B, D, H, W] view
        importance = importance_map(embedding.detach())
        if attention is not None:
            importance = focus_map(importance, attention, self.alpha)
        centers = sample_centers(importance.flatten(1), k, self.sampler, self.oversample,
                                 self.beta, generator, batch_invariant=not self.training)

        # 3. differentiable SLIC on [embedding, coordinates].
        features = self._clustering_features(embedding, k)
        pixel_yx = self._pixel_yx(h, w, x.device, features.dtype)
        m = min(self.num_candidates, k)
        spacing = math.sqrt(n / k)
        candidates = nearest_centers(pixel_yx[centers] / spacing, pixel_yx / spacing, m)
        weight = slic_assignment(features, candidates, centers, self.num_iterations,
                                 ASSIGN_THRESHOLD)
        assign_index, assign_weight, keep = _compact_assignment(candidates, weight, k)

        num_groups = int(keep.sum())
        groups_per_image = keep.view(b, k).sum(1)
        center_pixel = centers.reshape(-1)[keep]

        # 4. pooling (Eq. 5) of features and coordinates.
        x_grp = pool(x_pix, assign_index, assign_weight.to(x.dtype), num_groups)
        xy = pixel_yx.flip(1).repeat(b, 1)
        pos = pool(xy, assign_index, assign_weight.detach().to(xy.dtype), num_groups)

        # 5. typed adjacency.
        edge_index, edge_type, edge_weight = build_group_adjacency(
            assign_index, assign_weight, b, h, w, num_groups,
            noise_cancel=self.noise_cancel, max_direction=self.max_direction,
            threshold=self.edge_threshold)

        return make_group_batch(
            x=x_grp, pos=pos, edge_index=edge_index, edge_type=edge_type,
            edge_weight=edge_weight, assign_index=assign_index, assign_weight=assign_weight,
            mass=group_mass(assign_index, assign_weight.detach(), num_groups),
            center_pixel=center_pixel, groups_per_image=groups_per_image, image_size=(h, w),
            importance=importance.reshape(-1))

    def _clustering_features(self, embedding: Tensor, num_groups: int) -> Tensor:
        b, _, h, w = embedding.shape
        e = standardize_per_image(embedding.flatten(2).transpose(1, 2))  # [B, N, D]
        scales = self.log_scales.exp().to(e.dtype)
        e = e * (scales[0] / math.sqrt(e.size(-1)))
        spacing = math.sqrt(h * w / num_groups)
        yx = self._pixel_yx(h, w, e.device, e.dtype) * (scales[1] / spacing)
        return torch.cat([e, yx.unsqueeze(0).expand(b, -1, -1)], dim=-1)

    @staticmethod
    def _pixel_yx(h: int, w: int, device, dtype) -> Tensor:
        ys = torch.arange(h, device=device, dtype=dtype)
        xs = torch.arange(w, device=device, dtype=dtype)
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)

    def _empty_batch(self, x: Tensor, h: int, w: int):
        long = dict(dtype=torch.long, device=x.device)
        empty = torch.empty(0, **long)
        return make_group_batch(
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
                f"noise_cancel={self.noise_cancel}, max_direction={self.max_direction}")


def _compact_assignment(candidates: Tensor, weight: Tensor, num_centers: int):
    r"""Turn the ``[B, N, m]`` SLIC output into the stored sparse assignment.

    Keeps the non-zero entries in coordinate format (sorted by pixel, nearest
    candidate first), drops the groups that received no pixel and renumbers
    the rest globally (image-major).

    Returns:
        ``(assign_index [2, nnz], assign_weight [nnz], keep [B*K])``.
    """
    b, n, m = candidates.shape
    nonzero = weight.detach() > 0
    entry = nonzero.view(b * n, m).nonzero()
    pixel = entry[:, 0]
    offset = (torch.arange(b, device=candidates.device) * num_centers).view(b, 1, 1)
    group = (candidates + offset).view(b * n, m)[pixel, entry[:, 1]]
    keep = torch.zeros(b * num_centers, dtype=torch.bool, device=group.device)
    keep[group] = True
    new_id = keep.long().cumsum(0) - 1
    return torch.stack([pixel, new_id[group]]), weight.view(b * n, m)[nonzero.view(b * n, m)], keep
