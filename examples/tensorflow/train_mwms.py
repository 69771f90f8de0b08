"""The digits MLP trained with TensorFlow's MultiWorkerMirroredStrategy on CPU workers.

Each worker finds the whole cluster and its own place in ``TF_CONFIG`` (runyard writes it
for every worker: ``distribution: {type: tensorflow, worker_count: N}``). The training loop
is a custom one (``strategy.run`` on each batch), because Keras 3's ``model.fit`` fails under
this strategy in TensorFlow 2.21. Gradients are all-reduced between the workers, so they end
with the same weights; each writes a checksum of its weights to
``outputs/weights.rank<R>.sha256``, worker 0 (the chief) saves ``outputs/model.weights.h5``.
Every worker logs its metrics (runyard records them with its rank).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import runyard


def load_data(seed: int) -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int64")
    return tuple(train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y))


def weights_checksum(model: tf.keras.Model) -> str:
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    rank = int(task.get("index", 0))
    workers = strategy.num_replicas_in_sync
    global_batch = args.batch_size * workers
    if rank == 0:
        runyard.log_params({**vars(args), "workers": workers})

    x_tr, x_val, y_tr, y_val = load_data(args.seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices((x_tr, y_tr))
        .shuffle(len(x_tr), seed=args.seed, reshuffle_each_iteration=True)
        .batch(global_batch)
        .with_options(options)
    )
    batches = strategy.experimental_distribute_dataset(train)

    tf.keras.utils.set_random_seed(args.seed)
    with strategy.scope():
        model = tf.keras.Sequential(
            [
                tf.keras.Input((64,)),
                tf.keras.layers.Dense(args.hidden, activation="relu"),
                tf.keras.layers.Dense(10),
            ]
        )
        optimizer = tf.keras.optimizers.SGD(args.lr, momentum=0.9)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                per_example = loss_fn(y, model(x, training=True))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    for epoch in range(args.epochs):
        total, steps = 0.0, 0
        for x, y in batches:
            total += float(train_step(x, y))
            steps += 1
        logits = model(x_val, training=False)
        val_loss = float(tf.reduce_mean(loss_fn(y_val, logits)))
        val_acc = float(np.mean(np.argmax(logits, axis=1) == y_val))
        train_loss = total / steps
        runyard.log_metrics(
            {"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}, step=epoch
        )
        if rank == 0:
            print(
                f"epoch {epoch:3d}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
                f"val_acc {val_acc:.4f}"
            )

    outputs = Path(os.environ.get("RUNYARD_OUTPUTS", "outputs"))
    outputs.mkdir(parents=True, exist_ok=True)
    checksum = weights_checksum(model)
    (outputs / f"weights.rank{rank}.sha256").write_text(checksum + "\n")
    print(f"worker {rank} of {workers}: weights sha256 {checksum[:16]}")
    if rank == 0:
        model.save_weights(outputs / "model.weights.h5")
        print(f"saved {outputs / 'model.weights.h5'}")


if __name__ == "__main__":
    main()
