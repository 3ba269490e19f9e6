"""Exporting a catdog model for serving: SavedModel, TFLite/LiteRT and ONNX.

Every exported format takes what the `.keras` model takes at its training
size: a batch of raw RGB uint8 images, shape `(n, image_size, image_size, 3)`,
input name `images`; and returns P(dog), shape `(n, 1)` float32, output name
`p_dog`. Preprocessing (scaling to [-1, 1]) is inside the exported graph;
augmentation is not (the model is traced with `training=False`, where it is
the identity), so an exported model predicts exactly what `model.predict`
does. Resizing photos to the training size is the caller's job, as
`catdog predict` does it: decode, resize (bilinear), round to uint8.

Exporting needs the TensorFlow backend (the `.keras` file itself is the same
under every backend). ONNX needs the optional packages `tf2onnx`, `onnx` and,
to run it, `onnxruntime`: `pip install "catdog[export]"`.
"""

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np

from catdog import artifacts, ownership

from catdog.errors import ExportError, CatdogError, ConfigError, OptionalDependencyError, OutputError, first_line, os_reason

from catdog.defaults import DEFAULT_CALIBRATION_IMAGES, QUANTIZATIONS
from catdog.defaults import EXPORT_FORMATS as FORMATS
from catdog.defaults import EXPORT_ONNX as ONNX
from catdog.defaults import EXPORT_SAVEDMODEL as SAVEDMODEL
from catdog.defaults import EXPORT_TFLITE as TFLITE
from catdog.defaults import QUANTIZE_FLOAT16 as FLOAT16
from catdog.defaults import QUANTIZE_INT8 as INT8

#: Names of the exported graph's input and output, in every format.
INPUT_NAME, OUTPUT_NAME = "images", "p_dog"
#: The SavedModel's second signature, taking encoded image files, and its input.
BYTES_SIGNATURE, BYTES_INPUT_NAME = "serving_bytes", "image_bytes"
#: The ONNX opset written (supported by onnxruntime 1.17 and later).
ONNX_OPSET = 17

EXPORT_EXTRA = 'pip install "catdog[export]"'


@dataclass
class ExportResult:
    path: str
    format: str
    quantize: str | None
    size_bytes: int

    def describe(self):
        kind = self.format + (f" ({self.quantize})" if self.quantize else "")
        return f"{kind} {self.path} ({self.size_bytes / 1e6:.1f} MB)"


