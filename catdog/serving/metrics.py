"""Counters and histograms in Prometheus' text exposition format (version 0.0.4).

Hand-written rather than `prometheus_client`: three metric families do not
need a dependency and its process-global registry.
"""

import math
import threading

#: Upper bounds (seconds) of the request latency histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds of the batch size histogram.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value):
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value

    def lines(self, name, labels=""):
        out, running = [], 0
        for bound, count in zip((*self.buckets, math.inf), self.counts):
            running += count
            le = "+Inf" if bound == math.inf else _number(bound)
            bound_label = 'le="%s"' % le
            out.append(f"{name}_bucket{{{_join(labels, bound_label)}}} {running}")
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {_number(self.sum)}")
        out.append(f"{name}_count{suffix} {running}")
        return out


class ServingMetrics:
    """What `GET /metrics` reports; safe to update from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = {}  # (path, method, status) -> count
        self.latency = {}  # path -> Histogram
        self.batches = Histogram(BATCH_BUCKETS)
        self.images = 0

    def record_request(self, path, method, status, seconds):
        with self._lock:
            key = (path, method, int(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault(path, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def record_batch(self, size):
        with self._lock:
            self.batches.observe(size)
            self.images += size

    def render(self, ready):
        with self._lock:
            lines = [
                "# HELP catdog_requests_total HTTP requests answered, by path, method and status code.",
                "# TYPE catdog_requests_total counter",
            ]
            for (path, method, status), count in sorted(self.requests.items()):
                lines.append(
                    f'catdog_requests_total{{path="{_escape(path)}",method="{method}",status="{status}"}} {count}'
                )
            lines += [
                "# HELP catdog_request_duration_seconds Time from the request to its answer, by path.",
                "# TYPE catdog_request_duration_seconds histogram",
            ]
            for path, histogram in sorted(self.latency.items()):
                lines += histogram.lines("catdog_request_duration_seconds", f'path="{_escape(path)}"')
            lines += [
                "# HELP catdog_batch_size Images per model call (dynamic batching).",
                "# TYPE catdog_batch_size histogram",
                *self.batches.lines("catdog_batch_size"),
                "# HELP catdog_images_total Images classified.",
                "# TYPE catdog_images_total counter",
                f"catdog_images_total {self.images}",
                "# HELP catdog_ready 1 once the model is loaded and warmed up.",
                "# TYPE catdog_ready gauge",
                f"catdog_ready {int(bool(ready))}",
            ]
        return "\n".join(lines) + "\n"


def _number(value):
    return repr(float(value))


def _join(*parts):
    return ",".join(p for p in parts if p)


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
