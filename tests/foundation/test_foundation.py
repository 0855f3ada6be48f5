"""The installation works: public names import, the compiled PyG extensions
run and agree with plain-torch references, and the data root is configurable."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyg_hgconv
import tvconv

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", [pyg_hgconv, tvconv])
def test_every_public_name_imports(package):
    assert package.__all__, f"{package.__name__} exports nothing"
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_subpackages_import():
    for name in ("pyg_hgconv.datasets", "pyg_hgconv.nn.conv.registry",
                 "pyg_hgconv.nn.pool.adjacency",
                 "benchmarks.common.training", "benchmarks.common.metrics"):
        importlib.import_module(name)


def test_torch_scatter_matches_index_add():
    from torch_scatter import scatter

    src, index = torch.randn(20, 3), torch.randint(0, 5, (20,))
    expected = torch.zeros(5, 3).index_add(0, index, src)
    torch.testing.assert_close(scatter(src, index, dim=0, dim_size=5, reduce="sum"), expected)


def test_torch_sparse_matmul_matches_dense():
    from torch_sparse import SparseTensor

    dense = torch.randn(6, 5) * (torch.rand(6, 5) < 0.4)
    x = torch.randn(5, 2)
    torch.testing.assert_close(SparseTensor.from_dense(dense) @ x, dense @ x)


def test_torch_cluster_knn_matches_brute_force():
    from torch_cluster import knn

    x, y = torch.randn(30, 2), torch.randn(7, 2)
    row, col = knn(x, y, k=3)
    expected = torch.cdist(y, x).topk(3, largest=False).indices
    for i in range(7):
        assert set(col[row == i].tolist()) == set(expected[i].tolist())


def test_spline_basis_is_a_partition_of_unity():
    from torch_spline_conv import spline_basis

    pseudo = torch.rand(10, 2)
    basis, _ = spline_basis(pseudo, torch.tensor([5, 5]), torch.tensor([1, 1], dtype=torch.uint8),
                            1)
    torch.testing.assert_close(basis.sum(1), torch.ones(10))


def tiny_graph():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 3], [1, 0, 2, 1, 3, 2, 3, 0]])
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pseudo = (pos[edge_index[0]] - pos[edge_index[1]]) / 2 + 0.5
    return torch.randn(4, 3), edge_index, pseudo


def test_pyg_baseline_layers_run():
    from torch_geometric.nn import MLP, DynamicEdgeConv, GCNConv, GMMConv, SplineConv

    x, edge_index, pseudo = tiny_graph()
    # GCNConv against D^-1/2 (A + I) D^-1/2 X W
    gcn = GCNConv(3, 2)
    a = torch.eye(4)
    a[edge_index[1], edge_index[0]] = 1.0
    d = a.sum(1).rsqrt()
    expected = (d[:, None] * a * d[None, :]) @ gcn.lin(x) + gcn.bias
    torch.testing.assert_close(gcn(x, edge_index), expected)

    for layer, args in [(GMMConv(3, 2, dim=2, kernel_size=4), (x, edge_index, pseudo)),
                        (SplineConv(3, 2, dim=2, kernel_size=3), (x, edge_index, pseudo)),
                        (DynamicEdgeConv(MLP([6, 4, 2]), k=2), (x,))]:
        xx = args[0].clone().requires_grad_()
        out = layer(xx, *args[1:])
        assert out.shape == (4, 2) and torch.isfinite(out).all()
        out.sum().backward()
        assert xx.grad is not None and xx.grad.abs().sum() > 0, type(layer).__name__


def test_data_root_follows_the_environment(tmp_path):
    code = "from pyg_hgconv.datasets.root import data_root; print(data_root())"
    env = {**os.environ, "PYG_HGCONV_DATA": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert Path(out) == tmp_path.resolve()
    env.pop("PYG_HGCONV_DATA")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert Path(out) == (REPO.parent / "shared" / "data").resolve()
