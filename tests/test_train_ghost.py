"""Batch normalisation over the paper's per-GPU batch (ghost BN): one process equals two
real DDP replicas on the same halves (outputs, gradients, running statistics); the protocols'
BN batches; where ghost groups apply under DDP; the record; the paper's number needs it."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import resnet_ablate as ra
from conftest import assert_usage_error
from resnet_ablate.errors import InputError
from resnet_ablate.run.config import parse_train_words
from resnet_ablate.run.protocol import DEMO, HE2015_CIFAR, HE2015_IMAGENET, HE2016_CIFAR
from resnet_ablate.train.ghost import GhostBatch

# Two DDP replicas (gloo; broadcast_buffers=True, DDP's default and the trainer's), each on
# its half of every batch: what He et al. (2015)'s "128 on two GPUs" computed.
DDP_TWIN = '''
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

import resnet_ablate as ra

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = ra.create_model("resnet20-A", layers=[1, 1, 1], in_chans=1, num_classes=10)
ddp = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
out = {"logits": [], "grads": [], "buffers": []}
for x, y in torch.load(sys.argv[1]):
    half = len(x) // 2
    logits = ddp(x[rank * half:(rank + 1) * half])
    loss = F.cross_entropy(logits, y[rank * half:(rank + 1) * half])
    opt.zero_grad()
    loss.backward()
    opt.step()
    out["logits"].append(logits.detach())
    out["grads"].append([p.grad.clone() for p in model.parameters()])
    out["buffers"].append([b.clone() for b in model.buffers()])
torch.save(out, f"{sys.argv[2]}/rank{rank}.pt")
dist.destroy_process_group()
'''


def test_ghost_bn_equal_to_two_replicas_bn_on_the_same_halves(tmp_path):
    """Three SGD steps of a 32-image batch: GhostBatch(groups of 16) in this process, and two
    DDP processes of 16 each. Forward outputs and the loss's gradients equal (bit for bit
    here); the running statistics follow rank 0's half, as DDP's broadcast of rank 0's
    buffers at each forward makes them (and not rank 1's: the check can tell them apart)."""
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g))
               for _ in range(3)]
    torch.save(batches, tmp_path / "data.pt")
    (tmp_path / "ddp_twin.py").write_text(DDP_TWIN)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
         "ddp_twin.py", "data.pt", str(tmp_path)], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))

    torch.manual_seed(0)
    model = ra.create_model("resnet20-A", layers=[1, 1, 1], in_chans=1, num_classes=10)
    ghost = GhostBatch(model, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for step, (x, y) in enumerate(batches):
        logits = ghost(x)
        loss = F.cross_entropy(logits, y)  # the mean over 32 = the mean of the two means
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.testing.assert_close(logits.detach(), torch.cat([rank0["logits"][step],
                                                              rank1["logits"][step]]))
        for p, ddp_grad in zip(model.parameters(), rank0["grads"][step]):
            torch.testing.assert_close(p.grad, ddp_grad)
        for mine, r0, r1 in zip(model.buffers(), rank0["buffers"][step],
                                rank1["buffers"][step]):
            torch.testing.assert_close(mine, r0)
        assert any(not torch.equal(b0, b1) for b0, b1 in zip(rank0["buffers"][step],
                                                           rank1["buffers"][step]))


def test_ghost_batch_passes_eval_and_small_batches_through():
    torch.manual_seed(0)
    model = ra.create_model("resnet20-A", layers=[1, 1, 1], in_chans=1, num_classes=10)
    x = torch.randn(8, 1, 8, 8)
    ghost = GhostBatch(model, 8)
    torch.manual_seed(0)
    twin = ra.create_model("resnet20-A", layers=[1, 1, 1], in_chans=1, num_classes=10)
    assert torch.equal(ghost(x), twin(x))  # a batch no larger than a group: one group
    model.eval(), twin.eval()
    assert torch.equal(GhostBatch(model, 2)(x), twin(x))  # eval: the running statistics


def test_the_protocols_bn_batch_is_the_papers_per_gpu_batch():
    # He et al. (2015): CIFAR "128 on two GPUs" (64 each); ImageNet 256 on 8 GPUs (32)
    assert (HE2015_CIFAR.bn_batch, HE2016_CIFAR.bn_batch, HE2015_IMAGENET.bn_batch) == (
        64, 64, 32)
    assert HE2015_CIFAR.bn_images() == 64 and HE2015_IMAGENET.bn_images() == 32
    assert DEMO.bn_batch == 0 and DEMO.bn_images() == 128  # the demo: its whole batch
    # Under DDP a replica's batch is batch_size / world_size: ghost groups only within it,
    # where it is larger than the BN batch
    assert [HE2015_CIFAR.bn_images(w) for w in (1, 2, 4)] == [64, 64, 32]
    assert parse_train_words(["dataset=cifar10", "batch_size=32"]).protocol.bn_images() == 32
    with pytest.raises(InputError, match="batch_size 100 does not split into BN batches of "
                                         "bn_batch=64"):
        parse_train_words(["dataset=cifar10", "batch_size=100"])
    assert parse_train_words(["dataset=cifar10", "batch_size=100", "bn_batch=0"]
                             ).protocol.bn_images() == 100
    # 192 over 2 processes is 96 each: not groups of 64 (what prepare() asks before a run)
    big = parse_train_words(["dataset=cifar10", "batch_size=192"]).protocol
    assert big.bn_images(1) == 64 and big.bn_images(3) == 64
    with pytest.raises(InputError, match=r"a process's batch of 96 \(192 over 2 processes\) "
                                         "does not split into BN batches of bn_batch=64"):
        big.bn_images(2)


def test_a_run_trains_under_its_bn_batch_and_records_it(tmp_path, cli_inproc, monkeypatch):
    """bn_batch=16 at batch 32: the trainer forwards groups of 16 (its net is GhostBatch),
    and the record has the field (a factor: the condition) and the BN batch used; the demo
    protocol keeps whole-batch BN, so its numbers stay what they were."""
    from resnet_ablate.train import trainer as trainer_module

    nets = []
    original = trainer_module.Trainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        nets.append(self.net)

    monkeypatch.setattr(trainer_module.Trainer, "__init__", spy)
    common = ["model=plain20", "model.layers=[1,1,1]", "iterations=4", "eval_every=4",
              "batch_size=32", "progress=off", "wandb=disabled", "responses=false",
              f"runs_dir={tmp_path}"]
    for run_id, extra in (("ghost", ["bn_batch=16"]), ("whole", [])):
        proc = cli_inproc("train", *common, *extra, f"run_id={run_id}")
        assert proc.returncode == 0, proc.stderr
    ghost, whole = (json.loads((tmp_path / r / "summary.json").read_text())
                    for r in ("ghost", "whole"))
    assert isinstance(nets[0], GhostBatch) and nets[0].group == 16
    assert not isinstance(nets[1], GhostBatch)
    assert (ghost["protocol_fields"]["bn_batch"], ghost["run"]["bn_batch"]) == (16, 16)
    assert (whole["protocol_fields"]["bn_batch"], whole["run"]["bn_batch"]) == (0, 32)
    assert ghost["condition"] != whole["condition"]


def test_a_process_batch_that_does_not_split_into_bn_batches_is_refused(tmp_path, cli_inproc):
    proc = cli_inproc("train", "model=plain20", "batch_size=48", "bn_batch=32", "iterations=2",
                      "wandb=disabled", f"runs_dir={tmp_path}", "run_id=x")
    assert_usage_error(proc, "batch_size 48 does not split into BN batches of bn_batch=32")
    assert not (tmp_path / "x").exists()


def test_ghost_bn_under_torch_compile_is_the_eager_ghost_bn():
    """compile=true traces the groups and the restore of the first group's buffers: the
    same outputs and running statistics as eager (aot_eager: no C++ toolchain needed)."""
    import warnings

    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g))
               for _ in range(3)]
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = ra.create_model("resnet20-A", layers=[1, 1, 1], in_chans=1, num_classes=10)
        net = GhostBatch(model, 16)
        if compiled:
            net = torch.compile(net, backend="aot_eager")
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        outputs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for x, y in batches:
                logits = net(x)
                opt.zero_grad()
                F.cross_entropy(logits, y).backward()
                opt.step()
                outputs.append(logits.detach())
        results.append((outputs, [b.clone() for b in model.buffers()]))
    (eager, eager_buffers), (comp, comp_buffers) = results
    for a, b in zip(eager + eager_buffers, comp + comp_buffers):
        torch.testing.assert_close(a, b)
    tracked = [b for n, b in model.named_buffers() if n.endswith("num_batches_tracked")]
    assert all(int(b) == 3 for b in tracked)  # one update a step: the first group's
