"""API Gateway, locally: HTTP on 127.0.0.1 turned into REST proxy events for the hosted functions."""

from __future__ import annotations

import base64
import json
import socket
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from functions.local.events import api_gateway_event
from functions.local.host import FunctionHost
from functions.routes import FUNCTION_OF

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024


JSON_HEADERS = {"Content-Type": "application/json"}
# What API Gateway (REST, IAM auth) answers for a method or path the API does not define.
MISSING_TOKEN = json.dumps({"message": "Missing Authentication Token"}).encode()


class _ApiRequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Each response leaves in one write; without NODELAY a keep-alive client would still wait for
        # its delayed ACK whenever a write follows another unacknowledged one.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request the gateway cannot read, and close: its body may still be on the wire."""
        self.close_connection = True
        self._reply(status, dict(JSON_HEADERS), json.dumps({"message": message}).encode())

    def _body_length(self) -> int | None:
        """The declared body length; None after refusing a chunked, malformed or oversized one."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(411, "chunked request bodies are not accepted: send Content-Length")
            return None
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():  # also refuses "-1" and "+5"
            self._refuse(400, f"Content-Length must be a non-negative integer, got {declared[:40]!r}")
            return None
        length = int(declared)
        if length > API_GATEWAY_MAX_BODY:
            self._refuse(413, "request body exceeds 10 MB")
            return None
        return length

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = self._body_length()
        if length is None:
            return
        raw = self.rfile.read(length) if length else b""
        function = FUNCTION_OF.get((method, url.path))
        if function is None:
            self._reply(403, {**JSON_HEADERS, "x-amzn-ErrorType": "MissingAuthenticationTokenException"}, MISSING_TOKEN)
            return
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
            response = self.server.host.invoke(function, event)
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
        """Status line, headers and body in one write."""
        reason = self.responses[status][0] if status in self.responses else ""
        head = [f"{self.protocol_version} {status} {reason}", f"Date: {self.date_time_string()}"]
        head += [f"{key}: {value}" for key, value in headers.items()]
        head.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            head.append("Connection: close")
        self.log_request(status)
        body = b"" if self.command == "HEAD" else data
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        if self.server.access_log is not None:
            self.server.access_log(f"{self.address_string()} {format % args}")


class ApiServer(ThreadingHTTPServer):
    """The local REST API, on loopback only."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: 32 clients connecting at once must not be reset

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