def export_model(
    model,
    out,
    format=SAVEDMODEL,
    quantize=None,
    calibration_data=None,
    calibration_images=DEFAULT_CALIBRATION_IMAGES,
    overwrite=False,
):
    """Export a catdog model (or `.keras` file) for serving without Keras.

    Every format takes a batch of raw RGB uint8 images of the training size
    (input `images`) and returns P(dog) (output `p_dog`): preprocessing is
    inside the exported graph and augmentation is not, so the export predicts
    what `model.predict` does. Needs the TensorFlow backend.

    Args:
        model: A catdog classifier or the path of a catdog `.keras` file.
        out: Where to write: a folder for `savedmodel`, a file for `tflite`
            (`.tflite`) and `onnx` (`.onnx`).
        format: `"savedmodel"`, `"tflite"` or `"onnx"`. Defaults to
            `"savedmodel"`.
        quantize: `None` (float32), or for `tflite` only `"float16"` (weights
            in float16) or `"int8"` (weights and activations in int8,
            calibrated on `calibration_data`). Defaults to `None`.
        calibration_data: For int8: a folder of photos (walked recursively;
            unreadable files are skipped), a list of image files, or an array
            of raw uint8 images of the training size. Defaults to `None`.
        calibration_images: Use at most this many calibration images.
            Defaults to `100`.
        overwrite: Replace `out` if it exists (and catdog wrote it). Defaults
            to `False`.

    Returns:
        An `ExportResult` (path, format, quantization, size in bytes).

    Raises:
        ConfigError: a bad format or quantization, a missing calibration set,
            an existing `out`, or a backend other than TensorFlow.
        ModelFileError: `model` is a path that does not hold a catdog model.
        OptionalDependencyError: a package the format needs is not installed.

    Example:

    >>> import os
    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> # Any catdog model; a tiny backbone here so that the example takes a second.
    >>> backbone = keras.Sequential(
    ...     [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2)], name="tiny")
    >>> model = catdog.ImageClassifier(
    ...     backbone=backbone, class_names=["cat", "dog"], preprocessing="tf", image_size=32)
    >>> result = catdog.export_model(model, "exported")
    >>> result.format, os.path.isfile("exported/saved_model.pb")
    ('savedmodel', True)
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype="uint8")
    >>> p_dog = catdog.load_exported("exported").predict(images)
    >>> bool(np.allclose(p_dog, model.predict(images, verbose=0)[:, 0], atol=1e-6))
    True
    """
    format = str(format).lower()
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if quantize is not None:
        quantize = str(quantize).lower()
        if quantize not in QUANTIZATIONS:
            raise ConfigError(f"unknown quantization {quantize!r}; choose int8 or float16")
        if format != TFLITE:
            raise ConfigError("--quantize applies to --format tflite only")
        if quantize == INT8 and calibration_data is None:
            raise ConfigError(
                "int8 quantization needs calibration images: pass --calibration-data DIR "
                "(a folder of a few dozen photos like those the model will see)"
            )
    _require_tensorflow_backend()
    out = os.path.abspath(os.fspath(out))  # "." and "dir/" name a folder with a parent
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    _check_out(out, format, overwrite, source)
    if format == ONNX:
        _require_onnx_exporter()
    model = _as_model(model)

    if format == SAVEDMODEL:
        _replace_folder(out, lambda folder: write_saved_model(model, folder, encoded_images=True))
    elif format == TFLITE:
        calibration = None
        if quantize == INT8:
            calibration = calibration_array(calibration_data, model.image_size, calibration_images)
        with tempfile.TemporaryDirectory(prefix="catdog-export-") as folder:
            saved = os.path.join(folder, "savedmodel")
            write_saved_model(model, saved)
            content = tflite_from_saved_model(saved, quantize, calibration)
        artifacts.replace_atomically(out, lambda path: _write_bytes(path, content))
    else:
        artifacts.replace_atomically(out, lambda path: write_onnx(model, path))
    return ExportResult(out, format, quantize, _size(out))


# --- the formats ----------------------------------------------------------


def serving_signature(model):
    """The one input every export takes: raw uint8 images of the training size."""
    import tensorflow as tf

    size = model.image_size
    return tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME)


def write_saved_model(model, folder, encoded_images=False):
    """A SavedModel whose `serving_default` signature maps `images` to `p_dog`.

    With `encoded_images`, a second signature, `serving_bytes`, maps
    `image_bytes` (a batch of encoded JPEG/PNG/GIF/BMP files, `tf.string`) to
    `p_dog`: decoded and resized in the graph by `decode_tf_resized`, the
    function `catdog predict` decodes such files with, so TensorFlow Serving
    can be sent image files as they are.
    """
    import keras

    def serve(images):
        return {OUTPUT_NAME: model(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[serving_signature(model)])
    if encoded_images:
        archive.add_endpoint(
            BYTES_SIGNATURE, encoded_images_endpoint(model), input_signature=[bytes_signature()]
        )
    with _quiet():
        archive.write_out(folder, verbose=False)
    return folder


def bytes_signature():
    import tensorflow as tf

    return tf.TensorSpec((None,), tf.string, name=BYTES_INPUT_NAME)


def encoded_images_endpoint(model):
    """Encoded image files (n,) -> {"p_dog": (n, 1)}, decoded in the graph."""
    import tensorflow as tf

    from catdog.data.decode import decode_tf_resized

    size = model.image_size

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            lambda contents: decode_tf_resized(contents, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8),
        )
        return {OUTPUT_NAME: model(images, training=False)}

    return serve_bytes


