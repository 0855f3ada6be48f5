r"""SplineConv computed as one sparse product: the same layer as PyG's, fast on CPU.

:class:`torch_geometric.nn.conv.SplineConv` (Fey et al., "SplineCNN", CVPR 2018)
computes, for a target node :math:`i` with incoming edges :math:`j \to i` and
pseudo-coordinates :math:`\mathbf{u}_{ij} \in [0, 1]^D`,

.. math::
    \mathbf{x}'_i = \frac{1}{|\mathcal{N}(i)|} \sum_{j \in \mathcal{N}(i)}
    \sum_{s=1}^{S} B_s(\mathbf{u}_{ij}) \, \mathbf{x}_j W_{k_s(\mathbf{u}_{ij})}
    + \mathbf{x}_i W_{root} + \mathbf{b},

with the :math:`S = (d + 1)^D` B-spline basis products of degree :math:`d` that
are non-zero at :math:`\mathbf{u}_{ij}` and the kernels :math:`k_s` they
select among :math:`K = \prod_d k_d` (SplineCNN, Eq. 2-3). Its CPU kernels
(torch-spline-conv) loop over edges, basis products and channels in scalar
code. :class:`FusedSplineConv` computes exactly the same function as

.. math::
    X' = D^{-1} M \, [X W_1; \dots; X W_K] + X W_{root} + \mathbf{b},
    \qquad M_{i,\, k N + j} = \sum_{s:\, k_s(\mathbf{u}_{ij}) = k} B_s(\mathbf{u}_{ij}),

one dense product for all :math:`K` kernels and one sparse ``[N, K N]``
product (the slot trick of :class:`~pyg_hgconv.HGConv`), with :math:`D` the
in-degree for ``aggr='mean'``. The basis functions are those of
torch-spline-conv (open and closed splines, degrees 1-3), in plain torch, so
gradients reach the features, the kernels and the pseudo-coordinates.

The parameters are PyG's (``weight [K, C_in, C_out]``, ``lin`` for the root
weight, ``bias``; buffers ``kernel_size`` and ``is_open_spline``), so a
``state_dict`` moves between the two layers unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch.nn.parameter import UninitializedParameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import uniform, zeros
from torch_geometric.typing import OptPairTensor
from torch_geometric.utils import scatter
from torch_geometric.utils.repeat import repeat

from pyg_hgconv.utils.dense import stacked_products
from pyg_hgconv.utils.sparse import SparsePattern

#: degrees of the B-spline basis that torch-spline-conv implements
DEGREES = (1, 2, 3)


def _basis_1d(v: Tensor, k: int, degree: int) -> Tensor:
    """Value of the ``k``-th of the ``degree + 1`` basis functions that are
    non-zero on the unit interval, at the fractional position ``v`` in ``[0, 1)``."""
    if degree == 1:
        return 1 - v if k == 0 else v
    if degree == 2:
        return (0.5 * v * v - v + 0.5, -v * v + v + 0.5, 0.5 * v * v)[k]
    return ((1 - v) ** 3 / 6, (3 * v ** 3 - 6 * v * v + 4) / 6,
            (-3 * v ** 3 + 3 * v * v + 3 * v + 1) / 6, v ** 3 / 6)[k]


def spline_basis(pseudo: Tensor, kernel_size: Tensor, is_open_spline: Tensor,
                 degree: int) -> tuple[Tensor, Tensor]:
    r"""The non-zero B-spline basis products and the kernels they select.

    The function of ``torch_spline_conv.spline_basis``, vectorised in torch:
    per dimension :math:`v = u (k_d - d \cdot \text{open}_d)`, basis index
    :math:`(\lfloor v \rfloor + k_{mod}) \bmod k_d` and value of the
    :math:`k_{mod}`-th basis function at :math:`v - \lfloor v \rfloor`.

    Args:
        pseudo (Tensor): ``[E, D]`` pseudo-coordinates in ``[0, 1]``.
        kernel_size (LongTensor): ``[D]`` kernels per dimension.
        is_open_spline (Tensor): ``[D]`` 1 for an open, 0 for a closed spline.
        degree (int): 1, 2 or 3.

    Returns:
        ``(basis [E, S], weight_index [E, S])``, :math:`S = (d + 1)^D`;
        differentiable in ``pseudo``.
    """
    if degree not in DEGREES:
        raise ValueError(f"'degree' must be one of {DEGREES} (got {degree!r})")
    num_edges, dim = pseudo.shape
    sizes = [int(k) for k in kernel_size.tolist()]
    opened = [int(o) for o in is_open_spline.tolist()]
    values, floors = [], []
    for d in range(dim):
        v = pseudo[:, d] * (sizes[d] - degree * opened[d])
        floor = v.detach().floor()
        values.append(v - floor)
        floors.append(floor.long())
    basis = pseudo.new_ones(num_edges, 1)
    index = torch.zeros(num_edges, 1, dtype=torch.long, device=pseudo.device)
    offset = 1
    # s enumerates k_mod per dimension, the first dimension fastest (torch-spline-conv)
    for d in range(dim):
        per_k = torch.stack([_basis_1d(values[d], k, degree) for k in range(degree + 1)], 1)
        k_index = (floors[d].unsqueeze(1) + torch.arange(degree + 1, device=pseudo.device)
                   ) % sizes[d]
        products = basis.size(1) * (degree + 1)
        basis = (per_k.unsqueeze(2) * basis.unsqueeze(1)).reshape(num_edges, products)
        index = (k_index.unsqueeze(2) * offset + index.unsqueeze(1)).reshape(num_edges, products)
        offset *= sizes[d]
    return basis, index


class FusedSplineConv(MessagePassing):
    r"""The spline-based convolution of :class:`torch_geometric.nn.conv.SplineConv`,
    computed as one dense and one sparse product (module docstring).

    Same arguments, parameters and outputs as PyG's layer; it needs no
    compiled extension. In eager mode with ``aggr='add'`` or ``'mean'`` the
    aggregation is the sparse ``[N, K N]`` product; under ``torch.compile``,
    in explain mode and for other aggregations every edge passes its message
    :math:`\sum_s B_s \mathbf{x}_j W_{k_s}` (the same function).

    Args:
        in_channels (int or tuple): size of each input sample (``-1``: lazy).
        out_channels (int): size of each output sample.
        dim (int): pseudo-coordinate dimensionality :math:`D`.
        kernel_size (int or [int]): kernels per dimension.
        is_open_spline (bool or [bool]): open (default) or closed B-spline basis.
        degree (int): B-spline degree, 1-3 (default 1).
        aggr (str): ``'mean'`` (default), ``'add'``, ``'max'``, ...
        root_weight (bool): add :math:`\mathbf{x}_i W_{root}` (default ``True``).
        bias (bool): learn an additive bias (default ``True``).
        **kwargs: further arguments of :class:`~torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, pseudo-coordinates :math:`(|\mathcal{E}|, D)`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int | tuple[int, int], out_channels: int, dim: int,
                 kernel_size: int | list[int], is_open_spline: bool | list[bool] = True,
                 degree: int = 1, aggr: str = "mean", root_weight: bool = True,
                 bias: bool = True, **kwargs):
        super().__init__(aggr=aggr, **kwargs)
        if degree not in DEGREES:
            raise ValueError(f"'degree' must be one of {DEGREES} (got {degree!r})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.dim = dim
        self.degree = degree
        self.root_weight = root_weight
        #: aggregate with the sparse product where it applies (``False``: per-edge messages)
        self.fused_aggregation = True
        self.register_buffer("kernel_size", torch.tensor(repeat(kernel_size, dim),
                                                         dtype=torch.long))
        self.register_buffer("is_open_spline", torch.tensor(repeat(is_open_spline, dim),
                                                            dtype=torch.uint8))
        if isinstance(in_channels, int):
            in_channels = (in_channels, in_channels)
        self.K = math.prod(repeat(kernel_size, dim))
        if in_channels[0] > 0:
            self.weight = Parameter(torch.empty(self.K, in_channels[0], out_channels))
        else:
            self.weight = UninitializedParameter()
            self._hook = self.register_forward_pre_hook(self.initialize_parameters)
        if root_weight:
            self.lin = Linear(in_channels[1], out_channels, bias=False,
                              weight_initializer="uniform")
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        if not isinstance(self.weight, UninitializedParameter):
            uniform(self.weight.size(0) * self.weight.size(1), self.weight)
        if self.root_weight:
            self.lin.reset_parameters()
        zeros(self.bias)

    @torch.no_grad()
    def initialize_parameters(self, module, input):
        if isinstance(self.weight, UninitializedParameter):
            x = input[0][0] if isinstance(input[0], tuple) else input[0]
            self.weight.materialize((self.K, x.size(-1), self.out_channels))
            uniform(self.weight.size(0) * self.weight.size(1), self.weight)
        module._hook.remove()
        delattr(module, "_hook")

    def uses_fused_aggregation(self) -> bool:
        """Whether :meth:`forward` aggregates with one sparse product."""
        return (self.fused_aggregation and self.aggr in ("add", "mean") and not self.explain
                and not torch.compiler.is_compiling() and not torch.jit.is_scripting())

    def forward(self, x: Tensor | OptPairTensor, edge_index: Tensor, edge_attr: Tensor,
                size: tuple[int, int] | None = None) -> Tensor:
        """``x`` ``[N, C_in]`` (or a pair), ``edge_index`` ``[2, E]`` (source,
        target), ``edge_attr`` the pseudo-coordinates ``[E, D]``."""
        if isinstance(x, Tensor):
            x = (x, x)
        x_src, x_dst = x
        num_src = x_src.size(0)
        num_dst = x_dst.size(0) if x_dst is not None else (size[1] if size else num_src)
        basis, index = spline_basis(edge_attr, self.kernel_size, self.is_open_spline,
                                    self.degree)
        if self.uses_fused_aggregation():
            # X W_k for all K kernels at once: [K N_s, C_out], kernel-major
            x_kernels = stacked_products(x_src, self.weight)
            out = self._fused(x_kernels, edge_index, basis, index, num_src, num_dst)
        else:
            out = self.propagate(edge_index, x=(x_src, x_dst), basis=basis,
                                 weight_index=index, size=(num_src, num_dst))
        if x_dst is not None and self.root_weight:
            out = out + self.lin(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _fused(self, x_kernels: Tensor, edge_index: Tensor, basis: Tensor, index: Tensor,
               num_src: int, num_dst: int) -> Tensor:
        source, target = edge_index
        num_basis = basis.size(1)
        rows = target.repeat_interleave(num_basis)
        cols = (index * num_src + source.unsqueeze(1)).reshape(-1)
        # entries of one (target, kernel, source) summed: the pattern must be unique
        key = rows * (self.K * num_src) + cols
        unique, inverse = torch.unique(key, return_inverse=True)
        values = scatter(basis.reshape(-1), inverse, dim=0, dim_size=unique.numel(),
                         reduce="sum")
        pattern = SparsePattern(unique // (self.K * num_src), unique % (self.K * num_src),
                                num_dst, self.K * num_src)
        out = pattern.matmul(values, x_kernels)
        if self.aggr == "mean":
            count = torch.bincount(target, minlength=num_dst).clamp_min(1)
            out = out / count.unsqueeze(1).to(out.dtype)
        return out

    def message(self, x_j: Tensor, basis: Tensor, weight_index: Tensor) -> Tensor:
        r"""The message of edge ``j -> i``: :math:`\sum_s B_s \mathbf{x}_j W_{k_s}`."""
        num_edges, c_in = x_j.shape
        weight = self.weight.permute(1, 0, 2).reshape(c_in, -1)  # [C_in, K C_out]
        per_kernel = (x_j @ weight).view(num_edges, self.K, self.out_channels)
        chosen = per_kernel.gather(1, weight_index.unsqueeze(2).expand(
            -1, -1, self.out_channels))  # [E, S, C_out]
        return (basis.unsqueeze(2) * chosen).sum(1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"dim={self.dim})")
