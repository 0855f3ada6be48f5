"""GroupGraph: the disjoint union and the PyG batch of per-image graphs are one
graph; per-image graphs collate back into it; nothing is stashed off the record."""
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from pyg_hgconv import GroupGraph, ImageToGroupGraph, grid_graph, unpool
from tests.helpers.images import structured_image


@pytest.fixture(scope="module")
def union():
    transform = ImageToGroupGraph(ratio=1 / 16, learnable=False).eval()
    return transform(structured_image(3, 3, 16, 20), as_batch=False)


def test_union_and_batch_hold_the_same_tensors(union):
    batch = union.to_batch()
    assert isinstance(batch, Batch) and batch.num_graphs == union.num_images == 3
    for key in ("x", "pos", "edge_index", "edge_type", "edge_weight", "assign_index",
                "assign_weight", "mass", "center_pixel", "importance", "tile_weight",
                "tile_candidates", "batch", "ptr"):
        torch.testing.assert_close(batch[key], union[key], msg=key)


def test_split_images_gives_local_indices_and_collates_back(union):
    parts = union.split_images()
    assert len(parts) == 3 and all(isinstance(p, GroupGraph) for p in parts)
    for i, part in enumerate(parts):
        n = part.num_nodes
        assert n == int(union.ptr[i + 1] - union.ptr[i])
        assert int(part.edge_index.max()) < n and int(part.edge_index.min()) >= 0
        assert int(part.assign_index[0].max()) < 16 * 20
        assert int(part.assign_index[1].max()) < n
        assert "batch" not in part and "ptr" not in part
    loaded = next(iter(DataLoader(parts, batch_size=3)))
    z = torch.randn(union.num_nodes, 4)
    torch.testing.assert_close(unpool(z, loaded), unpool(z, union))
    torch.testing.assert_close(loaded.edge_index, union.edge_index)


def test_grid_graph_union_and_batch():
    union = grid_graph(3, 4, batch_size=2, as_batch=False)
    batch = grid_graph(3, 4, batch_size=2)
    assert union.num_images == batch.num_graphs == 2
    torch.testing.assert_close(union.edge_index, batch.edge_index)
    assert batch[1].num_nodes == 12


def test_nothing_is_kept_outside_the_declared_attributes(union):
    assert not [k for k in union.__dict__ if k.startswith("_tiled") or k == "_slot_adjacency"]
    assert set(union.keys()) >= {"tile_weight", "tile_candidates", "tiling"}
