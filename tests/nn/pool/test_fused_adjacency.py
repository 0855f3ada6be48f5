"""The fused group-adjacency op against the dense S^T A^delta S reference and the
pure-PyTorch tile blocks (values, gradients, torch.compile)."""
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool import adjacency, fused_adjacency
from pyg_hgconv.nn.pool.adjacency import build_group_adjacency, dense_half_blocks
from pyg_hgconv.nn.pool.tiling import TiledAssignment
from pyg_hgconv.utils.directions import HALF_DIRECTIONS
from tests.helpers.assignments import random_tiled
from tests.nn.pool.test_adjacency import dense_a, dense_s

needs_fused = pytest.mark.skipif(fused_adjacency.BACKEND != "fused",
                                 reason=f"fused kernel: {fused_adjacency.FALLBACK_REASON}")


def local_index(assignment, batch, groups):
    nodes = torch.arange(assignment.num_groups)
    return nodes // groups, nodes % groups


def op_case(batch, seed, groups=5):
    """A random tiled assignment of ``batch`` 6x7 images with ``groups`` groups
    each and the per-image group ids of its candidate slots."""
    assignment = random_tiled(batch, 6, 7, 3, 3, groups, 4, seed=seed)
    _, local = local_index(assignment, batch, groups)
    return assignment, local[assignment.candidates]


def op_arguments(weight, ids, grid, batch, n):
    """The arguments of ``pyg_hgconv::half_direction_blocks`` for ``grid``'s tiling."""
    return weight, ids, batch, grid.height, grid.width, grid.tile_h, grid.tile_w, n


def reference_blocks(assignment, batch, height, width, groups):
    """[B, 4, n, n] from the dense S^T A^delta S of every image (independent of the tiling)."""
    index, weight = assignment.to_coo()
    s = dense_s(index, weight.double(), batch * height * width, assignment.num_groups)
    out = torch.zeros(batch, 4, groups, groups, dtype=torch.float64)
    for d, t in enumerate(HALF_DIRECTIONS):
        full = s.T @ dense_a(batch, height, width, t) @ s
        for b in range(batch):
            out[b, d] = full[b * groups:(b + 1) * groups, b * groups:(b + 1) * groups]
    return out


tilings = dict(batch=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 9),
               tile_h=st.integers(1, 4), tile_w=st.integers(1, 5), groups=st.integers(1, 6),
               m=st.integers(1, 5), seed=st.integers(0, 2**16))


@needs_fused
@settings(max_examples=40, deadline=None)
@given(**tilings)
def test_fused_blocks_equal_the_dense_reference_and_the_tile_blocks(batch, height, width,
                                                                    tile_h, tile_w, groups,
                                                                    m, seed):
    assignment = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    image, local = local_index(assignment, batch, groups)
    fused = dense_half_blocks(assignment, image, local, batch, groups)
    torch.testing.assert_close(fused, reference_blocks(assignment, batch, height, width, groups))
    tiles = dense_half_blocks(assignment, image, local, batch, groups, fused=False)
    torch.testing.assert_close(fused, tiles)
    # all groups of the batch in one block
    nodes = torch.arange(assignment.num_groups)
    one = dense_half_blocks(assignment, torch.zeros_like(nodes), nodes, 1, assignment.num_groups)
    torch.testing.assert_close(one, dense_half_blocks(assignment, torch.zeros_like(nodes), nodes,
                                                      1, assignment.num_groups, fused=False))
    # float32 too
    single = TiledAssignment(assignment.grid, assignment.candidates,
                             assignment.weight.float(), assignment.num_groups)
    torch.testing.assert_close(dense_half_blocks(single, image, local, batch, groups),
                               tiles.float(), rtol=1e-5, atol=1e-6)