def tflite_from_saved_model(saved_model, quantize=None, calibration=None):
    """Convert a SavedModel written by `write_saved_model` to TFLite bytes.

    Only TFLite built-in ops are allowed, so the file runs on the plain
    LiteRT runtime of phones and micro-controllers (no TensorFlow "Flex" ops).
    `float16` stores the weights in half precision; `int8` quantizes weights
    and activations with ranges calibrated on `calibration` (uint8 images),
    keeping the uint8 input and the float32 P(dog) output.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == INT8:
        if calibration is None or not len(calibration):
            raise ConfigError("int8 quantization needs at least one calibration image")

        def representative_dataset():
            for image in calibration:
                yield {INPUT_NAME: image[None]}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    elif quantize is not None:
        raise ConfigError(f"unknown quantization {quantize!r}")
    try:
        with _quiet(), warnings.catch_warnings():
            # int8 calibration runs tf.lite.Interpreter, which warns that it is deprecated.
            warnings.simplefilter("ignore", UserWarning)
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError and others
        raise ExportError(f"TFLite conversion failed: {first_line(error)}") from error


def write_onnx(model, path):
    """An ONNX file with input `images` (uint8) and output `p_dog`, via tf2onnx."""
    import keras
    import onnx

    spec = keras.InputSpec(shape=(None, model.image_size, model.image_size, 3), dtype="uint8", name=INPUT_NAME)
    try:
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx numpy-2 patch
            model.export(path, format="onnx", input_signature=[spec], opset_version=ONNX_OPSET, verbose=False)
    except Exception as error:
        raise ExportError(f"ONNX export failed: {first_line(error)}") from error
    graph = onnx.load(path)
    _rename_output(graph, OUTPUT_NAME)
    onnx.save(graph, path)
    return path


def _rename_output(model_proto, name):
    graph = model_proto.graph
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    graph.output[0].name = name


# --- running exported models ----------------------------------------------


class ExportedModel:
    """An exported catdog model, run with its own runtime (no Keras).

    `predict(images)` takes raw uint8 images of the training size, shape
    `(n, size, size, 3)`, and returns P(dog) as a float32 array of shape `(n,)`.
    Use `load_exported(path)` to get one.
    """

    format = None

    def __init__(self, path):
        self.path = os.fspath(path)

    @property
    def image_size(self):
        raise NotImplementedError

    def predict(self, images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ConfigError(
                f"{self.path} takes uint8 images of shape (n, {size}, {size}, 3), "
                f"got {images.shape}: resize them first"
            )
        outputs = np.asarray(self._run(images.astype(np.uint8)), np.float32).reshape(len(images), -1)
        # (n,) P(second class) for a one-unit model, as `Predictor`; (n, N) for N classes
        return outputs.reshape(-1) if outputs.shape[1] == 1 else outputs


class SavedModelRunner(ExportedModel):
    format = SAVEDMODEL

    def __init__(self, path):
        super().__init__(path)
        import tensorflow as tf

        self._tf = tf
        self._function = tf.saved_model.load(self.path).signatures["serving_default"]

    @property
    def image_size(self):
        return int(self._function.structured_input_signature[1][INPUT_NAME].shape[1])

    def _run(self, images):
        return self._function(**{INPUT_NAME: self._tf.constant(images)})[OUTPUT_NAME].numpy()


class TFLiteRunner(ExportedModel):
    format = TFLITE

    def __init__(self, path, num_threads=None, content=False):
        """`content=True` reads the file into memory: it may be deleted afterwards."""
        super().__init__(path)
        self._interpreter = tflite_interpreter(self.path, num_threads, content)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @property
    def image_size(self):
        return int(self._input["shape_signature"][1])

    def _run(self, images):
        interpreter = self._interpreter
        if self._batch != len(images):
            interpreter.resize_tensor_input(self._input["index"], images.shape)
            interpreter.allocate_tensors()
            self._batch = len(images)
        interpreter.set_tensor(self._input["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(self._output["index"]).copy()


class ONNXRunner(ExportedModel):
    format = ONNX

    def __init__(self, path, num_threads=None):
        super().__init__(path)
        try:
            import onnxruntime
        except ImportError as error:
            raise OptionalDependencyError(
                f"running ONNX models needs onnxruntime: {EXPORT_EXTRA}"
            ) from error
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
        self._session = onnxruntime.InferenceSession(
            self.path, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0]

    @property
    def image_size(self):
        return int(self._input.shape[1])

    def _run(self, images):
        return self._session.run([OUTPUT_NAME], {self._input.name: images})[0]


def load_exported(path, num_threads=None):
    """Load an exported model, guessing its format from `path`.

    Runs it with the format's own runtime (TensorFlow, LiteRT or
    onnxruntime), not Keras, to check an export or to serve it.

    Args:
        path: A SavedModel folder, a `*.tflite` or a `*.onnx` file.
        num_threads: Threads of the TFLite and ONNX runtimes. Defaults to
            `None`: the runtime's own choice.

    Returns:
        An `ExportedModel`: `predict(images)` takes raw uint8 images of
        `image_size`, shape (n, size, size, 3), and returns P(dog), shape
        (n,).

    Raises:
        ConfigError: nothing exported at `path`, or an unknown format.
        OptionalDependencyError: `onnxruntime` is needed and not installed.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> backbone = keras.Sequential(
    ...     [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2)], name="tiny")
    >>> model = catdog.ImageClassifier(
    ...     backbone=backbone, class_names=["cat", "dog"], preprocessing="tf", image_size=32)
    >>> _ = catdog.export_model(model, "model.tflite", format="tflite")
    >>> exported = catdog.load_exported("model.tflite", num_threads=1)
    >>> exported.format, exported.image_size
    ('tflite', 32)
    >>> exported.predict(np.zeros((3, 32, 32, 3), "uint8")).shape
    (3,)
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return SavedModelRunner(path)
    if not os.path.isfile(path):
        raise ConfigError(f"no exported model at {path}")
    if path.endswith(".tflite"):
        return TFLiteRunner(path, num_threads)
    if path.endswith(".onnx"):
        return ONNXRunner(path, num_threads)
    raise ConfigError(f"cannot tell the format of {path}: expected a SavedModel folder, .tflite or .onnx")


