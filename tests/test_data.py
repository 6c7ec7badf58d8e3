"""Data sets, the hold-out, the on-device batch pipeline, CIFAR's pickles read without
running code, undecodable images, and the loader mode's per-sample randomness."""
import os
import pickle

import numpy as np
import pytest
import torch

from conftest import CIFAR10_JPG, image_folder, run_python
from resnet_ablate.data import DataSettings, hold_out
from resnet_ablate.data.base import NO_VAL, Split
from resnet_ablate.data.catalog import get_dataset, image_mode
from resnet_ablate.data.cifar import read_cifar_folder
from resnet_ablate.data.tensor import (TensorBatches, TensorData, image_mean, normalise,
                                       random_crop_flip)
from resnet_ablate.run.protocol import DEMO, HE2015_CIFAR

CPU = torch.device("cpu")


def _tensor_data(name="digits", data_dir="", protocol=DEMO, **kw):
    images = get_dataset(name).load(data_dir, False)
    return TensorData(images, DataSettings(protocol=protocol, device=CPU, seed=0, **kw))


def test_digits_is_real_and_embedded():
    d = _tensor_data()
    assert d.sizes == {"train": 1258, "val": 180, "test": 359}
    assert sum(d.sizes.values()) == 1797
    train = d.splits["train"].images
    assert train.shape[1:] == (1, 8, 8) and train.dtype == torch.uint8
    assert (d.num_classes, d.in_chans) == (10, 1)
    assert train.max() == 255 and train.min() == 0
    again = _tensor_data()
    assert torch.equal(again.splits["val"].images, d.splits["val"].images)  # fixed split
    import dataclasses

    other = _tensor_data(protocol=dataclasses.replace(DEMO, split_seed=1))
    assert not torch.equal(other.splits["val"].labels, d.splits["val"].labels)


def test_digits_are_sklearns_read_without_importing_it():
    from sklearn.datasets import load_digits

    from resnet_ablate.data.catalog import digits_arrays

    images, labels = digits_arrays()
    d = load_digits()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
    code = ("import sys; from resnet_ablate.data import get_dataset; "
            "get_dataset('digits').load('', False); print('sklearn' in sys.modules)")
    out = run_python(code, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_hold_out_is_a_partition_and_never_the_test_split():
    held = hold_out(50_000, 5000, 0, own_val=False)
    assert len(held.train) == 45_000 and len(held.val) == 5000
    assert len(set(held.train.tolist()) | set(held.val.tolist())) == 50_000
    assert "5000 training images held out" in held.source
    with pytest.raises(ValueError, match="val_size must be in"):
        hold_out(100, 100, 0, own_val=False)
    assert hold_out(100, 0, 0, own_val=True).source == "the data set's own val/ split"
    none = hold_out(100, 0, 0, own_val=False)
    assert none.val is None and none.source == NO_VAL
    import dataclasses

    d = _tensor_data(protocol=dataclasses.replace(DEMO, val_size=0))
    assert not d.has("val") and d.val_source == NO_VAL  # no split stands in for it


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
    assert (out == 0).all(1).all(-1).sum() > 0  # pad rows appear as zeros


def test_flip_mirrors_about_half():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1000, 1, 1, 1)
    out = random_crop_flip(x, pad=0, crop=4, flip=True, generator=g)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((flipped | same).all()) and 400 < int(flipped.sum()) < 600


def test_per_pixel_mean_is_the_training_images_only():
    images = torch.randint(0, 256, (100, 3, 8, 8), dtype=torch.uint8)
    mean = image_mean(images, per_pixel=True)
    assert mean.shape == (3, 8, 8)
    torch.testing.assert_close(mean, images.float().mean(0) / 255)
    assert normalise(images, mean).mean(0).abs().max() < 1e-5
    assert image_mean(images, per_pixel=False).shape == (3, 1, 1)
    d = _tensor_data()
    torch.testing.assert_close(d.mean, d.splits["train"].images.float().mean(0) / 255)


def _split(n=300):
    g = torch.Generator().manual_seed(1)
    return Split(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
                 torch.arange(n))


def test_batches_cover_an_epoch_once_and_resume_exactly():
    split = _split()
    mean = image_mean(split.images, True)
    b = TensorBatches(split, 32, mean, pad=1, crop=8, flip=True, seed=5)
    seen = torch.cat([b.next()[1] for _ in range(len(split) // 32)])
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


def _cifar_folder(tmp_path, n=20):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, n)], "batch_label": b"b"}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return folder, test, names


def test_reads_torchvision_cifar_format(tmp_path):
    """The standard cifar-10-batches-py pickles, as torchvision downloads them."""
    folder, test, names = _cifar_folder(tmp_path)
    train, test_split, classes = read_cifar_folder("cifar10", folder)
    assert train.images.shape == (100, 3, 32, 32) and test_split.labels.tolist() == list(range(10))
    assert classes == names
    # channel-major rows: the first 1024 bytes are the red plane
    assert torch.equal(test_split.images[3, 0].flatten(), torch.from_numpy(test["data"][3, :1024]))
    import dataclasses

    d = _tensor_data("cifar10", str(tmp_path), dataclasses.replace(HE2015_CIFAR, val_size=10,
                                                                  batch_size=32))
    assert d.sizes == {"train": 90, "val": 10, "test": 10}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("file", ["data_batch_3", "batches.meta"])
