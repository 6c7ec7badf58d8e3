"""The images a probe reads: a seeded, class-stratified sample of a split (`num_images`),
and the class counts of whatever the probe read, with a warning when they are uneven.

Why: a split's first batches are no sample of it. An ImageFolder lists its images class by
class, so the first 2,000 of CIFAR-10's test split are airplanes and automobiles only (a
lesion study on them reported an intact error of 29.60% where the whole split gives
40.42%), and a batch of one class is no batch for BN's batch statistics either.

The sample: proportional allocation (each class gets its share of the split, largest
remainders first, ties broken by the seeded generator), images drawn without replacement
within each class, the whole sample in a seeded random order (so its first batches are
mixed too). Its seed is SAMPLE_SEED, the same for every run and probe seed: every net of a
data set is probed on the very same images, as the first-n-batches rule gave; the indices
are recorded.

Uneven: a class's count is off its share of the split by more than half of that share
plus one image (a stratified sample is within one image of it; the first 2,000 images of a
class-sorted CIFAR-10 miss 8 of its 10 classes).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch import Tensor

from ..errors import InputError

SAMPLE_SEED = 0
MAX_IMAGES = 200_000  # the indices are recorded in the record's JSON
RULE = "class-stratified (proportional allocation), seeded, in random order"


def split_labels(data: Any, split: str) -> Tensor | None:
    """The labels of a run's split, in its order (None for a data kind that keeps none)."""
    splits = getattr(data, "splits", None)
    if isinstance(splits, dict) and split in splits:
        return splits[split].labels.cpu()
    items = getattr(data, "items", None)
    if isinstance(items, dict) and split in items:
        return torch.tensor([label for _, label in items[split]], dtype=torch.int64)
    return None


def stratified(labels: Tensor | None, num_images: int, num_classes: int,
               seed: int = SAMPLE_SEED) -> Tensor:
    """`num_images` indices into `labels`: each class its proportional share (largest
    remainders first), drawn without replacement, the whole in a seeded random order."""
    if labels is None:
        raise InputError("num_images: this kind of data keeps no labels to stratify by")
    n = len(labels)
    if not 1 <= num_images <= n:
        raise InputError(f"num_images must be 1..{n} (the split's images); got {num_images}")
    g = torch.Generator().manual_seed(seed)
    counts = torch.bincount(labels, minlength=num_classes).double()
    exact = counts * num_images / n
    quota = exact.floor().long()
    left = num_images - int(quota.sum())
    if left:  # largest remainders first; the generator breaks ties
        order = sorted(range(num_classes), key=lambda c: (-float(exact[c] - quota[c]),
                                                          float(torch.rand(1, generator=g))))
        for c in order[:left]:
            quota[c] += 1
    picked = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=g)[:int(quota[c])]])
    chosen = torch.cat(picked)
    return chosen[torch.randperm(len(chosen), generator=g)]


def subset_batches(data: Any, split: str, indices: Tensor, batch_size: int
                   ) -> Iterator[tuple[Tensor, Tensor]]:
    """The images at `indices` of a run's split, in that order, in batches, prepared as its
    eval_batches prepares them (normalised by the training mean, centre view)."""
    splits = getattr(data, "splits", None)
    if isinstance(splits, dict):
        from ..data.tensor import centre_crop, normalise

        part = splits[split]
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size].to(part.labels.device)
            images = normalise(part.images[idx], data.mean)
            yield centre_crop(images, data.input_size), part.labels[idx]
        return
    from torch.utils.data import DataLoader

    from ..data.loader import Files, leave_stop_signals

    items = [data.items[split][i] for i in indices.tolist()]
    device = data.settings.device
    loader = DataLoader(Files(items, data.centre_transform), batch_size=batch_size,
                        num_workers=data.settings.num_workers,
                        worker_init_fn=leave_stop_signals, pin_memory=device.type == "cuda")
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class Counted:
    """The batches a probe reads, passed through, with the class counts of those it took."""

    def __init__(self, batches: Iterable[tuple[Tensor, Tensor]], num_classes: int) -> None:
        self.batches = batches
        self.num_classes = num_classes
        self.counts: Tensor | None = None

    def __iter__(self) -> Iterator[Any]:
        for item in self.batches:
            y = item[1] if isinstance(item, (tuple, list)) and len(item) >= 2 else None
            if isinstance(y, Tensor) and y.dim() == 1 and not y.is_floating_point():
                c = torch.bincount(y.long().clamp(0, self.num_classes - 1),
                                   minlength=self.num_classes)
                self.counts = c if self.counts is None else self.counts + c
            yield item

    def class_counts(self) -> list[int]:
        return [0] * self.num_classes if self.counts is None else self.counts.cpu().tolist()


def uneven(counts: list[int], split: Tensor | None, where: str) -> str | None:
    """A one-line warning when `counts` (the images read, per class) are off the split's
    class shares by more than half a share plus one image; None when they are not."""
    n = sum(counts)
    if not n:
        return None
    k = len(counts)
    shares = (torch.bincount(split, minlength=k)[:k].double() / len(split)).tolist() \
        if split is not None and len(split) else [1 / k] * k
    off = [c for c in range(k) if abs(counts[c] - n * shares[c]) > 0.5 * n * shares[c] + 1]
    if not off:
        return None
    missing = sum(1 for c in range(k) if counts[c] == 0 and shares[c] > 0)
    return (f"{where} read {n} images with uneven class counts ({_counts(counts)}"
            + (f"; {missing} of {k} classes missing" if missing else "")
            + "), no fair sample of its split: draw one with num_images=N")


def _counts(counts: list[int]) -> str:
    return " ".join(str(c) for c in counts) if len(counts) <= 20 else \
        f"min {min(counts)}, max {max(counts)}"
