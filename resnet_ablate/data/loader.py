"""Large-image ImageFolder trees (ImageNet) through DataLoader workers, Section 3.4.

Training view: shorter side resized to a random value in scale_range, random crop, flip,
AlexNet's PCA colour augmentation, mean subtraction. Evaluation during training: the centre
crop (Fig. 4's "center-crop error"); final test: the protocol's test_view (10-crop).

Departure: the mean subtracted is per channel, estimated on up to 1,000 training images,
not per pixel (crops of varying scale have no fixed pixel grid).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ..protocol import Protocol
from .sets import holdout, imagefolder_splits

# AlexNet's ImageNet RGB eigenvalues/eigenvectors, as used by fb.resnet.torch (in [0, 1]).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])
PCA_STD = 0.1  # AlexNet: alpha ~ N(0, 0.1)
MEAN_SAMPLE = 1000


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


class InfiniteBatches(Sampler[list[int]]):
    """Global batches of one permutation per epoch (seeded by seed and epoch), endlessly,
    from a given position; each rank takes its slice of every global batch."""

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
                yield batch[self.rank * per:(self.rank + 1) * per].tolist()
            b = (epoch + 1) * self.per_epoch


def _mean(folder_ds: Dataset, seed: int) -> Tensor:
    from torchvision.transforms import functional as TF

    n = len(folder_ds)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MEAN_SAMPLE]
    total, count = torch.zeros(3, dtype=torch.float64), 0
    for i in idx.tolist():
        img = TF.to_tensor(folder_ds[i][0])
        total += img.to(torch.float64).sum((1, 2))
        count += img.shape[1] * img.shape[2]
    return (total / count).float()


class LoaderData:
    mode = "loader"

    def __init__(self, cfg, protocol: Protocol, device: torch.device, dist) -> None:
        from torchvision import datasets

        self.cfg, self.protocol, self.device, self.dist = cfg, protocol, device, dist
        found = imagefolder_splits(Path(cfg.data_dir))
        train = datasets.ImageFolder(found["train"])
        self.classes = train.classes
        self.mean = _mean(train, protocol.split_seed)
        test_dir = found.get("test", found.get("val"))
        folders = {"train": train, "test": datasets.ImageFolder(test_dir)}
        if protocol.val_size > 0:
            rest, held = holdout(len(train), protocol.val_size, protocol.split_seed)
            folders["val"] = Subset(datasets.ImageFolder(found["train"]), held.tolist())
            folders["train"] = Subset(train, rest.tolist())
            self.val_source = (f"{protocol.val_size} training images held out "
                               f"(split_seed={protocol.split_seed})")
        elif "val" in found and "test" in found:
            folders["val"] = datasets.ImageFolder(found["val"])
            self.val_source = "the data set's val/ split"
        else:
            folders["val"] = folders["test"]
            self.val_source = f"{test_dir.name}/ (the held-out split serves as validation)"
        self.folders = folders
        if protocol.batch_size > len(folders["train"]):
            raise ValueError(f"batch_size {protocol.batch_size} exceeds the "
                             f"{len(folders['train'])} training images")
        self.consumed = 0  # global batches taken by the training loop
        self._iterator = None
        self._set_transforms()

    def _set_transforms(self) -> None:
        from torchvision.transforms import v2 as T

        p = self.protocol
        lo, hi = p.scale_range
        steps = [T.RandomShortestSize(min_size=list(range(lo, hi + 1))),
                 T.RandomCrop(p.crop)]
        if p.flip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.PILToTensor(), T.ToDtype(torch.float32, scale=True)]
        if p.color_pca:
            steps.append(Lighting())
        steps.append(T.Normalize(self.mean.tolist(), [1.0, 1.0, 1.0]))
        self.train_transform = T.Compose(steps)
        resize = round(p.crop * 256 / 224)  # 256 for 224 crops, as AlexNet and the paper
        tail = [T.PILToTensor(), T.ToDtype(torch.float32, scale=True),
                T.Normalize(self.mean.tolist(), [1.0, 1.0, 1.0])]
        self.centre_transform = T.Compose([T.Resize(resize), T.CenterCrop(p.crop), *tail])
        self.tencrop_transform = T.Compose([T.Resize(resize), T.TenCrop(p.crop),
                                            StackCrops(T.Compose(tail))])

    # -- the interface the training loop uses (see train/data.py) ----------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    in_chans = 3  # ImageFolder's loader yields RGB

    @property
    def final_test_view(self) -> str:
        return "10crop" if self.protocol.test_view == "10crop" else "center"

    @property
    def input_size(self) -> int:
        return self.protocol.crop

    @property
    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.folders.items()}

    def has(self, split: str) -> bool:
        return split in self.folders

    def _dataset(self, split: str, transform) -> Dataset:
        return _Transformed(self.folders[split], transform)

    def _train_iterator(self):
        sampler = InfiniteBatches(len(self.folders["train"]), self.protocol.batch_size,
                                  self.cfg.seed, self.consumed, self.dist.rank,
                                  self.dist.world_size)
        loader = DataLoader(self._dataset("train", self.train_transform),
                            batch_sampler=sampler, num_workers=self.cfg.num_workers,
                            pin_memory=self.device.type == "cuda",
                            persistent_workers=self.cfg.num_workers > 0,
                            generator=torch.Generator().manual_seed(self.cfg.seed + self.consumed))
        return iter(loader)

    def next(self) -> tuple[Tensor, Tensor]:
        if self._iterator is None:
            self._iterator = self._train_iterator()
        x, y = next(self._iterator)
        self.consumed += 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def eval_batches(self, split: str, sharded: bool = True, view: str = "center"):
        transform = self.tencrop_transform if view == "10crop" else self.centre_transform
        ds = self._dataset(split, transform)
        rank, world = (self.dist.rank, self.dist.world_size) if sharded else (0, 1)
        indices = list(range(rank, len(ds), world))
        batch = max(1, self.cfg.eval_batch_size // (10 if view == "10crop" else 1))
        loader = DataLoader(Subset(ds, indices), batch_size=batch,
                            num_workers=self.cfg.num_workers)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = int(state["consumed"])
        self._iterator = None  # restart the workers at the saved position


class _Transformed(Dataset):
    def __init__(self, base: Dataset, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, label = self.base[i]
        return self.transform(img), label
