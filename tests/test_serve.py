"""`catdog serve`: the real server in a subprocess, spoken to over HTTP on 127.0.0.1.

One server per module (TensorFlow's start-up is the slow part): a tiny model
(32x32, alpha 0.35, random weights, BatchNorm statistics and head set so that
P(dog) spreads over (0, 1)) in a run folder with metrics.json and
history.json. The last test stops it with SIGTERM while requests are in flight.
"""

import http.client
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_PHOTOS, ROOT, assert_one_line_error, calibrate_batchnorm, run_cli, tiny_model
from messy import png16

pytest.importorskip("starlette", reason='catdog serve needs the serve extra (pip install "catdog[serve]")')
pytest.importorskip("uvicorn", reason='catdog serve needs the serve extra (pip install "catdog[serve]")')

HOST = "127.0.0.1"
MAX_UPLOAD_MB = 3
READ_TIMEOUT = 2.0
MAX_BATCH = 8
TOLERANCE = 1e-5
REAL_PHOTOS = sorted((SHARED_PHOTOS / "validation" / "cats").glob("*.jpg"))[:3] + sorted(
    (SHARED_PHOTOS / "validation" / "dogs").glob("*.jpg")
)[:3]


# --- the model, the photos and the server ------------------------------------


def noisy(rng, height, width, tint):
    return np.clip(np.array(tint, np.float32) + rng.normal(0, 50, (height, width, 3)), 0, 255).astype(np.uint8)


