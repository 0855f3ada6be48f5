"""The fused SLIC kernel (``pyg_hgconv::slic_tiles``) against the pure-PyTorch
path of Algorithm 1 on the tiled layout: the module's tile-relative features,
several images in parallel, both weightings, float32 and float64; its
registration as a custom op, and where it is (not) used."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import ImageToGroupGraph
from pyg_hgconv.nn.pool import fused_slic
from pyg_hgconv.nn.pool.slic import nearest_candidate, slic_assignment
from pyg_hgconv.nn.pool.tiling import TileGrid
from tests.helpers.backends import kernels_backend, slic_backend

needs_fused = pytest.mark.skipif(fused_slic.BACKEND != "fused",
                                 reason=f"fused kernel: {fused_slic.FALLBACK_REASON}")


def tiled_problem(b, height, width, tile_h, tile_w, k, m, dim, scale, seed, dtype):
    """A SLIC problem laid out as :class:`ImageToGroupGraph` lays it out:
    features relative to their tile (coordinates included), the origins
    apart, the m candidates of a tile among its own image's k centres, the
    spatially nearest candidate as the initial assignment."""
    g = torch.Generator().manual_seed(seed)
    grid = TileGrid(b, height, width, tile_h, tile_w)
    t = grid.num_tiles
    e = scale * torch.randn(b, dim, height, width, generator=g, dtype=dtype)
    local = grid.local_yx(dtype=dtype)
    origin_yx = grid.origins(dtype=dtype).repeat(b, 1)
    features = torch.cat([grid.to_tiles(e), local.expand(t, -1, -1)], 1)
    origins = torch.cat([torch.zeros(t, dim, dtype=dtype), origin_yx], 1)
    image = torch.arange(t) // grid.tiles_per_image
    candidates = image.unsqueeze(1) * k + torch.rand(t, k, generator=g).argsort(1)[:, :m]
    center_pixel = torch.rand(b, height * width, generator=g).argsort(1)[:, :k]
    center_yx = torch.stack([center_pixel // width, center_pixel % width], -1).to(dtype)
    own = e.flatten(2).gather(2, center_pixel.unsqueeze(1).expand(-1, dim, -1)).transpose(1, 2)
    fallback = torch.cat([own, center_yx], 2).reshape(b * k, dim + 2)
    init = nearest_candidate(center_yx.view(b * k, 2)[candidates] - origin_yx.unsqueeze(1), local)
    return grid, (features, grid.valid(dtype=dtype), origins, candidates, init, fallback)


def assert_close_up_to_nearest_ties(fused, reference, **tolerance):
    """``fused`` and ``reference`` ``[T, m, P]`` are close, but for the positions where
    both keep nearest candidates only, as the paper's rule does for a pixel whose
    every weight underflowed: equal weights on one or more candidates. Where two
    candidates are equally near up to rounding (coincident centres), one summation
    order keeps both and another one of them; there the one's kept candidates must
    lie among the other's."""
    close = torch.isclose(fused, reference, **(tolerance or {"rtol": 1e-7, "atol": 1e-7}))
    differs = ~close.all(1)  # [T, P]
    for t, p in differs.nonzero().tolist():
        kept = [set((w[t, :, p] > 0).nonzero().view(-1).tolist()) for w in (fused, reference)]
        for w, support in zip((fused, reference), kept, strict=True):
            values = w[t, sorted(support), p]
            assert support and torch.allclose(values, torch.full_like(values, 1 / len(support))), \
                (t, p, w[t, :, p])
        assert kept[0] <= kept[1] or kept[1] <= kept[0], (t, p, kept)
    torch.testing.assert_close(fused.masked_fill(differs.unsqueeze(1), 0),
                               reference.masked_fill(differs.unsqueeze(1), 0), **tolerance)


