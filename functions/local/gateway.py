"""API Gateway, locally: HTTP on 127.0.0.1 turned into REST proxy events for the hosted functions."""

from __future__ import annotations

import base64
import json
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from functions.local.events import api_gateway_event
from functions.local.host import FunctionHost

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/predict"): "predict",
    ("GET", "/model"): "predict",
    ("GET", "/health"): "predict",
    ("POST", "/outcomes"): "log_outcome",
}


class _ApiRequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > API_GATEWAY_MAX_BODY:
            body = {"code": "payload_too_large", "message": "request body exceeds 10 MB"}
            self._reply(413, {"Content-Type": "application/json"}, json.dumps(body).encode())
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        try:
            text, encoded = (raw.decode("utf-8") if raw else None), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(raw).decode(), True
        event = api_gateway_event(
            method,
            url.path,
            text,
            headers=dict(self.headers.items()),
            query=dict(parse_qsl(url.query)),
            source_ip=self.client_address[0],
        )
        event["isBase64Encoded"] = encoded
        try:
            response = self.server.host.invoke(ROUTES.get((method, url.path), "predict"), event)
        except Exception:  # noqa: BLE001 - a crashed invocation is a 502 at API Gateway too
            traceback.print_exc()
            response = {"statusCode": 502, "body": json.dumps({"message": "Internal server error"})}
        payload = response.get("body") or ""
        data = payload.encode() if isinstance(payload, str) else payload
        if response.get("isBase64Encoded"):
            data = base64.b64decode(data)
        headers = {k: v for k, v in (response.get("headers") or {}).items() if isinstance(v, str)}
        for key, values in (response.get("multiValueHeaders") or {}).items():  # API Gateway merges both
            if isinstance(values, list) and values:
                headers[key] = ", ".join(str(v) for v in values)
        headers.setdefault("Content-Type", "application/json")
        headers["x-amzn-RequestId"] = event["requestContext"]["requestId"]
        self._reply(int(response.get("statusCode", 502)), headers, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        if self.server.access_log is not None:
            self.server.access_log(f"{self.address_string()} {format % args}")


class ApiServer(ThreadingHTTPServer):
    """The local REST API, on loopback only."""

    daemon_threads = True

    def __init__(self, port: int, host: FunctionHost, access_log: Callable[[str], None] | None) -> None:
        super().__init__(("127.0.0.1", port), _ApiRequestHandler)
        self.host = host
        self.access_log = access_log
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="local-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
