"""ImageToGroupGraph: sparse assignment, pooling, unpooling, degenerate and bad inputs."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.utils import to_dense_adj

from pyg_hgconv import GroupGraph, ImageToGroupGraph, pool, unpool
from pyg_hgconv.nn.pool.adjacency import (
    PAPER_EDGE_THRESHOLD,
    build_group_adjacency,
    group_adjacency,
)
from pyg_hgconv.nn.pool.tiling import TiledAssignment, tiled_assignment_of
from tests.helpers.images import structured_image


@pytest.fixture
def image():
    return structured_image()


def check_assignment(graph, num_candidates):
    pixel, group = graph.assign_index
    b = graph.num_graphs
    h, w = graph.image_size[0].tolist()
    n = b * h * w
    # sorted by pixel, every pixel covered, at most m entries per pixel
    assert (pixel[1:] >= pixel[:-1]).all()
    counts = torch.bincount(pixel, minlength=n)
    assert (counts >= 1).all() and (counts <= num_candidates).all()
    # rows sum to one, weights in (0, 1]
    rows = torch.zeros(n, dtype=graph.assign_weight.dtype).index_add(
        0, pixel, graph.assign_weight)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert (graph.assign_weight > 0).all() and (graph.assign_weight <= 1 + 1e-6).all()
    # a pixel's groups belong to its own image
    assert torch.equal(graph.batch[group], pixel // (h * w))
    # every group has pixels
    assert (graph.mass > 0).all()


@settings(max_examples=15, deadline=None)
@given(height=st.integers(1, 12), width=st.integers(1, 12), batch=st.integers(1, 3),
       ratio=st.sampled_from([1 / 64, 1 / 16, 1 / 4, 1.0]),
       sampler=st.sampled_from(["random", "importance", "topk_random"]),
       value=st.floats(-5, 5), seed=st.integers(0, 1000))
def test_constant_map_round_trips(height, width, batch, ratio, sampler, value, seed):
    torch.manual_seed(seed)
    transform = ImageToGroupGraph(ratio=ratio, sampler=sampler, num_candidates=5)
    x = torch.full((batch, 3, height, width), value, dtype=torch.float64)
    graph = transform(x)
    check_assignment(graph, 5)
    torch.testing.assert_close(graph.x, torch.full_like(graph.x, value))
    torch.testing.assert_close(unpool(graph.x, graph), x)


def test_graph_attributes_and_pooling_reference(image):
    transform = ImageToGroupGraph(ratio=1 / 16, learnable=False).eval()
    graph = transform(image)
    assert isinstance(graph[0], GroupGraph) and graph.num_graphs == 2
    check_assignment(graph, transform.num_candidates)
    b, c, h, w = image.shape
    # dense reference of Eq. 5 with S_bar = S Z^-1
    s = torch.zeros(b * h * w, graph.num_nodes)
    s[graph.assign_index[0], graph.assign_index[1]] = graph.assign_weight
    s_bar = s / s.sum(0, keepdim=True)
    pixels = image.permute(0, 2, 3, 1).reshape(-1, c)
    torch.testing.assert_close(graph.x, s_bar.T @ pixels)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    xy = torch.stack([xs, ys], -1).reshape(-1, 2).float().repeat(b, 1)
    torch.testing.assert_close(graph.pos, s_bar.T @ xy)
    torch.testing.assert_close(graph.mass, s.sum(0))
    # Eq. 6 reference
    torch.testing.assert_close(unpool(graph.x, graph).permute(0, 2, 3, 1).reshape(-1, c),
                               s @ graph.x)
    # the stored edges are the adjacency pipeline applied to the stored S (its
    # tiled form), and S^T A S from the coordinate form is the same up to rounding
    tiled = tiled_assignment_of(graph)
    edges = build_group_adjacency(tiled, threshold=transform.edge_threshold,
                                  direction_rule=transform.direction_rule, pos=graph.pos,
                                  groups_per_image=torch.bincount(graph.batch))
    assert torch.equal(edges[0], graph.edge_index) and torch.equal(edges[1], graph.edge_type)
    torch.testing.assert_close(edges[2], graph.edge_weight)
    from_coo = TiledAssignment.from_coo(graph.assign_index, graph.assign_weight, b, h, w,
                                        graph.num_nodes)
    n = graph.num_nodes
    dense = [to_dense_adj(e[0][:, e[1] == t], edge_attr=e[2][e[1] == t], max_num_nodes=n)
             for e in (group_adjacency(tiled), group_adjacency(from_coo)) for t in range(9)]
    torch.testing.assert_close(torch.stack(dense[:9]), torch.stack(dense[9:]))
    assert graph.edge_type.min() >= 0 and graph.edge_type.max() <= 8
    # centres are sampled pixels inside their own group's image
    assert graph.center_pixel.max() < h * w
    # groups follow the image: pooling + unpooling is far closer than the image mean
    recon = (unpool(graph.x, graph) - image).abs().mean()
    assert recon < 0.5 * (image - image.mean((2, 3), keepdim=True)).abs().mean()


def test_per_image_graphs_are_recoverable(image):
    graph = ImageToGroupGraph(ratio=1 / 16).eval()(image)
    parts = graph.to_data_list()
    assert sum(p.num_nodes for p in parts) == graph.num_nodes
    for i, part in enumerate(parts):
        assert part.edge_index.max() < part.num_nodes
        assert part.assign_index[0].max() < image.size(2) * image.size(3)
        assert part.assign_index[1].max() < part.num_nodes
        torch.testing.assert_close(unpool(part.x, part), unpool(graph.x, graph)[i:i + 1])


def test_eval_is_deterministic_and_train_follows_the_global_seed(image):
    transform = ImageToGroupGraph(ratio=1 / 16, embed_channels=4, in_channels=3)
    transform.eval()
    a, b = transform(image), transform(image)
    assert torch.equal(a.center_pixel, b.center_pixel) and torch.equal(a.x, b.x)
    assert torch.equal(a.edge_index, b.edge_index)
    transform.train()
    torch.manual_seed(1)
    c = transform(image)
    torch.manual_seed(1)
    d = transform(image)
    assert torch.equal(c.center_pixel, d.center_pixel)


def test_seeded_train_sampling_trains_on_the_evaluation_groups(image):
    transform = ImageToGroupGraph(ratio=1 / 16, embed_channels=4, in_channels=3,
                                  train_sampling="seeded")
    reference = transform.eval()(image)
    transform.train()
    torch.manual_seed(1)
    a = transform(image)
    torch.manual_seed(2)  # the global generator plays no part
    b = transform(image)
    for graph in (a, b):
        assert torch.equal(graph.center_pixel, reference.center_pixel)
        assert torch.equal(graph.edge_index, reference.edge_index)
        torch.testing.assert_close(graph.x, reference.x)
    # the grouping still learns: the gradient reaches the embedding and the scales
    (a.x.square().sum() + a.edge_weight.sum()).backward()
    assert bool(transform.embed.weight.grad.abs().sum() > 0)
    assert bool(transform.log_scales.grad.abs().sum() > 0)
    # the default draws new centres at every call
    transform = ImageToGroupGraph(ratio=1 / 16, embed_channels=4, in_channels=3).train()
    torch.manual_seed(1)
    c = transform(image)
    torch.manual_seed(2)
    assert not torch.equal(transform(image).center_pixel, c.center_pixel)
    with pytest.raises(ValueError, match="'train_sampling'"):
        ImageToGroupGraph(train_sampling="fixed")


def test_num_groups_and_ratio():
    x = structured_image(1, 3, 16, 16)
    assert ImageToGroupGraph(num_groups=10).eval()(x).num_nodes <= 10
    assert ImageToGroupGraph(ratio=1.0, num_candidates=1)(x).num_nodes == 256
    one = ImageToGroupGraph(num_groups=1)(x)
    assert one.num_nodes == 1 and one.num_edges == 1 and one.edge_type.tolist() == [4]
    torch.testing.assert_close(unpool(one.x, one), x.mean((2, 3), keepdim=True).expand_as(x))


@pytest.mark.parametrize("shape", [(2, 3, 1, 17), (2, 3, 13, 1), (1, 2, 1, 1)])
@pytest.mark.parametrize("scale", [1.0, 1e30, 1e-30])
def test_degenerate_inputs_are_finite(shape, scale):
    torch.manual_seed(0)
    transform = ImageToGroupGraph(ratio=0.25, embed_channels=4, in_channels=shape[1])
    x = torch.randn(shape) * scale
    graph = transform(x)
    check_assignment(graph, transform.num_candidates)
    for value in (graph.x, graph.pos, graph.edge_weight, unpool(graph.x, graph)):
        assert torch.isfinite(value).all()


def test_flat_image_and_empty_batch():
    transform = ImageToGroupGraph(ratio=1 / 8, embed_channels=4, in_channels=3)
    flat = transform(torch.zeros(2, 3, 8, 8))
    assert torch.isfinite(flat.x).all() and torch.isfinite(flat.edge_weight).all()
    empty = transform(torch.zeros(0, 3, 8, 8))
    assert empty.num_nodes == 0 and empty.num_graphs == 0
    assert unpool(empty.x, empty).shape == (0, 3, 8, 8)


def test_gradients_reach_the_clustering(image):
    transform = ImageToGroupGraph(ratio=1 / 16, embed_channels=4, in_channels=3)
    x = image.clone().requires_grad_()
    graph = transform(x)
    loss = (unpool(graph.x, graph) * torch.randn_like(x)).sum() + graph.edge_weight.sum()
    loss.backward()
    assert x.grad.abs().sum() > 0
    # these parameters are reached only through the assignment S
    assert transform.embed.weight.grad.abs().sum() > 0
    assert transform.log_scales.grad.abs().sum() > 0


def test_attention_moves_the_centres():
    torch.manual_seed(0)
    x = structured_image(1, 3, 32, 32)
    attention = torch.zeros(1, 1, 32, 32)
    attention[..., :, :8] = 1.0  # focus on a left strip (1/4 of the image)
    transform = ImageToGroupGraph(ratio=1 / 16, sampler="importance").eval()
    plain = transform(x)
    focused = transform(x, attention=attention)
    inside = lambda g: (g.center_pixel % 32 < 8).float().mean()  # noqa: E731
    assert inside(focused) > 0.9 and inside(focused) > inside(plain) + 0.4
    torch.testing.assert_close(focused.importance.max(), torch.tensor(11.0), atol=0.5, rtol=0)


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="ratio"):
        ImageToGroupGraph(ratio=0.0)
    with pytest.raises(ValueError, match="ratio"):
        ImageToGroupGraph(ratio=1.5)
    with pytest.raises(ValueError, match="num_groups"):
        ImageToGroupGraph(num_groups=65)(x)
    with pytest.raises(ValueError, match="either"):
        ImageToGroupGraph(num_groups=4, ratio=0.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        ImageToGroupGraph()(torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        ImageToGroupGraph()(torch.zeros(1, 3, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="sampler"):
        ImageToGroupGraph(sampler="grid")
    with pytest.raises(ValueError, match="attention"):
        ImageToGroupGraph()(x, attention=torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="attention"):
        ImageToGroupGraph()(x, attention=torch.full((1, 1, 8, 8), 2.0))
    with pytest.raises(ValueError, match="channels"):
        ImageToGroupGraph(in_channels=4, embed_channels=2)(x)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[0, 1, 2, 3] = bad
        with pytest.raises(ValueError, match="'x' must be finite"):
            ImageToGroupGraph()(y)
        with pytest.raises(ValueError, match="'x' must be finite"):
            ImageToGroupGraph(3, embed_channels=2)(y)
    with pytest.raises(ValueError, match="tile_size"):
        ImageToGroupGraph(tile_size=0)
    with pytest.raises(ValueError, match="tile_size"):
        ImageToGroupGraph(tile_size=(2, 3, 4))
    with pytest.raises(TypeError, match="tile_size"):
        ImageToGroupGraph(tile_size=2.5)
    graph = ImageToGroupGraph(num_groups=4)(x)
    with pytest.raises(ValueError, match="x_groups"):
        unpool(torch.randn(graph.num_nodes + 1, 3), graph)
    with pytest.raises(TypeError, match="assign_index"):
        unpool(graph.x, object())
    with pytest.raises(TypeError, match="floating"):
        pool(torch.ones(64, 2, dtype=torch.long), graph.assign_index, graph.assign_weight, 4)
    with pytest.raises(ValueError, match="assign_index"):
        pool(torch.ones(4, 2), graph.assign_index, graph.assign_weight, graph.num_nodes)
    with pytest.raises(ValueError, match="assign_weight"):
        pool(torch.ones(64, 2), graph.assign_index, graph.assign_weight[1:], graph.num_nodes)


def test_edge_threshold_prunes_weak_links(image):
    loose = ImageToGroupGraph(ratio=1 / 16, learnable=False,
                              edge_threshold=PAPER_EDGE_THRESHOLD).eval()(image)
    strict = ImageToGroupGraph(ratio=1 / 16, learnable=False, edge_threshold=0.5).eval()(image)
    assert torch.equal(loose.center_pixel, strict.center_pixel)
    assert strict.num_edges < loose.num_edges
    non_loop = strict.edge_type != 4
    assert (strict.edge_weight[non_loop] >= 0.5).all()
    # the pruned graph keeps exactly the loose graph's strong edges
    keep = (loose.edge_type == 4) | (loose.edge_weight >= 0.5)
    assert torch.equal(loose.edge_index[:, keep], strict.edge_index)
    with pytest.raises(ValueError, match="edge_threshold"):
        ImageToGroupGraph(edge_threshold=-1.0)


@pytest.mark.parametrize("sampler", ["random", "importance", "topk_random"])
def test_eval_groups_do_not_depend_on_the_rest_of_the_batch(sampler):
    images = torch.cat([structured_image(1, 3, 16, 20, seed=s) for s in range(3)])
    transform = ImageToGroupGraph(ratio=1 / 8, sampler=sampler, embed_channels=4,
                                  in_channels=3).eval()
    batch = transform(images).to_data_list()
    for i in range(3):
        alone = transform(images[i:i + 1])[0]
        assert torch.equal(batch[i].center_pixel, alone.center_pixel)
        assert torch.equal(batch[i].edge_index, alone.edge_index)
        torch.testing.assert_close(batch[i].x, alone.x)
        torch.testing.assert_close(batch[i].edge_weight, alone.edge_weight)


def test_knn_and_brute_force_candidates_agree():
    from pyg_hgconv.nn.pool.slic import nearest_centers

    torch.manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(13.0), torch.arange(17.0), indexing="ij")
    pixels = torch.stack([ys, xs], -1).reshape(-1, 2) + 0.01 * torch.rand(221, 2)
    centers = torch.stack([pixels[torch.randperm(221)[:20]] for _ in range(2)])
    fast = nearest_centers(centers, pixels, 6, method="knn")
    slow = nearest_centers(centers, pixels, 6, method="brute")

    def dist(idx):
        c = centers.gather(1, idx.view(2, -1, 1).expand(-1, -1, 2)).view(2, 221, 6, 2)
        return (c - pixels.view(1, 221, 1, 2)).square().sum(-1)

    torch.testing.assert_close(dist(fast), dist(slow))
    assert (dist(fast)[..., 1:] >= dist(fast)[..., :-1]).all()  # nearest first
    assert torch.equal(fast, slow)  # jittered coordinates: no ties


def test_candidate_search_method_is_checked():
    from pyg_hgconv.nn.pool.slic import nearest_centers

    centers = torch.rand(1, 5, 2)
    with pytest.raises(ValueError, match="method"):
        nearest_centers(centers, torch.rand(7, 2), 3, method="grid")
    # 'auto' takes the brute force for a block this small: the same centres
    auto = nearest_centers(centers, torch.rand(7, 2), 3)
    assert auto.shape == (1, 7, 3)


@pytest.mark.parametrize("tile_size", [1, (3, 5), None])
def test_every_pixel_stays_among_its_tile_candidates(image, tile_size):
    """Each pixel's groups are among the m centres nearest to its tile; with
    1x1 tiles, among the m centres nearest to the pixel itself."""
    m = 4
    transform = ImageToGroupGraph(ratio=1 / 16, num_candidates=m, tile_size=tile_size,
                                  learnable=False).eval()
    graph = transform(image)
    h, w = image.shape[2:]
    pixel, group = graph.assign_index
    local = pixel % (h * w)
    ys, xs = local // w, local % w
    centre = graph.center_pixel[group]  # the sampled pixel of each group, within its image
    centre_yx = torch.stack([centre // w, centre % w], -1).float()
    if tile_size == 1:
        # among the m nearest centres of the pixel: fewer than m strictly closer
        per_image = graph.ptr
        for e in range(0, pixel.numel(), 37):
            img = int(pixel[e]) // (h * w)
            centres = graph.center_pixel[per_image[img]:per_image[img + 1]]
            cyx = torch.stack([centres // w, centres % w], -1).float()
            d = (cyx - torch.tensor([float(ys[e]), float(xs[e])])).square().sum(1)
            mine = (centre_yx[e] - torch.tensor([float(ys[e]), float(xs[e])])).square().sum()
            assert int((d < mine).sum()) < m
    distance = (centre_yx - torch.stack([ys, xs], -1).float()).norm(dim=1)
    spacing = (h * w / 16) ** 0.5
    assert float(distance.max()) < 4 * spacing  # candidates are local
