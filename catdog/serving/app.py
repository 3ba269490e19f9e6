"""The Starlette application: routes, the model's life cycle, errors as JSON.

The server listens at once; the model loads and warms up in a thread, and
`/healthz` says "ready" only after both. Decoding runs in a thread pool, the
model in the batcher's one worker thread: the event loop only moves bytes.
"""

import asyncio
import base64
import io
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from catdog.errors import first_line
from catdog.serving.batcher import BatcherStopped, DynamicBatcher
from catdog.serving.metrics import ServingMetrics
from catdog.serving.uploads import Limits, UploadError, read_images

#: Largest image accepted, in pixels (width x height), checked from the file's
#: header before decoding: a 30000 x 30000 PNG of a few KB would need 2.7 GB.
MAX_PIXELS = 50_000_000
#: Longest side of the photo under a Grad-CAM overlay.
OVERLAY_SIDE = 512
#: The page's files, served from the package (catdog/serving/static/).
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: Nothing on the page comes from anywhere but this server (images: data and blob URLs).
CSP = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'"
_KNOWN_PATHS = {"/", "/predict", "/predict/batch", "/healthz", "/metadata", "/metrics"}


class ServerState:
    """What the routes share: the model once loaded, the pools, the counters."""

    def __init__(self, model_path, max_batch, max_wait_ms, limits, max_pixels, decode_workers):
        self.model_path = os.fspath(model_path)
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.limits = limits
        self.max_pixels = int(max_pixels)
        self.decode_pool = ThreadPoolExecutor(decode_workers or min(4, os.cpu_count() or 1), "catdog-decode")
        self.metrics = ServingMetrics()
        self.service = None
        self.batcher = None
        self.ready = False
        self.error = None
        self.stopping = False
        self.warm_up_s = None
        self.on_fatal = None  # set by the server: called when the model cannot be loaded
        self.on_ready = None  # and with the seconds loading and warming up took

    def load(self):
        """Load and warm up the model (in a thread, while the server already answers)."""
        try:
            from catdog.serving.service import ModelService

            started = time.perf_counter()
            service = ModelService(self.model_path)
            batcher = DynamicBatcher(
                service.run_batch, self.max_batch, self.max_wait_ms / 1000.0, self.metrics.record_batch
            )
            service.warm_up(self.max_batch)
            self.service, self.batcher = service, batcher
            self.warm_up_s = time.perf_counter() - started
            self.ready = not self.stopping
            if self.ready and self.on_ready is not None:
                self.on_ready(self.warm_up_s)
        except Exception as error:  # a bad model file: say why, then stop the server
            self.error = first_line(error)
            if self.on_fatal is not None:
                self.on_fatal(self.error)

    def close(self):
        self.stopping, self.ready = True, False
        if self.batcher is not None:
            self.batcher.stop()
        self.decode_pool.shutdown(wait=True, cancel_futures=True)


def create_app(
    model_path,
    max_batch=32,
    max_wait_ms=5.0,
    limits=None,
    max_pixels=MAX_PIXELS,
    decode_workers=None,
    load_in_thread=True,
):
    """The ASGI app serving one catdog `.keras` model (see README, `catdog serve`)."""
    from PIL import Image

    # The pixel budget below is ours; Pillow's warning for large images is noise.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    state = ServerState(model_path, max_batch, max_wait_ms, limits or Limits(), max_pixels, decode_workers)
    pages = {name: resources.files("catdog.serving").joinpath("static", name).read_bytes() for name in STATIC}

    async def lifespan(app):
        if load_in_thread:
            threading.Thread(target=state.load, name="catdog-load", daemon=True).start()
        else:
            state.load()
        yield
        await asyncio.get_running_loop().run_in_executor(None, state.close)

    async def page(request):
        name = request.path_params.get("name", "index.html")
        if name not in STATIC:
            raise HTTPException(404, f"no such file: {name[:60]}")
        return Response(pages[name], media_type=STATIC[name], headers={"content-security-policy": CSP, "cache-control": "no-cache"})

    async def healthz(request):
        if state.ready:
            return JSONResponse({"status": "ready", "model": os.path.basename(state.model_path), "warm_up_seconds": round(state.warm_up_s, 3)})
        status = "failed" if state.error else "stopping" if state.stopping else "loading"
        return JSONResponse({"status": status, **({"error": state.error} if state.error else {})}, status_code=503)

    async def metadata(request):
        service = _service(state)
        info = await asyncio.get_running_loop().run_in_executor(state.decode_pool, service.metadata)
        info.update(max_batch=state.max_batch, max_wait_ms=state.max_wait_ms,
                    max_upload_mb=state.limits.max_bytes / 1e6, max_pixels=state.max_pixels)
        return JSONResponse(info)

    async def metrics(request):
        return Response(state.metrics.render(state.ready), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def predict(request):
        started = time.perf_counter()
        service = _service(state)
        explain = request.query_params.get("explain", "").lower() in ("1", "true", "yes", "on")
        uploads = await read_images(request, state.limits)
        result = await _classify(state, service, uploads[0], explain)
        if "error" in result:
            return JSONResponse(result, status_code=result["status"])
        return JSONResponse({**_common(state, service, started), **result})

    async def predict_batch(request):
        started = time.perf_counter()
        service = _service(state)
        explain = request.query_params.get("explain", "").lower() in ("1", "true", "yes", "on")
        uploads = await read_images(request, state.limits, many=True)
        results = await asyncio.gather(*(_classify(state, service, upload, explain) for upload in uploads))
        body = {**_common(state, service, started), "results": list(results)}
        if all("error" in r for r in results):
            return JSONResponse({"error": "no file could be classified", "status": 400, **body}, status_code=400)
        return JSONResponse(body)

    async def http_error(request, error):
        return _error(error.status_code, error.detail or "")

    async def upload_error(request, error):
        response = _error(error.status, error.message)
        if error.status in (408, 413):  # the body was not read to its end: this connection is done
            response.headers["connection"] = "close"
        return response

    async def unexpected(request, error):
        return _error(500, f"internal error: {type(error).__name__}: {str(error)[:200]}")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", page, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/predict/batch", predict_batch, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, UploadError: upload_error, Exception: unexpected},
    )
    app.state.catdog = state
    return MetricsMiddleware(app, state.metrics)


