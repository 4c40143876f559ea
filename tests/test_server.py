"""The services' HTTP protocol (app/common/server.py `OneWriteHttp`): every answer arrives whole
and right, and a plain answer leaves in one write instead of uvicorn's two."""

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.common.observe import KEEP_ALIVE
from app.common.server import OneWriteHttp
from harness.procs import free_port


async def answer(request: Request) -> Response:
    return JSONResponse({"seats": 30, "name": "CPSC 101"}, headers={"X-Instance": "one"})


async def nothing(request: Request) -> Response:
    return Response(status_code=204)


async def chunks(request: Request) -> Response:
    async def parts():
        for part in (b"first,", b"second,", b"third"):
            yield part
            await asyncio.sleep(0.01)

    return StreamingResponse(parts(), media_type="text/plain")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


APP = Starlette(
    routes=[
        Route("/answer", answer, methods=["GET", "HEAD"]),
        Route("/nothing", nothing, methods=["DELETE"]),
        Route("/chunks", chunks),
        Route("/echo", echo, methods=["POST"]),
    ]
)


class Recorded:
    """A transport that passes everything on and remembers each write."""

    def __init__(self, transport, writes: list[bytes]) -> None:
        self._transport, self.writes = transport, writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def recording(protocol: type) -> tuple[type, list[bytes]]:
    writes: list[bytes] = []

    class Recording(protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(Recorded(transport, writes))

    return Recording, writes


@pytest.fixture(params=[OneWriteHttp, HttpToolsProtocol], ids=["one-write", "uvicorn"])
def served(request):
    """A uvicorn server with the protocol under test, in a thread; yields (url, writes, name)."""
    protocol, writes = recording(request.param)
    port = free_port()
    config = uvicorn.Config(
        APP, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", writes, request.param.__name__
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_plain_answer_leaves_in_one_write(served):
    url, writes, name = served
    with httpx.Client(base_url=url) as client:
        reply = client.get("/answer")
    assert reply.status_code == 200
    assert reply.json() == {"seats": 30, "name": "CPSC 101"}
    assert reply.headers["x-instance"] == "one"
    assert reply.headers["content-type"] == "application/json"
    expected = 1 if name == "OneWriteHttp" else 2  # uvicorn's own: headers, then body
    assert len(writes) == expected
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"".join(writes).endswith(b'{"seats":30,"name":"CPSC 101"}')


def test_answers_without_a_body_are_whole(served):
    url, writes, name = served
    with httpx.Client(base_url=url) as client:
        head = client.head("/answer")
        gone = client.delete("/nothing")
        after = client.get("/answer")  # the connection is still good for the next request
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(b'{"seats":30,"name":"CPSC 101"}'))
    assert gone.status_code == 204 and gone.content == b""
    assert after.json()["seats"] == 30
    if name == "OneWriteHttp":
        assert len(writes) == 3
        assert [w.split(b"\r\n", 1)[0] for w in writes] == [
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 200 OK",
        ]


def test_a_streamed_answer_arrives_whole_and_in_order(served):
    url, writes, name = served
    with httpx.Client(base_url=url) as client:
        reply = client.get("/chunks")
    assert reply.status_code == 200
    assert reply.text == "first,second,third"
    if name == "OneWriteHttp":
        assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert writes[0].endswith(b"first,\r\n")  # the head goes with the first chunk
        assert len(writes) == 4  # head and first chunk, two chunks, the end


def test_a_client_that_expects_100_continue_gets_it_first(served):
    """The interim "100 Continue" is sent before the answer's head, not held with it."""
    url, writes, name = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        received = b""
        while not received.endswith(b"hello"):
            part = sock.recv(4096)
            assert part, f"the connection closed early: {received!r}"
            received += part
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_services_clients_drop_an_idle_connection_before_uvicorn_closes_it():
    """The services' clients of each other (the relay, the auth primary's, the announcements,
    the directory, the notifier) let a kept-alive connection go before the server would: one
    kept as long as uvicorn keeps it could carry a write just as it closed."""
    served_for = uvicorn.Config(app=Starlette()).timeout_keep_alive  # the services set none
    assert KEEP_ALIVE.keepalive_expiry is not None
    assert KEEP_ALIVE.keepalive_expiry < served_for
