"""Dynamic batching: concurrent requests share one model call.

Requests put their decoded image on a queue and await a future. One worker
thread (the only thread that calls the model) takes the first waiting image,
then whatever else arrives within `max_wait_s`, up to `max_batch` images, runs
them as one batch and answers every future. Under load the queue is never
empty, so batches fill without waiting and throughput approaches the model's
batched throughput; alone, a request waits at most `max_wait_s` extra.
"""

import asyncio
import queue
import threading
import time

import numpy as np

_STOP = object()


class BatcherStopped(RuntimeError):
    """The server is shutting down and takes no new images."""


class DynamicBatcher:
    """Gathers images from many coroutines into calls of `run_batch`.

    Args:
        run_batch: `(images (n, h, w, 3) uint8, explain mask (n,) bool) ->
            list of n results`, called in the worker thread only.
        max_batch: most images per call.
        max_wait_s: how long the first image of a batch waits for company.
        on_batch: optional callback with each batch's size (metrics).
    """

    def __init__(self, run_batch, max_batch=32, max_wait_s=0.005, on_batch=None):
        self.run_batch = run_batch
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.on_batch = on_batch
        self._queue = queue.Queue()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="catdog-model", daemon=True)
        self._thread.start()

    async def submit(self, image, explain=False):
        """The model's result for one image, computed in some batch."""
        if self._stopped:
            raise BatcherStopped("the server is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((image, bool(explain), future, loop))
        return await future

    def stop(self, timeout=30):
        """Answer what is queued, then end the worker thread."""
        self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _work(self):
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch, stop = [item], False
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                return

    def _run(self, batch):
        images = np.stack([image for image, *_ in batch])
        explain = np.array([flag for _, flag, *_ in batch])
        try:
            results = self.run_batch(images, explain)
            outcomes = [(True, r) for r in results]
        except Exception as error:  # answer every waiting request, keep the worker alive
            outcomes = [(False, error)] * len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for (_, _, future, loop), outcome in zip(batch, outcomes):
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:  # the event loop is closed: nobody is waiting
                pass


def _resolve(future, outcome):
    if future.done():  # the client went away and its request was cancelled
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