@needs_fused
@settings(max_examples=25, deadline=None)
@given(**tilings)
def test_fused_gradient_equals_the_tile_blocks_gradient(batch, height, width, tile_h, tile_w,
                                                        groups, m, seed):
    """The gradient of every pixel's weights (zeros included) agrees with the
    tile-block products'; padding positions of a tile are not pixels (their
    weight is zero by construction upstream) and are left out."""
    assignment = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    image, local = local_index(assignment, batch, groups)
    upstream = torch.randn(batch, 4, groups, groups, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(seed))
    grads = []
    for fused in (True, False):
        weight = assignment.weight.clone().requires_grad_()
        tiled = TiledAssignment(assignment.grid, assignment.candidates, weight,
                                assignment.num_groups)
        (dense_half_blocks(tiled, image, local, batch, groups, fused=fused) * upstream).sum() \
            .backward()
        grads.append(weight.grad)
    valid = assignment.grid.valid(dtype=torch.float64).expand_as(grads[0]) > 0
    torch.testing.assert_close(grads[0][valid], grads[1][valid])


@needs_fused
def test_fused_gradcheck():
    assignment = random_tiled(2, 5, 6, 2, 3, 4, 3, seed=3)
    image, local = local_index(assignment, 2, 4)
    weight = assignment.weight.clone().requires_grad_()

    def blocks(w):
        tiled = TiledAssignment(assignment.grid, assignment.candidates, w, assignment.num_groups)
        return dense_half_blocks(tiled, image, local, 2, 4)

    # perturbations keep the zero pattern (the kernel visits the non-zero entries)
    torch.autograd.gradcheck(lambda w: blocks(w * (assignment.weight > 0)), (weight,))


@needs_fused
def test_fused_op_runs_under_torch_compile_and_its_fake_kernel_has_the_shape():
    assignment, candidates = op_case(2, seed=11)
    grid = assignment.grid

    def blocks(w, c):
        return torch.ops.pyg_hgconv.half_direction_blocks(*op_arguments(w, c, grid, 2, 5))

    eager = blocks(assignment.weight, candidates)
    compiled = torch.compile(blocks, backend="eager", fullgraph=True)(assignment.weight,
                                                                      candidates)
    torch.testing.assert_close(compiled, eager)
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake = blocks(mode.from_tensor(assignment.weight), mode.from_tensor(candidates))
    assert fake.shape == (2, 4, 5, 5) and fake.dtype == assignment.weight.dtype
    torch.library.opcheck(torch.ops.pyg_hgconv.half_direction_blocks.default,
                          op_arguments(assignment.weight, candidates, grid, 2, 5))


def test_pipeline_gives_the_same_graph_on_both_backends(monkeypatch):
    """The whole adjacency pipeline (every rule) with the fused op and with the
    pure-PyTorch fallback."""
    assignment = random_tiled(3, 9, 11, 2, 4, 6, 4, seed=5)
    pos = assignment.centroids()
    groups = torch.full((3,), 6)
    for rule in ("paper", "length", "centroid"):
        first = build_group_adjacency(assignment, direction_rule=rule, pos=pos,
                                      groups_per_image=groups, threshold=0.0)
        monkeypatch.setattr(fused_adjacency, "BACKEND", "pytorch")
        second = build_group_adjacency(assignment, direction_rule=rule, pos=pos,
                                       groups_per_image=groups, threshold=0.0)
        monkeypatch.undo()
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
        torch.testing.assert_close(first[2], second[2])


def test_backend_is_reported():
    info = fused_adjacency.backend_info()
    assert info["adjacency_backend"] in ("fused", "pytorch")
    assert (info["adjacency_fallback_reason"] is None) == (info["adjacency_backend"] == "fused")


