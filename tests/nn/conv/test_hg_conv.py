"""HGConv: the layer test of a PyG conv, plus its defining equivalence with Conv2d."""
import pytest
import torch
import torch._dynamo
import torch_geometric.typing
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import HGConv, grid_graph
from pyg_hgconv.nn.conv.hg_conv import direction_normalized_weight


def pixel_nodes(f: torch.Tensor) -> torch.Tensor:
    return f.permute(0, 2, 3, 1).reshape(-1, f.size(1))


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    batch=st.integers(2, 3),
    in_channels=st.integers(1, 4),
    out_channels=st.integers(1, 4),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_from_conv2d_equals_conv2d_on_grid(height, width, batch, in_channels, out_channels,
                                           bias, seed):
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias).double()
    f = torch.randn(batch, in_channels, height, width, dtype=torch.float64)
    graph = grid_graph(height, width, batch_size=batch)
    layer = HGConv.from_conv2d(conv)
    out = layer(pixel_nodes(f), graph.edge_index, graph.edge_type,
                graph.edge_weight.double())
    expected = pixel_nodes(conv(f))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_grid_graph_structure():
    graph = grid_graph(3, 4, batch_size=2)
    assert graph.num_nodes == 24 and graph.num_graphs == 2
    # interior pixel (1, 1) of image 1 has all nine directions, a corner has four
    deg = torch.bincount(graph.edge_index[1], minlength=24)
    assert deg[12 + 5] == 9 and deg[12 + 0] == 4 and deg[0] == 4
    # an edge of type t joins target p to source p + OFFSETS[t]
    src, dst = graph.edge_index
    dy, dx = graph.edge_type // 3 - 1, graph.edge_type % 3 - 1
    assert torch.equal(src - dst, dy * 4 + dx)
    # per-image recovery gives local indices and identity assignments
    second = graph[1]
    assert int(second.edge_index.max()) == 11
    assert torch.equal(second.assign_index, torch.arange(12).repeat(2, 1))


def test_degree_normalisation_per_target_and_direction():
    # two sources reach node 0 from the same direction: weights 1 and 3
    edge_index = torch.tensor([[1, 2, 3], [0, 0, 0]])
    edge_type = torch.tensor([5, 5, 3])
    edge_weight = torch.tensor([1.0, 3.0, 2.0])
    norm = direction_normalized_weight(edge_index, edge_type, edge_weight, num_nodes=4)
    torch.testing.assert_close(norm, torch.tensor([0.25, 0.75, 1.0]))

    layer = HGConv(2, 3, bias=False)
    x = torch.randn(4, 2)
    out = layer(x, edge_index, edge_type, edge_weight)
    w = layer.weight
    expected = 0.25 * x[1] @ w[5] + 0.75 * x[2] @ w[5] + x[3] @ w[3]
    torch.testing.assert_close(out[0], expected)
    assert torch.equal(out[1:], torch.zeros(3, 3))  # no incoming edges, no bias

    raw = HGConv(2, 3, bias=False, normalize=False)
    raw.weight.data.copy_(w.data)
    expected_raw = x[1] @ w[5] + 3 * x[2] @ w[5] + 2 * x[3] @ w[3]
    torch.testing.assert_close(raw(x, edge_index, edge_type, edge_weight)[0], expected_raw)


def test_conv_layer_basics():
    graph = grid_graph(4, 5, batch_size=2)
    x = torch.randn(40, 8)
    layer = HGConv(8, 16)
    assert str(layer) == "HGConv(8, 16, num_directions=9)"
    out = layer(x, graph.edge_index, graph.edge_type)
    assert out.size() == (40, 16)
    # edge_weight=None means all ones
    torch.testing.assert_close(out, layer(x, graph.edge_index, graph.edge_type,
                                          graph.edge_weight))
    # reset_parameters re-draws the weights and zeros the bias
    layer.bias.data.fill_(1.0)
    before = layer.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.weight) and torch.equal(layer.bias, torch.zeros(16))
    # gradients reach the input and every direction's weight
    x.requires_grad_()
    layer(x, graph.edge_index, graph.edge_type).square().sum().backward()
    assert x.grad.abs().sum() > 0
    assert (layer.weight.grad.flatten(1).abs().sum(1) > 0).all()


def test_lazy_in_channels():
    graph = grid_graph(3, 3)
    layer = HGConv(-1, 4)
    assert str(layer) == "HGConv(-1, 4, num_directions=9)"
    out = layer(torch.randn(9, 6), graph.edge_index, graph.edge_type)
    assert out.size() == (9, 4)
    assert layer.weight.shape == (9, 6, 4) and str(layer) == "HGConv(6, 4, num_directions=9)"


