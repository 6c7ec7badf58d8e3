"""Data sets and the on-device batch pipeline."""
import pickle

import numpy as np
import pytest
import torch

from conftest import CIFAR10_JPG
from resnet_ablate.data.batches import TensorBatches, image_mean, normalise, random_crop_flip
from resnet_ablate.data.sets import Split, holdout, load_small, read_cifar_folder


def test_digits_is_real_and_embedded():
    d = load_small("digits", "", val_size=180, split_seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (1258, 180, 359)
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert d.train.images.shape[1:] == (1, 8, 8) and d.train.images.dtype == torch.uint8
    assert (d.num_classes, d.in_chans) == (10, 1)
    assert d.train.images.max() == 255 and d.train.images.min() == 0
    again = load_small("digits", "", val_size=180, split_seed=0)
    assert torch.equal(again.val.images, d.val.images)  # the split is fixed by split_seed
    other = load_small("digits", "", val_size=180, split_seed=1)
    assert not torch.equal(other.val.labels, d.val.labels)


def test_holdout_is_a_partition():
    rest, held = holdout(50_000, 5000, seed=0)
    assert len(rest) == 45_000 and len(held) == 5000
    assert len(set(rest.tolist()) | set(held.tolist())) == 50_000
    with pytest.raises(ValueError, match="val_size must be in"):
        holdout(100, 100, 0)


def test_crop_of_zero_padded_batch_is_a_shifted_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 32, 32) + 1.0  # strictly positive: padding shows as zeros
    out = random_crop_flip(x, pad=4, crop=32, flip=False, generator=g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(64):  # every output is some 32x32 window of its own padded image
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # (C, 9, 9, 32, 32)
        match = (windows == out[i][:, None, None]).flatten(3).all(-1).all(0)
        assert match.any(), i
    zero_rows = (out == 0).all(1).all(-1).sum()  # pad rows appear as zeros, never else
    assert zero_rows > 0


def test_flip_mirrors_about_half():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1000, 1, 1, 1)
    out = random_crop_flip(x, pad=0, crop=4, flip=True, generator=g)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped | same).all()) and 400 < int(flipped.sum()) < 600


def test_per_pixel_mean_subtraction():
    images = torch.randint(0, 256, (100, 3, 8, 8), dtype=torch.uint8)
    mean = image_mean(images, per_pixel=True)
    assert mean.shape == (3, 8, 8)
    torch.testing.assert_close(mean, images.float().mean(0) / 255)
    assert normalise(images, mean).mean(0).abs().max() < 1e-5
    assert image_mean(images, per_pixel=False).shape == (3, 1, 1)


def _split(n=300):
    g = torch.Generator().manual_seed(1)
    return Split(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
                 torch.arange(n))


def test_batches_cover_an_epoch_once_and_resume_exactly():
    split = _split()
    mean = image_mean(split.images, True)
    b = TensorBatches(split, 32, mean, pad=1, crop=8, flip=True, seed=5)
    seen = torch.cat([b.next()[1] for _ in range(b.batches_per_epoch)])
    assert len(set(seen.tolist())) == 9 * 32  # one permutation, full batches only
    state = b.state_dict()
    ahead = [b.next() for _ in range(20)]  # crosses into the next epoch
    c = TensorBatches(split, 32, mean, pad=1, crop=8, flip=True, seed=5)
    c.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(ahead, [c.next() for _ in range(20)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_ranks_take_slices_of_the_same_global_batch():
    split = _split()
    mean = image_mean(split.images, True)
    whole = TensorBatches(split, 32, mean, 1, 8, True, seed=3)
    parts = [TensorBatches(split, 32, mean, 1, 8, True, seed=3, rank=r, world_size=2)
             for r in (0, 1)]
    for _ in range(12):
        x, y = whole.next()
        (x0, y0), (x1, y1) = parts[0].next(), parts[1].next()
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_reads_torchvision_cifar_format(tmp_path):
    """The standard cifar-10-batches-py pickles, as torchvision downloads them."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, 20)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    train, test_split, classes = read_cifar_folder("cifar10", folder)
    assert train.images.shape == (100, 3, 32, 32) and test_split.labels.tolist() == list(range(10))
    assert classes == names
    # channel-major rows: the first 1024 bytes are the red plane
    assert torch.equal(test_split.images[3, 0].flatten(), torch.from_numpy(test["data"][3, :1024]))
    data = load_small("cifar10", str(tmp_path), val_size=10, split_seed=0, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 10)


def test_missing_cifar_says_where_the_files_go(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*cifar-10-python.tar.gz"):
        load_small("cifar10", str(tmp_path / "nothing"), 5000, 0, download=False)
    assert not (tmp_path / "nothing").exists()


@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="../shared/data/cifar10-jpg not present")
def test_cifar10_jpg_imagefolder_as_tensor(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path))
    d = load_small("imagefolder", str(CIFAR10_JPG), val_size=5000, split_seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (45_000, 5000, 10_000)
    assert d.train.images.shape[1:] == (3, 32, 32) and d.num_classes == 10
    assert d.classes[0] == "airplane" and d.classes[-1] == "truck"
    assert torch.bincount(d.test.labels).tolist() == [1000] * 10
    assert list(tmp_path.glob("imagefolder-*.pt"))  # decoded once, cached
    again = load_small("imagefolder", str(CIFAR10_JPG), val_size=5000, split_seed=0)
    assert torch.equal(again.test.images, d.test.images)
