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
            grad_values = (grad_out[pattern.rows] * dense[pattern.cols]).sum(1).to(values.dtype)
        if ctx.needs_input_grad[2]:
            if pattern.nnz == 0:
                grad_dense = torch.zeros_like(dense)
            else:
                with no_autocast(grad_out.device):
                    grad_dense = (pattern.transpose().csr(values.to(grad_out.dtype))
                                  @ grad_out.contiguous())
        return None, grad_values, grad_dense


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


class SegmentSum:
    """Sum the rows of ``[M, C]`` matrices into ``num_segments`` rows,
    ``out[index[i]] += src[i]``, as one CSR product (faster than a scatter on
    CPU, deterministic, differentiable in ``src``). Build it once for an
    ``index`` and apply it to many ``src``."""

    def __init__(self, index: Tensor, num_segments: int):
        columns = torch.arange(index.numel(), device=index.device)
        self.pattern = SparsePattern(index, columns, num_segments, index.numel())
        self._ones = torch.ones(index.numel(), device=index.device)

    def __call__(self, src: Tensor) -> Tensor:
        """``src [M, C]`` -> ``[num_segments, C]``."""
        return self.pattern.matmul(self._ones.to(src.dtype), src)


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
    silenced); differentiable in ``values``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)
