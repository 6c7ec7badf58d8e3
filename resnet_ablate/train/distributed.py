"""Several processes under `torchrun`: DistributedDataParallel, rank 0 logs and saves."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor /= self.world_size
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on any (e.g. a signal reached one of them)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's value of obj on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BN running statistics follow each rank's own batches) on every
        rank, as DDP does at each training forward, so that all ranks evaluate one net."""
        if self.enabled:
            for buf in module.buffers():
                dist.broadcast(buf, src=0)

    def replicas_in_sync(self, module: torch.nn.Module) -> bool | None:
        """With several processes: whether every rank holds the same weights (DDP's
        invariant), checked on a float64 digest of all parameters and buffers."""
        if not self.enabled:
            return None
        digest = torch.stack([t.detach().double().sum() for t in module.state_dict().values()
                              if t.is_floating_point()]).sum().reshape(1)
        gathered = [torch.zeros_like(digest) for _ in range(self.world_size)]
        dist.all_gather(gathered, digest)
        return all(torch.equal(g, gathered[0]) for g in gathered)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def from_env(device_type: str) -> Dist:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on
    CUDA); a plain process gets a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Dist(rank=int(os.environ["RANK"]), world_size=world_size)
