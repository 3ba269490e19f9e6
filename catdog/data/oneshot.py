"""Decoding files for one pass over them (predict): each file decoded once.

Training checks every file up front (`inspect_files`) because it reads them
again each epoch; a single pass does not need the check. TensorFlow decodes
the plain files in parallel and drops those it fails on; those, and the
files only Pillow handles, are decoded by Pillow afterwards, and what
neither can decode is skipped with Pillow's reason, as `inspect_files` would.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from catdog.data.decode import DECODE_WORKERS, decode_tf_resized, path_tensor, resize_uint8
from catdog.data.screening import SkippedFile, choose_decoder, decode_pil_or_reason


def decode_once(paths, image_size, batch_size, skipped, workers=DECODE_WORKERS):
    """Yield (indices into `paths`, uint8 image batch); append skips to `skipped`."""
    with ThreadPoolExecutor(workers) as pool:
        choices = list(pool.map(lambda path: choose_decoder(path, image_size), paths))
    by_tf = [i for i, (route, _) in enumerate(choices) if route == "tf"]
    decoded = set()
    if by_tf:
        paths_in_graph = path_tensor([paths[i] for i in by_tf])

        def load(position):
            contents = tf.io.read_file(tf.gather(paths_in_graph, position))
            return position, decode_tf_resized(contents, image_size)

        dataset = (
            tf.data.Dataset.range(len(by_tf))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        for positions, images in dataset.as_numpy_iterator():
            indices = [by_tf[p] for p in positions]
            decoded.update(indices)
            yield indices, images

    rest = [i for i, (route, _) in enumerate(choices) if route is not None and i not in decoded]

    def by_pil(index):
        array, reason = decode_pil_or_reason(paths[index], image_size)
        if array is None:
            return None, reason
        return resize_uint8(array, image_size).numpy(), None

    # A batch at a time, so memory does not grow with the number of such files.
    reasons = {i: reason for i, (route, reason) in enumerate(choices) if route is None}
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(rest), batch_size):
            chunk = rest[start:start + batch_size]
            good = []
            for index, (image, reason) in zip(chunk, pool.map(by_pil, chunk)):
                if image is None:
                    reasons[index] = reason
                else:
                    good.append((index, image))
            if good:
                yield [i for i, _ in good], np.stack([image for _, image in good])
    skipped.extend(SkippedFile(paths[i], reasons[i]) for i in sorted(reasons))
