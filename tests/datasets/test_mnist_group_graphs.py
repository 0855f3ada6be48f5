"""MNISTGroupGraphs: a PyG InMemoryDataset of the local MNIST digits as graphs,
cached by its pre_transform, with the fixed seeded split."""
import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.loader import DataLoader

from pyg_hgconv import ToGroupGraph
from pyg_hgconv.datasets import MNISTGroupGraphs, MNISTTest, data_root, has_dataset

pytestmark = pytest.mark.data
needs_mnist = pytest.mark.skipif(not has_dataset("mnist"),
                                 reason=f"data set 'mnist' not found under {data_root()}")


@needs_mnist
def test_graphs_labels_split_and_cache(tmp_path):
    train = MNISTGroupGraphs(tmp_path, "train", limit=12)
    assert len(train) == 12 and train[0].num_nodes <= 75
    digits = MNISTTest(split="train")
    assert [int(g.y) for g in train] == digits.targets[:12].tolist()
    # the cached graph is what the transform gives the image
    direct = ToGroupGraph(num_groups=75)(digits[3][0])
    assert torch.equal(train[3].edge_index, direct.edge_index)
    torch.testing.assert_close(train[3].x, direct.x)
    # a second instance reads the cache (no processing: pre_transform unchanged)
    assert (tmp_path / "processed" / "val_first12.pt").is_file()
    val = MNISTGroupGraphs(tmp_path, "val", limit=12)
    assert len(val) == 12
    batch = next(iter(DataLoader(train, batch_size=4)))
    assert batch.num_graphs == 4 and batch.y.shape == (4,)


@needs_mnist
def test_any_pre_transform_and_errors(tmp_path):
    slic = MNISTGroupGraphs(tmp_path / "slic", "test", limit=4,
                            pre_transform=T.Compose([T.ToSLIC(n_segments=40), T.KNNGraph(k=6)]))
    assert slic[0].edge_index.size(1) > 0 and "edge_type" not in slic[0]
    with pytest.raises(ValueError, match="split"):
        MNISTGroupGraphs(tmp_path, "all")
    with pytest.raises(ValueError, match="limit"):
        MNISTGroupGraphs(tmp_path, "train", limit=0)


def test_missing_files_say_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist"):
        MNISTGroupGraphs(tmp_path / "out", "train", data_root=tmp_path / "nothing")
