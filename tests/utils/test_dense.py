"""The stacked transforms of ``pyg_hgconv.utils.dense`` against a loop of plain
products, on both paths (oneDNN and ``torch.matmul``), for stacks of any size, with
gradients, and the kernel-major storage of HGConv's weight."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import HGConv
from pyg_hgconv.utils import dense
from pyg_hgconv.utils.dense import kernel_major_empty, runs_onednn, stacked_products


def reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Row k N + j is x_j W_k, one transform at a time, in float64."""
    return torch.cat([x.double() @ weight[t].double() for t in range(weight.size(0))])


def operands(seed, num_nodes, in_channels, out_channels, kernel_major, dtype, kernels=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, in_channels, generator=g).to(dtype)
    values = torch.randn(kernels, in_channels, out_channels, generator=g).to(dtype)
    if kernel_major:
        weight = kernel_major_empty(kernels, in_channels, out_channels, dtype=dtype)
        weight.copy_(values)
    else:
        weight = values
    return x, weight


@pytest.fixture
def onednn_always(monkeypatch):
    """The oneDNN path for products of any size (where the build has it)."""
    monkeypatch.setattr(dense, "ONEDNN_MIN_MACS", 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), num_nodes=st.integers(0, 40),
       in_channels=st.integers(1, 24), out_channels=st.integers(1, 24),
       kernel_major=st.booleans(), kernels=st.integers(1, 27))
def test_products_match_one_transform_at_a_time(seed, num_nodes, in_channels, out_channels,
                                                kernel_major, kernels):
    x, weight = operands(seed, num_nodes, in_channels, out_channels, kernel_major,
                         torch.float32, kernels)
    with torch.no_grad():
        got = stacked_products(x, weight)
    assert got.shape == (kernels * num_nodes, out_channels)
    torch.testing.assert_close(got.double(), reference(x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not dense.onednn_linear_available(), reason="no oneDNN in this build")
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), num_nodes=st.integers(1, 40),
       in_channels=st.integers(1, 24), out_channels=st.integers(1, 24),
       kernel_major=st.booleans(), kernels=st.integers(1, 27))
def test_onednn_path_matches_one_transform_at_a_time(seed, num_nodes, in_channels,
                                                     out_channels, kernel_major, kernels):
    x, weight = operands(seed, num_nodes, in_channels, out_channels, kernel_major,
                         torch.float32, kernels)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dense, "ONEDNN_MIN_MACS", 0)
        with torch.no_grad():
            assert runs_onednn(x, weight)
            got = stacked_products(x, weight)
    assert got.is_contiguous()
    torch.testing.assert_close(got.double(), reference(x, weight), rtol=1e-5, atol=1e-5)


def test_gradients_take_the_differentiable_path(onednn_always):
    x, weight = operands(3, 7, 5, 4, True, torch.float64)
    x.requires_grad_()
    weight.requires_grad_()
    assert not runs_onednn(x, weight)
    torch.autograd.gradcheck(stacked_products, (x, weight))


def test_what_takes_the_onednn_path(onednn_always):
    if not dense.onednn_linear_available():
        pytest.skip("no oneDNN in this build")
    x, weight = operands(0, 6, 4, 4, True, torch.float32)
    with torch.no_grad():
        assert runs_onednn(x, weight)
        assert not runs_onednn(x.double(), weight.double())  # float64: torch.matmul
        assert not runs_onednn(x.bfloat16(), weight.bfloat16())  # bfloat16 too
        with torch.backends.mkldnn.flags(enabled=False):
            assert not runs_onednn(x, weight)  # the user turned oneDNN off
        assert not runs_onednn(x, weight.double())  # mixed dtypes
    assert not runs_onednn(x.requires_grad_(), weight)  # autograd needs the graph


def test_bad_operands_name_the_argument():
    x, weight = operands(0, 5, 4, 3, True, torch.float32)
    with pytest.raises(ValueError, match="'weight' must be \\[K, C_in, C_out\\]"):
        stacked_products(x, weight[0])
    with pytest.raises(ValueError, match="'x' must be \\[N, C_in\\] with C_in = 4"):
        stacked_products(x[:, :3], weight)
    with pytest.raises(ValueError, match="'x' must be"):
        stacked_products(x.unsqueeze(0), weight)
    # no nodes: an empty stack of rows, finite by construction
    assert stacked_products(x[:0], weight).shape == (0, 3)


def test_backend_info_names_the_path_large_products_take():
    x, weight = operands(0, 512, 32, 32, True, torch.float32)  # 4.7M multiply-adds
    with torch.no_grad():
        info = dense.backend_info()
        assert (info["products_backend"] == "onednn") == runs_onednn(x, weight)
        assert info["products_onednn_min_macs"] == dense.ONEDNN_MIN_MACS
        with torch.backends.mkldnn.flags(enabled=False):
            off = dense.backend_info()
            assert off["products_backend"] == "matmul" and off["products_fallback_reason"]


def test_hgconv_weight_is_stored_kernel_major_and_drawn_as_before():
    torch.manual_seed(0)
    layer = HGConv(6, 5)
    torch.manual_seed(0)
    expected = HGConv(6, 5)  # the same draw, whatever the storage
    torch.testing.assert_close(layer.weight, expected.weight, rtol=0, atol=0)
    assert layer.weight.shape == (9, 6, 5)
    # the [9 C_out, C_in] matrix oneDNN reads is a view of the parameter
    stacked = layer.weight.transpose(1, 2).reshape(45, 6)
    assert stacked.data_ptr() == layer.weight.data_ptr() and stacked._base is not None
    # the lazily initialised layer is stored the same way and draws the same values
    torch.manual_seed(0)
    lazy = HGConv(-1, 5)
    edge_index = torch.tensor([[0, 1], [1, 0]])
    lazy(torch.zeros(2, 6), edge_index, torch.tensor([1, 7]))
    assert lazy.weight.transpose(1, 2).is_contiguous()
    # a state dict round trip keeps values and layout
    copy = HGConv(6, 5)
    copy.load_state_dict(layer.state_dict())
    torch.testing.assert_close(copy.weight, layer.weight, rtol=0, atol=0)
    assert copy.weight.transpose(1, 2).is_contiguous()


def test_hgconv_forward_is_the_same_on_both_paths(monkeypatch):
    if not dense.onednn_linear_available():
        pytest.skip("no oneDNN in this build")
    torch.manual_seed(1)
    layer = HGConv(8, 6).eval()
    x = torch.randn(30, 8)
    edge_index = torch.randint(0, 30, (2, 80))
    edge_type = torch.randint(0, 9, (80,))
    with torch.no_grad():
        monkeypatch.setattr(dense, "ONEDNN_MIN_MACS", 0)
        fast = layer(x, edge_index, edge_type)
        monkeypatch.setattr(dense, "ONEDNN_MIN_MACS", float("inf"))
        plain = layer(x, edge_index, edge_type)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
