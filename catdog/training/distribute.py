"""Training on several devices of one machine, or on several machines.

`catdog.train` asks `setup(config)` for a `Distributor` and runs through it:
the model is built, compiled and loaded inside `distributor.scope()`, the
input pipelines go through `distributor.distribute_dataset`, and only the
chief (`is_chief`) writes the run folder.

- `none`: one device, as before.
- `mirrored`: `tf.distribute.MirroredStrategy` (TensorFlow backend) over all
  GPUs of this machine; without GPUs, over its logical CPU devices.
- `multihost`: Keras' distribution API on the JAX backend. Every machine runs
  the same command with its own process id; process 0 is the coordinator
  and the chief. `keras.distribution.initialize` connects the processes
  (over TCP, to the coordinator's address), and
  `keras.distribution.DataParallel` replicates the model on every device of
  every process and splits each global batch among them. Keras 3's `fit()`
  does not work under TensorFlow's `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585), so this is the supported multi-machine path.

In every mode `batch_size` is the *global* batch: each of N devices computes
gradients on `batch_size / N` images and the gradients are averaged, so a
step is the same step as on one device and the learning rates need no
change. Scaling the learning rate with a larger global batch is left to the
user (`--lr`, `--fine-tune-lr`).
"""

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass

from catdog import artifacts
from catdog.errors import ConfigError, OptionalDependencyError

from catdog.defaults import DISTRIBUTE_CHOICES as CHOICES
from catdog.defaults import DISTRIBUTE_MIRRORED as MIRRORED
from catdog.defaults import DISTRIBUTE_MULTIHOST as MULTIHOST
from catdog.defaults import DISTRIBUTE_NONE as NONE
# Keras' own variables for the cluster, read when an option is not given.
from catdog.defaults import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID


@dataclass(frozen=True)
class Cluster:
    """Where the processes of a `multihost` run meet.

    Args:
        coordinator: `host:port` of process 0, reachable from every machine
            (a comma-separated list of all processes' addresses also works;
            its first entry is the coordinator).
        num_processes: Number of processes (usually one per machine).
        process_id: This process's id, `0 .. num_processes - 1`.
    """

    coordinator: str
    num_processes: int
    process_id: int

    @classmethod
    def resolve(cls, coordinator=None, num_processes=None, process_id=None, environ=None):
        """Options given here win; the rest come from Keras' environment variables."""
        environ = os.environ if environ is None else environ
        coordinator = coordinator or environ.get(ENV_COORDINATOR)
        num_processes = _int_or_none(num_processes, environ.get(ENV_NUM_PROCESSES), "num-processes")
        process_id = _int_or_none(process_id, environ.get(ENV_PROCESS_ID), "process-id")
        missing = [
            f"{flag} (or {env})"
            for flag, env, value in (
                ("--coordinator", ENV_COORDINATOR, coordinator),
                ("--num-processes", ENV_NUM_PROCESSES, num_processes),
                ("--process-id", ENV_PROCESS_ID, process_id),
            )
            if value is None
        ]
        if missing:
            raise ConfigError(f"--distribute multihost needs {', '.join(missing)}")
        if num_processes < 1:
            raise ConfigError(f"num-processes must be at least 1, got {num_processes}")
        if not 0 <= process_id < num_processes:
            raise ConfigError(f"process-id must be in 0..{num_processes - 1}, got {process_id}")
        first = coordinator.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"coordinator must be HOST:PORT, got {coordinator!r}")
        return cls(coordinator.strip(), num_processes, process_id)


class Distributor:
    """Single-device training: the default, and the base of the others."""

    name = NONE
    is_chief = True
    process_id = 0
    num_processes = 1

    @property
    def num_replicas(self):
        return 1

    def scope(self):
        """Where models (and optimizers) must be built, compiled and loaded."""
        return contextlib.nullcontext()

    def distribute_dataset(self, dataset, examples=None):
        """The part of a batched `(images, labels)` dataset this process feeds.

        `examples`, the number of images in `dataset`, lets a multihost
        process keep the number of batches known.
        """
        return dataset

    def run_on_chief(self, function):
        """Run `function` on the chief only; every process gets its result.

        A `CatdogError` raised on the chief is raised on every process.
        """
        return function()

    def load_checkpoint(self, path):
        """Load a `.keras` checkpoint that the chief can read, into `scope()`."""
        from catdog.loading import load_model

        with self.scope():
            return load_model(path)

    def describe(self):
        return "one device"


