"""FusedSplineConv computes what PyG's SplineConv computes: outputs and gradients
(features, kernels, root weight, pseudo-coordinates) on random graphs, for
every degree, open and closed splines and every aggregation; and the 3x3
transfer mapping reproduces a Conv2d on the interior of the pixel grid."""
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import grid_graph
from pyg_hgconv.nn.conv.registry import build_conv, get_conv
from pyg_hgconv.nn.conv.spline_conv import FusedSplineConv, spline_basis
from pyg_hgconv.utils import dense

torch_spline_conv = pytest.importorskip("torch_spline_conv")
from torch_geometric.nn import SplineConv  # noqa: E402

warnings.filterwarnings("ignore", message=".*non-optimized CPU version of `SplineConv`")


def pair(seed, in_channels, out_channels, **kwargs):
    torch.manual_seed(seed)
    reference = SplineConv(in_channels, out_channels, **kwargs).double()
    fused = FusedSplineConv(in_channels, out_channels, **kwargs).double()
    fused.load_state_dict(reference.state_dict())  # the same parameters
    assert reference.state_dict().keys() == fused.state_dict().keys()
    return reference, fused


@settings(max_examples=40, deadline=None)
@given(num_nodes=st.integers(1, 12), num_edges=st.integers(0, 40), dim=st.integers(1, 3),
       degree=st.sampled_from([1, 2, 3]), kernel=st.integers(1, 5), open_=st.booleans(),
       aggr=st.sampled_from(["mean", "add", "max"]), root=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matches_pyg_outputs_and_gradients(num_nodes, num_edges, dim, degree, kernel, open_,
                                           aggr, root, bias, seed):
    kernel = max(kernel, degree + 1) if open_ else kernel
    reference, fused = pair(seed, 3, 4, dim=dim, kernel_size=kernel, is_open_spline=open_,
                            degree=degree, aggr=aggr, root_weight=root, bias=bias)
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    x = torch.randn(num_nodes, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    pseudo = torch.rand(num_edges, dim, dtype=torch.float64, generator=generator)
    pseudo.requires_grad_()
    expected, out = reference(x, edge_index, pseudo), fused(x, edge_index, pseudo)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    grad = torch.randn_like(out)
    inputs = [x, pseudo, reference.weight, *([reference.lin.weight] if root else [])]
    expected_grads = torch.autograd.grad(expected, inputs, grad, allow_unused=True)
    mine = [x, pseudo, fused.weight, *([fused.lin.weight] if root else [])]
    grads = torch.autograd.grad(out, mine, grad, allow_unused=True)
    for a, b in zip(grads, expected_grads, strict=True):
        if b is None:
            assert a is None or not a.abs().any()
        else:
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_basis_matches_torch_spline_conv():
    pseudo = torch.rand(50, 2, dtype=torch.float64)
    for degree in (1, 2, 3):
        kernel_size = torch.tensor([5, 4])
        is_open = torch.tensor([1, 0], dtype=torch.uint8)
        basis, index = spline_basis(pseudo, kernel_size, is_open, degree)
        expected_basis, expected_index = torch_spline_conv.spline_basis(pseudo, kernel_size,
                                                                        is_open, degree)
        torch.testing.assert_close(basis, expected_basis)
        assert torch.equal(index, expected_index)
        torch.testing.assert_close(basis.sum(1), torch.ones(50, dtype=torch.float64))


def test_per_edge_path_agrees_with_the_fused_one():
    _, fused = pair(0, 3, 4, dim=2, kernel_size=3)
    edge_index = torch.randint(0, 8, (2, 30))
    x, pseudo = torch.randn(8, 3, dtype=torch.float64), torch.rand(30, 2, dtype=torch.float64)
    assert fused.uses_fused_aggregation()
    expected = fused(x, edge_index, pseudo)
    fused.fused_aggregation = False  # the message path (what explain mode and torch.compile take)
    assert not fused.uses_fused_aggregation()
    torch.testing.assert_close(fused(x, edge_index, pseudo), expected)


def test_onednn_products_give_pyg_outputs(monkeypatch):
    """In eval without gradients the K kernels' products take oneDNN's path
    (pyg_hgconv.utils.dense); the layer still computes PyG's function."""
    if not dense.onednn_linear_available():
        pytest.skip("no oneDNN in this build")
    monkeypatch.setattr(dense, "ONEDNN_MIN_MACS", 0)
    torch.manual_seed(0)
    reference = SplineConv(6, 5, dim=2, kernel_size=5, aggr="add")
    fused = FusedSplineConv(6, 5, dim=2, kernel_size=5, aggr="add")
    fused.load_state_dict(reference.state_dict())
    edge_index, pseudo, x = torch.randint(0, 9, (2, 40)), torch.rand(40, 2), torch.randn(9, 6)
    with torch.no_grad():
        assert fused.uses_fused_aggregation() and dense.runs_onednn(x, fused.weight)
        out = fused(x, edge_index, pseudo)
        expected = reference(x, edge_index, pseudo)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_registry_builds_either_implementation_with_the_same_function():
    fused = build_conv("spline", 6, 5)
    reference = build_conv("spline", 6, 5, impl="pyg")
    assert isinstance(fused, FusedSplineConv) and isinstance(reference, SplineConv)
    fused.load_state_dict(reference.state_dict())
    edge_index, pseudo, x = torch.randint(0, 7, (2, 20)), torch.rand(20, 2), torch.randn(7, 6)
    torch.testing.assert_close(fused(x, edge_index, pseudo), reference(x, edge_index, pseudo),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="impl"):
        build_conv("spline", 6, 5, impl="cuda")


def test_transfer_reproduces_a_conv2d_on_the_grid_interior():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    layer = build_conv("spline", 3, 4).double()
    get_conv("spline").transfer(layer, conv)
    h, w = 6, 7
    graph = grid_graph(h, w)
    # Cartesian pseudo-coordinates normalised by one pixel: offsets -1, 0, 1 -> 0, 0.5, 1
    offset = graph.pos[graph.edge_index[0]] - graph.pos[graph.edge_index[1]]
    pseudo = (offset / 2 + 0.5).double()
    f = torch.randn(1, 3, h, w, dtype=torch.float64)
    out = layer(f.permute(0, 2, 3, 1).reshape(-1, 3), graph.edge_index, pseudo)
    expected = conv(f).permute(0, 2, 3, 1).reshape(h, w, 4)
    torch.testing.assert_close(out.view(h, w, 4)[1:-1, 1:-1], expected[1:-1, 1:-1])


def test_explain_mode_masks_every_edge():
    from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

    _, fused = pair(1, 3, 4, dim=2, kernel_size=3, aggr="add")
    edge_index = torch.randint(0, 8, (2, 30))
    x, pseudo = torch.randn(8, 3, dtype=torch.float64), torch.rand(30, 2, dtype=torch.float64)
    expected = fused(x, edge_index, pseudo)
    mask = torch.ones(30, dtype=torch.float64, requires_grad=True)
    set_masks(fused, mask, edge_index, apply_sigmoid=False)
    assert not fused.uses_fused_aggregation()
    out = fused(x, edge_index, pseudo)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    clear_masks(fused)
