"""ToGroupGraph: a PyG transform that composes with PyG's own, deterministic,
collating into exactly what the batched module computes, with clear errors."""
import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from pyg_hgconv import GroupGraph, ImageToGroupGraph, ToGroupGraph, unpool
from tests.helpers.images import structured_image


@pytest.fixture(scope="module")
def images():
    return structured_image(4, 1, 28, 28)


def test_compose_with_pyg_transforms(images):
    transform = T.Compose([ToGroupGraph(num_groups=75), T.Cartesian()])
    graph = transform(images[0])
    assert isinstance(graph, GroupGraph)
    assert graph.num_nodes <= 75 and graph.x.shape == (graph.num_nodes, 1)
    assert graph.edge_attr.shape == (graph.edge_index.size(1), 2)
    assert 0 <= float(graph.edge_attr.min()) and float(graph.edge_attr.max()) <= 1
    assert {"edge_type", "edge_weight", "assign_index", "assign_weight", "tile_weight"} <= set(
        graph.keys())
    # the assignment maps the groups back to the image
    assert unpool(graph.x, graph).shape == (1, 1, 28, 28)


def test_deterministic_and_equal_to_the_batched_module_after_collation(images):
    transform = ToGroupGraph(num_groups=75)
    graphs = [transform(image) for image in images]
    again = transform(images[2])
    for key in ("x", "edge_index", "edge_type", "edge_weight", "assign_weight"):
        assert torch.equal(again[key], graphs[2][key]), key
    batch = next(iter(DataLoader(graphs, batch_size=len(graphs))))
    union = ImageToGroupGraph(num_groups=75, embed_channels=None, learnable=False).eval()(
        images, as_batch=False)
    for key in ("x", "pos", "edge_index", "edge_type", "edge_weight", "assign_index",
                "assign_weight", "tile_weight", "tile_candidates", "batch", "ptr"):
        torch.testing.assert_close(batch[key], union[key], msg=key)
    z = torch.randn(union.num_nodes, 3)
    torch.testing.assert_close(unpool(z, batch), unpool(z, union))


def test_data_input_keeps_its_other_attributes(images):
    data = Data(img=images[0], y=torch.tensor([7]))
    graph = ToGroupGraph(num_groups=30, add_img=True)(data)
    assert int(graph.y) == 7 and graph.img.shape == (1, 1, 28, 28)
    assert ToGroupGraph(num_groups=30)(images[0, 0]).num_nodes <= 30  # [H, W] works too


@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(2, 2, 1, 8, 8), ValueError, "shape"),
    (torch.randint(0, 255, (1, 8, 8)), TypeError, "floating-point"),
    (torch.full((1, 8, 8), float("nan")), ValueError, "finite"),
    (torch.rand(1, 0, 8), ValueError, "empty"),
    (torch.rand(1, 4, 4), ValueError, "num_groups"),
    ([1.0, 2.0], TypeError, "torch.Tensor"),
])
def test_bad_input_names_the_problem(bad, error, match):
    with pytest.raises(error, match=match):
        ToGroupGraph(num_groups=20)(bad)


def test_bad_options_and_missing_image_key():
    with pytest.raises(TypeError, match="parameter-free"):
        ToGroupGraph(embed_channels=8)
    with pytest.raises(ValueError, match="image_key"):
        ToGroupGraph()(Data(x=torch.rand(3, 1)))
    assert "num_groups=75" in repr(ToGroupGraph())