class MirroredDistributor(Distributor):
    """`tf.distribute.MirroredStrategy`: every device of this machine."""

    name = MIRRORED

    def __init__(self, devices=None):
        import keras
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow":
            raise ConfigError(
                "--distribute mirrored needs the TensorFlow backend; "
                f"KERAS_BACKEND is {keras.backend.backend()}"
            )
        self.devices = list(devices) if devices else default_mirrored_devices()
        # One strategy per set of devices and process: a second
        # MirroredStrategy starts its collective keys afresh, and its
        # all-reduces then collide with the first one's (a "shape mismatch in
        # the collective instance" when a process trains twice).
        key = tuple(self.devices)
        if key not in _MIRRORED_STRATEGIES:
            _MIRRORED_STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=self.devices)
        self.strategy = _MIRRORED_STRATEGIES[key]

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def describe(self):
        return f"MirroredStrategy over {self.num_replicas} devices ({', '.join(self.devices)})"


_MIRRORED_STRATEGIES = {}


def default_mirrored_devices():
    """All GPUs; without any, all logical CPUs (one unless split on purpose)."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


class MultiHostDistributor(Distributor):
    """Keras' `DataParallel` distribution over all devices of all processes (JAX)."""

    name = MULTIHOST

    def __init__(self, cluster, batch_size=None):
        import keras

        if keras.backend.backend() != "jax":
            raise ConfigError(
                "--distribute multihost needs the JAX backend: run it with KERAS_BACKEND=jax "
                f'(pip install "catdog[jax]"); KERAS_BACKEND is {keras.backend.backend()}'
            )
        try:
            import jax
        except ImportError as error:  # pragma: no cover - keras' jax backend imports it
            raise OptionalDependencyError('multihost training needs JAX: pip install "catdog[jax]"') from error
        self.cluster = cluster
        initialize_cluster(cluster)
        self.process_id = jax.process_index()
        self.num_processes = jax.process_count()
        self.is_chief = self.process_id == 0
        self.num_devices = jax.device_count()
        self.batch_size = batch_size
        if batch_size is not None and batch_size % self.num_devices:
            raise ConfigError(
                f"batch-size {batch_size} must be a multiple of the {self.num_devices} devices "
                f"of the {self.num_processes} processes (it is the global batch)"
            )
        # Each process feeds its own share of every global batch (see
        # `distribute_dataset`), so Keras must not shard the input again.
        self.distribution = keras.distribution.DataParallel(auto_shard_dataset=False)
        keras.distribution.set_distribution(self.distribution)

    @property
    def num_replicas(self):
        return self.num_devices

    def distribute_dataset(self, dataset, examples=None):
        return shard_batches(
            dataset, self.num_processes, self.process_id, self.num_devices,
            batch_size=self.batch_size, examples=examples,
        )

    def run_on_chief(self, function):
        from catdog.errors import CatdogError

        outcome, failure = None, None
        if self.is_chief:
            try:
                outcome = {"value": function()}
            except CatdogError as error:
                failure, outcome = error, {"error": str(error)}
        outcome = json.loads(broadcast_bytes(json.dumps(outcome).encode() if self.is_chief else b""))
        if failure is not None:
            raise failure
        if "error" in outcome:
            raise ConfigError(f"process 0 stopped: {outcome['error']}")
        return outcome["value"]

    def load_checkpoint(self, path):
        """The chief reads the checkpoint and sends it to every process.

        The machines need no shared file system: only process 0 keeps the run
        folder, the others load its checkpoint from a temporary copy.
        """
        from catdog.loading import load_model

        content = b""
        if self.is_chief:
            with open(path, "rb") as handle:
                content = handle.read()
        content = broadcast_bytes(content)
        if self.is_chief:
            return load_model(path)
        with tempfile.TemporaryDirectory(prefix="catdog-resume-") as folder:
            copy = os.path.join(folder, os.path.basename(path))
            with open(copy, "wb") as handle:
                handle.write(content)
            return load_model(copy)

    def describe(self):
        return (
            f"DataParallel over {self.num_devices} devices in {self.num_processes} processes "
            f"(this is process {self.process_id}, coordinator {self.cluster.coordinator})"
        )


