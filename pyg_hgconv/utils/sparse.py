r"""Products with the sparse assignment, :math:`S X` and :math:`S^\top X`.

A :class:`SparsePattern` holds the CSR layout of a sparse matrix given in
coordinate form ``(rows, cols)``; :meth:`SparsePattern.matmul` multiplies it,
with any values, by a dense matrix. The forward pass is one CSR matrix
product (MKL on CPU, cuSPARSE on CUDA) that never materialises the
``nnz x C`` gathered rows; the backward pass returns the exact gradients for
the dense matrix (a product with the transpose) and for the values
(:math:`\partial L / \partial v_e = \langle g_{r_e}, x_{c_e} \rangle`), so the
assignment stays trainable end to end. A pattern is built once and reused
when only the values change (the SLIC iterations).
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.utils import coalesce

#: dtypes whose sparse products run in ``float32``
HALF_DTYPES = (torch.float16, torch.bfloat16)


def no_autocast(device: torch.device):
    """A context without autocast on ``device``'s type: sparse products run in
    the dtype of their operands (autocast would cast them to half precision,
    which has no sparse CPU kernels)."""
    return torch.autocast(device.type, enabled=False)


class SparsePattern:
    """The CSR layout of the entries ``(rows[e], cols[e])`` of a
    ``num_rows x num_cols`` matrix; ``(row, col)`` pairs must be unique."""

    def __init__(self, rows: Tensor, cols: Tensor, num_rows: int, num_cols: int):
        self.rows, self.cols = rows, cols
        self.num_rows, self.num_cols = num_rows, num_cols
        self.order = torch.argsort(rows * num_cols + cols)
        self.crow = row_pointers(rows, num_rows)
        self.sorted_cols = cols[self.order]
        self._transpose: SparsePattern | None = None

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    def transpose(self) -> SparsePattern:
        if self._transpose is None:
            self._transpose = SparsePattern(self.cols, self.rows, self.num_cols, self.num_rows)
        return self._transpose

    def csr(self, values: Tensor) -> Tensor:
        return csr_tensor(self.crow, self.sorted_cols, values[self.order],
                          (self.num_rows, self.num_cols))

    def matmul(self, values: Tensor, dense: Tensor) -> Tensor:
        r"""Return :math:`M X` for ``M[rows[e], cols[e]] = values[e]``, ``[num_rows, C]``;
        differentiable in ``values`` and ``dense``. Half-precision ``dense``
        (``float16``, ``bfloat16``) is multiplied in ``float32`` (sparse
        products have no half-precision CPU kernels) and returned in its dtype."""
        if dense.dtype in HALF_DTYPES:
            return _SparseMatmul.apply(self, values, dense.float().contiguous()).to(dense.dtype)
        return _SparseMatmul.apply(self, values, dense.contiguous())


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pattern: SparsePattern, values: Tensor, dense: Tensor) -> Tensor:
        ctx.save_for_backward(values, dense)
        ctx.pattern = pattern
        if pattern.nnz == 0:
            return dense.new_zeros(pattern.num_rows, dense.size(1))
        with no_autocast(dense.device):
            return pattern.csr(values.to(dense.dtype)) @ dense

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, dense = ctx.saved_tensors
        pattern = ctx.pattern
        grad_values = grad_dense = None
        if ctx.needs_input_grad[1]:
            grad_values = entry_gradient(grad_out, dense, pattern.rows,
                                         pattern.cols).to(values.dtype)
        if ctx.needs_input_grad[2]:
            if pattern.nnz == 0:
                grad_dense = torch.zeros_like(dense)
            else:
                with no_autocast(grad_out.device):
                    grad_dense = (pattern.transpose().csr(values.to(grad_out.dtype))
                                  @ grad_out.contiguous())
        return None, grad_values, grad_dense


def entry_gradient(grad_out: Tensor, dense: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    r"""The gradient of the stored entries of ``M`` in ``M X``,
    :math:`\partial L / \partial M_{r_e c_e} = \langle g_{r_e}, x_{c_e} \rangle`,
    ``[nnz]``, from the output gradient ``grad_out`` ``[R, C]`` and ``dense`` ``[K, C]``."""
    return (grad_out[rows] * dense[cols]).sum(1)


def sparse_matmul(rows: Tensor, cols: Tensor, values: Tensor, dense: Tensor,
                  num_rows: int) -> Tensor:
    r"""Return :math:`M X` for the sparse ``M[rows[e], cols[e]] = values[e]``.

    Args:
        rows (LongTensor): ``[nnz]`` row of each entry (``< num_rows``).
        cols (LongTensor): ``[nnz]`` column of each entry (``< dense.size(0)``).
        values (Tensor): ``[nnz]`` entries; ``(row, col)`` pairs must be unique.
        dense (Tensor): ``[K, C]``.
        num_rows (int): rows of ``M``.

    Returns:
        Tensor ``[num_rows, C]``, differentiable in ``values`` and ``dense``.
    """
    return SparsePattern(rows, cols, num_rows, dense.size(0)).matmul(values, dense)


#: :class:`SegmentSum` sums inputs of up to this many elements with ``index_add``
#: (on CPU a CSR product has a fixed overhead that dominates small inputs; a
#: small scatter has almost none)
SEGMENT_SCATTER_LIMIT = 1 << 15


class SegmentSum:
    """Sum the rows of ``[M, C]`` matrices into ``num_segments`` rows,
    ``out[index[i]] += src[i]``, differentiable in ``src``: as one CSR product
    (faster than a scatter on CPU for large inputs, deterministic), or an
    ``index_add`` for small float32/float64 inputs (up to
    :data:`SEGMENT_SCATTER_LIMIT` elements, on CPU, where the CSR product's fixed
    cost dominates). Build it once for an ``index`` and apply it to many ``src``."""

    def __init__(self, index: Tensor, num_segments: int):
        self.index, self.num_segments = index, num_segments
        self._pattern: SparsePattern | None = None

    @property
    def pattern(self) -> SparsePattern:
        if self._pattern is None:
            columns = torch.arange(self.index.numel(), device=self.index.device)
            self._pattern = SparsePattern(self.index, columns, self.num_segments,
                                          self.index.numel())
        return self._pattern

    def __call__(self, src: Tensor) -> Tensor:
        """``src [M, C]`` -> ``[num_segments, C]``."""
        if (src.numel() <= SEGMENT_SCATTER_LIMIT and src.device.type == "cpu"
                and src.dtype in (torch.float32, torch.float64)):
            return src.new_zeros(self.num_segments, src.size(1)).index_add_(0, self.index, src)
        return self.pattern.matmul(src.new_ones(self.index.numel()), src)


def coalesced_csr(rows: Tensor, cols: Tensor, values: Tensor, num_rows: int,
                  num_cols: int) -> Tensor:
    """The sparse CSR ``num_rows x num_cols`` matrix with ``M[rows[e], cols[e]]
    += values[e]`` (duplicate entries summed, by
    :func:`torch_geometric.utils.coalesce`); differentiable in ``values``."""
    (rows, cols), summed = coalesce(torch.stack([rows, cols]), values,
                                    num_nodes=max(num_rows, num_cols), reduce="sum")
    return csr_tensor(row_pointers(rows, num_rows), cols, summed, (num_rows, num_cols))


def row_pointers(rows: Tensor, num_rows: int) -> Tensor:
    """CSR row pointers ``[num_rows + 1]`` of entries in rows ``rows``."""
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=num_rows).cumsum(0)
    return crow


def csr_tensor(crow: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A sparse CSR tensor of valid, row-sorted indices (PyTorch's beta warning
    silenced); differentiable in ``values``.

    When ``values`` needs a gradient the tensor is built by an autograd function
    whose backward reads the gradient's values directly when it has the
    tensor's own layout (what :func:`csr_matmul` returns), instead of PyTorch's
    generic ``sparse_mask`` of the gradient onto the layout."""
    if values.requires_grad and torch.is_grad_enabled():
        return _CsrOfValues.apply(crow, cols, values, size)
    return _plain_csr(crow, cols, values, size)


