"""GroupGraph: the disjoint union and the PyG batch of per-image graphs are one
graph; per-image graphs collate back into it; the union's batch is PyG's collation
of its images; nothing is stashed off the record."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
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


def assert_same_batch(got, want):
    """Two PyG batches alike in every attribute, in what collation recorded (the
    slices and increments of every attribute, the nodes of every graph) and in
    every graph taken back out of them."""
    assert type(got) is type(want) and got.num_graphs == want.num_graphs
    assert set(got.keys()) == set(want.keys())
    for key in want.keys():
        if torch.is_tensor(want[key]):
            assert torch.equal(got[key], want[key]) and got[key].dtype == want[key].dtype, key
        else:
            assert got[key] == want[key], key
    assert got._store._num_nodes == want._store._num_nodes
    assert got._slice_dict.keys() == want._slice_dict.keys()
    for key, slices in want._slice_dict.items():
        assert torch.equal(got._slice_dict[key], slices), key
        inc, wanted = got._inc_dict[key], want._inc_dict[key]
        assert (inc is None and wanted is None) or torch.equal(inc, wanted), key
    for a, b in zip(got.to_data_list(), want.to_data_list(), strict=True):
        assert set(a.keys()) == set(b.keys()) and a.num_nodes == b.num_nodes
        for key in b.keys():
            assert (torch.equal(a[key], b[key]) if torch.is_tensor(b[key])
                    else a[key] == b[key]), key


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), height=st.integers(5, 20), width=st.integers(5, 20),
       ratio=st.sampled_from([1 / 4, 1 / 9, 1 / 25]), pooled=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_union_to_batch_is_pygs_collation_of_its_images(batch, height, width, ratio, pooled,
                                                         seed):
    transform = ImageToGroupGraph(ratio=ratio, learnable=False, seed=seed).eval()
    with torch.no_grad():
        union = transform(structured_image(batch, 3, height, width, seed=seed), as_batch=False)
    if not pooled:  # a union without features
        del union.x
    got = union.to_batch()
    assert_same_batch(got, Batch.from_data_list(union.split_images()))
    assert got.pos.data_ptr() == union.pos.data_ptr()  # the union's tensors, not copies
    assert got._slice_dict["pos"].data_ptr() != got.ptr.data_ptr()  # the record is its own


def test_unions_of_any_other_attributes_are_collated_by_pyg(union):
    grid = grid_graph(3, 4, batch_size=2, as_batch=False)  # no tiled assignment
    assert_same_batch(grid.to_batch(), Batch.from_data_list(grid.split_images()))
    extra = union.clone()
    extra.label = torch.arange(3)  # not an attribute of a union: collated by PyG
    assert_same_batch(extra.to_batch(), Batch.from_data_list(extra.split_images()))


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
