"""A custom training loop for tf.distribute.MultiWorkerMirroredStrategy.

Keras 3's `model.fit` cannot run under MultiWorkerMirroredStrategy: its symbolic build
reduces a per-replica data batch eagerly and fails ("Attempt to convert a value
(PerReplica ...) to a Tensor", keras-team/keras#20585). This loop does what fit does for
us — `strategy.run` of a train step, the same compiled loss and optimizer (which sums the
gradients across replicas), and the same Keras callbacks (validation, checkpoints, time
budget, CSV/TensorBoard logs, progress bar) — so checkpoints and resume are identical.
"""

from __future__ import annotations

from .. import deps


def fit_distributed(
    model,
    strategy,
    dataset,
    *,
    epochs: int,
    initial_epoch: int,
    steps_per_epoch: int,
    callbacks: list,
    verbose: int = 1,
) -> None:
    """Train `model` (compiled inside `strategy.scope()`) on a global-batch tf.data dataset."""
    tf = deps.tensorflow()
    keras = deps.keras()
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = model.loss(labels, logits)
            # The optimizer sums gradients over replicas: scale for the global mean.
            scaled = loss / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(it):
        images, labels = next(it)
        losses = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce("MEAN", losses, axis=None)

    hooks = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    model.stop_training = False
    hooks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps_per_epoch):
            hooks.on_train_batch_begin(step)
            total += float(train_step(iterator))
            hooks.on_train_batch_end(step, {"loss": total / (step + 1)})
        logs = {"loss": total / steps_per_epoch}
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end(logs)
