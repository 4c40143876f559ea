"""A small asyncio HTTP/1.1 client for load: hundreds of simultaneous requests cost the client
little, so what is measured is the server. (httpx spends seconds opening 300 connections at
once on a 2-core machine, which would swamp a burst test.) Loopback use only."""

import asyncio
import contextlib
import json as jsonlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self):
        return jsonlib.loads(self.body)


class Connection:
    """One keep-alive connection to host:port; requests on it go one after another."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, json=None
    ) -> Reply:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        body = b"" if json is None else jsonlib.dumps(json).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if json is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        return await self._read_reply()

    async def _read_reply(self) -> Reply:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        status = int(status_line.split()[1])
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, body)

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        out = b""
        while True:
            size = int((await self.reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return out
            out += await self.reader.readexactly(size)
            await self.reader.readline()


async def fetch(method: str, url: str, headers: dict[str, str] | None = None, json=None) -> Reply:
    """One request on a fresh connection."""
    parts = urlsplit(url)
    conn = Connection(url)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return await conn.request(method, path, headers, json)
    finally:
        await conn.close()


async def burst(requests: list[tuple[str, str, dict | None, object]]) -> list[Reply]:
    """Send all (method, url, headers, json) requests at the same moment, each on its own
    connection, opened beforehand so the requests really leave together."""
    conns = [Connection(url) for _, url, _, _ in requests]
    await asyncio.gather(*(c._open() for c in conns))
    go = asyncio.Event()

    async def one(conn: Connection, method, url, headers, body) -> Reply:
        await go.wait()
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            return await conn.request(method, path, headers, body)
        finally:
            await conn.close()

    tasks = [asyncio.create_task(one(c, *r)) for c, r in zip(conns, requests, strict=True)]
    await asyncio.sleep(0.05)
    go.set()
    return await asyncio.gather(*tasks)
