"""TVConv's data sets: DRIVE and ORL faces on the real data (skipped when absent),
verification pairs, and their errors."""
import pytest
import torch

from pyg_hgconv.datasets import ENV_VAR, data_root, has_dataset
from tvconv.datasets import DRIVE, ORLFaces, verification_pairs


def needs(name: str):
    """Skip unless data set ``name`` is under the data root, saying where it was looked for."""
    return pytest.mark.skipif(not has_dataset(name),
                              reason=f"data set '{name}' not found under {data_root()} "
                                     f"(set PYG_HGCONV_DATA)")


def test_verification_pairs_balanced_unique_seeded():
    labels = torch.arange(10).repeat_interleave(3)  # 10 identities x 3 images
    a, b, same = verification_pairs(labels)
    assert int(same.sum()) == 30 and int((~same).sum()) == 30  # all C(3,2) * 10 genuine
    assert torch.equal(labels[a] == labels[b], same)
    assert (a < b).all()
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == 60
    a2, b2, _ = verification_pairs(labels)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    a3, _, _ = verification_pairs(labels, seed=1)
    assert not torch.equal(a, a3)
    a4, _, same4 = verification_pairs(labels, num_pairs=20)
    assert a4.numel() == 20 and int(same4.sum()) == 10
    with pytest.raises(ValueError, match="repeated"):
        verification_pairs(torch.arange(5))


def test_errors_name_the_problem(tmp_path):
    for cls, good in [(DRIVE, "'training', 'test'"), (ORLFaces, "'train', 'test'")]:
        with pytest.raises(ValueError, match=good):
            cls(root=tmp_path, split="bogus")
        with pytest.raises(FileNotFoundError) as info:
            cls(root=tmp_path)
        assert str(tmp_path) in str(info.value) and ENV_VAR in str(info.value)
    with pytest.raises(ValueError, match="observer"):
        DRIVE(root=tmp_path, split="training", observer=2)


@pytest.mark.data
@needs("drive")
def test_drive_observers():
    train, test = DRIVE(split="training"), DRIVE(split="test")
    assert (len(train), len(test)) == (20, 20)
    image, vessel, fov = test[0]
    assert image.shape == (3, 584, 565) and vessel.shape == fov.shape == (584, 565)
    assert 0.6 < fov.double().mean() < 0.8
    assert 0.05 < vessel.double().mean() < 0.15
    assert (vessel & fov).sum() > 0.95 * vessel.sum()  # vessels lie inside the FOV
    second = DRIVE(split="test", observer=2)
    _, vessel2, fov2 = second[0]
    assert torch.equal(fov, fov2)
    assert set(vessel2.unique().tolist()) == {0, 1}  # palette indices decoded
    assert 0.05 < vessel2.double().mean() < 0.15
    agreement = 2 * (vessel & vessel2).sum() / (vessel.sum() + vessel2.sum())
    assert agreement > 0.7  # two human observers agree closely
    _, small_vessel, _ = DRIVE(split="training", size=(146, 141))[0]
    assert small_vessel.shape == (146, 141)


@pytest.mark.data
@needs("orl_faces")
def test_orl_faces_split_and_pairs():
    train, test = ORLFaces(split="train"), ORLFaces(split="test")
    assert (len(train), len(test)) == (280, 120)
    assert train.num_classes == 40
    assert torch.bincount(train.labels).tolist() == [7] * 40
    assert torch.bincount(test.labels).tolist() == [3] * 40
    assert not set(train.split_files()) & set(test.split_files())
    assert train.split_files() == ORLFaces(split="train").split_files()
    assert train.split_files() != ORLFaces(split="train", seed=1).split_files()
    # labels follow numeric identity order: s2 is label 1, s10 is label 9
    names = train.split_files()
    assert all(int(n.split("/")[0][1:]) - 1 == int(lbl) for n, lbl in zip(names, train.labels,
                                                                         strict=True))
    image, label = test[5]
    assert image.shape == (1, 96, 96) and label.dtype == torch.int64 and label.dim() == 0
    rgb, _ = ORLFaces(split="test", num_channels=3, size=None)[5]
    assert rgb.shape == (3, 112, 92) and torch.equal(rgb[0], rgb[2])
    a, b, same = test.verification_pairs()
    assert a.numel() == 240 and int(same.sum()) == 120
    assert torch.equal(test.labels[a] == test.labels[b], same)
    assert len(ORLFaces(split="test", train_per_identity=5)) == 200
    with pytest.raises(ValueError, match="train_per_identity"):
        ORLFaces(train_per_identity=10)
