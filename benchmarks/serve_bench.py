"""The serving section of `make bench`: `catdog serve` under load, on loopback only.

The raw model's batched throughput on in-memory tensors is measured first (in
this process, the server not yet started); then `catdog serve` runs in a
subprocess on 127.0.0.1 and 1, 4 and 16 client threads post real photos (kept
in memory) over persistent connections. Every load level is bounded by a
number of requests and by a time limit, and the whole run stops by itself.
The server's resident memory is read from /proc after the first 100 requests
and after 2,000 (its peak too).
"""

import http.client
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"

FULL = dict(photos=200, levels=((1, 200), (4, 600), (16, 1200)), warm_requests=100, rss_after=2000, level_seconds=120, raw_repeats=3)
QUICK = dict(photos=12, levels=((1, 8), (4, 16), (16, 32)), warm_requests=8, rss_after=48, level_seconds=60, raw_repeats=1)


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def bench_serving(model_path, photo_dir, quick=False, batch_size=32, max_batch=32, max_wait_ms=5.0):
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        return {"skipped": f'needs the serve extra (pip install "catdog[serve]"): no {error.name}'}
    q = QUICK if quick else FULL
    photos = _photos(photo_dir, q["photos"])
    load_before = os.getloadavg()
    raw_rate = raw_batched_throughput(model_path, photos, batch_size)
    raw = _stats([raw_rate() for _ in range(q["raw_repeats"])], batch_size)
    results = {
        "n_photos": len(photos), "max_batch": max_batch, "max_wait_ms": max_wait_ms,
        "raw_batched_per_s": raw, "levels": {}, "load_average_before": load_before,
    }
    with tempfile.TemporaryDirectory(prefix="catdog-serve-bench-") as scratch:
        server = _start(model_path, scratch, max_batch, max_wait_ms)
        try:
            sent = 0
            log(f"serving: {q['warm_requests']} warm-up requests (4 clients)")
            _load(server["port"], photos, 4, q["warm_requests"], q["level_seconds"])
            sent += q["warm_requests"]
            results["rss_mib_after_warm_up"] = {"requests": sent, "rss": _rss_mib(server["pid"])}
            for clients, requests in q["levels"]:
                if clients == 16:  # the raw model again, next to the level it is compared with
                    beside = [raw_rate()]
                log(f"serving: {clients} concurrent client(s), {requests} requests")
                before = _batch_counts(server["port"])
                level = _load(server["port"], photos, clients, requests, q["level_seconds"])
                after = _batch_counts(server["port"])
                if clients == 16:
                    beside.append(raw_rate())
                    results["raw_batched_per_s_beside_16"] = _stats(beside, batch_size)
                calls = after[1] - before[1]
                level["mean_batch"] = (after[0] - before[0]) / calls if calls else None
                results["levels"][str(clients)] = level
                sent += level["requests"]
            results["rss_mib_at_end"] = {"requests": sent, "rss": _rss_mib(server["pid"])}
            results["peak_rss_mib"] = _rss_mib(server["pid"], "VmHWM")
        finally:
            results["server_exit_code"] = _stop(server)
    results["load_average_after"] = os.getloadavg()
    one, many = results["levels"]["1"], results["levels"]["16"]
    results["throughput_ratio_16"] = many["images_per_s"] / results["raw_batched_per_s_beside_16"]["median"]
    results["p99_16_over_p50_1"] = many["p99_ms"] / one["p50_ms"]
    results["errors"] = sum(level["errors"] for level in results["levels"].values())
    results["rss_growth_mib"] = results["rss_mib_at_end"]["rss"] - results["rss_mib_after_warm_up"]["rss"]
    results["rss_after_target"] = q["rss_after"]
    return results


def raw_batched_throughput(model_path, photos, batch_size):
    """A function measuring the model alone: images/s on decoded in-memory batches
    (`Predictor`, as `catdog predict`). Run while the server is idle."""
    import numpy as np

    import catdog
    from catdog.data.photos import decode_bytes
    from catdog.serving.inference import Predictor

    model = catdog.load_model(model_path)
    images = np.stack([decode_bytes(content, model.image_size) for content in photos])
    predictor = Predictor(model)
    for size in (batch_size, len(images) % batch_size or batch_size):
        predictor(images[:size])

    def measure():
        log("serving: the raw model on in-memory batches")
        started = time.perf_counter()
        for start in range(0, len(images), batch_size):
            predictor(images[start:start + batch_size])
        return len(images) / (time.perf_counter() - started)

    return measure


def _stats(rates, batch_size):
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "n": len(rates), "batch_size": batch_size}


def _photos(folder, count):
    folder = pathlib.Path(folder)
    per_class = count // 2
    paths = []
    for name in ("cats", "dogs"):
        paths += sorted((folder / name).glob("*.jpg"))[:per_class]
    return [path.read_bytes() for path in paths]


