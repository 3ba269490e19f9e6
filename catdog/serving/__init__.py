"""`catdog serve`: an HTTP API and a web page in front of one catdog model.

Modules, one concept each: `uploads` (bounded, timed request bodies),
`batcher` (concurrent requests gathered into one model call), `service` (the
model: loading, warm-up, one batched call, metadata), `metrics` (Prometheus
text), `app` (the Starlette routes), `server` (uvicorn, signals, timeouts). Needs the `serve` extra: `pip install "catdog[serve]"`.
"""
