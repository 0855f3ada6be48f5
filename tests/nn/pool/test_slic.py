"""Differentiable SLIC on tiles (Algorithm 1) against an independent dense
implementation: the initial assignment, the centre update, several iterations,
the 1e-3 filter and the final row normalisation, for both weightings and both
backends (the fused kernel and the pure-PyTorch path)."""
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool.slic import ASSIGN_THRESHOLD, nearest_candidate, slic_assignment
from pyg_hgconv.nn.pool.tiling import TileGrid
from tests.helpers.backends import SLIC_BACKENDS, slic_backend


def dense_slic(x, allowed, s0, fallback, iterations, weights, threshold=ASSIGN_THRESHOLD):
    """Algorithm 1 with dense matrices: ``x [N, D]`` pixel features, ``allowed
    [N, K]`` the candidates of every pixel, ``s0 [N, K]`` the initial hard
    assignment, ``fallback [K, D]`` the centres' own features.

    Returns ``S`` and whether it is ambiguous: a pixel left without weights by the
    paper's filter whose two nearest candidates lie within rounding of each other
    (relative 1e-9; e.g. two centres that coincide up to their last bits). It then
    keeps one or both depending on the order of the floating-point operations, and
    this reference cannot decide for the code under test."""
    s = s0.clone()
    logits = None
    for _ in range(iterations):
        mass = s.sum(0)                                            # Z_jj = sum_i S_ij
        centres = (s / mass.clamp_min(1e-300)).T @ x               # X^c = S_bar^T X
        centres = torch.where((mass > 1e-12).unsqueeze(1), centres, fallback)
        dist = torch.cdist(x, centres).square()                    # ||X_i - X^c_j||^2
        logits = torch.where(allowed, -dist, torch.full_like(dist, -torch.inf))
        if weights == "softmax":
            s = torch.softmax(logits, dim=1)
        else:
            s = torch.exp(logits)
    s = s * (s >= threshold)                                       # line 7
    ambiguous = False
    if weights == "paper" and logits is not None:
        empty = s.sum(1, keepdim=True) == 0
        s = torch.where(empty & (logits == logits.amax(1, keepdim=True)), 1.0, s)
        if logits.size(1) > 1:
            top = logits[empty.squeeze(1)].topk(2, dim=1).values
            ambiguous = bool((torch.isfinite(top[:, 1])
                              & ((top[:, 0] - top[:, 1]) <= 1e-9 * top[:, 0].abs())).any())
    return s / s.sum(1, keepdim=True), ambiguous                   # line 8


@pytest.mark.parametrize("backend", SLIC_BACKENDS)
@settings(max_examples=40, deadline=None)
@given(height=st.integers(2, 7), width=st.integers(2, 9), tile_h=st.integers(1, 3),
       tile_w=st.integers(1, 4), centres=st.integers(1, 6), m=st.integers(1, 4),
       dim=st.integers(1, 3), iterations=st.integers(0, 4),
       weights=st.sampled_from(["softmax", "paper"]), scale=st.sampled_from([0.3, 1.0, 4.0]),
       seed=st.integers(0, 2**16))
def test_tiled_slic_matches_a_dense_implementation(backend, height, width, tile_h, tile_w,
                                                   centres, m, dim, iterations, weights, scale,
                                                   seed):
    g = torch.Generator().manual_seed(seed)
    b, k = 2, min(centres, height * width)
    m = min(m, k)
    grid = TileGrid(b, height, width, min(tile_h, height), min(tile_w, width))
    t, p = grid.num_tiles, grid.tile_pixels
    x_map = scale * torch.randn(b, dim, height, width, generator=g, dtype=torch.float64)
    # every tile: m distinct centres of its own image (indices into the B K centres)
    image = torch.arange(t) // grid.tiles_per_image
    local = torch.rand(t, k, generator=g).argsort(1)[:, :m]
    candidates = image.unsqueeze(1) * k + local
    center_pixel = torch.rand(b, height * width, generator=g).argsort(1)[:, :k]
    fallback = x_map.flatten(2).gather(2, center_pixel.unsqueeze(1).expand(-1, dim, -1))
    fallback = fallback.transpose(1, 2).reshape(b * k, dim)
    # a hard initial assignment: any one candidate per pixel
    choice = torch.randint(0, m, (t, p), generator=g)
    init = torch.nn.functional.one_hot(choice, m).transpose(1, 2).to(torch.float64)
    valid = grid.valid(dtype=torch.float64)
    features = grid.to_tiles(x_map)  # absolute features; origins zero
    with slic_backend(backend):
        out = slic_assignment(features, valid, torch.zeros(t, dim, dtype=torch.float64),
                              candidates, init * valid, fallback, iterations, weights=weights,
                              tiles_per_image=grid.tiles_per_image)

    # the same problem, dense: pixels x centres
    n = b * height * width
    x = x_map.permute(0, 2, 3, 1).reshape(n, dim)
    per_pixel = grid.per_pixel(candidates)                       # [N, m]
    allowed = torch.zeros(n, b * k, dtype=torch.bool).scatter(1, per_pixel, True)
    s0 = torch.zeros(n, b * k, dtype=torch.float64).scatter(
        1, per_pixel, grid.to_pixels(init * valid))
    expected, ambiguous = dense_slic(x, allowed, s0, fallback, iterations, weights)
    assume(not ambiguous)
    got = torch.zeros(n, b * k, dtype=torch.float64).scatter_add(1, per_pixel,
                                                                 grid.to_pixels(out))
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(got.sum(1), torch.ones(n, dtype=torch.float64))


