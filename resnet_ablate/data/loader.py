"""Loader mode: large-image ImageFolder trees (ImageNet) through DataLoader workers, after
Section 3.4 of He et al. (2015).

Training view: shorter side resized to a random value in scale_range, random crop, flip,
AlexNet's PCA colour augmentation, mean subtraction. Evaluation during training: the centre
crop (Fig. 4's "center-crop error"); final test: the protocol's test_view (10-crop).

Every random choice of a training image is drawn from a generator seeded by (seed, epoch,
index), never from a worker's RNG state, so the images a run sees do not depend on how
many workers there are, and a run resumed after SIGKILL continues bit for bit.

Departure (named in the protocol, normalize=per_channel_mean): the mean subtracted is per
channel, estimated on up to 1,000 training images; crops of random scale have no fixed
pixel grid for a per-pixel mean.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from . import folders
from .base import DataSettings, hold_out
from ..errors import InputError

# AlexNet's ImageNet RGB eigenvalues/eigenvectors, as used by fb.resnet.torch (in [0, 1]).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])
PCA_STD = 0.1  # AlexNet: alpha ~ N(0, 0.1)
MEAN_SAMPLE = 1000


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """One seed per (run seed, epoch, image): the augmentation of that draw."""
    return ((seed * 1_000_003 + epoch) * 2_147_483_647 + index) % (2 ** 63)


def leave_stop_signals(_worker_id: int) -> None:
    """A worker ignores SIGTERM/SIGINT: they are the main process's, which defers them to the
    end of an iteration, saves, and stops its workers itself. A scheduler or Ctrl-C signals
    the whole process group, and a worker killed by it failed the run, unsaved."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)

class Lighting:
    """AlexNet PCA colour augmentation on a (3, H, W) tensor in [0, 1]."""

    def __call__(self, img: Tensor) -> Tensor:
        if img.shape[0] != 3:
            return img
        alpha = torch.randn(3) * PCA_STD
        rgb = (PCA_EIGVEC * alpha * PCA_EIGVAL).sum(1)
        return img + rgb[:, None, None]


class StackCrops:
    """TenCrop's tuple of images -> one (10, C, H, W) tensor (a class: workers pickle it)."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, crops) -> Tensor:
        return torch.stack([self.transform(c) for c in crops])


class Files(Dataset):
    """(file, label) pairs decoded on access. Training items are draw ids (epoch * n +
    index): the transform's randomness is seeded from (seed, epoch, index)."""

    def __init__(self, items: list[tuple[Path, int]], transform, seed: int | None = None
                 ) -> None:
        self.items, self.transform, self.seed = items, transform, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int):
        epoch, index = divmod(key, len(self.items))
        path, label = self.items[index]
        img = folders.open_image(path)
        if self.seed is None:
            return self.transform(img), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.transform(img), label


