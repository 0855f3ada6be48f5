"""The FLOP rules against hand-computed counts on tiny cases, for every registry conv."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch, Data

from pyg_hgconv import HGConvModule, ImageToGroupGraph, conv_names
from pyg_hgconv.nn.conv.registry import GraphConvStep, GraphInputs, build_conv
from pyg_hgconv.nn.pool import fused_adjacency, fused_clustering
from pyg_hgconv.profile.counter import FlopCount, conv_flops, count_flops
from pyg_hgconv.profile.rules import GraphSize, mlp_flops
from tests.helpers.backends import kernels_backend, use_pytorch_kernels


def tiny_graph(self_loops=True):
    """3 nodes, 3 self loops (optional) + 2 edges (0 -> 1 from the right, 2 -> 1 from the left)."""
    src, dst, typ = [0, 2], [1, 1], [5, 3]
    if self_loops:
        src, dst, typ = [0, 1, 2, *src], [0, 1, 2, *dst], [4, 4, 4, *typ]
    return Data(edge_index=torch.tensor([src, dst]), edge_type=torch.tensor(typ),
                edge_weight=torch.rand(len(src)) + 0.5,
                pos=torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
                batch=torch.zeros(3, dtype=torch.long), num_nodes=3)


# C_in = 2, C_out = 3, N = 3 nodes, E = 5 edges (3 loops)
HAND = {
    # X W for 9 directions 3*2*9*3 + weighting E*C_out 5*3 + normalisation E + bias N*C_out
    "hgconv": 162 + 15 + 5 + 9,
    # lin 3*2*3 + norm (N + 2E) 3 + 10 + messages 5*3 + bias 9
    "gcn": 18 + 13 + 15 + 9,
    # X g 3*2*8*3 + gaussians E*K*(3D+1) 5*8*7 + weighted sum 5*8*3 + mean 9 + root 18 + bias 9
    "gmm": 144 + 280 + 120 + 9 + 18 + 9,
    # (fused, the default) all kernels on all sources 3*2*9*3 + basis E*S*D 5*4*2
    # + sparse product E*S*C_out 5*4*3 + mean 9 + root 18 + bias 9
    "spline": 162 + 40 + 60 + 9 + 18 + 9,
    # kNN 3^2*2 + E=3*min(8,3)=9 edges * MLP [4 -> 9 -> 3] (36+9 + 9 relu + 27+3 = 84)
    "dynamic_edge": 18 + 9 * 84,
}


@pytest.mark.parametrize("name", conv_names("graph"))
def test_graph_conv_rules_match_hand_counts(name):
    graph = tiny_graph()
    assert conv_flops(name, (2, 3), graph) == HAND[name]
    torch.manual_seed(0)
    step = GraphConvStep(name, 2, 3)  # the registry's default layer
    assert conv_flops(name, step, graph) == HAND[name]
    # the forward hooks of count_flops price the actual call the same way
    inputs = GraphInputs(graph).prepare(name)  # pseudo-coordinates derived beforehand
    count = count_flops(step, (torch.randn(3, 2), inputs))
    assert count.total == count.components["graph_conv"] == HAND[name]
    assert count.num_images == 1


def test_pyg_spline_conv_is_counted_per_edge():
    pytest.importorskip("torch_spline_conv")
    # basis E*S*D 5*4*2 + kernels E*S*(C_in C_out + C_out) 5*4*9 + mean 9 + root 18 + bias 9
    assert conv_flops("spline", (2, 3), tiny_graph(), impl="pyg") == 40 + 180 + 9 + 18 + 9


def test_graph_conv_options_change_the_count():
    graph = tiny_graph()
    # without bias / normalisation
    assert conv_flops("hgconv", (2, 3), graph, bias=False, normalize=False) == 162 + 15
    # GCN adding its own loops on a loop-free graph: E' = 2 + 3
    loop_free = tiny_graph(self_loops=False)
    assert conv_flops("gcn", (2, 3), loop_free, add_self_loops=True) == 18 + 13 + 15 + 9
    layer = build_conv("gcn", 2, 3, add_self_loops=True)
    assert conv_flops("gcn", layer, loop_free) == 55
    assert conv_flops("gmm", (2, 3), graph, kernel_size=2) == 36 + 70 + 30 + 36
    assert conv_flops("dynamic_edge", (2, 3), graph, k=2) == 18 + 6 * 84
    assert mlp_flops([4, 9, 3]) == 84 and mlp_flops([4, 9, 3], elementwise=False) == 75
    # dynamic_edge's k-NN runs within each graph of a batch
    two = Data(batch=torch.tensor([0, 0, 1]), num_nodes=3)
    assert GraphSize.of(two).nodes_per_graph == (2, 1)
    assert conv_flops("dynamic_edge", (2, 3), two) == (4 + 1) * 2 + (4 + 1) * 84


@pytest.mark.skipif(fused_clustering.BACKEND != "fused", reason="fused kernels not built")
def test_the_fused_embedding_is_priced_in_whole_vectors_on_channels_last_maps():
    # D = 5 outputs of C = 3 channels with a bias on 4 x 5 pixels: contiguous maps
    # compute the 5 outputs (C products + the bias each), channels-last ones
    # 16 of them (one vector of floats) per pixel
    transform = ImageToGroupGraph(in_channels=3, num_groups=2, embed_channels=5).eval()
    x = torch.randn(1, 3, 4, 5)
    steps = {k.split("[")[1][:-1]: v for k, v in count_flops(transform, x).modules.items()}
    assert steps["embedding"] == 20 * 5 * (3 + 1)
    x = x.contiguous(memory_format=torch.channels_last)
    steps = {k.split("[")[1][:-1]: v for k, v in count_flops(transform, x).modules.items()}
    assert steps["embedding"] == 20 * 16 * (3 + 1)


def test_clustering_rule_matches_a_hand_count(monkeypatch):
    # T = 0 SLIC iterations, K = 2 centres, m = 2 candidates on a 4x5 image: the
    # tiles are 3x3 (r = sqrt(20 / 2) -> 3), 2 x 2 of them, so the tiled S stores
    # E_S = 4 tiles * 2 candidates * 9 pixels = 72 entries (padding included).
    transform = ImageToGroupGraph(num_groups=2, num_candidates=2, num_iterations=0,
                                  learnable=False)
    x = torch.randn(1, 2, 4, 5)
    if fused_clustering.BACKEND == "fused":
        # the fused clustering kernel: its SLIC on rows of 9 positions padded to 16
        # (one vector of floats), pooling and the adjacency over the non-zeros only
        fused = count_flops(transform, x)
        steps = {k.split("[")[1][:-1]: v for k, v in fused.modules.items()}
        assert steps["slic"] == 4 * 2 * 16
        assert steps["pooling"] == (20 + 2) * (2 + 2)  # 20 non-zeros, 2 groups
        assert steps["adjacency"] == 55  # the pairs of the 20 non-zeros
    if fused_adjacency.BACKEND == "fused":  # the fused adjacency alone: non-zeros only
        with kernels_backend("pytorch"), \
                pytest.MonkeyPatch.context() as patch:
            patch.setattr(fused_adjacency, "BACKEND", "fused")
            alone = count_flops(transform, x)
        steps = {k.split("[")[1][:-1]: v for k, v in alone.modules.items()}
        assert steps["adjacency"] == 55
    use_pytorch_kernels(monkeypatch)  # the tile blocks of the PyTorch path
    count = count_flops(transform, x)
    steps = {k.split("[")[1][:-1]: v for k, v in count.modules.items()}
    # Eq. 4 blocks of a 3x3 tile: within the tile 4 directions padded to 6
    # positions (right 6, down-left 4, down 6, down-right 4), across its
    # borders 8 blocks padded to 3 positions: 48 positions, m * m products each
    assert steps == {
        "importance": 55 * (2 + 1) + 20,   # 55 pixel pairs * (D + 1) + one mean per pixel
        "features": 4 * 20 * 2 + 2 * 20,   # standardisation + coordinates
        "candidates": 2 * 4 * 2 + 2 * 72,  # tiles -> K centres, every entry's distance
        "slic": 72,                        # the final normalisation
        "pooling": 72 * (2 + 2) + 2 * (2 + 2),  # [m, P] x [P, C + 2] per tile, averages
        "adjacency": 4 * 48 * 2 * 2,
    }
    assert count.total == count.components["clustering"] == 1681
    # the ideal sparse counts ride along: 20 non-zeros, 55 pairs of them
    ideal = {k.split("[")[1][:-1]: v for k, v in count.ideal.items()}
    assert ideal == {"candidates": 2 * 20 * 2, "slic": 20 * 2, "pooling": (20 + 2) * 4,
                     "adjacency": 55}
    # with attention (Eq. 11) the focus map costs 2 per pixel
    with_focus = count_flops(transform, (x, torch.rand(1, 1, 4, 5)))
    assert with_focus.total == 1681 + 40
    # the 1x1 embedding (C = 2 -> D = 3, with bias) counts as a Linear would
    embedded = ImageToGroupGraph(2, num_groups=2, num_candidates=2, num_iterations=0,
                                 learnable=False, embed_channels=3)
    steps = {k.split("[")[1][:-1]: v
             for k, v in count_flops(embedded, x).modules.items()}
    assert steps["embedding"] == 20 * 2 * 3 + 20 * 3


def test_group_graph_module_counts_pool_conv_and_unpool(monkeypatch):
    use_pytorch_kernels(monkeypatch)  # the hand count's tile blocks
    torch.manual_seed(0)
    module = HGConvModule(2, num_groups=2, num_candidates=2, num_iterations=0, learnable=False,
                          embed_channels=None).eval()
    x = torch.randn(1, 2, 4, 5)
    _, graph = module(x, return_graph=True)
    e = graph.edge_index.size(1)
    count = count_flops(module, x)
    hgconv = 2 * 2 * 9 * 2 + e * 2 + e + 2 * 2
    norm = 2 * 2 * 2        # affine BatchNorm on 2 nodes x 2 channels
    unpool = 72 * (2 + 1)   # [C, m] x [m, P] per tile + the row normalisation
    assert count.total == 1681 + hgconv + norm + unpool
    assert count.components == {"grid_conv": 0, "graph_conv": hgconv, "linear": 0,
                                "clustering": 1681 + unpool, "elementwise": norm}
    # re-using a graph: pooling replaces the clustering
    reuse = count_flops(module, (x,), kwargs={"graph": graph})
    assert [v for k, v in reuse.modules.items() if k.endswith("[pool]")] == [72 * 2 + 2 * 2]
    assert reuse.components["clustering"] == 72 * 2 + 2 * 2 + unpool
    # gmm needs pseudo-coordinates: 2 per edge, once per graph
    gmm = HGConvModule(2, num_groups=2, num_candidates=2, num_iterations=0, learnable=False,
                       embed_channels=None, conv="gmm").eval()
    gmm_count = count_flops(gmm, x)
    pseudo = [v for k, v in gmm_count.modules.items() if k.endswith("[pseudo]")]
    assert pseudo == [2 * gmm(x, return_graph=True)[1].edge_index.size(1)]


def test_flop_count_arithmetic_and_export():
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    count = count_flops(conv, torch.randn(3, 2, 4, 5), per_image=True)
    assert count.num_images == 3 and count.image_totals == (1140, 1140, 1140)
    assert count.total == 3 * 1140 and count.per_image == 1140 and count.per_image_std == 0
    both = count + count_flops(conv, torch.randn(1, 2, 4, 5))
    assert both.num_images == 4 and both.per_image == 1140
    assert json.loads(json.dumps(both.to_dict()))["per_image"] == 1140
    assert "| grid_conv |" in both.table()
    assert FlopCount.zero() + count == count
    relu = torch.nn.Sequential(conv, torch.nn.ReLU())
    assert count_flops(relu, torch.randn(1, 2, 4, 5), elementwise=False).total == 1140
    assert count_flops(relu, torch.randn(1, 2, 4, 5)).total == 1140 + 60


def test_conv_flops_errors():
    with pytest.raises(ValueError, match="graph"):
        conv_flops("hgconv", 4)
    with pytest.raises(ValueError, match="not FLOP-relevant"):
        conv_flops("gcn", 4, tiny_graph(), kernel_size=3, heads=2)
    with pytest.raises(ValueError, match="not a 'gcn'"):
        conv_flops("gcn", build_conv("hgconv", 2, 3), tiny_graph())
    with pytest.raises(TypeError, match="layer_or_channels"):
        conv_flops("hgconv", "four", tiny_graph())
    with pytest.raises(ValueError, match="unknown"):
        conv_flops("gat", 4, tiny_graph())


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 12)), min_size=1, max_size=3),
       cin=st.integers(1, 5), cout=st.integers(1, 5), seed=st.integers(0, 100))
def test_graph_conv_counts_add_up_over_the_graphs_of_a_batch(sizes, cin, cout, seed):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for num_nodes, num_edges in sizes:
        edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
        graphs.append(Data(edge_index=edge_index, num_nodes=num_nodes))
    batch = Batch.from_data_list(graphs)
    for name in conv_names("graph"):
        whole = conv_flops(name, (cin, cout), batch)
        assert whole == sum(conv_flops(name, (cin, cout), graph) for graph in graphs), name
