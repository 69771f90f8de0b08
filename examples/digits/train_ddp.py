"""The digits MLP trained data-parallel with torch.distributed: DDP over gloo on CPU, or
over NCCL with ``--backend nccl``, each rank on GPU ``LOCAL_RANK``.

Started by runyard (``distribution: {type: pytorch}``), by ``torchrun`` or as one plain
process; it reads its place from torch's ``env://`` variables (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``). Each rank trains on its shard of the training set
(``DistributedSampler``); DDP averages the gradients, so every rank ends with the same
weights. Every rank logs its metrics (runyard records them with the rank); rank 0 logs the
parameters, prints, and saves ``outputs/model.pt``. Each rank writes a checksum of its final
weights to ``outputs/weights.rank<R>.sha256``, to show that they agree.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
from pathlib import Path

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import runyard


def build_model(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def load_data(seed: int) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_tr, x_val, y_tr, y_val


def weights_checksum(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend", choices=["gloo", "nccl"], default="gloo", help="nccl: GPU LOCAL_RANK"
    )
    args = parser.parse_args()

    if "RANK" in os.environ:  # started by runyard or torchrun
        dist.init_process_group(args.backend, init_method="env://")
    else:  # one process on its own
        dist.init_process_group(args.backend, store=dist.HashStore(), rank=0, world_size=1)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    if rank == 0:
        runyard.log_params({**vars(args), "world_size": world})

    x_tr, x_val, y_tr, y_val = (t.to(device) for t in load_data(args.seed))
    train = TensorDataset(x_tr, y_tr)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)
    ids = [device.index] if device.type == "cuda" else None
    model = DistributedDataParallel(build_model(args.hidden).to(device), device_ids=ids)
    # (DDP broadcasts rank 0's initial weights to every rank)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        model.train()
        sampler.set_epoch(epoch)
        total = torch.zeros(2, device=device)  # summed loss, samples (this rank's shard)
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            total += torch.tensor([loss.item() * len(yb), len(yb)], device=device)
        shard_loss = (total[0] / total[1]).item()
        dist.all_reduce(total)  # the whole training set's loss
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = loss_fn(val_logits, y_val).item()
            val_acc = (val_logits.argmax(1) == y_val).float().mean().item()
        train_loss = (total[0] / total[1]).item()
        runyard.log_metrics(
            {
                "train_loss": train_loss,
                "shard_loss": shard_loss,
                "val_loss": val_loss,
                "val_acc": val_acc,
            },
            step=epoch,
        )
        if rank == 0:
            print(
                f"epoch {epoch:3d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
                f"val_acc {val_acc:.4f}"
            )

    outputs = Path(os.environ.get("RUNYARD_OUTPUTS", "outputs"))
    outputs.mkdir(parents=True, exist_ok=True)
    checksum = weights_checksum(model.module)
    (outputs / f"weights.rank{rank}.sha256").write_text(checksum + "\n")
    print(f"rank {rank} of {world}: weights sha256 {checksum[:16]}")
    if rank == 0:
        torch.save(model.module.state_dict(), outputs / "model.pt")
        print(f"saved {outputs / 'model.pt'}")
    dist.barrier()
    # DDP holds the process group: free both while Python is fully alive, not at exit, when
    # gloo's threads releasing their last tensors can abort the process.
    del model, opt
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