class InfiniteBatches(Sampler[list[int]]):
    """Global batches of one permutation per epoch (seeded by seed and epoch), endlessly,
    from a given batch on, as draw ids; each rank takes its slice of every global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start_batch: int, rank: int,
                 world_size: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self.per_epoch = n // batch_size

    def permutation(self, epoch: int) -> Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(
            self.seed * 100_003 + epoch))

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start_batch
        per = self.batch_size // self.world_size
        while True:
            epoch, k = divmod(b, self.per_epoch)
            perm = self.permutation(epoch)
            for j in range(k, self.per_epoch):
                batch = perm[j * self.batch_size:(j + 1) * self.batch_size]
                mine = batch[self.rank * per:(self.rank + 1) * per]
                yield (mine + epoch * self.n).tolist()
            b = (epoch + 1) * self.per_epoch


def channel_mean(items: list[tuple[Path, int]], seed: int) -> Tensor:
    from torchvision.transforms.v2 import functional as TF

    idx = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:MEAN_SAMPLE]
    total, count = torch.zeros(3, dtype=torch.float64), 0
    for i in idx.tolist():
        img = TF.to_dtype(TF.pil_to_tensor(folders.open_image(items[i][0])), torch.float32,
                          scale=True)
        total += img.to(torch.float64).sum((1, 2))
        count += img.shape[1] * img.shape[2]
    return (total / count).float()


class LoaderData:
    """RunData of a large-image ImageFolder tree."""

    mode = "loader"
    in_chans = 3  # decoded as RGB

    def __init__(self, data_dir: str, settings: DataSettings) -> None:
        p = settings.protocol
        if p.normalize != "per_channel_mean":
            raise InputError("data_mode=loader subtracts a per-channel mean (random-scale crops "
                             "have no pixel grid for a per-pixel one); set "
                             "normalize=per_channel_mean")
        self.settings = settings
        root = Path(data_dir)
        found = folders.splits(root)
        self.classes = folders.classes_of(found["train"])
        listed = folders.listing(found, self.classes)
        self.fingerprint = folders.fingerprint(root, listed, self.classes)
        train = listed["train"]
        items = {"train": train, "test": listed["test"]}
        own_val = "val" in listed
        held = hold_out(len(train), p.val_size, p.split_seed, own_val)
        if held.val is not None:
            items["val"] = [train[i] for i in held.val.tolist()]
            items["train"] = [train[i] for i in held.train.tolist()]
        elif own_val:
            items["val"] = listed["val"]
        self.val_source = held.source
        self.items = items
        if p.batch_size > len(items["train"]):
            raise InputError(f"batch_size {p.batch_size} exceeds the {len(items['train'])} "
                             "training images")
        self.num_classes = len(self.classes)
        self.input_size = p.crop
        # Estimated on training images only: held-out and test images never leak in.
        self.mean = channel_mean(items["train"], p.split_seed)
        self.consumed = 0  # global batches taken by the training loop
        self._iterator = None
        self._set_transforms()

    def _set_transforms(self) -> None:
        from torchvision.transforms import v2 as T

        p = self.settings.protocol
        lo, hi = p.scale_range
        tail = [T.PILToTensor(), T.ToDtype(torch.float32, scale=True)]
        norm = T.Normalize(self.mean.tolist(), [1.0, 1.0, 1.0])  # the mean only, no std
        steps = [T.RandomShortestSize(min_size=list(range(lo, hi + 1))), T.RandomCrop(p.crop)]
        if p.flip:
            steps.append(T.RandomHorizontalFlip())
        steps += tail + ([Lighting()] if p.color_pca else []) + [norm]
        self.train_transform = T.Compose(steps)
        resize = round(p.crop * 256 / 224)  # 256 for 224 crops, as AlexNet and the paper
        self.centre_transform = T.Compose([T.Resize(resize), T.CenterCrop(p.crop), *tail, norm])
        self.tencrop_transform = T.Compose([T.Resize(resize), T.TenCrop(p.crop),
                                            StackCrops(T.Compose([*tail, norm]))])

    @property
    def final_test_view(self) -> str:
        return "10crop" if self.settings.protocol.test_view == "10crop" else "center"

    @property
    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.items.items()}

    def has(self, split: str) -> bool:
        return split in self.items

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        workers = self.settings.num_workers
        return DataLoader(dataset, num_workers=workers, worker_init_fn=leave_stop_signals,
                          pin_memory=self.settings.device.type == "cuda", **kwargs)

    def _train_iterator(self):
        s = self.settings
        sampler = InfiniteBatches(len(self.items["train"]), s.protocol.batch_size, s.seed,
                                  self.consumed, s.rank, s.world_size)
        data = Files(self.items["train"], self.train_transform, seed=s.seed)
        return iter(self._loader(data, batch_sampler=sampler,
                                 persistent_workers=s.num_workers > 0))

    def next(self) -> tuple[Tensor, Tensor]:
        if self._iterator is None:
            self._iterator = self._train_iterator()
        x, y = next(self._iterator)
        self.consumed += 1
        device = self.settings.device
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def eval_batches(self, split: str, sharded: bool = True, view: str = "center",
                     indices: Tensor | None = None):
        s = self.settings
        tencrop = view == "10crop"
        rank, world = (s.rank, s.world_size) if sharded else (0, 1)
        items = self.items[split]
        if indices is not None:  # those images only, in this order
            items = [items[i] for i in indices.tolist()]
        items = items[rank::world]
        batch = max(1, s.eval_batch_size // (10 if tencrop else 1))
        data = Files(items, self.tencrop_transform if tencrop else self.centre_transform)
        for x, y in self._loader(data, batch_size=batch):
            yield x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self._iterator = None  # restart the workers at the saved position
