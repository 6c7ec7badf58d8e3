"""Training images/s: the harness vs the pipeline common reproductions use, in one run.

Reference: torchvision transforms on PIL images (RandomCrop(32, padding=4), flip, ToTensor,
Normalize) fed by a DataLoader, contiguous memory format. Harness: the whole training set as
one uint8 tensor on the device, augmented per batch (resnet_ablate.data.tensor), stepped by
the real Trainer's public step(). Both train the same model on the same CIFAR-sized images (the real
CIFAR-10 JPEGs of ../shared/data when present, else random pixels) at batch 128.

    python benchmarks/train_throughput.py [--models resnet20-A resnet56-A] [--steps 30]
        [--workers 2] [--compile] [--device cpu|cuda]

Prints images/s of each configuration, the ratio harness / reference (goal on CPU: >= 1.2),
and the share of step time spent outside forward/backward/step (goal: under 5%), measured
against the same model stepping on one fixed batch. The harness's default is the paper's BN
batch (he2015-cifar: ghost BN over 64 of the 128); a row with BN over the whole batch
(bn_batch=0, the reference's) prices it.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

import resnet_ablate as ra
from resnet_ablate.data import DataSettings, Split
from resnet_ablate.data.catalog import get_dataset
from resnet_ablate.data.tensor import Images, TensorData
from resnet_ablate.run.protocol import HE2015_CIFAR
from resnet_ablate.tracking import NullTracker
from resnet_ablate.train.distributed import Dist
from resnet_ablate.train.progress import Progress
from resnet_ablate.train.trainer import Sinks, TrainOptions, Trainer

CIFAR_JPG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg"


def cifar_sized(n: int) -> tuple[Images, str]:
    if CIFAR_JPG.is_dir():
        return get_dataset("imagefolder").load(str(CIFAR_JPG), False), "CIFAR-10 JPEG images"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    split = Split(images, torch.randint(0, 10, (n,), generator=g))
    return (Images("random", split, split, None, [str(i) for i in range(10)]),
            "random 32x32 images (CIFAR-10 JPEGs not found)")


def harness(model_name: str, data: Images, device: torch.device, steps: int,
            channels_last: bool, compile: bool, amp: bool, bn_batch: int | None = None
            ) -> tuple[float, float]:
    protocol = HE2015_CIFAR if bn_batch is None else replace(HE2015_CIFAR, bn_batch=bn_batch)
    torch.manual_seed(0)
    model = ra.create_model(model_name, num_classes=10).to(device)
    tdata = TensorData(data, DataSettings(protocol=protocol, device=device, seed=0))
    trainer = Trainer(model, protocol, tdata, Dist(),
                      TrainOptions(amp=amp, channels_last=channels_last, compile=compile,
                                   checkpoint_every=0, log_every=10**9, responses=False),
                      Sinks(NullTracker(), Progress("off", 0, "bench")))
    for _ in range(5 if not compile else 15):  # warm-up (and compilation)
        trainer.step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    sync(device)
    step_time = (time.perf_counter() - start) / steps
    # The same forward/backward/step on one fixed batch, with torch alone: what is left is
    # the harness's own work per step (drawing and augmenting the batch, bookkeeping).
    x, y = tdata.next()
    x = x.contiguous(memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)
    net, opt = trainer.net, trainer.optimizer
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast:
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    compute_time = (time.perf_counter() - start) / steps
    return HE2015_CIFAR.batch_size / step_time, max(0.0, 1 - compute_time / step_time)


def reference(model_name: str, data: Images, device: torch.device, steps: int,
              workers: int) -> float:
    from PIL import Image
    from torchvision import transforms as T

    images = data.train.images.permute(0, 2, 3, 1).numpy()
    labels = data.train.labels.tolist()
    mean = (images.reshape(-1, 3).mean(0) / 255).tolist()

    class PILDataset(torch.utils.data.Dataset):  # as torchvision's CIFAR10.__getitem__
        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                               T.ToTensor(), T.Normalize(mean, [1.0, 1.0, 1.0])])

        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(images[i])), labels[i]

    loader = torch.utils.data.DataLoader(PILDataset(), batch_size=128, shuffle=True,
                                         num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = ra.create_model(model_name, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    it = iter(loader)

    def step():
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return 128 * steps / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet20-A", "resnet56-A"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    data, source = cifar_sized(50_000)
    print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads); "
          f"data: {source}; batch 128; {args.steps} timed steps", flush=True)
    for name in args.models:
        ref = reference(name, data, device, args.steps, args.workers)
        rows = [("reference: torchvision transforms + DataLoader"
                 f"({args.workers} workers)", ref, None)]
        for label, cl, comp, amp in [("harness, contiguous", False, False, False),
                                     ("harness, channels_last (default)", True, False, False)]:
            speed, share = harness(name, data, device, args.steps, cl, comp, amp)
            rows.append((label, speed, share))
        rows.append(("harness, channels_last, BN over the whole batch (bn_batch=0)",
                     *harness(name, data, device, args.steps, True, False, False, bn_batch=0)))
        if args.compile or device.type == "cuda":
            rows.append(("harness, channels_last + compile",
                         *harness(name, data, device, args.steps, True, True, False)))
        if device.type == "cuda":
            rows.append(("harness, bf16 + channels_last + compile",
                         *harness(name, data, device, args.steps, True, True, True)))
        print(f"\n{name}")
        for label, speed, share in rows:
            extra = "" if share is None else f"   outside fwd/bwd/step: {100 * share:4.1f}%"
            print(f"  {label:<58} {speed:6.0f} img/s  x{speed / ref:4.2f}{extra}")
        default = rows[2][1]
        print(f"  ratio harness (default) / reference: {default / ref:.2f} "
              f"(goal >= 1.2: {'OK' if default / ref >= 1.2 else 'MISSED'})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
