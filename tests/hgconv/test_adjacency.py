"""The sparse group adjacency against a dense S^T A^delta S reference (Eqs. 4, 7)."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import OFFSETS, grid_graph
from pyg_hgconv.adjacency import (
    build_group_adjacency,
    cancel_noise,
    finalize_adjacency,
    group_adjacency,
    keep_strongest_direction,
)


def random_assignment(batch, height, width, groups_per_image, max_nnz, seed):
    """A random sparse row-normalised S in COO form, groups local to each image."""
    g = torch.Generator().manual_seed(seed)
    n = batch * height * width
    nnz = torch.randint(1, max_nnz + 1, (n,), generator=g)
    pixel = torch.repeat_interleave(torch.arange(n), nnz)
    image = pixel // (height * width)
    local = torch.randint(0, groups_per_image, (pixel.numel(),), generator=g)
    group = image * groups_per_image + local
    weight = torch.rand(pixel.numel(), generator=g, dtype=torch.float64) + 0.05
    # merge duplicates (pixel, group) and normalise rows
    key = pixel * batch * groups_per_image + group
    uniq, inv = torch.unique(key, return_inverse=True)
    w = torch.zeros(uniq.numel(), dtype=torch.float64).index_add(0, inv, weight)
    pixel, group = uniq // (batch * groups_per_image), uniq % (batch * groups_per_image)
    w = w / torch.zeros(n, dtype=torch.float64).index_add(0, pixel, w)[pixel]
    return torch.stack([pixel, group]), w, batch * groups_per_image


def dense_s(assign_index, assign_weight, num_pixels, num_groups):
    s = torch.zeros(num_pixels, num_groups, dtype=torch.float64)
    s[assign_index[0], assign_index[1]] = assign_weight
    return s


def dense_a(batch, height, width, t):
    """Pixel adjacency A^delta: A[p, p + delta] = 1 (Eq. 2)."""
    dy, dx = OFFSETS[t]
    n = batch * height * width
    a = torch.zeros(n, n, dtype=torch.float64)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    p = (b * height + y) * width + x
                    a[p, p + dy * width + dx] = 1.0
    return a


def to_dense(edges, num_groups):
    edge_index, edge_type, edge_weight = edges
    out = torch.zeros(9, num_groups, num_groups, dtype=torch.float64)
    # entry A^t[target, source]
    out.index_put_((edge_type, edge_index[1], edge_index[0]), edge_weight.double(),
                   accumulate=True)
    return out


def reference(assign_index, assign_weight, batch, height, width, num_groups):
    s = dense_s(assign_index, assign_weight, batch * height * width, num_groups)
    ref = torch.stack([s.T @ dense_a(batch, height, width, t) @ s for t in range(9)])
    ref[4] = 0.0  # the centre direction is replaced by the identity later
    return ref


def strongest_reference(dense):
    out = torch.zeros_like(dense)
    for g in range(dense.size(1)):
        for h in range(dense.size(2)):
            values = dense[:, g, h].clone()
            values[4] = 0.0
            if values.max() <= 0:
                continue
            ties = (values == values.max()).nonzero().view(-1)
            t = int(ties.min()) if g < h else int(ties.max())
            out[t, g, h] = values[t]
    return out


grids = dict(
    batch=st.integers(1, 2),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    groups=st.integers(1, 4),
    max_nnz=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)


@settings(max_examples=30, deadline=None)
@given(**grids)
def test_sparse_adjacency_equals_dense_reference(batch, height, width, groups, max_nnz, seed):
    index, weight, num_groups = random_assignment(batch, height, width, groups, max_nnz, seed)
    ref = reference(index, weight, batch, height, width, num_groups)

    raw = group_adjacency(index, weight, batch, height, width, num_groups)
    torch.testing.assert_close(to_dense(raw, num_groups), ref)

    # Eq. 7: A^d <- max(0, A^d - A^(-d)) with A^(-d) = (A^d)^T
    opposite = ref.flip(0)
    cancelled_ref = (ref - opposite).clamp_min(0.0)
    cancelled = cancel_noise(*raw, num_groups)
    torch.testing.assert_close(to_dense(cancelled, num_groups), cancelled_ref)
    assert (cancelled[2] > 0).all()

    # strongest direction per ordered pair; ties (hard assignments give integer
    # counts) go to the smallest type if target < source, else the largest
    strongest = to_dense(keep_strongest_direction(*cancelled, num_groups), num_groups)
    torch.testing.assert_close(strongest, strongest_reference(cancelled_ref))


@settings(max_examples=20, deadline=None)
@given(**grids)
def test_transpose_symmetry_survives_the_pipeline(batch, height, width, groups, max_nnz, seed):
    index, weight, num_groups = random_assignment(batch, height, width, groups, max_nnz, seed)
    for cancel in (False, True):
        for strongest in (False, True):
            edges = build_group_adjacency(index, weight, batch, height, width, num_groups,
                                          noise_cancel=cancel, max_direction=strongest)
            dense = to_dense(edges, num_groups)
            # A^(-delta) = (A^delta)^T for every direction
            torch.testing.assert_close(dense.flip(0), dense.transpose(1, 2))
            # identity self loops, no other diagonal entries
            torch.testing.assert_close(dense[4], torch.eye(num_groups, dtype=torch.float64))
            off_diagonal = dense[[0, 1, 2, 3, 5, 6, 7, 8]].diagonal(dim1=1, dim2=2)
            assert (off_diagonal == 0).all()
            if strongest:  # at most one direction per ordered pair of groups
                assert ((dense[[0, 1, 2, 3, 5, 6, 7, 8]] > 0).sum(0) <= 1).all()


def test_identity_assignment_gives_the_grid_graph():
    batch, height, width = 2, 3, 4
    n = batch * height * width
    edges = build_group_adjacency(torch.arange(n).repeat(2, 1), torch.ones(n), batch, height,
                                  width, n)
    grid = grid_graph(height, width, batch)
    assert torch.equal(edges[0], grid.edge_index)
    assert torch.equal(edges[1], grid.edge_type)
    assert torch.equal(edges[2], grid.edge_weight)


def test_weak_edges_dropped_and_loops_reset():
    edge_index = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 1]])
    edge_type = torch.tensor([5, 3, 5, 4])
    edge_weight = torch.tensor([1e-8, 0.5, 0.7, 3.0])
    out_index, out_type, out_weight = finalize_adjacency(edge_index, edge_type, edge_weight, 2)
    # the 1e-8 edge and the diagonal 0 -> 0 of type 5 are gone; loops are 1
    assert out_type.tolist() == [4, 3, 4]
    assert out_index.tolist() == [[0, 0, 1], [0, 1, 1]]
    assert out_weight.tolist() == [1.0, 0.5, 1.0]


def test_adjacency_is_differentiable_in_the_assignment():
    index, weight, num_groups = random_assignment(1, 4, 4, 3, 2, seed=3)
    weight = weight.clone().requires_grad_()
    _, _, edge_weight = build_group_adjacency(index, weight, 1, 4, 4, num_groups)
    edge_weight.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_dense_and_sorted_coalescing_agree(monkeypatch):
    import pyg_hgconv.adjacency as adjacency

    index, weight, num_groups = random_assignment(2, 6, 5, 4, 3, seed=7)
    dense_path = group_adjacency(index, weight, 2, 6, 5, num_groups)
    monkeypatch.setattr(adjacency, "DENSE_COALESCE_LIMIT", 0)
    sorted_path = group_adjacency(index, weight, 2, 6, 5, num_groups)
    for a, b in zip(dense_path, sorted_path, strict=True):
        assert torch.equal(a, b) if a.dtype == torch.long else torch.allclose(a, b)
    torch.testing.assert_close(to_dense(sorted_path, num_groups),
                               reference(index, weight, 2, 6, 5, num_groups))