def test_empty_graph():
    layer = HGConv(3, 2)
    out = layer(torch.randn(0, 3), torch.empty(2, 0, dtype=torch.long),
                torch.empty(0, dtype=torch.long))
    assert out.shape == (0, 2)


def test_bad_inputs_raise_clear_errors():
    graph = grid_graph(3, 3)
    layer = HGConv(4, 2)
    x = torch.randn(9, 4)
    with pytest.raises(ValueError, match="edge_type"):
        layer(x, graph.edge_index, graph.edge_type + 9)
    with pytest.raises(ValueError, match="edge_weight"):
        layer(x, graph.edge_index, graph.edge_type, torch.ones(3))
    with pytest.raises(ValueError, match="edge_type"):
        layer(x, graph.edge_index, graph.edge_type[:-1])
    with pytest.raises(TypeError, match="floating-point"):
        layer(x.long(), graph.edge_index, graph.edge_type)
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(9, 5), graph.edge_index, graph.edge_type)
    with pytest.raises(ValueError, match="edge_index"):
        layer(x, graph.edge_index + 100, graph.edge_type)
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(9, 4, 1), graph.edge_index, graph.edge_type)
    with pytest.raises(ValueError, match="out_channels"):
        HGConv(4, 0)
    with pytest.raises(TypeError, match="conv"):
        HGConv.from_conv2d(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="kernel_size"):
        HGConv.from_conv2d(torch.nn.Conv2d(3, 3, 5, padding=2))
    with pytest.raises(ValueError, match="padding"):
        HGConv.from_conv2d(torch.nn.Conv2d(3, 3, 3))


def test_compiles_without_graph_breaks():
    graph = grid_graph(4, 4, batch_size=2)
    layer = HGConv(3, 5)
    x = torch.randn(32, 3)
    args = (x, graph.edge_index, graph.edge_type, graph.edge_weight)
    explanation = torch._dynamo.explain(layer)(*args)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(*args), layer(*args))


