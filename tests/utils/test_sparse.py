"""The CSR products of ``pyg_hgconv.utils.sparse`` against dense references:
values, gradients of the stored entries and of the dense operand, whatever
layout the gradient reaching the matrix has."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.utils.sparse import coalesced_csr, csr_matmul, csr_rows, csr_tensor


def random_entries(seed: int, rows: int, cols: int, density: float, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, cols, generator=g) < density
    r, c = mask.nonzero(as_tuple=True)
    values = torch.randn(r.numel(), generator=g, dtype=dtype)
    return r, c, values


def dense_of(rows, cols, values, shape):
    out = values.new_zeros(shape)
    out[rows, cols] = values
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), num_rows=st.integers(1, 7), num_cols=st.integers(1, 9),
       channels=st.integers(1, 4), density=st.sampled_from([0.0, 0.2, 0.6, 1.0]))
def test_csr_matmul_value_and_gradients_match_the_dense_product(seed, num_rows, num_cols,
                                                                channels, density):
    rows, cols, values = random_entries(seed, num_rows, num_cols, density)
    x = torch.randn(num_cols, channels, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed + 1))
    upstream = torch.randn(num_rows, channels, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(seed + 2))

    v1, x1 = values.clone().requires_grad_(), x.clone().requires_grad_()
    crow = torch.zeros(num_rows + 1, dtype=torch.long)
    crow[1:] = torch.bincount(rows, minlength=num_rows).cumsum(0)
    out = csr_matmul(csr_tensor(crow, cols, v1, (num_rows, num_cols)), x1)
    (out * upstream).sum().backward()

    v2, x2 = values.clone().requires_grad_(), x.clone().requires_grad_()
    ref = dense_of(rows, cols, v2, (num_rows, num_cols)) @ x2
    (ref * upstream).sum().backward()

    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(v1.grad, v2.grad)
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("consumer", ["native_product", "to_dense", "csr_matmul_twice"])
def test_csr_tensor_gradient_is_exact_for_every_gradient_layout(consumer):
    """The matrix built by :func:`csr_tensor` may be used by PyTorch's own ops,
    whose gradients reach it as another sparse layout or as a dense tensor."""
    rows, cols, values = random_entries(3, 5, 6, 0.4)
    crow = torch.zeros(6, dtype=torch.long)
    crow[1:] = torch.bincount(rows, minlength=5).cumsum(0)
    x = torch.randn(6, 3, dtype=torch.float64)
    weights = torch.randn(5, 6, dtype=torch.float64)

    def loss(matrix):
        if consumer == "native_product":
            return (matrix @ x).pow(2).sum()
        if consumer == "to_dense":
            return (matrix.to_dense() * weights).sum()
        return (csr_matmul(matrix, x).sum(1, keepdim=True) * csr_matmul(matrix, x)).sum()

    v1 = values.clone().requires_grad_()
    loss(csr_tensor(crow, cols, v1, (5, 6))).backward()
    v2 = values.clone().requires_grad_()
    dense = dense_of(rows, cols, v2, (5, 6))
    if consumer == "native_product":
        (dense @ x).pow(2).sum().backward()
    elif consumer == "to_dense":
        (dense * weights).sum().backward()
    else:
        (((dense @ x).sum(1, keepdim=True)) * (dense @ x)).sum().backward()
    torch.testing.assert_close(v1.grad, v2.grad)


def test_coalesced_csr_sums_duplicates_and_passes_their_gradients():
    rows = torch.tensor([0, 2, 0, 1, 2])
    cols = torch.tensor([1, 0, 1, 3, 0])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 2, dtype=torch.float64)
    out = csr_matmul(coalesced_csr(rows, cols, values, 3, 4), x)
    expected = torch.zeros(3, 4, dtype=torch.float64).index_put((rows, cols), values.detach(),
                                                                accumulate=True) @ x
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    torch.testing.assert_close(values.grad, x.sum(1)[cols])


def test_csr_rows_lists_the_row_of_every_entry():
    crow = torch.tensor([0, 2, 2, 5])
    torch.testing.assert_close(csr_rows(crow, 5), torch.tensor([0, 0, 2, 2, 2]))


def test_csr_matmul_without_gradients_is_the_plain_product():
    rows, cols, values = random_entries(1, 4, 4, 0.5)
    crow = torch.zeros(5, dtype=torch.long)
    crow[1:] = torch.bincount(rows, minlength=4).cumsum(0)
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        out = csr_matmul(csr_tensor(crow, cols, values, (4, 4)), x)
    assert not out.requires_grad
    torch.testing.assert_close(out, dense_of(rows, cols, values, (4, 4)) @ x)


@pytest.mark.parametrize("layout", ["coo", "csc"])
def test_csr_matmul_takes_other_layouts_with_their_gradients(layout):
    rows, cols, values = random_entries(5, 4, 6, 0.5)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    v1 = values.clone().requires_grad_()
    matrix = torch.sparse_coo_tensor(torch.stack([rows, cols]), v1, (4, 6))
    if layout == "csc":
        matrix = matrix.to_sparse_csc()
    csr_matmul(matrix, x).pow(2).sum().backward()
    v2 = values.clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    (dense_of(rows, cols, v2, (4, 6)) @ x2).pow(2).sum().backward()
    torch.testing.assert_close(v1.grad, v2.grad)
    torch.testing.assert_close(x.grad, x2.grad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 40), segments=st.integers(1, 6),
       channels=st.integers(1, 3), dtype=st.sampled_from([torch.float32, torch.float64,
                                                          torch.bfloat16]))
def test_segment_sum_equals_a_loop_on_both_paths(seed, rows, segments, channels, dtype):
    """The small-input scatter and the CSR product give the per-segment sums of
    a Python loop, and the gradient of every row is the upstream row of its segment."""
    import pyg_hgconv.utils.sparse as sparse

    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, segments, (rows,), generator=g)
    src = torch.randn(rows, channels, generator=g, dtype=torch.float64)
    upstream = torch.randn(segments, channels, generator=g, dtype=torch.float64)
    expected = torch.zeros(segments, channels, dtype=torch.float64)
    for i, s in enumerate(index.tolist()):
        expected[s] += src[i]
    for limit in (0, 1 << 30):  # the CSR product, the scatter
        leaf = src.to(dtype).clone().requires_grad_()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sparse, "SEGMENT_SCATTER_LIMIT", limit)
            out = sparse.SegmentSum(index, segments)(leaf)
        assert out.dtype == dtype and out.shape == (segments, channels)
        tol = dict(rtol=2e-2, atol=5e-2) if dtype == torch.bfloat16 else {}
        torch.testing.assert_close(out, expected.to(dtype), **tol)
        (out * upstream.to(dtype)).sum().backward()
        torch.testing.assert_close(leaf.grad, upstream[index].to(dtype), **tol)
