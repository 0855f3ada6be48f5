"""Shared dataset machinery: seeded splits, joint augmentation, pairs, errors (no data needed)."""
import pytest
import torch

from pyg_hgconv.datasets import (
    ECSSD,
    ENV_VAR,
    CamVid,
    JointAugment,
    MNISTTest,
    RoadTiles,
    colorize,
    read_idx,
    seeded_split,
    split_sizes,
)
from pyg_hgconv.datasets.base import parse_size


def test_split_sizes_add_up():
    assert split_sizes(80, {"train": 0.75, "val": 0.125, "test": 0.125}) == \
        {"train": 60, "val": 10, "test": 10}
    assert split_sizes(700, {"train": 5 / 7, "val": 1 / 7, "test": 1 / 7}) == \
        {"train": 500, "val": 100, "test": 100}
    assert sum(split_sizes(13, {"a": 0.5, "b": 0.3, "c": 0.2}).values()) == 13
    with pytest.raises(ValueError, match="sum to 1"):
        split_sizes(10, {"a": 0.5, "b": 0.4})


def test_seeded_split_disjoint_covering_deterministic():
    sizes = {"train": 12, "val": 5, "test": 3}
    a = seeded_split(20, sizes, seed=3)
    assert a == seeded_split(20, sizes, seed=3)
    assert a != seeded_split(20, sizes, seed=4)
    assert sorted(i for v in a.values() for i in v) == list(range(20))
    assert {k: len(v) for k, v in a.items()} == sizes
    assert all(v == sorted(v) for v in a.values())
    with pytest.raises(ValueError, match="add up"):
        seeded_split(20, {"train": 3}, seed=0)


def test_joint_augment_is_seeded_and_keeps_labels():
    image = torch.rand(3, 20, 24)
    label = torch.randint(0, 4, (20, 24), dtype=torch.uint8)
    mask = (torch.rand(20, 24) > 0.5).to(torch.uint8)
    aug = JointAugment(hflip=0.5, scale=(0.5, 1.0))
    torch.manual_seed(7)
    first = [aug(image, (label, mask)) for _ in range(4)]
    torch.manual_seed(7)
    second = [aug(image, (label, mask)) for _ in range(4)]
    for (i1, t1), (i2, t2) in zip(first, second, strict=True):
        assert torch.equal(i1, i2) and all(torch.equal(a, b) for a, b in zip(t1, t2, strict=True))
    for out_image, (out_label, out_mask) in first:
        assert out_image.shape == image.shape and out_label.shape == label.shape
        assert out_label.dtype == torch.uint8
        assert set(out_label.unique().tolist()) <= set(label.unique().tolist())  # nearest
        assert set(out_mask.unique().tolist()) <= {0, 1}
    assert any(not torch.equal(o, image) for o, _ in first)
    # flip only: exactly mirrored or unchanged, together with the label
    flip = JointAugment(hflip=1.0, scale=(1.0, 1.0))
    out_image, (out_label,) = flip(image, (label,))
    assert torch.equal(out_image, image.flip(-1)) and torch.equal(out_label, label.flip(-1))
    with pytest.raises(ValueError, match="scale"):
        JointAugment(scale=(0.0, 1.0))


def test_errors_name_the_problem(tmp_path):
    for cls, good in [(CamVid, "'train', 'val', 'test'"), (RoadTiles, "'train', 'val', 'test'"),
                      (ECSSD, "'train', 'val', 'test'"), (MNISTTest, "'all', 'train'")]:
        with pytest.raises(ValueError, match=good):
            cls(root=tmp_path, split="bogus")
        with pytest.raises(FileNotFoundError) as info:
            cls(root=tmp_path)
        assert str(tmp_path) in str(info.value) and ENV_VAR in str(info.value)
    with pytest.raises(ValueError, match="size"):
        parse_size((0, 4))
    with pytest.raises(TypeError, match="size"):
        parse_size("big")
    assert parse_size(5) == (5, 5) and parse_size(None) is None


def test_missing_mask_is_reported(tmp_path):
    from PIL import Image
    (tmp_path / "roads" / "images").mkdir(parents=True)
    (tmp_path / "roads" / "groundtruth").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "roads" / "images" / "a.png")
    with pytest.raises(FileNotFoundError, match="'a'"):
        RoadTiles(root=tmp_path)


def test_colorize():
    palette = torch.tensor([[10, 20, 30], [40, 50, 60]], dtype=torch.uint8)
    label = torch.tensor([[0, 1], [9, 255]])
    rgb = colorize(label, palette, ignore_index=255)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == torch.uint8
    assert rgb[0, 1].tolist() == [40, 50, 60] and rgb[1, 1].tolist() == [0, 0, 0]
    assert rgb[1, 0].tolist() == [0, 0, 0]  # out of range


def test_read_idx_round_trip_and_errors(tmp_path):
    import gzip
    import struct

    images = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4).numpy()
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 2, 3, 4)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    assert (read_idx(tmp_path / "x-idx3-ubyte.gz") == images).all()
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(header + b"\x00" * 5)
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")
