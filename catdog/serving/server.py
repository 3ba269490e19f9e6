"""Running the app under uvicorn: the socket, timeouts, signals, exit codes.

- The socket is bound here, before uvicorn starts, so a busy port is a
  one-line error (exit 2) and `--port 0` picks a free port, printed.
- uvicorn has no timeout for a client that sends its headers slowly and
  stops (slowloris); `HeaderTimeoutProtocol` answers 408 and closes such a
  connection. Slow bodies are timed by `catdog.serving.uploads`.
- SIGTERM and SIGINT stop accepting connections, let requests in flight be
  answered, then return 0. (uvicorn re-raises the signal after its graceful
  shutdown, which would end the process with -15; catdog does not.)
"""

import contextlib
import json
import signal
import socket
import sys

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from catdog.errors import ConfigError, ModelFileError

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout = 10.0

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self):
        self._timed_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self):
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def data_received(self, data):
        # The first bytes of a next request on a kept-alive connection start its clock
        # (an idle kept-alive connection is uvicorn's: closed after timeout_keep_alive).
        if getattr(self, "_header_timer", None) is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()
        super().data_received(data)

    def handle_events(self):
        super().handle_events()
        if getattr(self, "_header_timer", None) is not None and self.cycle is not self._timed_cycle:
            self._cancel_header_timer()  # a new request's headers are in

    def connection_lost(self, exc):
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _headers_too_slow(self):
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        body = json.dumps({"error": f"no complete request headers within {self.header_timeout:g} s", "status": 408}).encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode() + body
        )
        self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a clean shutdown."""

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host, port):
    """A listening TCP socket, or a one-line ConfigError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"cannot resolve --host {host}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_model_file(path):
    """The cheap checks of `catdog.loading.load_model`, before the server starts."""
    import os
    import zipfile

    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a .keras model file (not a zip archive)")


def serve(
    model_path,
    host="127.0.0.1",
    port=8000,
    max_batch=32,
    max_wait_ms=5.0,
    max_upload_mb=20.0,
    read_timeout=10.0,
    log=None,
):
    """Serve a `.keras` model until SIGTERM/SIGINT. Returns the exit code (0, or 2 if the model fails to load)."""
    from catdog.serving.app import create_app
    from catdog.serving.uploads import Limits

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    check_model_file(model_path)
    sock = bind(host, port)
    limits = Limits(max_bytes=int(max_upload_mb * 1_000_000), read_timeout=read_timeout)
    app = create_app(model_path, max_batch=max_batch, max_wait_ms=max_wait_ms, limits=limits)
    state = app.app.state.catdog
    protocol = type("CatdogH11Protocol", (HeaderTimeoutProtocol,), {"header_timeout": read_timeout})
    config = uvicorn.Config(
        app, http=protocol, lifespan="on", log_level="warning", access_log=False,
        timeout_keep_alive=5, timeout_graceful_shutdown=60,
    )
    server = _Server(config)

    def fatal(message):
        log(f"catdog: error: {message}")
        server.should_exit = True

    state.on_fatal = fatal
    state.on_ready = lambda seconds: log(f"catdog: ready (model loaded and warmed up in {seconds:.1f} s)")
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    log(f"catdog: serving {model_path} on http://{shown}:{bound_port}/ (loading the model; GET /healthz says when it is ready)")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if state.error:
        return 2
    log("catdog: stopped")
    return 0
