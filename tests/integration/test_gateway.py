"""The local gateway behaves like API Gateway on the wire: one write per response, a deep backlog, clear
refusals of bodies it cannot read, and API Gateway's 403 for what the API does not define."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest

from functions.local.gateway import ApiServer, _ApiRequestHandler
from functions.local.host import FunctionHost

pytestmark = pytest.mark.integration


class EchoHost:
    """Stands in for the hosted functions: answers every invocation with the function and path it got."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, str]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        self.invoked.append((function, event["path"]))
        body = json.dumps({"function": function, "body": event["body"]})
        return {"statusCode": 200, "multiValueHeaders": {"Retry-After": ["5"]}, "body": body}


class _CountingWriter:
    def __init__(self, inner: Any, writes: list[int]) -> None:
        self._inner, self._writes = inner, writes

    def write(self, data: bytes) -> int:
        self._writes.append(len(data))
        return int(self._inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


WRITES: list[int] = []


class CountingHandler(_ApiRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.wfile = cast(Any, _CountingWriter(self.wfile, WRITES))


@pytest.fixture
def server() -> Iterator[tuple[ApiServer, EchoHost]]:
    host = EchoHost()
    api = ApiServer(0, cast(FunctionHost, host), None)
    api.RequestHandlerClass = CountingHandler
    api.start()
    try:
        yield api, host
    finally:
        api.stop()


def _raw(api: ApiServer, request: bytes) -> bytes:
    """Send ``request`` as is on a new connection; everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", api.server_address[1]), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_json(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_every_response_leaves_in_one_write_on_a_keep_alive_connection(server):
    api, host = server
    WRITES.clear()
    connection = http.client.HTTPConnection("127.0.0.1", api.server_address[1], timeout=5)
    for i in range(3):
        connection.request("POST", "/predict", body=json.dumps({"i": i}), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["function"] == "predict"
        assert response.getheader("Retry-After") == "5"  # multi-value headers are passed on
    connection.close()

    assert len(WRITES) == 3  # one per response: headers and body together
    assert host.invoked == [("predict", "/predict")] * 3


def test_the_listen_backlog_takes_many_clients_connecting_at_once(server):
    api, _ = server
    assert api.request_queue_size >= 128
    sockets = [socket.create_connection(("127.0.0.1", api.server_address[1]), timeout=5) for _ in range(64)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        statuses = [int(sock.recv(65536).split(b" ", 2)[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert statuses == [200] * 64


@pytest.mark.parametrize(
    ("header", "status", "reason"),
    [
        pytest.param(b"Content-Length: abc", 400, "Content-Length must be a non-negative integer", id="not-a-number"),
        pytest.param(b"Content-Length: -1", 400, "Content-Length must be a non-negative integer", id="negative"),
        pytest.param(b"Transfer-Encoding: chunked", 411, "chunked request bodies are not accepted", id="chunked"),
        pytest.param(b"Content-Length: 10485761", 413, "request body exceeds 10 MB", id="over-10-MB"),
    ],
)
def test_a_body_the_gateway_cannot_read_is_refused_with_json_and_the_connection_closed(
    server, header: bytes, status: int, reason: str
):
    api, host = server
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + header + b"\r\n\r\n"

    answer = _raw(api, request + b"5\r\n{}{}{\r\n0\r\n\r\n")  # closes: the server does not wait for more

    assert _status_and_json(answer) == (status, {"message": _status_and_json(answer)[1]["message"]})
    assert _status_and_json(answer)[1]["message"].startswith(reason)
    assert b"Connection: close" in answer.partition(b"\r\n\r\n")[0]
    assert host.invoked == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/predict"), ("GET", "/predict"), ("DELETE", "/outcomes"), ("POST", "/nowhere"), ("OPTIONS", "/health")],
)
def test_what_the_api_does_not_define_gets_api_gateways_403_in_json(server, method: str, path: str):
    api, host = server
    connection = http.client.HTTPConnection("127.0.0.1", api.server_address[1], timeout=5)
    connection.request(method, path, body=b"{}" if method != "OPTIONS" else None)
    response = connection.getresponse()

    assert response.status == 403
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read()) == {"message": "Missing Authentication Token"}
    assert host.invoked == []
    connection.close()