def tflite_interpreter(path, num_threads=None, content=False):
    """LiteRT's standalone interpreter when installed, else TensorFlow's copy."""
    source = {"model_path": path}
    if content:
        with open(path, "rb") as file:
            source = {"model_content": file.read()}
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = tf.lite.Interpreter(**source, num_threads=num_threads)
    else:
        interpreter = Interpreter(**source, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


# --- helpers --------------------------------------------------------------


def calibration_array(source, image_size, limit=DEFAULT_CALIBRATION_IMAGES):
    """Up to `limit` raw uint8 images of the training size, for int8 calibration."""
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"calibration images must be at least 1, got {limit}")
    if isinstance(source, np.ndarray):
        images = source
    else:
        images = _read_images(source, image_size, limit)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise ConfigError(
            f"calibration images must have shape (n, {image_size}, {image_size}, 3), got {images.shape}"
        )
    if not len(images):
        raise ConfigError(f"no usable calibration images in {source}")
    return images[:limit].astype(np.uint8)


def _read_images(source, image_size, limit):
    from catdog.data.screening import inspect_files
    from catdog.data.pipeline import manifest_dataset
    from catdog.data.folders import image_files

    inputs = [os.fspath(source)] if isinstance(source, (str, os.PathLike)) else [os.fspath(s) for s in source]
    for item in inputs:
        if not os.path.exists(item):
            raise ConfigError(f"calibration data not found: {item}")
    files, _ = image_files(inputs)
    wanted = 2 * int(limit) if limit else len(files)  # room for skipped files
    if len(files) > wanted:  # spread over the whole (sorted) listing: all classes
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, wanted)]
    manifest = inspect_files(files, [0] * len(files), image_size)
    if not len(manifest):
        raise ConfigError(f"no usable calibration images in {', '.join(inputs)}")
    batches = [images.numpy() for images, _ in manifest_dataset(manifest, image_size, 32)]
    return np.concatenate(batches)[:limit]


def _as_model(model):
    if isinstance(model, (str, os.PathLike)):
        from catdog.loading import load_model

        return load_model(os.fspath(model), compile=False)
    if not hasattr(model, "image_size"):
        raise ConfigError(f"expected a CatDogClassifier or a .keras path, got {type(model).__name__}")
    return model


def _require_tensorflow_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"exporting needs the TensorFlow backend (KERAS_BACKEND=tensorflow), "
            f"not {keras.backend.backend()}; the .keras file is the same under both"
        )