def test_a_crafted_cifar_pickle_is_refused_not_run(tmp_path, monkeypatch, file):
    folder, _, _ = _cifar_folder(tmp_path)
    (folder / file).write_bytes(pickle.dumps({"data": _Evil(), "labels": [1]}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"{file}: not a CIFAR data file, refused: it asks "
                                         "for posix.system"):
        read_cifar_folder("cifar10", folder)
    assert not (tmp_path / "PWNED").exists()


def test_cifar_with_wrong_shapes_is_named(tmp_path):
    folder, _, _ = _cifar_folder(tmp_path)
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((3, 7), np.uint8),
                                                        "labels": [0, 1, 2]}))
    with pytest.raises(ValueError, match="data_batch_2: data must be uint8 rows of 3072"):
        read_cifar_folder("cifar10", folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8),
                                                        "labels": [0, 99]}))
    with pytest.raises(ValueError, match=r"labels must be 2 integers in \[0, 9\]"):
        read_cifar_folder("cifar10", folder)


def test_missing_cifar_says_where_the_files_go(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*cifar-10-python.tar.gz"):
        get_dataset("cifar10").load(str(tmp_path / "nothing"), False)
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("bad, why", [(b"", "empty file"), (b"hello, I am text", "cannot "
                                                                               "identify")])
@pytest.mark.parametrize("mode", ["tensor", "loader"])
def test_an_image_that_does_not_decode_is_named(tmp_path, monkeypatch, bad, why, mode):
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", 80 if mode == "loader" else 8, bad=bad)
    import dataclasses

    from resnet_ablate.data.catalog import open_run_data
    from resnet_ablate.run.protocol import HE2015_IMAGENET

    protocol = dataclasses.replace(HE2015_IMAGENET, val_size=2, batch_size=4, crop=64,
                                   scale_range=(64, 72)) if mode == "loader" else \
        dataclasses.replace(DEMO, val_size=2, batch_size=4, crop=8)
    settings = DataSettings(protocol=protocol, device=CPU, seed=0, num_workers=0)
    with pytest.raises(ValueError, match=f"9.jpg: not a readable image.*{why}"):
        data = open_run_data("imagefolder", str(root), False, mode, settings)
        for _ in range(6):  # loader mode decodes as it goes
            data.next()


def test_image_mode_is_decided_once(tmp_path):
    small, large = image_folder(tmp_path / "s", 8), image_folder(tmp_path / "l", 80)
    assert image_mode("imagefolder", str(small), "auto") == "tensor"
    assert image_mode("imagefolder", str(large), "auto") == "loader"
    assert image_mode("digits", "", "auto") == "tensor"
    with pytest.raises(ValueError, match="data_mode=loader is for imagefolder"):
        image_mode("digits", "", "loader")


def test_loader_augmentation_follows_seed_epoch_and_index_not_workers(tmp_path):
    """The same draw gives the same augmented image with 0 or 2 workers, and a resumed
    loader continues with the same images."""
    import dataclasses

    from resnet_ablate.data.loader import LoaderData
    from resnet_ablate.run.protocol import HE2015_IMAGENET

    root = image_folder(tmp_path / "l", 80)
    p = dataclasses.replace(HE2015_IMAGENET, val_size=2, batch_size=4, crop=64,
                            scale_range=(64, 96))
    batches = []
    for workers in (0, 2):
        data = LoaderData(str(root), DataSettings(protocol=p, device=CPU, seed=7,
                                                  num_workers=workers))
        batches.append([data.next() for _ in range(5)])
    for (x0, y0), (x1, y1) in zip(*batches):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    resumed = LoaderData(str(root), DataSettings(protocol=p, device=CPU, seed=7, num_workers=0))
    resumed.load_state_dict({"consumed": 3})
    assert torch.equal(resumed.next()[0], batches[0][3][0])
    # the held-out images are not in the training set, and the mean is the training set's
    assert not set(data.items["val"]) & set(data.items["train"])


@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="../shared/data/cifar10-jpg not present")
def test_cifar10_jpg_imagefolder_as_tensor(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path))
    import dataclasses

    split = dataclasses.replace(HE2015_CIFAR, val_size=5000)  # the paper's 45k/5k
    d = _tensor_data("imagefolder", str(CIFAR10_JPG), split)
    assert d.sizes == {"train": 45_000, "val": 5000, "test": 10_000}
    assert d.fingerprint.startswith("imagefolder:10c:train=50000,test=10000:")
    assert d.splits["train"].images.shape[1:] == (3, 32, 32) and d.num_classes == 10
    assert torch.bincount(d.splits["test"].labels).tolist() == [1000] * 10
    assert list(tmp_path.glob("imagefolder-*.pt"))  # decoded once, cached
    again = _tensor_data("imagefolder", str(CIFAR10_JPG), split)
    assert torch.equal(again.splits["test"].images, d.splits["test"].images)