@needs_fused
def test_op_rejects_bad_arguments_by_name():
    assignment, candidates = op_case(1, seed=2)
    op = torch.ops.pyg_hgconv.half_direction_blocks

    def call(weight=assignment.weight, ids=candidates, n=5, batch=1):
        return op(*op_arguments(weight, ids, assignment.grid, batch, n))

    with pytest.raises(RuntimeError, match="'local' must index groups"):
        call(ids=candidates + 5)  # ids beyond n
    with pytest.raises(RuntimeError, match="'local' must index groups"):
        call(ids=candidates - 1)  # negative ids
    with pytest.raises(RuntimeError, match="'weight' must be"):
        call(weight=assignment.weight[0])
    with pytest.raises(RuntimeError, match="does not fit the tiling"):
        call(batch=2)
    with pytest.raises(RuntimeError, match="'local' must be a LongTensor"):
        call(ids=candidates.int())
    # zero weights give zero blocks, never NaN
    assert torch.equal(call(weight=torch.zeros_like(assignment.weight)),
                       torch.zeros(1, 4, 5, 5, dtype=assignment.weight.dtype))


def test_kernel_library_loader_says_why_it_falls_back(tmp_path, monkeypatch):
    from pyg_hgconv.utils.kernels import load_kernel_library

    library = tmp_path / "pkg" / "_lib" / "kernels.so"
    monkeypatch.setenv("SOME_KERNELS", "0")
    assert load_kernel_library(library, "SOME_KERNELS") == "disabled by SOME_KERNELS=0"
    monkeypatch.delenv("SOME_KERNELS")
    assert "missing; run make" in load_kernel_library(library, "SOME_KERNELS")
    library.parent.mkdir(parents=True)
    library.write_bytes(b"not a library")
    assert "built for torch unknown" in load_kernel_library(library, "SOME_KERNELS")
    library.with_name("torch_version.txt").write_text(torch.__version__ + "\n")
    assert load_kernel_library(library, "SOME_KERNELS").startswith("failed to load")


@needs_fused
@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(2, 9), width=st.integers(2, 10),
       groups=st.integers(1, 7), noise_cancel=st.booleans(),
       threshold=st.sampled_from([0.0, 0.05, 0.5]), coincide=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_fused_centroid_edges_equal_the_pytorch_steps(batch, height, width, groups,
                                                      noise_cancel, threshold, coincide,
                                                      dtype, seed):
    """The centroid rule's edges (Eq. 7, contact threshold, sector types, the
    strongest type where centroids coincide, self loops, the order) with the
    fused op and with the array steps."""
    assignment = random_tiled(batch, height, width, 2, 3, groups, 4, seed)
    assignment = TiledAssignment(assignment.grid, assignment.candidates,
                                 assignment.weight.to(dtype), assignment.num_groups)
    pos = assignment.centroids()
    if coincide:  # every other group on top of its predecessor
        pos[1::2] = pos[0:-1:2] if pos.size(0) % 2 == 0 else pos[0:-2:2]
    counts = torch.full((batch,), groups)
    options = dict(noise_cancel=noise_cancel, direction_rule="centroid", pos=pos,
                   groups_per_image=counts, threshold=threshold)
    fused = build_group_adjacency(assignment, **options)
    with mock.patch.object(adjacency, "fused_centroid_applies", lambda *a: False):
        reference = build_group_adjacency(assignment, **options)
    assert torch.equal(fused[0], reference[0]) and torch.equal(fused[1], reference[1])
    torch.testing.assert_close(fused[2], reference[2])
    # the fused op is what ran, and a gradient still takes the array steps
    weight = assignment.weight.clone().requires_grad_()
    tiled = TiledAssignment(assignment.grid, assignment.candidates, weight,
                            assignment.num_groups)
    with_grad = build_group_adjacency(tiled, **options)
    assert with_grad[2].requires_grad and torch.equal(with_grad[0], fused[0])


@needs_fused
def test_fused_centroid_edges_pass_opcheck():
    assignment = random_tiled(2, 6, 7, 2, 3, 5, 4, seed=4)
    image, local = local_index(assignment, 2, 5)
    half = dense_half_blocks(assignment, image, local, 2, 5).float()
    torch.library.opcheck(torch.ops.pyg_hgconv.centroid_edges.default,
                          (half, assignment.centroids().float(), torch.full((2,), 5), True, 0.1,
                           0.4142))
