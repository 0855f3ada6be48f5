"""The fused clustering kernel (``pyg_hgconv::cluster_images``): the module builds
the same group graphs with it as the step-by-step PyTorch path (edge thresholds
above zero: a contact that cancels to exactly zero in one summation order may
keep a rounding residue in another), for every option of the clustering, with
and without a learned embedding, on contiguous and channels-last maps (tiles a
whole number of vectors wide included, which pool through in-register
transposes); whatever the thread count; only where no gradient is needed; its
registration and argument checks."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import HGConvModule, ImageToGroupGraph
from pyg_hgconv.nn.pool import fused_clustering
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES, build_group_adjacency
from pyg_hgconv.nn.pool.tiling import TileGrid, tiled_assignment_of
from pyg_hgconv.transforms import ToGroupGraph
from tests.helpers.backends import kernels_backend, needs_kernels
from tests.helpers.images import structured_image

#: attributes that must be equal, and those equal to float tolerance: the groups
#: and the assignment, then the edges
EXACT = ("assign_index", "center_pixel", "tile_candidates", "batch", "ptr")
CLOSE = ("x", "pos", "assign_weight", "mass", "tile_weight", "importance")
EDGES_EXACT, EDGES_CLOSE = ("edge_index", "edge_type"), ("edge_weight",)


def assert_same_graphs(fused, reference, edges=True, **tolerance):
    keys = (EXACT + EDGES_EXACT, CLOSE + EDGES_CLOSE) if edges else (EXACT, CLOSE)
    for key in keys[0]:
        assert torch.equal(fused[key], reference[key]), key
    for key in keys[1]:
        torch.testing.assert_close(fused[key], reference[key], **tolerance)
    assert fused.tiling == reference.tiling


def both_paths(module, x):
    with torch.no_grad():
        fused = module(x, as_batch=False)
        with kernels_backend("pytorch"):
            reference = module(x, as_batch=False)
    return fused, reference


@needs_kernels
@settings(max_examples=50, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 20), h=st.integers(2, 24), w=st.integers(2, 24),
       density=st.sampled_from([1 / 64, 1 / 16, 1 / 4]),
       candidates=st.integers(1, 20), tile=st.sampled_from([None, 1, (2, 3), (5, 4)]),
       iterations=st.integers(0, 3), weights=st.sampled_from(["softmax", "paper"]),
       rule=st.sampled_from(DIRECTION_RULES), cancel=st.booleans(),
       threshold=st.sampled_from([1e-7, 0.5]), embed=st.sampled_from([None, 4]),
       channels_last=st.booleans(), sampler=st.sampled_from(["random", "topk_random"]),
       seed=st.integers(0, 2**16))
def test_the_module_builds_the_pytorch_paths_graphs(b, c, h, w, density, candidates, tile,
                                                    iterations, weights, rule, cancel, threshold,
                                                    embed, channels_last, sampler, seed):
    torch.manual_seed(seed)
    # float64: the graphs' structure must not hang on float32 rounding at a threshold
    x = structured_image(b, c, h, w, seed).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    module = ImageToGroupGraph(
        in_channels=c, num_groups=max(1, round(density * h * w)), embed_channels=embed,
        num_candidates=candidates, tile_size=tile, num_iterations=iterations,
        slic_weights=weights, direction_rule=rule, noise_cancel=cancel,
        edge_threshold=threshold, sampler=sampler, seed=seed).double().eval()
    fused, reference = both_paths(module, x)
    if rule == "centroid":  # the kernel's own edges
        assert_same_graphs(fused, reference)
        return
    # The 'paper' and 'length' rules keep the strongest of a pair's direction
    # weights, which two summation orders may rank differently where they tie;
    # their edges come from the adjacency pipeline (tested on its own, with dyadic
    # weights) on the kernel's S: the same S, and that pipeline's edges.
    assert_same_graphs(fused, reference, edges=False)
    edges = build_group_adjacency(
        tiled_assignment_of(fused), noise_cancel=cancel, max_direction=True,
        threshold=threshold, direction_rule=rule, pos=fused.pos,
        groups_per_image=fused.ptr.diff())
    for got, expected in zip((fused.edge_index, fused.edge_type, fused.edge_weight), edges,
                             strict=True):
        assert torch.equal(got, expected)


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_vector_wide_tiles_pool_through_transposes(channels_last):
    """A map of 64 x 64 at ratio 1/64 has tiles 16 pixels wide: with 32 channels
    the kernel transposes whole 16 x 16 blocks in registers."""
    x = torch.randn(2, 32, 64, 64, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    module = ImageToGroupGraph(in_channels=32, ratio=1 / 64, embed_channels=8).double().eval()
    fused, reference = both_paths(module, x)
    assert fused.tiling[3] == 16
    assert_same_graphs(fused, reference)
    # Eq. 5 by hand: the mean of the pixels, weighted by S
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 32)
    s = torch.zeros(pixels.size(0), fused.num_nodes, dtype=torch.float64)
    s[fused.assign_index[0], fused.assign_index[1]] = fused.assign_weight
    torch.testing.assert_close(fused.x, (s / s.sum(0)).T @ pixels)


@needs_kernels
@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.parametrize("channels", [1, 24])
@pytest.mark.parametrize("groups", [200, 300, 800, 1700])
def test_images_of_many_groups_take_the_compact_pairs(cancel, channels, groups):
    """Beyond 256 groups an image's Eq. 4 goes into compact pairs instead of a
    dense block, their ids in an n x n table up to 1536 groups and hashed beyond
    (any number of groups, e.g. 800 and 1700 here): the same graph as the PyTorch
    path on both sides of both bounds. On one thread, so that the thread's
    workspace (the ids of the last image's pairs) serves one image after another."""
    x = structured_image(3, channels, 64, 64, seed=5).double()
    module = ImageToGroupGraph(in_channels=channels, num_groups=groups, embed_channels=None,
                               learnable=False, noise_cancel=cancel,
                               edge_threshold=0.25).double().eval()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        fused, reference = both_paths(module, x)
    finally:
        torch.set_num_threads(threads)
    assert (fused.ptr.diff() > 256).all() == (groups > 256)
    assert (fused.ptr.diff() > 1536).all() == (groups > 1536)
    assert_same_graphs(fused, reference)


@needs_kernels
def test_mnist_like_digits_in_float32():
    """One-channel float32 digits (the superpixel benchmark's setting) through
    ToGroupGraph: the same structure, values to float32 tolerance."""
    digits = structured_image(4, 1, 28, 28, seed=3).clamp(0, 1)
    transform = ToGroupGraph(num_groups=75)
    for image in digits:
        with torch.no_grad():
            fused = transform(image)
            with kernels_backend("pytorch"):
                reference = transform(image)
        for key in ("edge_index", "edge_type", "assign_index", "center_pixel"):
            assert torch.equal(fused[key], reference[key]), key
        for key in ("x", "pos", "edge_weight", "assign_weight"):
            torch.testing.assert_close(fused[key], reference[key], rtol=1e-4, atol=1e-5)


@needs_kernels
def test_the_result_does_not_depend_on_the_threads():
    images = structured_image(5, 3, 20, 28, seed=1)
    module = ImageToGroupGraph(num_groups=20, embed_channels=None, learnable=False).eval()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = module(images, as_batch=False)
        torch.set_num_threads(2)
        with torch.no_grad():
            two = module(images, as_batch=False)
    finally:
        torch.set_num_threads(threads)
    for key in EXACT + CLOSE + EDGES_EXACT + EDGES_CLOSE:
        assert torch.equal(one[key], two[key]), key


@needs_kernels
def test_a_gradient_takes_the_pytorch_path():
    module = HGConvModule(8, num_layers=1, num_groups=6).train()
    x = torch.randn(2, 8, 12, 12, requires_grad=True)
    embedding = module.pool._embed(x)
    assert not fused_clustering.fused_clustering_applies(embedding, x, module.pool.log_scales)
    module(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert module.pool.log_scales.grad is not None
    with torch.no_grad():
        assert fused_clustering.fused_clustering_applies(embedding, x, module.pool.log_scales)


@needs_kernels
def test_non_finite_features_are_refused():
    module = ImageToGroupGraph(num_groups=4, embed_channels=None, learnable=False).eval()
    x = torch.rand(1, 2, 6, 6)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="'x' must be finite"):
        module(x)


def op_args(b=2, d=3, h=9, w=11, k=6, m=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(b, d, h, w, generator=g, dtype=dtype)
    centers = torch.rand(b, h * w, generator=g).argsort(1)[:, :k].sort(1).values
    grid = TileGrid.for_spacing(b, h, w, (h * w / k) ** 0.5, m)
    return (embedding, centers, embedding, grid.tile_h, grid.tile_w, m, 1.5, 0.8, 2, 1e-3, True,
            True, True, 0.5, 0.41, 1e-12)


@needs_kernels
def test_the_op_passes_opcheck():
    op = torch.ops.pyg_hgconv.cluster_images.default
    torch.library.opcheck(op, op_args())
    args = list(op_args(dtype=torch.float32))
    args[2] = None  # no map to pool
    torch.library.opcheck(op, tuple(args))


@needs_kernels
def test_bad_arguments_are_named():
    op = torch.ops.pyg_hgconv.cluster_images
    args = list(op_args())
    for index, value, message in [
            (0, args[0][0], "'embedding' must be \\[B, D, H, W\\]"),
            (0, args[0].long(), "'embedding' must be float32 or float64"),
            (1, args[1][:1], "'centers' must be a LongTensor \\[B, K\\]"),
            (1, args[1] + 1000, "'centers' must index pixels in \\[0, 99\\)"),
            (2, args[2][:, :, :4], "'x' must be \\[B, C, H, W\\]"),
            (3, 10, "tiles of 10 x"),
            (5, 7, "'num_candidates' must lie in \\[1, 6\\]"),
            (8, -1, "'num_iterations' must be >= 0")]:
        bad = list(args)
        bad[index] = value
        with pytest.raises(RuntimeError, match=message):
            op(*bad)
