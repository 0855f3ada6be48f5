"""HGConvModule (Eqs. 8-10): shapes, the conv seam, transfer, gradients."""
import pytest
import torch
from torch import nn

from pyg_hgconv import HGConvModule, conv_names, grid_graph
from pyg_hgconv.nn.conv.registry import GraphConvStep, get_conv
from tests.helpers.images import structured_image


def test_shapes_and_repr():
    module = HGConvModule(8, num_layers=2, ratio=1 / 16, residual=True)
    x = torch.randn(2, 8, 12, 16)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out, graph = module(x, return_graph=True)
    assert graph.x.size(1) == 8
    assert "conv='hgconv'" in repr(module) and "HGConv(8, 8" in repr(module)


@pytest.mark.parametrize("conv", conv_names("graph"))
def test_every_graph_conv_runs_forward_and_backward(conv):
    torch.manual_seed(0)
    module = HGConvModule(6, num_layers=2, ratio=1 / 8, conv=conv)
    x = torch.randn(2, 6, 10, 12, requires_grad=True)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{conv}: no gradient for {name}"


def test_transfer_reproduces_the_grid_network_on_the_pixel_grid():
    torch.manual_seed(0)
    channels, layers = 5, 2
    convs = [nn.Conv2d(channels, channels, 3, padding=1).double() for _ in range(layers)]
    norms = [nn.BatchNorm2d(channels).double() for _ in range(layers)]
    for bn in norms:  # non-trivial running statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
    layers_ = [m for c, b in zip(convs, norms, strict=True) for m in (c, b, nn.ReLU())]
    grid_net = nn.Sequential(*layers_)
    grid_net.eval()
    module = HGConvModule(channels, num_layers=layers).double()
    module.load_conv2d(convs, norms).eval()
    x = torch.randn(2, channels, 7, 9, dtype=torch.float64)
    # with S = I (every pixel its own group) the module is the grid network
    out = module(x, graph=grid_graph(7, 9, batch_size=2))
    torch.testing.assert_close(out, grid_net(x), atol=1e-10, rtol=0)


def test_gradcheck_through_the_clustering():
    torch.manual_seed(0)
    module = HGConvModule(2, num_layers=1, num_groups=3, embed_channels=2,
                          sampler="random", num_iterations=2).double().eval()
    x = structured_image(1, 2, 4, 5).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda inp: module(inp), (x,), eps=1e-6, atol=1e-5)
    # the clustering itself is differentiable (S depends on x and the embedding)
    transform = module.pool
    w = transform.embed.weight
    g = torch.autograd.grad(transform(x).x.sum() + transform(x).edge_weight.sum(), w)[0]
    assert g.abs().sum() > 0


def test_decoder_reuses_the_encoder_assignment():
    module = HGConvModule(4, ratio=1 / 8).eval()
    x = structured_image(2, 4, 8, 8)
    _, graph = module(x, return_graph=True)
    y = torch.randn_like(x)
    decoder = HGConvModule(4, ratio=1 / 8).eval()
    out = decoder(y, graph=graph)
    assert out.shape == y.shape
    # pooling a map with the re-used graph averages it over the same groups
    pooled = HGConvModule.pool_with(x, graph)
    torch.testing.assert_close(pooled, graph.x)
    with pytest.raises(ValueError, match="does not match"):
        decoder(torch.randn(2, 4, 8, 6), graph=graph)


def test_degenerate_module_inputs():
    module = HGConvModule(3, num_layers=2, ratio=1.0, num_candidates=3)
    for x in (torch.zeros(2, 3, 4, 4), torch.randn(1, 3, 1, 9) * 1e25,
              torch.randn(2, 3, 7, 1) * 1e-25):
        out = module(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
    one_group = HGConvModule(3, num_groups=1).train()
    assert torch.isfinite(one_group(torch.randn(1, 3, 5, 5))).all()
    assert module(torch.zeros(0, 3, 4, 4)).shape == (0, 3, 4, 4)


def test_registry_seam_and_errors():
    assert conv_names("graph") == ["hgconv", "gcn", "gmm", "spline", "dynamic_edge"]
    with pytest.raises(ValueError, match="hgconv"):
        HGConvModule(4, conv="gat")
    with pytest.raises(ValueError, match="unknown graph conv"):
        GraphConvStep("conv2d", 4, 4)
    with pytest.raises(ValueError, match="channels"):
        HGConvModule(4)(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="mapping from a 3x3 kernel"):
        HGConvModule(4, conv="gcn").load_conv2d([nn.Conv2d(4, 4, 3, padding=1)])
    assert get_conv("gmm").inputs == ("edge_index", "pseudo")


@pytest.mark.parametrize("conv", ["hgconv", "gmm"])
def test_a_given_graph_is_not_modified(conv):
    torch.manual_seed(0)
    encoder = HGConvModule(4, ratio=1 / 8, conv=conv).eval()
    decoder = HGConvModule(4, ratio=1 / 8, conv=conv, cluster=False).eval()
    x = structured_image(2, 4, 12, 16)
    _, graph = encoder(x, return_graph=True)
    before = {key: (value.clone() if torch.is_tensor(value) else value)
              for key, value in graph.items()}
    decoder(x, graph=graph)
    assert set(graph.keys()) == set(before)  # no pseudo-coordinates, no cached matrices
    for key, value in before.items():
        if torch.is_tensor(value):
            assert torch.equal(graph[key], value), key
    assert set(graph.__dict__) == set(type(graph)().__dict__)  # nothing stashed on it


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_whole_hg_path_in_half_precision(dtype):
    torch.manual_seed(0)
    reference = HGConvModule(3, num_layers=2, ratio=1 / 16).eval()
    module = HGConvModule(3, num_layers=2, ratio=1 / 16).eval()
    module.load_state_dict(reference.state_dict())
    module = module.to(dtype)
    x = structured_image(2, 3, 16, 20)
    with torch.no_grad():
        expected = reference(x)
        out = module(x.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    # the same groups and a result within half precision of the float32 one
    close = ((out.float() - expected).abs() <= 0.05 + 0.05 * expected.abs()).float().mean()
    assert close > 0.95
    # and it trains: gradients in the input's dtype
    module.train()
    xh = x.to(dtype).requires_grad_()
    module(xh).float().square().mean().backward()
    assert xh.grad.dtype == dtype and torch.isfinite(xh.grad).all()


def test_whole_hg_path_under_autocast():
    torch.manual_seed(0)
    module = HGConvModule(3, num_layers=2, ratio=1 / 16)
    x = structured_image(2, 3, 16, 20).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    out.float().square().mean().backward()  # backward outside autocast, as recommended
    assert torch.isfinite(out.float()).all() and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in module.parameters())