def initialize_cluster(cluster):
    """Connect this process to the others (once per process)."""
    import jax
    import keras

    is_initialized = getattr(jax.distributed, "is_initialized", lambda: False)  # jax >= 0.4.35
    if is_initialized():
        if jax.process_count() != cluster.num_processes or jax.process_index() != cluster.process_id:
            raise ConfigError("this process already joined another cluster")
        return
    # CPU-only processes need a collectives implementation to talk to each
    # other; GPUs use NCCL whatever this says.
    if getattr(jax.config, "jax_cpu_collectives_implementation", None) in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(
        job_addresses=cluster.coordinator,
        num_processes=cluster.num_processes,
        process_id=cluster.process_id,
    )


def shard_batches(dataset, num_processes, process_id, num_devices=None, batch_size=None, examples=None):
    """Keep this process's share of every global batch of `(images, labels)`.

    Every process builds the same pipeline (same files, same seed, so the same
    global batches in the same order) and keeps the `process_id`-th of
    `num_processes` equal, contiguous slices of each batch; together the
    processes feed exactly the global batch. A batch is first cut to a
    multiple of `num_devices` (all processes' devices; default
    `num_processes`) so every device gets as many images as the others: at
    most `num_devices - 1` images of an epoch's last, short batch are left
    out, and a last batch smaller than `num_devices` is dropped. Knowing
    `batch_size` and the number of `examples` keeps the number of batches
    known to Keras.
    """
    import tensorflow as tf

    num_devices = num_devices or num_processes
    if num_processes == 1 and num_devices == 1:
        return dataset
    if num_devices % num_processes:
        raise ConfigError(f"{num_devices} devices cannot be split evenly among {num_processes} processes")
    devices_here = num_devices // num_processes

    def share(images, labels):
        usable = tf.shape(images)[0] // num_devices
        size = usable * devices_here
        start = process_id * size
        return images[start : start + size], labels[start : start + size]

    shared = dataset.map(share)
    if batch_size and examples is not None:
        full, rest = divmod(int(examples), int(batch_size))
        return shared.take(full + (1 if rest >= num_devices else 0))
    return shared.filter(lambda images, labels: tf.shape(images)[0] > 0)


def broadcast_bytes(content):
    """Process 0's `content` (bytes), on every process."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    is_source = jax.process_index() == 0
    length = int(multihost_utils.broadcast_one_to_all(np.int32(len(content) if is_source else 0)))
    buffer = np.zeros(length, np.uint8)
    if is_source:
        buffer[:] = np.frombuffer(content, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes()


def save_model(model, path):
    """`model.save(path)`, atomically, never leaving a half-written `.keras` file.

    Under a multihost distribution only the chief calls it, and it saves
    outside the distribution (see `outside_distribution`); elsewhere it is
    `model.save` through a temporary file and an atomic rename.

    Args:
        model: The Keras model to save.
        path: The `.keras` file to write (replaced if it exists).

    Example:

    >>> import os, tempfile, keras, catdog
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> catdog.save_model(model, path)
    >>> keras.saving.load_model(path).output_shape
    (None, 1)
    """
    with outside_distribution():  # multihost: the chief saves alone
        artifacts.replace_atomically(path, model.save)


@contextlib.contextmanager
def outside_distribution():
    """Run the enclosed code (saving a model) outside any Keras distribution.

    Only the chief of a multihost run writes files, so whatever Keras does
    while saving must not involve the other processes. But saving makes
    throw-away optimizer variables, and under a multi-process distribution
    creating a variable is a collective operation: the chief would wait for
    processes that never join. Reading the real, replicated variables needs
    no distribution.
    """
    import keras

    if keras.backend.backend() != "jax":
        yield
        return
    current = keras.distribution.distribution()
    if current is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def setup(config):
    """The `Distributor` for a `TrainConfig`."""
    mode = (config.distribute or NONE).lower()
    if mode == NONE:
        return Distributor()
    if mode == MIRRORED:
        return MirroredDistributor()
    if mode == MULTIHOST:
        cluster = Cluster.resolve(config.coordinator, config.num_processes, config.process_id)
        return MultiHostDistributor(cluster, config.batch_size)
    raise ConfigError(f"distribute must be one of {', '.join(CHOICES)}, got {config.distribute!r}")


def _int_or_none(value, fallback, name):
    value = value if value is not None else fallback
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
