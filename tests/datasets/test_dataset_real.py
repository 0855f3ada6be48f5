"""Loaders on the real data under $PYG_HGCONV_DATA (each test skips when its data are absent)."""
import pytest
import torch
from PIL import Image

from pyg_hgconv.datasets import (
    ECSSD,
    CamVid,
    MNISTTest,
    RoadTiles,
    data_root,
    has_dataset,
)

pytestmark = pytest.mark.data


def needs(name: str):
    """Skip unless data set ``name`` is under the data root, saying where it was looked for."""
    return pytest.mark.skipif(not has_dataset(name),
                              reason=f"data set '{name}' not found under {data_root()} "
                                     f"(set PYG_HGCONV_DATA)")


@needs("camvid")
def test_camvid_items_splits_cache():
    train, val = CamVid(split="train"), CamVid(split="val")
    assert (len(train), len(val)) == (367, 101)
    assert not set(train.split_files()) & set(val.split_files())
    assert train.split_files()[0].startswith("train/")
    image, label = train[0]
    assert image.shape == (3, 360, 480) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label.shape == (360, 480) and label.dtype == torch.int64
    assert label.min() >= 0 and label.max() <= CamVid.ignore_index
    assert len(label.unique()) > 4
    small = CamVid(split="val", size=(90, 120))
    calls = []
    load = small.load
    small.load = lambda i: calls.append(i) or load(i)
    image_s, label_s = small[3]
    again, _ = small[3]
    assert calls == [3] and torch.equal(image_s, again)  # decoded once, then cached
    assert image_s.shape == (3, 90, 120) and label_s.shape == (90, 120)
    assert set(label_s.unique().tolist()) <= set(range(12))  # nearest: only real ids
    norm, _ = CamVid(split="val", size=(90, 120), normalize=True)[3]
    assert torch.allclose(norm, (image_s - torch.tensor(CamVid.mean).view(3, 1, 1))
                          / torch.tensor(CamVid.std).view(3, 1, 1))
    aug = CamVid(split="val", size=(90, 120), augment=True)
    torch.manual_seed(3)
    first = aug[3]
    torch.manual_seed(3)
    second = aug[3]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert CamVid.colorize(label_s).shape == (90, 120, 3)


def _check_binary_split(cls, sizes, **kwargs):
    parts = {split: cls(split=split, **kwargs) for split in sizes}
    assert {s: len(d) for s, d in parts.items()} == sizes
    files = [set(d.split_files()) for d in parts.values()]
    assert sum(len(f) for f in files) == len(set().union(*files))  # disjoint
    again = cls(split=next(iter(sizes)), **kwargs)
    assert again.split_files() == parts[next(iter(sizes))].split_files()  # deterministic
    other = cls(split=next(iter(sizes)), **{**kwargs, "seed": 1})
    assert other.split_files() != again.split_files()
    return parts


@needs("roads")
def test_road_tiles():
    parts = _check_binary_split(RoadTiles, {"train": 60, "val": 10, "test": 10})
    image, mask = parts["test"][0]
    assert image.shape == (3, 400, 400) and mask.shape == (400, 400)
    assert mask.dtype == torch.int64 and set(mask.unique().tolist()) == {0, 1}
    assert 0.03 < mask.double().mean() < 0.5
    _, mask_f = RoadTiles(split="test", size=100, mask_dtype=torch.float32)[0]
    assert mask_f.dtype == torch.float32 and mask_f.shape == (100, 100)
    assert "seed=0" in repr(parts["train"])


@needs("ecssd")
def test_ecssd():
    parts = _check_binary_split(ECSSD, {"train": 500, "val": 100, "test": 100}, size=(64, 64))
    image, mask = parts["val"][0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64)
    assert set(mask.unique().tolist()) <= {0, 1} and mask.any()
    # the one greyscale JPEG decodes to 3 channels too
    root = parts["train"].root
    grey = [p for p in sorted((root / "images").iterdir()) if Image.open(p).mode != "RGB"]
    assert grey
    for split in parts.values():
        names = split.split_files()
        rel = f"images/{grey[0].name}"
        if rel in names:
            assert split[names.index(rel)][0].shape == (3, 64, 64)
    native = ECSSD(split="test", size=None)
    assert native[0][0].shape[1:] == native[0][1].shape


@needs("mnist")
def test_mnist_test_set():
    full = MNISTTest()
    assert len(full) == 10_000 and full.data.shape == (10_000, 28, 28)
    assert torch.bincount(full.targets).min() > 800
    parts = {s: MNISTTest(split=s) for s in ("train", "val", "test")}
    assert [len(p) for p in parts.values()] == [8000, 1000, 1000]
    indices = torch.cat([p.indices for p in parts.values()])
    assert indices.unique().numel() == 10_000
    assert torch.equal(parts["val"].indices, MNISTTest(split="val").indices)
    image, label = parts["val"][0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert torch.equal((image[0] * 255).round().byte(), parts["val"].data[0])
    assert int(label) == int(full.targets[parts["val"].indices[0]])
