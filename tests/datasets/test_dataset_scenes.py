"""HeterogeneousScenes: determinism, item format, structure and learnability."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from pyg_hgconv.datasets import CamVid, HeterogeneousScenes
from pyg_hgconv.datasets.heterogeneous_scenes import STUFF_CLASSES

SIZE = (48, 64)


def test_item_format_matches_camvid():
    ds = HeterogeneousScenes(3, size=SIZE)
    assert len(ds) == 3
    image, label = ds[0]
    assert image.shape == (3, *SIZE) and image.dtype == torch.float32
    assert label.shape == SIZE and label.dtype == torch.int64
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert 0 <= label.min() and label.max() < ds.num_classes
    assert len(ds.class_names) == ds.num_classes == 11 == CamVid.num_classes
    assert ds.palette.shape == (11, 3) and len(set(map(tuple, ds.palette.tolist()))) == 11
    assert ds.colorize(label).shape == (*SIZE, 3)
    assert "HeterogeneousScenes(3" in repr(ds) and "num_classes=11" in repr(ds)
    normalized, _ = HeterogeneousScenes(3, size=SIZE, normalize=True)[0]
    mean = torch.tensor(ds.mean).view(3, 1, 1)
    std = torch.tensor(ds.std).view(3, 1, 1)
    assert torch.allclose(normalized, (image - mean) / std)


def test_deterministic_per_item_and_seed():
    a = HeterogeneousScenes(4, size=SIZE, seed=5, cache=False)
    b = HeterogeneousScenes(9, size=SIZE, seed=5)
    for i in range(4):  # any subset is reproducible on its own
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True))
    c = HeterogeneousScenes(4, size=SIZE, seed=6)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[1][1], c[0][1])  # neighbouring seeds share no items
    assert not torch.equal(a[0][1], a[1][1])


def test_large_regions_and_many_small_objects():
    ds = HeterogeneousScenes(4, size=(64, 96))
    for i in range(len(ds)):
        _, label = ds[i]
        label = label.numpy()
        counts = np.bincount(label.ravel(), minlength=ds.num_classes) / label.size
        # the three stuff classes cover most of the image in large regions
        stuff = label < len(STUFF_CLASSES)
        assert 0.5 < stuff.mean() < 0.98
        regions, _ = ndimage.label(stuff)
        assert np.bincount(regions.ravel())[1:].max() > 0.2 * label.size
        assert counts[0] > 0.05 and counts[1] > 0.05  # sky and ground
        # many small connected components of object classes
        objects, n_objects = ndimage.label(~stuff)
        sizes = np.bincount(objects.ravel())[1:]
        assert n_objects >= 8
        assert np.median(sizes) < 0.01 * label.size
        assert len(np.unique(label[~stuff])) >= 4


def test_learnable_from_colour_but_not_trivially():
    """Nearest class-mean colour beats chance by far but is not perfect (shape matters)."""
    train = HeterogeneousScenes(6, size=SIZE, seed=0)
    test = HeterogeneousScenes(3, size=SIZE, seed=100)

    def pixels(ds):
        xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
        return (torch.stack(xs).permute(0, 2, 3, 1).reshape(-1, 3),
                torch.stack(ys).reshape(-1))

    x, y = pixels(train)
    means = torch.stack([x[y == c].mean(0) for c in range(train.num_classes)])
    xt, yt = pixels(test)
    pred = torch.cdist(xt, means).argmin(1)
    accuracy = (pred == yt).double().mean().item()
    assert 0.6 < accuracy < 0.99
    things = yt >= len(STUFF_CLASSES)
    assert (pred[things] == yt[things]).double().mean() < 0.95  # shared colours need shape


def test_ignore_index_marks_boundaries():
    plain = HeterogeneousScenes(2, size=SIZE)
    marked = HeterogeneousScenes(2, size=SIZE, ignore_index=11)
    image_a, label_a = plain[0]
    image_b, label_b = marked[0]
    assert torch.equal(image_a, image_b)
    ignored = label_b == 11
    assert 0 < ignored.double().mean() < 0.2
    assert torch.equal(label_b[~ignored], label_a[~ignored])
    # every ignored pixel sits on a label change to the right or below
    right = torch.zeros_like(ignored)
    right[:, :-1] = label_a[:, :-1] != label_a[:, 1:]
    down = torch.zeros_like(ignored)
    down[:-1] = label_a[:-1] != label_a[1:]
    assert torch.equal(ignored, right | down)
    with pytest.raises(ValueError, match="ignore_index"):
        HeterogeneousScenes(2, ignore_index=3)


def test_cache_augment_and_arguments():
    ds = HeterogeneousScenes(2, size=SIZE, augment=True)
    calls = []
    load = ds.load
    ds.load = lambda i: calls.append(i) or load(i)
    torch.manual_seed(0)
    first = ds[1]
    torch.manual_seed(0)
    second = ds[1]
    assert calls == [1]  # generated once, then served from the uint8 cache
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert set(first[1].unique().tolist()) <= set(ds.raw(1)[1][0].long().unique().tolist())
    with pytest.raises(IndexError):
        ds[2]
    torch.manual_seed(0)
    assert torch.equal(ds[-1][1], first[1])  # negative indices count from the end
    for kwargs, match in [({"num_classes": 3}, "num_classes"), ({"size": (8, 8)}, "size"),
                          ({"num_objects": (5, 2)}, "num_objects"), ({"noise": -1.0}, "noise")]:
        with pytest.raises(ValueError, match=match):
            HeterogeneousScenes(2, **kwargs)
    few = HeterogeneousScenes(1, size=SIZE, num_classes=4, num_objects=0)
    assert few[0][1].max() < 3  # no objects: stuff only
