"""One process of a distributed test run (started by tests/test_distribute.py).

It runs `catdog.train` with `--distribute` as asked, optionally stops the run
at the start of an epoch (to test resuming), and writes the final weights of
its model to `--dump` so the test can compare processes. Exit codes: 0 done,
3 stopped on purpose, anything else a failure.

    python tests/distributed_train.py --distribute mirrored --logical-cpus 2 ...
    KERAS_BACKEND=jax python tests/distributed_train.py --distribute multihost \
        --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I ...
"""

import argparse
import json
import sys

STOPPED = 3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--distribute", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--dump", required=True)
    parser.add_argument("--stop-at-epoch", type=int)
    parser.add_argument("--resume-after-stop", action="store_true", help="stop, then resume in this process")
    parser.add_argument("--logical-cpus", type=int)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args()

    if args.logical_cpus:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )

    import keras
    import numpy as np

    import catdog

    class Stop(Exception):
        pass

    class StopAt(keras.callbacks.Callback):
        def __init__(self, epoch):
            super().__init__()
            self.epoch = epoch

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.epoch:
                raise Stop()

    config = catdog.TrainConfig(
        data=args.data, out=args.out, image_size=32, alpha=0.35, weights=args.weights,
        epochs=1, fine_tune_epochs=1, batch_size=4, learning_rate=1e-2, fine_tune_learning_rate=1e-3,
        augmentation=False, seed=0, verbose=0, distribute=args.distribute,
        coordinator=args.coordinator, num_processes=args.num_processes, process_id=args.process_id,
    )
    if args.stop_at_epoch is not None:
        try:
            catdog.train(config, callbacks=[StopAt(args.stop_at_epoch)])
        except Stop:
            if not args.resume_after_stop:
                print(json.dumps({"stopped_at": args.stop_at_epoch}))
                return STOPPED
        else:
            raise SystemExit("the run did not reach the epoch to stop at")
    result = catdog.train(config)
    model = result.model
    np.savez(args.dump, **{v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights})
    replicas = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", None)
    print(json.dumps({
        "stages": [record["stage"] for record in result.history],
        "epochs": [record["epoch"] for record in result.history],
        "is_chief": result.is_chief,
        "replicas": replicas,
        "backend": keras.backend.backend(),
        "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "model_stage": model.stage,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