class MetricsMiddleware:
    """Counts every HTTP answer by path and status and times it (pure ASGI)."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def timed_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send=timed_send)
        finally:
            path = scope["path"] if scope["path"] in _KNOWN_PATHS or scope["path"].startswith("/static/") else "other"
            self.metrics.record_request(path, scope["method"], status[0], time.perf_counter() - started)


def _service(state):
    if state.service is None or not state.ready:
        if state.stopping:
            raise UploadError(503, "the server is shutting down")
        if state.error:
            raise UploadError(503, f"the model could not be loaded: {state.error}")
        raise UploadError(503, "the model is still loading; GET /healthz says when it is ready")
    return state.service


def _common(state, service, started):
    return {
        "model": os.path.basename(state.model_path),
        "image_size": service.image_size,
        "seconds": round(time.perf_counter() - started, 6),
    }


async def _classify(state, service, upload, explain):
    """One upload's answer: label and probabilities (and the overlay), or its error."""
    loop = asyncio.get_running_loop()
    named = {"filename": upload.filename} if upload.filename else {}
    try:
        image = await loop.run_in_executor(state.decode_pool, prepare, upload.content, service.image_size, state.max_pixels)
        probabilities, heat_map = await state.batcher.submit(image, explain)
    except UploadError as error:
        return {**named, "error": error.message, "status": error.status}
    except BatcherStopped:
        return {**named, "error": "the server is shutting down", "status": 503}
    answer = {**named, **service.answer(probabilities)}
    if explain:
        if heat_map is None:
            answer["explanation_error"] = "Grad-CAM needs the TensorFlow backend"
        else:
            answer["explanation"] = await loop.run_in_executor(state.decode_pool, overlay_data_url, upload.content, heat_map)
    return answer


def prepare(content, image_size, max_pixels=MAX_PIXELS):
    """Upload bytes -> the model's input, as `catdog predict` decodes a file (or UploadError)."""
    from catdog.data.photos import UndecodableImage, decode_bytes

    if not content:
        raise UploadError(400, "empty upload: the body holds no bytes")
    check_pixels(content, max_pixels)
    try:
        return decode_bytes(content, image_size)
    except UndecodableImage as error:
        raise UploadError(
            400, f"cannot read the image: {error} (JPEG, PNG, GIF, BMP, WebP and TIFF are supported)"
        ) from None


def check_pixels(content, max_pixels):
    """Refuse an image whose header declares more than `max_pixels`, before decoding it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise UploadError(413, f"image too large: over the budget of {max_pixels:,} pixels") from None
    except Exception:  # not readable as an image: decoding says why
        return
    if width * height > max_pixels:
        raise UploadError(413, f"image too large: {width} x {height} pixels is over the budget of {max_pixels:,}")


def overlay_data_url(content, heat_map):
    """The photo (longest side at most OVERLAY_SIDE) with its heat map blended on, as a PNG data URL."""
    from PIL import Image

    from catdog.data.decode import decode_pil
    from catdog.evaluation.gradcam import overlay

    pixels = decode_pil(io.BytesIO(content), OVERLAY_SIDE)
    if max(pixels.shape[:2]) > OVERLAY_SIDE:
        picture = Image.fromarray(pixels)
        picture.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.LANCZOS)
        pixels = np.asarray(picture)
    buffer = io.BytesIO()
    Image.fromarray(overlay(pixels, heat_map)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _error(status, message):
    return JSONResponse({"error": message, "status": status}, status_code=status)