@pytest.mark.parametrize("backend", SLIC_BACKENDS)
def test_paper_weights_filter_the_unnormalised_kernel(backend):
    # one pixel (feature 0) and two empty centres at squared distances 7.5 and 8:
    # exp(-7.5) and exp(-8) are both below 1e-3, so Algorithm 1 as written
    # filters both (and the pixel keeps its nearest centre), while the
    # normalised weights 0.62 and 0.38 both pass the filter
    grid = TileGrid(1, 1, 1, 1, 1)
    args = (torch.zeros(1, 1, 1, dtype=torch.float64), grid.valid(dtype=torch.float64),
            torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[0, 1]]),
            torch.zeros(1, 2, 1, dtype=torch.float64),
            torch.tensor([[7.5 ** 0.5], [8.0 ** 0.5]], dtype=torch.float64))
    with slic_backend(backend):
        paper = slic_assignment(*args, num_iterations=1, weights="paper")
        softmax = slic_assignment(*args, num_iterations=1, weights="softmax")
    assert paper.view(-1).tolist() == [1.0, 0.0]
    expected = torch.softmax(torch.tensor([-7.5, -8.0], dtype=torch.float64), 0)
    torch.testing.assert_close(softmax.view(-1), expected)


@pytest.mark.parametrize("backend", SLIC_BACKENDS)
def test_a_pixel_far_from_every_centre_stays_finite_with_the_paper_weights(backend):
    grid = TileGrid(1, 2, 2, 2, 2)
    features = torch.full((1, 1, 4), 100.0, dtype=torch.float64)
    fallback = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    init = torch.zeros(1, 2, 4, dtype=torch.float64)
    init[0, 0] = 1.0
    with slic_backend(backend):
        out = slic_assignment(features, grid.valid(dtype=torch.float64),
                              torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[0, 1]]),
                              init, fallback, num_iterations=2, weights="paper")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.sum(1), torch.ones(1, 4, dtype=torch.float64))


def test_initial_assignment_is_the_spatially_nearest_candidate():
    pixel_yx = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    candidate_yx = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    s0 = nearest_candidate(candidate_yx, pixel_yx)
    # pixel (1, 0) is equidistant from (0, 0) and (1, 1): the first slot wins
    assert s0.argmax(1).tolist() == [[0, 2, 0, 1]]
    assert torch.equal(s0.sum(1), torch.ones(1, 4))


@pytest.mark.parametrize("weights", ["softmax", "paper"])
def test_gradients_reach_the_features(weights):
    torch.manual_seed(0)
    grid = TileGrid(1, 4, 4, 2, 2)
    features = torch.randn(grid.num_tiles, 2, 4, dtype=torch.float64, requires_grad=True)
    candidates = torch.tensor([[0, 1], [1, 2], [0, 2], [1, 2]])
    init = torch.nn.functional.one_hot(torch.randint(0, 2, (4, 4)), 2).transpose(1, 2).double()
    fallback = torch.randn(3, 2, dtype=torch.float64)

    def run(f):
        return slic_assignment(f, grid.valid(dtype=torch.float64),
                               torch.zeros(4, 2, dtype=torch.float64), candidates, init,
                               fallback, num_iterations=2, threshold=0.0, weights=weights)

    assert torch.autograd.gradcheck(run, (features,))