def _start(model_path, scratch, max_batch, max_wait_ms):
    log_path = pathlib.Path(scratch) / "server.log"
    with open(log_path, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "catdog", "serve", str(model_path), "--host", HOST, "--port", "0",
             "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)],
            stdout=handle, stderr=subprocess.STDOUT,
        )
    deadline, port = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if port is None:
            found = re.search(rf"http://{re.escape(HOST)}:(\d+)/", text)
            port = int(found.group(1)) if found else None
        if port is not None and "catdog: ready" in text:
            return {"process": process, "port": port, "pid": process.pid, "log": log_path}
        if process.poll() is not None:
            raise RuntimeError(f"catdog serve exited with {process.returncode}: {text[-2000:]}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("catdog serve was not ready within 300 s")


def _stop(server):
    process = server["process"]
    process.terminate()
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _load(port, photos, clients, requests, max_seconds):
    """`requests` POSTs from `clients` threads (persistent connections), or fewer if time runs out."""
    latencies, errors, counter, lock = [], [], [0], threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(index):
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if counter[0] >= requests:
                    break
                number = counter[0]
                counter[0] += 1
            body = photos[number % len(photos)]
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and b'"label"' in answer
            except (OSError, http.client.HTTPException) as error:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=60)
                answer = str(error).encode()
            seconds = time.perf_counter() - started
            with lock:
                (latencies if ok else errors).append(seconds if ok else answer[:200].decode("utf-8", "replace"))
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    milliseconds = sorted(1000 * s for s in latencies)
    return {
        "clients": clients, "requests": len(latencies) + len(errors), "errors": len(errors),
        "first_errors": errors[:3], "seconds": wall, "images_per_s": len(latencies) / wall,
        "p50_ms": _percentile(milliseconds, 50), "p95_ms": _percentile(milliseconds, 95),
        "p99_ms": _percentile(milliseconds, 99), "timed_out": len(latencies) + len(errors) < requests,
    }


def _percentile(values, q):
    if not values:
        return float("nan")
    position = (len(values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _batch_counts(port):
    """(images, model calls) so far, from the server's /metrics."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return float(values["catdog_batch_size_sum"]), float(values["catdog_batch_size_count"])


def _rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def render(serving):
    """BENCHMARKS.md's serving section."""
    lines = ["## 6. Serving: `catdog serve` under load (loopback)", ""]
    if "skipped" in serving:
        return lines + [f"Skipped: {serving['skipped']}.", ""]
    raw, beside = serving["raw_batched_per_s"], serving["raw_batched_per_s_beside_16"]
    lines += [
        (f"Model: {serving['model']}. " if serving.get("model") else "")
        + f"{serving['n_photos']} photos kept in memory, posted as raw JPEG bodies over persistent connections "
        f"by 1, 4 and 16 client threads on 127.0.0.1; server `--max-batch {serving['max_batch']} "
        f"--max-wait-ms {serving['max_wait_ms']:g}`. Load average (1, 5, 15 min) before: "
        + ", ".join(f"{v:.2f}" for v in serving["load_average_before"])
        + "; after: " + ", ".join(f"{v:.2f}" for v in serving["load_average_after"]) + ".",
        "",
        "| clients | requests | errors | images/s | p50 ms | p95 ms | p99 ms | mean batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for clients, level in serving["levels"].items():
        batch = "" if level.get("mean_batch") is None else f"{level['mean_batch']:.1f}"
        lines.append(
            f"| {clients} | {level['requests']}{' (time limit)' if level['timed_out'] else ''} | {level['errors']} | "
            f"{level['images_per_s']:.1f} | {level['p50_ms']:.1f} | {level['p95_ms']:.1f} | {level['p99_ms']:.1f} | {batch} |"
        )
    start, end = serving["rss_mib_after_warm_up"], serving["rss_mib_at_end"]
    ok_rss = abs(serving["rss_growth_mib"]) <= 50 and end["requests"] >= serving["rss_after_target"]
    lines += [
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| raw model, in-memory batches of {raw['batch_size']}, images/s, before the server started | {raw['median']:.1f} ({raw['min']:.1f}–{raw['max']:.1f}) | |",
        f"| same, just before and just after the 16-client level (server idle) | {beside['median']:.1f} ({beside['min']:.1f}–{beside['max']:.1f}) | |",
        f"| 16 clients / raw batched throughput beside it | {serving['throughput_ratio_16']:.3f} | >= 0.8: {_verdict(serving['throughput_ratio_16'] >= 0.8)} |",
        f"| errors, all levels | {serving['errors']} | 0: {_verdict(serving['errors'] == 0)} |",
        f"| p99 at 16 clients / p50 at 1 client | {serving['p99_16_over_p50_1']:.2f} | <= 10: {_verdict(serving['p99_16_over_p50_1'] <= 10)} |",
        f"| server RSS after {start['requests']} requests → after {end['requests']}, MiB | {start['rss']:.0f} → {end['rss']:.0f} ({serving['rss_growth_mib']:+.0f}) | within 50 MB after {serving['rss_after_target']}: {_verdict(ok_rss)} |",
        f"| server peak RSS, MiB | {serving['peak_rss_mib']:.0f} | |",
        f"| server exit code after SIGTERM | {serving['server_exit_code']} | 0: {_verdict(serving['server_exit_code'] == 0)} |",
        "",
    ]
    return lines


def _verdict(ok):
    return "met" if ok else "**missed**"


def main(argv=None):
    """Run the section alone: `python benchmarks/serve_bench.py MODEL.keras PHOTO_DIR [--quick]`."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model")
    parser.add_argument("photos")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = bench_serving(args.model, args.photos, quick=args.quick)
    print(json.dumps(results, indent=1))
    print("\n".join(render(results)))


if __name__ == "__main__":
    main()