@settings(max_examples=25, deadline=None)
@given(num_nodes=st.integers(1, 8), num_edges=st.integers(0, 30), normalize=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fused_sparse_and_per_edge_paths_agree(num_nodes, num_edges, normalize, seed):
    """The eager fused aggregation (one sparse [N, 9N] product), the same matrix
    given as input (HGConv.slot_adjacency) and the per-edge messages (used under
    torch.compile and in explain mode) give the same values and gradients,
    duplicate edges included."""
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    edge_type = torch.randint(0, 9, (num_edges,), generator=g)
    weight = torch.rand(num_edges, generator=g, dtype=torch.float64).requires_grad_()
    x = torch.randn(num_nodes, 3, generator=g, dtype=torch.float64).requires_grad_()
    layer = HGConv(3, 2, normalize=normalize).double()

    def run(path):
        layer.fuse = path != "edges"
        if path == "matrix":
            adjacency = HGConv.slot_adjacency(edge_index, edge_type, weight, num_nodes,
                                              normalize)
            out = layer(x, adjacency)
        else:
            out = layer(x, edge_index, edge_type, weight)
        grads = torch.autograd.grad(out.square().sum(), (x, weight), allow_unused=True)
        return out.detach(), grads

    reference, ref_grads = run("edges")
    for path in ("fused", "matrix"):
        out, grads = run(path)
        torch.testing.assert_close(out, reference)
        for grad, ref in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(grad if grad is not None else torch.zeros_like(ref),
                                       ref if ref is not None else torch.zeros_like(grad))
    layer.fuse = True


def test_slot_adjacency_input_is_checked():
    graph = grid_graph(3, 3)
    layer = HGConv(4, 2)
    x = torch.randn(9, 4)
    adjacency = HGConv.slot_adjacency(graph.edge_index, graph.edge_type, num_nodes=9)
    assert adjacency.shape == (9, 81) and adjacency.layout == torch.sparse_csr
    torch.testing.assert_close(layer(x, adjacency), layer(x, graph.edge_index, graph.edge_type))
    with pytest.raises(ValueError, match="slot_adjacency"):
        layer(x, adjacency, graph.edge_type)
    with pytest.raises(ValueError, match=r"\[N, 9 N\]"):
        layer(torch.randn(8, 4), adjacency)
    with pytest.raises(ValueError, match="edge_type"):
        HGConv.slot_adjacency(graph.edge_index, graph.edge_type + 9, num_nodes=9)
    with pytest.raises(TypeError, match="edge_type"):
        HGConv.slot_adjacency(graph.edge_index, None, num_nodes=9)
    with pytest.raises(ValueError, match="edge_index"):
        HGConv.slot_adjacency(graph.edge_index, graph.edge_type, num_nodes=4)


def test_module_layers_share_one_slot_adjacency_without_touching_the_graph():
    from pyg_hgconv.nn.conv.registry import GraphConvStep, GraphInputs

    graph = grid_graph(3, 4)
    keys = set(graph.keys())
    inputs = GraphInputs(graph)
    first = inputs.slot_adjacency(True, torch.float32)
    assert inputs.slot_adjacency(True, torch.float32) is first
    assert inputs.slot_adjacency(False, torch.float32) is not first
    # a new GraphInputs (the next forward call) builds its own
    assert GraphInputs(graph).slot_adjacency(True, torch.float32) is not first
    # the layers of a module see the same matrix, and the graph gains nothing
    steps = [GraphConvStep("hgconv", 4, 4) for _ in range(2)]
    x = torch.randn(12, 4)
    out = steps[1](steps[0](x, inputs), inputs)
    reference = steps[1](steps[0](x, graph), graph)
    torch.testing.assert_close(out, reference)
    assert set(graph.keys()) == keys and "_slot_adjacency" not in graph.__dict__


def random_typed_graph(num_nodes=6, num_edges=14, seed=0):
    """Unique (source, target) pairs, so an adj_t holds every edge exactly once."""
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.randperm(num_nodes * num_nodes, generator=generator)[:num_edges]
    edge_index = torch.stack([pairs % num_nodes, pairs // num_nodes])
    edge_type = torch.randint(0, 9, (num_edges,), generator=generator)
    return edge_index, edge_type


def test_sparse_adj_t_inputs_agree_with_edge_index():
    # as RGCNConv takes them: entry (target, source) of adj_t holds the edge type
    from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor

    edge_index, edge_type = random_typed_graph()
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    conv = HGConv(4, 5)
    expected = conv(x, edge_index, edge_type)
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor

        adj = SparseTensor(row=edge_index[0], col=edge_index[1], value=edge_type,
                           sparse_sizes=(6, 6))
        torch.testing.assert_close(conv(x, adj.t()), expected)
    csc = to_torch_csc_tensor(edge_index, edge_type, size=(6, 6))
    torch.testing.assert_close(conv(x, csc.t()), expected)  # CSR adj_t
    coo = to_torch_coo_tensor(edge_index, edge_type, size=(6, 6))
    torch.testing.assert_close(conv(x, coo.t().coalesce()), expected)
    # the [N, 9 N] aggregation matrix is a third form
    slot = HGConv.slot_adjacency(edge_index, edge_type, num_nodes=6)
    torch.testing.assert_close(conv(x, slot), expected)
    with pytest.raises(ValueError, match="adj_t"):
        conv(x, csc.t(), edge_type)
    with pytest.raises(ValueError, match=r"\[N, N\]"):
        conv(x, to_torch_csc_tensor(edge_index, edge_type, size=(6, 7)).t())


def test_explain_mode_gives_per_edge_messages_with_the_same_result():
    from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

    edge_index, edge_type = random_typed_graph(seed=1)
    x = torch.randn(6, 4)
    conv = HGConv(4, 5)
    expected = conv(x, edge_index, edge_type)
    mask = torch.ones(edge_index.size(1), requires_grad=True)
    set_masks(conv, mask, edge_index, apply_sigmoid=False)
    assert not conv.uses_fused_aggregation()
    out = conv(x, edge_index, edge_type)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0  # every edge has a message
    clear_masks(conv)
    assert conv.uses_fused_aggregation()


def test_aggr_other_than_add_is_refused():
    for aggr in ("mean", "max"):
        with pytest.raises(ValueError, match="aggr"):
            HGConv(4, 5, aggr=aggr)


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_nan_negative_or_infinite_edge_weights_are_refused(bad):
    edge_index, edge_type = random_typed_graph(seed=2)
    weight = torch.rand(edge_index.size(1))
    weight[3] = bad
    with pytest.raises(ValueError, match="edge_weight"):
        HGConv(4, 5)(torch.randn(6, 4), edge_index, edge_type, weight)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_float32_to_its_resolution(dtype):
    edge_index, edge_type = random_typed_graph(seed=3)
    weight = torch.rand(edge_index.size(1)) + 0.1
    x = torch.randn(6, 4)
    conv = HGConv(4, 5)
    expected = conv(x, edge_index, edge_type, weight)
    half = HGConv(4, 5).to(dtype)
    half.load_state_dict(conv.state_dict())
    out = half(x.to(dtype), edge_index, edge_type, weight.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = conv(x, edge_index, edge_type, weight)
    torch.testing.assert_close(auto.float(), expected, atol=0.05, rtol=0.05)