def _require_onnx_exporter():
    missing = []
    for name in ("tf2onnx", "onnx"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OptionalDependencyError(
            f"ONNX export needs {' and '.join(missing)}: {EXPORT_EXTRA}"
        )


def _check_out(out, format, overwrite, source=None):
    """Refuse an `out` that is not catdog's to replace (see `catdog.ownership`).

    Never the source model or a folder holding it, never the current folder
    or one above it; an existing SavedModel folder only when catdog exported
    it (marker), an existing file only when it is a catdog export of that
    format; and either only with `overwrite`.
    """
    real = os.path.realpath(out)
    if source is not None and _inside(os.path.realpath(source), real):
        raise ConfigError(f"--out {out} is the model being exported or a folder holding it; choose another path")
    if format == SAVEDMODEL:
        if _inside(os.path.realpath(os.getcwd()), real):
            raise ConfigError(
                f"--out {out} is the current folder or one above it; name a new folder for the "
                "SavedModel, e.g. --out model_savedmodel"
            )
        if os.path.lexists(out) and not os.path.isdir(out):
            raise ConfigError(f"--out {out} is a file; a SavedModel is a folder")
        entries = _listing(out) if os.path.isdir(out) else []
        if entries and not _is_catdog_saved_model(out, entries):
            raise ConfigError(
                f"--out {out} is a folder catdog did not export (no {ownership.MARKER} marker): "
                "catdog never replaces it, --overwrite or not; choose another --out"
            )
        exists = bool(entries)
    else:
        if os.path.isdir(out):
            raise ConfigError(f"--out {out} is a folder; {format} export writes one file")
        exists = os.path.lexists(out)
        if exists and overwrite and not _is_catdog_model_file(out, format):
            raise ConfigError(
                f"--out {out} is not a {format} model exported by catdog: catdog never "
                "replaces it, --overwrite or not; choose another --out"
            )
    if exists and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {parent}: {os_reason(error)}") from None


def _inside(path, folder):
    """Whether `path` is `folder` or lies under it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _listing(folder):
    try:
        return os.listdir(folder)
    except OSError as error:
        raise OutputError(f"cannot read --out {folder}: {os_reason(error)}") from None


#: What a SavedModel folder holds; with `p_dog` inside, one catdog exported before markers.
_SAVED_MODEL_NAMES = {"saved_model.pb", "fingerprint.pb", "variables", "assets", ownership.MARKER}


def _is_catdog_saved_model(folder, entries):
    if ownership.marker_kind(folder) == ownership.EXPORT:
        return True
    return set(entries) <= _SAVED_MODEL_NAMES and _mentions_output(os.path.join(folder, "saved_model.pb"))


def _is_catdog_model_file(path, format):
    """A TFLite flatbuffer ("TFL3") or an ONNX protobuf whose output is `p_dog`."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    kind = head[4:8] == b"TFL3" if format == TFLITE else head[:1] == b"\x08"
    return kind and _mentions_output(path)


def _mentions_output(path):
    try:
        with open(path, "rb") as handle:
            return OUTPUT_NAME.encode() in handle.read()
    except OSError:
        return False


def _replace_folder(out, write):
    """Write a folder beside `out`, then swap it in: no half-written export.

    The new folder is complete (and marked as catdog's) before it takes
    `out`'s name. On Linux the old and the new folder trade names in one
    atomic `renameat2(RENAME_EXCHANGE)`, so `out` is always the old export or
    the new one, whole; elsewhere two renames, and an interruption between
    them leaves the old export whole in the hidden staging folder beside it.
    """
    parent = os.path.dirname(out)
    try:
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".catdog-export", dir=parent)
    except OSError as error:
        raise OutputError(f"cannot write beside {out}: {os_reason(error)}") from None
    try:
        target = os.path.join(staging, "export")
        write(target)
        artifacts.write_json(os.path.join(target, ownership.MARKER), {"kind": ownership.EXPORT, "made_by": "catdog"})
        if not os.path.isdir(out):
            os.replace(target, out)
        elif not _exchange(target, out):
            old = os.path.join(staging, "old")
            os.rename(out, old)
            try:
                os.rename(target, out)
            except BaseException:
                os.rename(old, out)
                raise
    except OSError as error:
        if isinstance(error, CatdogError):
            raise
        raise OutputError(f"cannot write {out}: {os_reason(error)}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _exchange(first, second):
    """Swap two paths atomically (Linux `renameat2`); False where unsupported."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second)


def _write_bytes(path, content):
    with open(path, "wb") as handle:
        handle.write(content)


def _size(path):
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path)
            for name in names
        )
    return os.path.getsize(path)



@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter on stdout (they print, they don't log)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