@needs_fused
@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 3), height=st.integers(1, 9), width=st.integers(1, 11),
       tile_h=st.integers(1, 4), tile_w=st.integers(1, 6), centres=st.integers(1, 8),
       m=st.integers(1, 5), dim=st.integers(1, 4), iterations=st.integers(0, 4),
       weights=st.sampled_from(["softmax", "paper"]), scale=st.sampled_from([0.2, 1.0, 5.0]),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_the_fused_kernel_equals_the_pytorch_path(b, height, width, tile_h, tile_w, centres, m,
                                                  dim, iterations, weights, scale, dtype, seed):
    k = min(centres, height * width)
    if weights == "paper" and dtype == torch.float32:
        # where exp(-d^2) underflows for every candidate (large scales), the paper's
        # rule falls back to the nearest candidate, and which of two candidates at
        # nearly equal distance is nearest is decided by float32 rounding, which
        # differs between any two summation orders; float64 covers that regime
        scale = min(scale, 1.0)
    grid, args = tiled_problem(b, height, width, min(tile_h, height), min(tile_w, width), k,
                               min(m, k), dim, scale, seed, dtype)
    options = dict(num_iterations=iterations, weights=weights,
                   tiles_per_image=grid.tiles_per_image)
    assert fused_slic.fused_slic_applies(args[0], args[2], args[5])
    fused = slic_assignment(*args, **options)
    with slic_backend("pytorch"):
        reference = slic_assignment(*args, **options)
    tolerance = dict(rtol=1e-3, atol=1e-4) if dtype == torch.float32 else {}
    assert_close_up_to_nearest_ties(fused, reference, **tolerance)
    # one block of tiles for the whole batch gives the same weights
    torch.testing.assert_close(slic_assignment(*args, num_iterations=iterations,
                                               weights=weights), fused)


@needs_fused
@pytest.mark.parametrize("size", [(28, 28, 75), (24, 40, 30)])
def test_the_module_builds_the_same_graphs_with_and_without_the_kernels(size):
    h, w, k = size
    # float64: the graphs' structure must not hang on float32 rounding at a threshold
    images = torch.rand(3, 3, h, w, generator=torch.Generator().manual_seed(h),
                        dtype=torch.float64)
    module = ImageToGroupGraph(num_groups=k, embed_channels=None, learnable=False).eval()
    with torch.no_grad():
        fused = module(images, as_batch=False)
        with kernels_backend("pytorch"):
            reference = module(images, as_batch=False)
    assert torch.equal(fused.edge_index, reference.edge_index)
    assert torch.equal(fused.edge_type, reference.edge_type)
    assert torch.equal(fused.assign_index, reference.assign_index)
    for key in ("x", "pos", "edge_weight", "assign_weight"):
        torch.testing.assert_close(fused[key], reference[key])


@needs_fused
def test_a_gradient_takes_the_differentiable_path():
    grid, args = tiled_problem(2, 6, 8, 3, 4, 5, 3, 2, 1.0, 0, torch.float64)
    features = args[0].clone().requires_grad_()
    assert not fused_slic.fused_slic_applies(features, args[2], args[5])
    out = slic_assignment(features, *args[1:], num_iterations=2,
                          tiles_per_image=grid.tiles_per_image)
    assert out.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(out, slic_assignment(features, *args[1:], num_iterations=2,
                                                        tiles_per_image=grid.tiles_per_image))


@needs_fused
def test_the_op_passes_opcheck():
    grid, args = tiled_problem(2, 5, 7, 2, 4, 4, 3, 2, 1.0, 1, torch.float32)
    torch.library.opcheck(torch.ops.pyg_hgconv.slic_tiles.default,
                          (*args, grid.tiles_per_image, 2, 1e-3, True))


@needs_fused
def test_candidates_of_another_image_are_refused():
    grid, args = tiled_problem(2, 4, 4, 2, 2, 3, 2, 1, 1.0, 2, torch.float64)
    features, valid, origins, candidates, init, fallback = args
    crossed = candidates.clone()
    crossed[0, 0] = 5  # a centre of the second image in a tile of the first
    with pytest.raises(RuntimeError, match="its own centres"):
        fused_slic.fused_slic_assignment(features, valid, origins, crossed, init, fallback,
                                         grid.tiles_per_image, 1, 1e-3, True)


@needs_fused
# the tiling's constants are cached with functools.lru_cache, which Dynamo traces through
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_the_module_with_the_fused_ops_traces_under_torch_compile():
    """Dynamo traces the fused ops through their fake kernels (graph breaks at
    the data-dependent sizes) and the compiled module builds the same graph."""
    module = ImageToGroupGraph(num_groups=20, embed_channels=None, learnable=False).eval()
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = module(images, as_batch=False)
        compiled = torch.compile(module, backend="eager")(images, as_batch=False)
    assert torch.equal(eager.edge_index, compiled.edge_index)
    assert torch.equal(eager.edge_type, compiled.edge_type)
    assert torch.equal(eager.assign_index, compiled.assign_index)
    torch.testing.assert_close(eager.x, compiled.x)
    torch.testing.assert_close(eager.edge_weight, compiled.edge_weight)