def write_odd_images(folder, rng):
    """Valid images of every odd kind, with content (not flat colours): name -> route predict takes."""
    folder.mkdir(parents=True)
    written = {}
    for i in range(4):
        tint = (200, 90, 50) if i % 2 else (50, 90, 200)
        Image.fromarray(noisy(rng, 60 + 7 * i, 80 - 5 * i, tint)).save(folder / f"plain{i}.jpg", quality=90)
        written[f"plain{i}.jpg"] = "tf"
    Image.fromarray(noisy(rng, 50, 40, (90, 160, 90))).save(folder / "plain.png")
    written["plain.png"] = "tf"
    rgba = np.dstack([noisy(rng, 40, 52, (200, 80, 60)), rng.integers(0, 256, (40, 52), dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    written["alpha.png"] = "pil"
    Image.fromarray(noisy(rng, 44, 36, (60, 80, 210))).convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    written["cmyk.jpg"] = "pil"
    rotated = Image.fromarray(noisy(rng, 30, 64, (180, 120, 40)))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "rotated.jpg", exif=exif, quality=92)
    written["rotated.jpg"] = "pil"
    Image.fromarray((rng.integers(0, 65536, (36, 48))).astype(np.uint16)).save(folder / "grey16.png")
    written["grey16.png"] = "pil"
    png16(folder / "rgb16.png", rng.integers(0, 65536, (30, 40, 3)).astype(np.uint16))
    written["rgb16.png"] = "tf"
    Image.fromarray(noisy(rng, 40, 40, (120, 60, 160))).convert("P").save(folder / "still.gif")
    written["still.gif"] = "tf"
    frames = [Image.fromarray(noisy(rng, 32, 30, tint)).convert("P") for tint in ((200, 50, 50), (50, 50, 200))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    written["animated.gif"] = "pil"
    Image.fromarray(noisy(rng, 33, 47, (100, 100, 100)).mean(-1).astype(np.uint8)).save(folder / "grey.jpg")
    written["grey.jpg"] = "tf"
    Image.fromarray(noisy(rng, 30, 50, (220, 200, 40))).save(folder / "photo.webp")
    written["photo.webp"] = "pil"
    Image.fromarray(noisy(rng, 21, 17, (40, 200, 200))).save(folder / "bitmap.bmp")
    written["bitmap.bmp"] = "tf"
    for path in REAL_PHOTOS:
        shutil.copy(path, folder / path.name)
        written[path.name] = "tf"
    return written


def spread_model(rng):
    """TINY with BatchNorm statistics from noise photos and a head whose logits spread."""
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_model()
    images = np.stack([noisy(rng, 32, 32, (rng.integers(40, 220, 3))) for _ in range(16)])
    calibrate_batchnorm(model, images)
    features = keras.ops.convert_to_numpy(model.pool(model.backbone(model.preprocessor(images), training=False)))
    kernel = rng.normal(0, 1, (features.shape[1], 1)).astype(np.float32)
    logits = (features - features.mean(0)) @ kernel
    scale = 2.0 / max(float(np.median(np.abs(logits))), 1e-6)
    model.classifier.set_weights([kernel * scale, (-features.mean(0) @ kernel * scale).astype(np.float32)])
    return model


class Server:
    def __init__(self, process, port, log_path):
        self.process, self.port, self.log_path = process, port, log_path

    def log(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")


def start_server(model_path, workdir, *extra):
    """`catdog serve` in a subprocess on a free port (--port 0); waits until /healthz says ready."""
    log_path = workdir / "server.log"
    env = {**os.environ, "TMPDIR": str(workdir / "tmp"), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    (workdir / "tmp").mkdir(exist_ok=True)
    (workdir / "cwd").mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "catdog", "serve", str(model_path), "--host", HOST, "--port", "0",
             "--max-batch", str(MAX_BATCH), "--max-upload-mb", str(MAX_UPLOAD_MB),
             "--read-timeout", str(READ_TIMEOUT), "--max-wait-ms", "20", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir / "cwd",
        )
    deadline, port = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if port is None and f"http://{HOST}:" in text:
            port = int(text.split(f"http://{HOST}:", 1)[1].split("/", 1)[0])
        if port is not None:
            try:
                status, body = get(port, "/healthz")
                if status == 200 and body["status"] == "ready":
                    return Server(process, port, log_path)
            except OSError:
                pass
        if process.poll() is not None:
            raise AssertionError(f"catdog serve exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.25)
    process.kill()
    raise AssertionError("catdog serve was not ready within 180 s:\n" + log_path.read_text()[-3000:])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    run = root / "run"
    run.mkdir()
    spread_model(rng).save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.875, "auc": 0.9, "n_images": 8, "confidently_wrong": [{"path": "x"}]}))
    (run / "history.json").write_text(json.dumps({"epochs": [{"epoch": 1, "stage": 1, "val_accuracy": 0.75}, {"epoch": 2, "stage": 2, "val_accuracy": 0.875}]}))
    photos = root / "photos"
    routes = write_odd_images(photos, rng)
    server = start_server(run / "model.keras", root)
    yield {"server": server, "model": run / "model.keras", "photos": photos, "routes": routes, "root": root}
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


# --- HTTP helpers --------------------------------------------------------------


def request(port, method, path, body=None, headers=None, timeout=60):
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        kind = response.getheader("content-type", "")
        return response.status, (json.loads(data) if kind.startswith("application/json") else data.decode())
    finally:
        connection.close()


def get(port, path):
    return request(port, "GET", path, timeout=10)


def post_image(port, content, kind="image/jpeg", path="/predict"):
    return request(port, "POST", path, content, {"Content-Type": kind})


def multipart(files):
    boundary = "catdog-test-boundary-7f3a"
    parts = []
    for name, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def raw_exchange(port, chunks, pause=0.0, timeout=20):
    """Send raw bytes (a list of chunks, `pause` s apart), then read until the server closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed early: read what it said
                break
            time.sleep(pause)
        data = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
        except OSError:
            pass
    return data


def parse_raw(data):
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(body)


def assert_healthy(port):
    status, body = get(port, "/healthz")
    assert (status, body["status"]) == (200, "ready")


def predict_cli(capsys, model, *paths):
    """`catdog predict --json` (in this process): {file name: P(dog)}."""
    code, out, err = run_cli(capsys, "predict", model, *paths, "--json")
    assert code == 0, err
    return {os.path.basename(row["path"]): row["p_dog"] for row in map(json.loads, out.splitlines())}


# --- the endpoints ---------------------------------------------------------------


def test_predict_matches_catdog_predict_for_every_kind_of_image(served, capsys):
    port, photos = served["server"].port, served["photos"]
    from catdog.data.screening import choose_decoder

    # The odd images take the decoder route they were written for (else this tests less than it says).
    assert {name: choose_decoder(str(photos / name))[0] for name in served["routes"]} == served["routes"]
    expected = predict_cli(capsys, served["model"], photos)
    assert set(expected) == set(served["routes"])
    assert np.std(list(expected.values())) > 0.05  # P(dog) spreads: agreement means something
    for name in sorted(served["routes"]):
        status, body = post_image(port, (photos / name).read_bytes(), "application/octet-stream")
        assert status == 200, (name, body)
        assert body["probabilities"]["dog"] == pytest.approx(expected[name], abs=TOLERANCE), name
        assert body["probabilities"]["cat"] == pytest.approx(1 - expected[name], abs=TOLERANCE), name
        assert body["label"] == ("dog" if expected[name] >= 0.5 else "cat")
        assert body["model"] == "model.keras" and body["image_size"] == 32 and 0 < body["seconds"] < 30


def test_multipart_explain_and_batch(served, capsys):
    port, photos = served["server"].port, served["photos"]
    expected = predict_cli(capsys, served["model"], photos / "plain0.jpg", photos / "rotated.jpg")
    body, headers = multipart([("rotated.jpg", (photos / "rotated.jpg").read_bytes())])
    status, answer = request(port, "POST", "/predict?explain=1", body, headers)
    assert status == 200, answer
    assert answer["filename"] == "rotated.jpg"
    assert answer["probabilities"]["dog"] == pytest.approx(expected["rotated.jpg"], abs=TOLERANCE)
    prefix = "data:image/png;base64,"
    assert answer["explanation"].startswith(prefix)
    import base64

    with Image.open(io.BytesIO(base64.b64decode(answer["explanation"][len(prefix):]))) as overlay:
        assert overlay.format == "PNG" and overlay.size == (30, 64)  # the photo as displayed (EXIF: portrait)

    files = [("plain0.jpg", (photos / "plain0.jpg").read_bytes()), ("notes.jpg", b"just text"), ("rotated.jpg", (photos / "rotated.jpg").read_bytes())]
    status, answer = request(port, "POST", "/predict/batch", *multipart(files))
    assert status == 200, answer
    results = answer["results"]
    assert [r["filename"] for r in results] == ["plain0.jpg", "notes.jpg", "rotated.jpg"]
    assert results[0]["probabilities"]["dog"] == pytest.approx(expected["plain0.jpg"], abs=TOLERANCE)
    assert results[2]["probabilities"]["dog"] == pytest.approx(expected["rotated.jpg"], abs=TOLERANCE)
    assert results[1]["status"] == 400 and "not an image" in results[1]["error"]
    assert "explanation" not in results[0]
    # Several files sent to /predict: a clear 400 that points to /predict/batch.
    status, answer = request(port, "POST", "/predict", *multipart(files[:1] * 2))
    assert status == 400 and "/predict/batch" in answer["error"]


def test_concurrent_requests_share_model_calls(served, capsys):
    port, photos = served["server"].port, served["photos"]
    names = [n for n, route in sorted(served["routes"].items())][:12]
    expected = predict_cli(capsys, served["model"], *(photos / n for n in names))
    answers, errors = {}, []

    def client(name):
        try:
            answers[name] = post_image(port, (photos / name).read_bytes(), "image/png")
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    before = metric_values(get(port, "/metrics")[1])
    threads = [threading.Thread(target=client, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name in names:
        status, body = answers[name]
        assert status == 200 and body["probabilities"]["dog"] == pytest.approx(expected[name], abs=TOLERANCE)
    after = metric_values(get(port, "/metrics")[1])
    images = after["catdog_images_total"] - before["catdog_images_total"]
    calls = after["catdog_batch_size_count"] - before["catdog_batch_size_count"]
    assert images == len(names)
    assert calls < len(names)  # some requests shared a model call


def test_probability_matrix_and_labels():
    from catdog.serving.service import label_index, probability_matrix

    two = probability_matrix(np.array([[0.25], [0.5]], np.float32))
    np.testing.assert_allclose(two, [[0.75, 0.25], [0.5, 0.5]])
    assert [label_index(row, sigmoid=True) for row in two] == [0, 1]  # a tie goes to dog, as in predict
    three = probability_matrix(np.array([[0.2, 0.5, 0.3]]))
    assert three.shape == (1, 3) and label_index(three[0], sigmoid=False) == 1


def metric_values(text):
    """Prometheus text -> {sample name with labels: value}."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_healthz_metadata_metrics_and_page(served):
    port = served["server"].port
    status, body = get(port, "/healthz")
    assert status == 200 and body["status"] == "ready" and body["model"] == "model.keras"

    status, meta = get(port, "/metadata")
    assert status == 200
    import keras

    import catdog

    assert meta["class_names"] == ["cat", "dog"] and meta["image_size"] == 32
    assert meta["backbone"] == "MobileNetV2" and meta["backbone_alpha"] == 0.35
    assert meta["catdog_version"] == catdog.__version__ and meta["keras_version"] == keras.__version__
    assert meta["training"]["metrics"] == {"accuracy": 0.875, "auc": 0.9, "n_images": 8}
    assert meta["training"]["final_epoch"]["val_accuracy"] == 0.875 and meta["training"]["epochs"] == 2
    assert meta["max_batch"] == MAX_BATCH and meta["max_upload_mb"] == MAX_UPLOAD_MB

    post_image(port, b"", "image/jpeg")  # one 400 to count
    status, text = get(port, "/metrics")
    assert status == 200
    values = metric_values(text)
    assert values['catdog_requests_total{path="/healthz",method="GET",status="200"}'] >= 2
    assert values['catdog_requests_total{path="/predict",method="POST",status="400"}'] >= 1
    assert values['catdog_request_duration_seconds_count{path="/predict"}'] == sum(
        v for k, v in values.items() if k.startswith('catdog_requests_total{path="/predict",')
    )
    assert values['catdog_batch_size_bucket{le="+Inf"}'] == values["catdog_batch_size_count"] > 0
    assert values["catdog_ready"] == 1
    assert "# TYPE catdog_request_duration_seconds histogram" in text

    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200 and response.getheader("content-type").startswith("text/html")
    assert "default-src 'self'" in response.getheader("content-security-policy")
    assert 'src="/static/app.js"' in page and "http://" not in page and "https://" not in page
    for name in ("app.js", "style.css"):
        status, text = get(port, f"/static/{name}")
        assert status == 200 and len(text) > 500 and "://" not in text
    assert get(port, "/static/../pyproject.toml")[0] == 404
    status, body = get(port, "/no-such-page")
    assert status == 404 and body["status"] == 404


# --- bad uploads: each a 4xx JSON error, the server still healthy after it -----------


def bomb_png(width, height):
    """A PNG whose header declares width x height, with a few KB of zeros as data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 2_000_000, 9)) + chunk(b"IEND", b"")


BAD_UPLOADS = {
    "empty body": (b"", "image/jpeg", 400, "empty"),
    "text as an image": (b"just some notes, not a photo\n" * 20, "image/jpeg", 400, "not an image"),
    "HTML as an image": (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "image/png", 400, "not an image"),
    "PDF (unsupported format)": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", "application/octet-stream", 400, "not an image"),
    "wrong content type": (b"\xff\xd8\xff\xe0 a jpeg, they say", "text/plain", 415, "content type"),
    "JSON content type": (b'{"image": "cat.jpg"}', "application/json", 415, "content type"),
    "no content type": (b"\xff\xd8\xff", None, 415, "content type"),
    "30000 x 30000 PNG bomb": (bomb_png(30000, 30000), "image/png", 413, "too large"),
    "10000 x 8000 PNG over the pixel budget": (bomb_png(10000, 8000), "image/png", 413, "10000 x 8000"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_a_clear_4xx_and_the_server_carries_on(served, case):
    port = served["server"].port
    content, kind, expected_status, fragment = BAD_UPLOADS[case]
    assert len(content) < 10_000
    headers = {"Content-Type": kind} if kind else {}
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    connection.putrequest("POST", "/predict", skip_accept_encoding=True)
    for name, value in {**headers, "Content-Length": str(len(content))}.items():
        connection.putheader(name, value)
    connection.endheaders(content)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == expected_status, body
    assert body["status"] == expected_status and fragment in body["error"], body
    assert_healthy(port)


def test_truncated_jpeg(served):
    port = served["server"].port
    content = (served["photos"] / "plain0.jpg").read_bytes()
    status, body = post_image(port, content[: len(content) // 2])
    assert status == 400 and "truncated" in body["error"]
    assert_healthy(port)


def test_upload_over_the_limit_by_content_length_and_while_streaming(served):
    port = served["server"].port
    limit = MAX_UPLOAD_MB * 1_000_000
    # Declared too large: refused from the headers, before the body is sent.
    started = time.monotonic()
    head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\nContent-Length: {limit + 1}\r\n\r\n"
    status, body = parse_raw(raw_exchange(port, [head.encode()]))
    assert status == 413 and "over the limit" in body["error"]
    assert time.monotonic() - started < READ_TIMEOUT  # not by a timeout
    # Chunked, no length declared: refused once the bytes read pass the limit.
    head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"\xff" * 65536
    chunks = [head.encode()] + [f"{len(piece):x}\r\n".encode() + piece + b"\r\n"] * (limit // len(piece) + 20)
    status, body = parse_raw(raw_exchange(port, chunks))
    assert status == 413 and "more than" in body["error"]
    # A Content-Length that lies (says little, sends more) is cut at the declared length by HTTP itself.
    assert_healthy(port)


def test_large_multipart_upload_is_kept_in_memory(served, capsys):
    """Starlette's form parser spools files over 1 MB to disk; catdog's parser does not."""
    port, root = served["server"].port, served["root"]
    big = served["photos"].parent / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (900, 900, 3), dtype=np.uint8)).save(big)
    assert 1_500_000 < big.stat().st_size < MAX_UPLOAD_MB * 1_000_000
    expected = predict_cli(capsys, served["model"], big)["big.png"]
    folders = (root / "tmp", root / "cwd")  # the server's TMPDIR and working folder

    def files():
        return {p: p.stat().st_size for folder in folders for p in folder.rglob("*")}

    before = files()  # TensorFlow's autograph leaves its generated code in TMPDIR when it traces
    status, answer = request(port, "POST", "/predict", *multipart([("big.png", big.read_bytes())]))
    assert status == 200 and answer["probabilities"]["dog"] == pytest.approx(expected, abs=TOLERANCE)
    assert files() == before
    assert list((root / "cwd").iterdir()) == []


def test_slow_clients_time_out_and_others_are_served(served):
    port = served["server"].port
    results = {}

    def stalled_body():
        head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n"
        results["body"] = raw_exchange(port, [head.encode(), b"\xff\xd8\xff" + b"\x00" * 100])

    def stalled_headers():
        results["headers"] = raw_exchange(port, [b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"])

    threads = [threading.Thread(target=stalled_body), threading.Thread(target=stalled_headers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert_healthy(port)  # answered while both slow clients hold their connections
    status, _ = post_image(port, (served["photos"] / "plain1.jpg").read_bytes())
    assert status == 200
    for t in threads:
        t.join(30)
    assert time.monotonic() - started < READ_TIMEOUT + 10
    status, body = parse_raw(results["body"])
    assert status == 408 and "timed out" in body["error"]
    status, body = parse_raw(results["headers"])
    assert status == 408 and "headers" in body["error"]
    assert_healthy(port)


# --- the page in a real browser ----------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
@pytest.mark.skipif(not REAL_PHOTOS, reason="needs ../shared (real photographs)")
def test_page_classifies_a_dropped_photo_in_chromium(served, capsys, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = REAL_PHOTOS[-1]  # a dog
    expected = predict_cli(capsys, served["model"], photo)[photo.name]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,800", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://{HOST}:{served['server'].port}/")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        driver.find_element(By.ID, "file-input").send_keys(str(photo))
        card = WebDriverWait(driver, 60).until(
            lambda d: next((c for c in d.find_elements(By.CSS_SELECTOR, ".card") if c.get_attribute("data-state") in ("done", "error")), None)
        )
        assert card.get_attribute("data-state") == "done", card.text
        label = card.find_element(By.CSS_SELECTOR, ".label").text
        assert label.lower() == ("dog" if expected >= 0.5 else "cat")
        shown = card.find_element(By.CSS_SELECTOR, 'li[data-class-name="dog"]').text
        assert shown.startswith("dog ") and float(shown[4:].rstrip("%")) == pytest.approx(100 * expected, abs=0.051)
        heat_map = card.find_element(By.CSS_SELECTOR, "img.heatmap")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", heat_map))
        assert heat_map.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", heat_map) > 0
        assert driver.execute_script("return arguments[0].naturalWidth", card.find_element(By.CSS_SELECTOR, "img.original")) > 0
        assert photo.name in card.text
    finally:
        driver.quit()


# --- the command line ---------------------------------------------------------------------


def test_serve_command_errors_are_one_line(served, capsys, tmp_path):
    code, _, err = run_cli(capsys, "serve", tmp_path / "missing.keras")
    assert_one_line_error(code, err, "model file not found")
    not_zip = tmp_path / "model.keras"
    not_zip.write_text("not a model")
    code, _, err = run_cli(capsys, "serve", not_zip)
    assert_one_line_error(code, err, "not a .keras model file")
    code, _, err = run_cli(capsys, "serve", served["model"], "--host", HOST, "--port", served["server"].port)
    assert_one_line_error(code, err, f"cannot listen on {HOST}:{served['server'].port}")
    code, _, err = run_cli(capsys, "serve", served["model"], "--max-batch", "0")
    assert code == 2 and "--max-batch" in err


def test_a_model_that_fails_to_load_is_reported(tmp_path):
    """The loading thread's error: /healthz says failed, the server is told to stop."""
    import zipfile

    from catdog.serving.app import ServerState
    from catdog.serving.uploads import Limits

    bad = tmp_path / "model.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", "{}")
    state = ServerState(bad, 4, 1, Limits(), 10**6, 1)
    messages = []
    state.on_fatal = messages.append
    state.load()
    assert not state.ready and messages and "cannot load" in messages[0]
    state.close()


# --- last: SIGTERM with requests in flight -------------------------------------------------


def test_sigterm_answers_requests_in_flight_then_exits_0(served):
    server, photos = served["server"], served["photos"]
    content = (photos / "plain2.jpg").read_bytes()
    answers = {}

    def slow_upload():
        # Headers and half the body now; the rest after SIGTERM has arrived.
        head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(content)}\r\n\r\n"
        half = len(content) // 2
        with socket.create_connection((HOST, server.port), timeout=30) as sock:
            sock.sendall(head.encode() + content[:half])
            time.sleep(0.8)
            sock.sendall(content[half:])
            data = b""
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
        answers["slow"] = parse_raw(data)

    def explained(i):
        answers[i] = request(server.port, "POST", "/predict?explain=1", content, {"Content-Type": "image/jpeg"})

    threads = [threading.Thread(target=slow_upload)] + [threading.Thread(target=explained, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    code = server.process.wait(60)
    assert code == 0, server.log()[-3000:]
    assert len(answers) == 7
    for key, (status, body) in answers.items():
        assert status == 200, (key, body)
        assert body["label"] in ("cat", "dog")
    assert "catdog: stopped" in server.log() and "Traceback" not in server.log()
    with pytest.raises(OSError):
        socket.create_connection((HOST, server.port), timeout=2).close()
