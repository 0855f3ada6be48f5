r"""The direction-aware graph convolution of HG-Conv (paper, Eqs. 2-3)."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch.nn.parameter import UninitializedParameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.inits import zeros
from torch_geometric.typing import Adj, OptPairTensor, OptTensor, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, scatter, to_edge_index

from pyg_hgconv.utils.dense import kernel_major_empty, stacked_products
from pyg_hgconv.utils.directions import NUM_DIRECTIONS
from pyg_hgconv.utils.sparse import HALF_DTYPES, coalesced_csr, csr_matmul, no_autocast

#: :math:`\epsilon` of the degree matrix :math:`D_{ii} = \max(\sum_j A_{ij}, \epsilon)` (Eq. 2)
DEGREE_EPS = 1e-7


def direction_normalized_weight(
    edge_index: Tensor,
    edge_type: Tensor,
    edge_weight: Tensor,
    num_nodes: int,
    eps: float = DEGREE_EPS,
) -> Tensor:
    r"""Return :math:`\hat{A}^\delta_{ij} / \hat{D}^\delta_{ii}` for every edge.

    The degree is taken per (target, direction) pair,
    :math:`\hat{D}^\delta_{ii} = \max(\sum_j \hat{A}^\delta_{ij}, \epsilon)`
    over the edges ``j -> i`` of type :math:`\delta` (Eq. 3), so a target that
    has no edge of some direction receives nothing from it (never a division
    by zero).

    Args:
        edge_index (LongTensor): ``[2, E]`` (source, target).
        edge_type (LongTensor): ``[E]`` types in ``0..8``.
        edge_weight (Tensor): ``[E]`` non-negative weights.
        num_nodes (int): number of nodes.

    Returns:
        Tensor ``[E]`` in the dtype of ``edge_weight``. Half-precision weights are
        normalised in float32: ``eps`` and the squared degree of the backward
        underflow in float16, which would turn the gradient of tiny weights into NaN.
    """
    slot = edge_index[1] * NUM_DIRECTIONS + edge_type
    weight = edge_weight.float() if edge_weight.dtype in HALF_DTYPES else edge_weight
    degree = scatter(weight, slot, dim=0, dim_size=num_nodes * NUM_DIRECTIONS, reduce="sum")
    return (weight / degree.clamp_min(eps)[slot]).to(edge_weight.dtype)


def check_typed_edges(edge_index: Tensor, edge_type: Tensor, edge_weight: OptTensor,
                      num_nodes: int) -> None:
    """Raise a clear error unless ``edge_index`` ``[2, E]``, ``edge_type`` ``[E]``
    (in ``0..8``) and ``edge_weight`` (``[E]`` or ``None``) are typed edges
    between ``num_nodes`` nodes."""
    if not isinstance(edge_index, Tensor):
        raise TypeError("'edge_index' must be a LongTensor [2, E] "
                        f"(got {type(edge_index).__name__}; SparseTensor is not supported)")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E] (got {tuple(edge_index.shape)})")
    if not isinstance(edge_type, Tensor):
        raise TypeError(f"'edge_type' must be a LongTensor [E] (got {type(edge_type).__name__})")
    if edge_index.dtype != torch.long or edge_type.dtype != torch.long:
        raise TypeError("'edge_index' and 'edge_type' must be int64 tensors (got "
                        f"{edge_index.dtype} and {edge_type.dtype})")
    num_edges = edge_index.size(1)
    if edge_type.dim() != 1 or edge_type.numel() != num_edges:
        raise ValueError(f"'edge_type' must have shape [E] = [{num_edges}] "
                         f"(got {tuple(edge_type.shape)})")
    if num_edges > 0:
        if int(edge_type.min()) < 0 or int(edge_type.max()) >= NUM_DIRECTIONS:
            raise ValueError("'edge_type' must lie in 0..8 (got values in "
                             f"[{int(edge_type.min())}, {int(edge_type.max())}])")
        if int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes:
            raise ValueError(f"'edge_index' must index nodes in [0, {num_nodes}) (got "
                             f"values in [{int(edge_index.min())}, {int(edge_index.max())}])")
    if edge_weight is not None:
        if not isinstance(edge_weight, Tensor) or not torch.is_floating_point(edge_weight):
            raise TypeError("'edge_weight' must be a floating-point tensor [E]")
        if edge_weight.dim() != 1 or edge_weight.numel() != num_edges:
            raise ValueError(f"'edge_weight' must have shape [E] = [{num_edges}] "
                             f"(got {tuple(edge_weight.shape)})")
        if num_edges and not bool((torch.isfinite(edge_weight) & (edge_weight >= 0)).all()):
            raise ValueError("'edge_weight' must be finite and non-negative: the "
                             "per-direction degree normalisation of Eq. 3 divides by sums "
                             "of weights (got NaN, infinite or negative values)")


def _aggregation_weight(edge_index: Tensor, edge_type: Tensor, edge_weight: OptTensor,
                        num_nodes: int, normalize: bool, dtype: torch.dtype | None) -> Tensor:
    """The weight of every edge in the aggregation: ``edge_weight`` (ones when
    ``None``), divided by the per-(target, type) degree when ``normalize``."""
    if edge_weight is None:
        edge_weight = torch.ones(edge_type.numel(), device=edge_type.device,
                                 dtype=dtype or torch.get_default_dtype())
    if normalize:
        edge_weight = direction_normalized_weight(edge_index, edge_type, edge_weight,
                                                  num_nodes)
    return edge_weight


def _slot_adjacency(edge_index: Tensor, edge_type: Tensor, edge_weight: OptTensor,
                    num_nodes: int, normalize: bool, dtype: torch.dtype | None) -> Tensor:
    """:meth:`HGConv.slot_adjacency` without the input checks (half-precision
    dtypes give a ``float32`` matrix: no sparse kernels of their own on CPU)."""
    if dtype is not None:
        dtype = _aggregation_dtype(dtype)
    edge_weight = _aggregation_weight(edge_index, edge_type, edge_weight, num_nodes, normalize,
                                      dtype)
    dtype = _aggregation_dtype(dtype or edge_weight.dtype)
    slot = edge_type * num_nodes + edge_index[0]
    return coalesced_csr(edge_index[1], slot, edge_weight.to(dtype),
                         num_nodes, NUM_DIRECTIONS * num_nodes)


def _aggregation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the sparse aggregation: ``float32`` for half-precision inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def typed_edges_of_adj_t(adj_t, num_nodes: int) -> tuple[Tensor, Tensor]:
    """``(edge_index [2, E], edge_type [E])`` of an ``adj_t`` whose entry
    ``(target, source)`` holds the edge type (a :class:`torch_sparse.SparseTensor`
    or a ``torch.sparse`` tensor, as :class:`~torch_geometric.nn.conv.RGCNConv`
    takes it)."""
    if isinstance(adj_t, SparseTensor):
        target, source, value = adj_t.coo()
        size = adj_t.sparse_sizes()
    else:
        (target, source), value = to_edge_index(adj_t)
        size = tuple(adj_t.shape)
    if tuple(size) != (num_nodes, num_nodes):
        raise ValueError(f"an adj_t must be [N, N] = [{num_nodes}, {num_nodes}] "
                         f"(got {list(size)})")
    if value is None or torch.is_floating_point(value):
        raise TypeError("an adj_t must hold the integer edge types 0..8 in its values")
    return torch.stack([source, target]), value.long()


class HGConv(MessagePassing):
    r"""The heterogeneous grid convolution operator from the `"Heterogeneous
    Grid Convolution for Adaptive, Efficient, and Controllable Computation"
    <https://arxiv.org/abs/2104.11176>`_ paper: a sum over the nine directions
    of a 3x3 kernel of degree-normalised graph convolutions (Eq. 3, graph part)

    .. math::
        Z = \sum_{\delta \in \Delta} \left(\hat{D}^\delta\right)^{-1}
        \hat{A}^\delta X W_\delta,

    i.e. for a node :math:`i`

    .. math::
        \mathbf{z}_i = \sum_{\delta} \sum_{j \in \mathcal{N}_\delta(i)}
        \frac{a_{j,i}}{\max(\sum_{k \in \mathcal{N}_\delta(i)} a_{k,i},\
        \epsilon)} \mathbf{x}_j W_\delta + \mathbf{b},

    where :math:`\mathcal{N}_\delta(i)` are the sources of the edges of type
    :math:`\delta` that arrive at :math:`i`, :math:`a_{j,i}` their weights and
    :math:`\epsilon = 10^{-7}`. Direction types are row-major 3x3 taps
    (``type = (dy + 1) * 3 + (dx + 1)``, 4 = self loop), so on
    :func:`~pyg_hgconv.grid_graph` the layer built by :meth:`from_conv2d` is
    exactly the zero-padded 3x3 convolution it came from (Eq. 2).

    All nine :math:`W_\delta` are applied in one batched matrix product
    (:math:`C_{in} \to 9 \times C_{out}`) and each edge gathers the slice of
    its type in a single :meth:`propagate` call. In eager mode that call is
    fused (:meth:`message_and_aggregate`): the normalised edges form one sparse
    ``[N, 9 N]`` CSR matrix and the aggregation is one sparse-dense product;
    under ``torch.compile`` and in explain mode the call passes per-edge
    messages (:meth:`message`). Both give the same result.

    Args:
        in_channels (int): Size of each input sample, or :obj:`-1` to derive
            the size from the first input to the forward method.
        out_channels (int): Size of each output sample.
        bias (bool, optional): If set to :obj:`False`, the layer will not learn
            an additive bias. (default: :obj:`True`)
        normalize (bool, optional): If set to :obj:`False`, the per-direction
            degree normalisation :math:`(\hat{D}^\delta)^{-1}` is skipped and
            messages are weighted by the raw edge weights.
            (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)`,
          edge types :math:`(|\mathcal{E}|)` in ``0..8``,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
    """

    num_directions: int = NUM_DIRECTIONS

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 normalize: bool = True, **kwargs):
        aggr = kwargs.setdefault("aggr", "add")
        if aggr != "add":
            raise ValueError(f"'aggr' must be 'add' (got {aggr!r}): HG-Conv aggregates the "
                             "degree-normalised sum of Eq. 3 on every path; the per-direction "
                             "degree normalisation (normalize=True) is what averages")
        super().__init__(**kwargs)
        if not isinstance(in_channels, int) or (in_channels < 1 and in_channels != -1):
            raise ValueError(f"'in_channels' must be a positive int or -1 (got {in_channels!r})")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"'out_channels' must be a positive int (got {out_channels!r})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize

        if in_channels > 0:
            self.weight = Parameter(kernel_major_empty(NUM_DIRECTIONS, in_channels,
                                                       out_channels))
        else:
            self.weight = UninitializedParameter()
            self._hook = self.register_forward_pre_hook(self.initialize_parameters)
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        if not isinstance(self.weight, UninitializedParameter):
            self._init_weight()
        zeros(self.bias)

    def _init_weight(self) -> None:
        # The initialisation of a 3x3 nn.Conv2d (kaiming_uniform, a=sqrt(5)),
        # with the fan-in of all nine taps.
        # Drawn in [9, C_in, C_out] order whatever the storage order of the weight.
        fan_in = NUM_DIRECTIONS * self.weight.size(1)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.copy_(torch.empty(self.weight.shape, dtype=self.weight.dtype,
                                          device=self.weight.device).uniform_(-bound, bound))

    @torch.no_grad()
    def initialize_parameters(self, module, input):
        if isinstance(self.weight, UninitializedParameter):
            x = input[0]
            self.in_channels = x.size(-1)
            self.weight.materialize((NUM_DIRECTIONS, self.in_channels, self.out_channels))
            self.weight.data = kernel_major_empty(NUM_DIRECTIONS, self.in_channels,
                                                  self.out_channels, dtype=self.weight.dtype,
                                                  device=self.weight.device)
            self._init_weight()
        module._hook.remove()
        delattr(module, "_hook")

    @classmethod
    def from_conv2d(cls, conv: torch.nn.Conv2d, normalize: bool = True) -> HGConv:
        r"""Build a layer carrying the weights of a 3x3 :class:`~torch.nn.Conv2d`.

        Tap ``weight[:, :, ky, kx]`` becomes :math:`W_\delta` of direction type
        ``ky * 3 + kx``; the bias is copied. This is how HG-CNNs inherit
        pretrained kernels (the paper's "w/ transfer").

        Raises:
            TypeError: ``conv`` is not an :class:`~torch.nn.Conv2d`.
            ValueError: ``conv`` is not a 3x3, stride-1, dilation-1, groups-1
                convolution with zero padding 1.
        """
        if not isinstance(conv, torch.nn.Conv2d):
            raise TypeError(f"'conv' must be a torch.nn.Conv2d (got {type(conv).__name__})")
        expected = {"kernel_size": (3, 3), "stride": (1, 1), "padding": (1, 1),
                    "dilation": (1, 1), "groups": 1, "padding_mode": "zeros"}
        for name, value in expected.items():
            if getattr(conv, name) != value:
                raise ValueError(f"'conv' must have {name}={value} to be an HG-Conv on the "
                                 f"pixel grid (got {getattr(conv, name)})")
        layer = cls(conv.in_channels, conv.out_channels, bias=conv.bias is not None,
                    normalize=normalize)
        layer = layer.to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            # [out, in, 3, 3] -> [9, in, out]
            layer.weight.copy_(conv.weight.flatten(2).permute(2, 1, 0))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    @staticmethod
    def slot_adjacency(edge_index: Tensor, edge_type: Tensor, edge_weight: OptTensor = None,
                       num_nodes: int | None = None, normalize: bool = True,
                       dtype: torch.dtype | None = None) -> Tensor:
        r"""The sparse ``[N, 9 N]`` (CSR) matrix of the layer's aggregation,
        entry ``(i, t N + j)`` = weight of edge ``j -> i`` of type ``t``
        (duplicate edges summed), divided by :math:`\hat{D}^t_{ii}` when
        ``normalize`` (Eq. 3).

        Pass it as ``edge_index`` (with ``edge_type`` and ``edge_weight``
        left out) to run several layers on one graph without rebuilding it,
        as PyG convs take an ``adj_t``.
        """
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        check_typed_edges(edge_index, edge_type, edge_weight, num_nodes)
        return _slot_adjacency(edge_index, edge_type, edge_weight, num_nodes, normalize, dtype)

    def forward(self, x: Tensor, edge_index: Adj, edge_type: OptTensor = None,
                edge_weight: OptTensor = None) -> Tensor:
        r"""Runs the forward pass of the module.

        The graph comes in one of the forms PyG users have:

        * ``edge_index`` ``[2, E]`` (source, target) with ``edge_type`` ``[E]``
          and optionally ``edge_weight`` ``[E]``;
        * an ``adj_t`` as :class:`~torch_geometric.nn.conv.RGCNConv` takes it:
          a :class:`torch_sparse.SparseTensor` or a ``torch.sparse`` tensor
          ``[N, N]`` whose entry ``(target, source)`` holds the edge type
          (integer values; the weights are then all ones);
        * the sparse ``[N, 9 N]`` matrix of :meth:`slot_adjacency` (floating
          values: normalised weights), which several layers can share.

        Args:
            x (torch.Tensor): node features ``[N, in_channels]``.
            edge_index: the graph (see above).
            edge_type (torch.Tensor, optional): ``[E]`` direction types in
                ``0..8`` (with ``edge_index`` ``[2, E]`` only).
            edge_weight (torch.Tensor, optional): ``[E]`` finite, non-negative
                weights (default: all ones; with ``edge_index`` ``[2, E]`` only).

        Half-precision features (``float16``, ``bfloat16``, also under
        ``torch.autocast``) are aggregated in ``float32`` (sparse products
        have no half-precision CPU kernels) and returned in their dtype.
        """
        num_nodes = x.size(0)
        if isinstance(edge_index, SparseTensor) or (
                is_torch_sparse_tensor(edge_index) and not edge_index.dtype.is_floating_point):
            if edge_type is not None or edge_weight is not None:
                raise ValueError("an adj_t holds the edge types in its values: pass it without "
                                 "'edge_type' and 'edge_weight'")
            edge_index, edge_type = typed_edges_of_adj_t(edge_index, num_nodes)
        if is_torch_sparse_tensor(edge_index):
            if not torch.compiler.is_compiling():
                self._check_slot_adjacency(x, edge_index, edge_type, edge_weight)
            adjacency, kwargs = edge_index, {}
        else:
            if not torch.compiler.is_compiling():
                self._check_inputs(x, edge_index, edge_type, edge_weight)
            if self.uses_fused_aggregation():  # one sparse [N, 9 N] matrix, one product
                adjacency = _slot_adjacency(edge_index, edge_type, edge_weight, num_nodes,
                                            self.normalize, _aggregation_dtype(x.dtype))
                kwargs = {}
            else:  # per-edge messages: the message of edge j -> i of type t is row t N + j
                adjacency = torch.stack([edge_type * num_nodes + edge_index[0], edge_index[1]])
                kwargs = dict(edge_weight=_aggregation_weight(
                    edge_index, edge_type, edge_weight, num_nodes, self.normalize, x.dtype),
                    size=(num_nodes * NUM_DIRECTIONS, num_nodes))
        # X W_delta for all nine directions at once: [9 N, C_out], direction-major
        x_dir = stacked_products(x, self.weight)
        if kwargs:
            out = self.propagate(adjacency, x=(x_dir, None), **kwargs)
        else:  # the sparse product in the matrix's dtype (float32 for half inputs)
            out = self.propagate(adjacency, x=(x_dir, None)).to(x_dir.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _check_slot_adjacency(self, x, adjacency, edge_type, edge_weight) -> None:
        if edge_type is not None or edge_weight is not None:
            raise ValueError("pass either 'edge_index' with 'edge_type' (and 'edge_weight') "
                             "or the sparse matrix of HGConv.slot_adjacency alone")
        expected = (x.size(0), NUM_DIRECTIONS * x.size(0))
        if tuple(adjacency.shape) != expected:
            raise ValueError(f"a sparse 'edge_index' must be the [N, 9 N] = {list(expected)} "
                             f"matrix of HGConv.slot_adjacency (got {list(adjacency.shape)})")

    def uses_fused_aggregation(self) -> bool:
        """Whether :meth:`forward` aggregates with one sparse product
        (eager mode, not explaining; see the class docstring)."""
        return (self.fuse and not self.explain and not torch.compiler.is_compiling()
                and not torch.jit.is_scripting())

    def message_and_aggregate(self, adj_t: Tensor, x: OptPairTensor) -> Tensor:
        with no_autocast(x[0].device):  # in the matrix's dtype (float32 for half inputs)
            return csr_matmul(adj_t, x[0].to(adj_t.dtype))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def _check_inputs(self, x, edge_index, edge_type, edge_weight) -> None:
        if not isinstance(x, Tensor) or not torch.is_floating_point(x):
            raise TypeError("'x' must be a floating-point tensor [N, in_channels] "
                            f"(got {getattr(x, 'dtype', type(x).__name__)})")
        if x.dim() != 2:
            raise ValueError(f"'x' must have shape [N, in_channels] (got {tuple(x.shape)})")
        if (not isinstance(self.weight, UninitializedParameter)
                and x.size(-1) != self.weight.size(1)):
            raise ValueError(f"'x' has {x.size(-1)} channels but the layer expects "
                             f"{self.weight.size(1)}")
        check_typed_edges(edge_index, edge_type, edge_weight, x.size(0))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_directions={NUM_DIRECTIONS})")