def _plain_csr(crow: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)


def csr_rows(crow: Tensor, nnz: int) -> Tensor:
    """The row of every stored entry of a CSR layout, ``[nnz]`` (no host
    synchronisation: the count is given)."""
    counts = crow[1:] - crow[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=crow.device), counts,
                                   output_size=nnz)


class _CsrOfValues(torch.autograd.Function):
    @staticmethod
    def forward(ctx, crow: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]):
        ctx.save_for_backward(crow, cols)
        ctx.size = size
        return _plain_csr(crow, cols, values, size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        crow, cols = ctx.saved_tensors
        return None, None, _values_at(grad, crow, cols, ctx.size[1]), None


def _values_at(grad: Tensor, crow: Tensor, cols: Tensor, num_cols: int) -> Tensor:
    """The entries of ``grad`` (dense or sparse, ``[R, num_cols]``) at the
    stored positions of the CSR layout ``(crow, cols)``."""
    if (grad.layout == torch.sparse_csr and grad.col_indices().data_ptr() == cols.data_ptr()
            and grad.crow_indices().data_ptr() == crow.data_ptr()):
        return grad.values()  # the layout's own gradient (csr_matmul)
    rows = csr_rows(crow, cols.numel())
    if grad.layout == torch.strided:
        return grad[rows, cols]
    grad = grad.to_sparse_coo().coalesce()  # another layout: look the entries up
    keys = grad.indices()[0] * num_cols + grad.indices()[1]  # sorted by the coalesce
    wanted = rows * num_cols + cols
    if keys.numel() == 0:
        return grad.values().new_zeros(wanted.numel())
    at = torch.searchsorted(keys, wanted).clamp_(max=keys.numel() - 1)
    found = grad.values()[at]
    return torch.where(keys[at] == wanted, found, found.new_zeros(()))


def csr_matmul(matrix: Tensor, dense: Tensor) -> Tensor:
    r"""``matrix @ dense`` for a sparse CSR ``matrix`` ``[R, K]`` and ``dense``
    ``[K, C]``, with the exact sparse gradient of the matrix's values,
    :math:`\partial L / \partial M_{rc} = \langle g_r, x_c \rangle` on the
    stored entries only (PyTorch's own product forms the dense ``[R, K]``
    gradient ``g x^T`` first, which costs ``R K C`` for a matrix of a few
    entries per row). Matrices of another layout (COO, CSC) take PyTorch's
    own product."""
    if (matrix.layout == torch.sparse_csr and torch.is_grad_enabled()
            and (matrix.requires_grad or dense.requires_grad)):
        return _CsrMatmul.apply(matrix, dense)
    return matrix @ dense


class _CsrMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix: Tensor, dense: Tensor) -> Tensor:
        ctx.save_for_backward(matrix, dense)
        return matrix @ dense

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        matrix, dense = ctx.saved_tensors
        grad_matrix = grad_dense = None
        if ctx.needs_input_grad[0]:
            crow, cols = matrix.crow_indices(), matrix.col_indices()
            rows = csr_rows(crow, cols.numel())
            values = entry_gradient(grad_out, dense, rows, cols).to(matrix.dtype)
            grad_matrix = _plain_csr(crow, cols, values, tuple(matrix.shape))
        if ctx.needs_input_grad[1]:
            grad_dense = (matrix.t() @ grad_out.contiguous().to(matrix.dtype)).to(dense.dtype)
        return grad_matrix, grad_dense
