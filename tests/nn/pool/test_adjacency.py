"""The sparse group adjacency against a dense S^T A^delta S reference (Eqs. 4, 7)."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import OFFSETS, SELF_LOOP, grid_graph
from pyg_hgconv.nn.pool.adjacency import (
    DIRECTION_RULES,
    build_group_adjacency,
    cancel_noise,
    finalize_adjacency,
    group_adjacency,
    keep_strongest_direction,
)
from pyg_hgconv.nn.pool.tiling import TiledAssignment
from pyg_hgconv.utils.directions import displacement_direction
from tests.helpers.assignments import random_assignment, random_tiled


def coo(index, weight, batch, height, width, num_groups):
    return TiledAssignment.from_coo(index, weight, batch, height, width, num_groups)


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

    raw = group_adjacency(coo(index, weight, batch, height, width, num_groups))
    torch.testing.assert_close(to_dense(raw, num_groups), ref)

    # Eq. 7: A^d <- max(0, A^d - A^(-d)) with A^(-d) = (A^d)^T
    opposite = ref.flip(0)
    cancelled_ref = (ref - opposite).clamp_min(0.0)
    cancelled = cancel_noise(*raw, num_groups)
    torch.testing.assert_close(to_dense(cancelled, num_groups), cancelled_ref)
    assert (cancelled[2] > 0).all()

    # strongest direction per ordered pair; ties (hard assignments give integer
    # counts) go to the smallest type if target < source, else the largest
    # (the reference selects on the same values: ties must not depend on rounding)
    strongest = to_dense(keep_strongest_direction(*cancelled, num_groups), num_groups)
    torch.testing.assert_close(strongest,
                               strongest_reference(to_dense(cancelled, num_groups)))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 2), height=st.integers(1, 9), width=st.integers(1, 9),
       tile_h=st.integers(1, 4), tile_w=st.integers(1, 4), groups=st.integers(1, 6),
       m=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_tiled_adjacency_equals_dense_reference(batch, height, width, tile_h, tile_w, groups,
                                                m, seed):
    """Tile by tile (neighbours in the same, the next and the diagonal tile,
    padded last tiles) gives exactly S^T A^delta S."""
    assignment = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    index, weight = assignment.to_coo()
    ref = reference(index, weight, batch, height, width, assignment.num_groups)
    edges = group_adjacency(assignment)
    torch.testing.assert_close(to_dense(edges, assignment.num_groups), ref)
    assert (edges[2] > 0).all()  # zero blocks are not stored


@settings(max_examples=20, deadline=None)
@given(**grids)
def test_transpose_symmetry_survives_the_pipeline(batch, height, width, groups, max_nnz, seed):
    index, weight, num_groups = random_assignment(batch, height, width, groups, max_nnz, seed)
    for cancel in (False, True):
        for strongest in (False, True):
            edges = build_group_adjacency(coo(index, weight, batch, height, width, num_groups),
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


@pytest.mark.parametrize("rule", DIRECTION_RULES)
@pytest.mark.parametrize("dense", [True, False])
def test_identity_assignment_gives_the_grid_graph_for_every_rule(rule, dense, monkeypatch):
    import pyg_hgconv.nn.pool.adjacency as adjacency

    if not dense:
        monkeypatch.setattr(adjacency, "DENSE_PIPELINE_LIMIT", 0)
    batch, height, width = 2, 3, 4
    n = batch * height * width
    grid = grid_graph(height, width, batch)
    edges = build_group_adjacency(coo(torch.arange(n).repeat(2, 1), torch.ones(n), batch,
                                      height, width, n), direction_rule=rule, pos=grid.pos)
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
    _, _, edge_weight = build_group_adjacency(coo(index, weight, 1, 4, 4, num_groups))
    edge_weight.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_dense_and_sorted_coalescing_agree(monkeypatch):
    import pyg_hgconv.nn.pool.adjacency as adjacency

    index, weight, num_groups = random_assignment(2, 6, 5, 4, 3, seed=7)
    assignment = random_tiled(2, 6, 5, 3, 2, 4, 3, seed=7)
    num_groups = assignment.num_groups
    index, weight = assignment.to_coo()
    dense_path = group_adjacency(assignment)
    monkeypatch.setattr(adjacency, "DENSE_COALESCE_LIMIT", 0)
    sorted_path = group_adjacency(assignment)
    for a, b in zip(dense_path, sorted_path, strict=True):
        assert torch.equal(a, b) if a.dtype == torch.long else torch.allclose(a, b)
    torch.testing.assert_close(to_dense(sorted_path, num_groups),
                               reference(index, weight, 2, 6, 5, num_groups))


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 2), height=st.integers(1, 8), width=st.integers(1, 8),
       tile=st.integers(1, 3), groups=st.integers(1, 6), m=st.integers(1, 4),
       seed=st.integers(0, 2**16), threshold=st.sampled_from([0.0, 1e-7, 0.05]))
def test_dense_and_sparse_pipelines_agree(batch, height, width, tile, groups, m, seed,
                                          threshold):
    """Small graphs run the pipeline on a dense [9, N, N] array, large ones
    with sorts; both give the same edges in the same order (dyadic weights: the
    two sum in different orders, and a tie between two directions must be a tie
    in both)."""
    import pyg_hgconv.nn.pool.adjacency as adjacency

    assignment = random_tiled(batch, height, width, tile, tile, groups, m, seed, dyadic=True)
    pos = assignment.centroids()
    rules = [(False, "paper")] + [(True, rule) for rule in DIRECTION_RULES]
    for cancel, (strongest, rule) in itertools.product((False, True), rules):
        kwargs = dict(noise_cancel=cancel, max_direction=strongest, threshold=threshold,
                      direction_rule=rule, pos=pos)
        dense = build_group_adjacency(assignment, **kwargs)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(adjacency, "DENSE_PIPELINE_LIMIT", 0)
            sparse = build_group_adjacency(assignment, **kwargs)
        assert torch.equal(dense[0], sparse[0]) and torch.equal(dense[1], sparse[1]), kwargs
        torch.testing.assert_close(dense[2], sparse[2])
        # one dense block per image gives the same edges as one block for the batch
        per_image = build_group_adjacency(assignment, **kwargs,
                                          groups_per_image=torch.full((batch,), groups))
        assert torch.equal(per_image[0], dense[0]) and torch.equal(per_image[1], dense[1])
        torch.testing.assert_close(per_image[2], dense[2])
        # and so do chunks of one image
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(adjacency, "DENSE_CHUNK_SLOTS", 1)
            chunked = build_group_adjacency(assignment, **kwargs,
                                            groups_per_image=torch.full((batch,), groups))
        assert torch.equal(chunked[0], dense[0]) and torch.equal(chunked[1], dense[1])
        torch.testing.assert_close(chunked[2], dense[2])


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 2), height=st.integers(2, 8), width=st.integers(2, 8),
       tile=st.integers(1, 3), groups=st.integers(2, 6), m=st.integers(2, 4),
       seed=st.integers(0, 2**16))
def test_direction_rules_keep_one_direction_per_pair_consistently(batch, height, width, tile,
                                                                  groups, m, seed):
    assignment = random_tiled(batch, height, width, tile, tile, groups, m, seed)
    pos = assignment.centroids()
    paper = build_group_adjacency(assignment, threshold=0.0, pos=pos)
    for rule in DIRECTION_RULES:
        edge_index, edge_type, edge_weight = build_group_adjacency(
            assignment, threshold=0.0, direction_rule=rule, pos=pos)
        non_self = edge_type != SELF_LOOP
        src, dst = edge_index[:, non_self]
        types = edge_type[non_self]
        # one direction per ordered pair, and the reverse pair has the opposite one
        key = dst * assignment.num_groups + src
        assert key.unique().numel() == key.numel()
        reverse = dict(zip((src * assignment.num_groups + dst).tolist(), types.tolist(),
                           strict=True))
        assert all(reverse[k] == 8 - t for k, t in zip(key.tolist(), types.tolist(),
                                                        strict=True))
        # the same pairs as the paper's rule (which pairs touch does not depend on it)
        paper_pairs = paper[0][:, paper[1] != SELF_LOOP]
        assert set(map(tuple, edge_index[:, non_self].T.tolist())) == set(
            map(tuple, paper_pairs.T.tolist()))
        if rule == "centroid":
            delta = pos[src] - pos[dst]
            moved = delta.abs().sum(1) > 0
            assert torch.equal(types[moved], displacement_direction(delta)[moved])
            # the weight is the pair's whole contact: the sum over the directions
            everything = build_group_adjacency(assignment, threshold=0.0,
                                               max_direction=False)
            total = {}
            for (s_, d_), t, w in zip(everything[0].T.tolist(), everything[1].tolist(),
                                      everything[2].tolist(), strict=True):
                if t != SELF_LOOP:
                    total[(s_, d_)] = total.get((s_, d_), 0.0) + w
            for (s_, d_), w in zip(edge_index[:, non_self].T.tolist(),
                                   edge_weight[non_self].tolist(), strict=True):
                assert abs(total[(s_, d_)] - w) < 1e-9
