"""Train a small PyTorch classifier on scikit-learn's bundled digits data.

Runs the same with or without runyard: inside a run it logs to the run, outside it logs to
an offline folder. Saves the trained model to outputs/model.pt and, when onnxruntime and
onnxscript are installed, exports it to outputs/model.onnx checked against onnxruntime
(``--register NAME`` then registers that file as a model when the run succeeds).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import runyard


def build_model(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def load_data(seed: int) -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_tr, x_val, y_tr, y_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--register", metavar="NAME", help="Register the ONNX model as NAME.")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    runyard.log_params({k: v for k, v in vars(args).items() if v is not None})

    x_tr, x_val, y_tr, y_val = load_data(args.seed)
    model = build_model(args.hidden)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_tr))
        total = 0.0
        for i in range(0, len(x_tr), args.batch_size):
            idx = perm[i : i + args.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = loss_fn(val_logits, y_val).item()
            val_acc = (val_logits.argmax(1) == y_val).float().mean().item()
        train_loss = total / len(x_tr)
        runyard.log_metrics(
            {"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}, step=epoch
        )
        print(
            f"epoch {epoch:3d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_acc {val_acc:.4f}"
        )
        if runyard.should_stop():  # a sweep's early termination asked this trial to stop
            print(f"stopping early after epoch {epoch}")
            break

    outputs = Path(os.environ.get("RUNYARD_OUTPUTS", "outputs"))
    outputs.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), outputs / "model.pt")
    print(f"saved {outputs / 'model.pt'}")
    if all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript")):
        from runyard.export import export_onnx

        print(export_onnx(model, x_val[:1], outputs / "model.onnx", register=args.register))


if __name__ == "__main__":
    main()
