"""httpx's one-request functions (get, post, put, patch, delete, request) for the tests and
the benchmarks, with the same meaning: each request on a client of its own, so no connection,
cookie or state is carried from one to the next.

The one difference: the TLS context is made once. httpx makes a new one for every such call
(loading the CA bundle, about 30 ms of CPU under the GIL), though every address here is plain
http on 127.0.0.1 (or 198.18.0.0/15): in the suite that was thousands of calls, and a thread pool
of callers (500 enrolls from 16 threads) waited on it more than on the services."""

import ssl
from typing import Any

import httpx

_TLS = ssl.create_default_context()


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("verify", _TLS)
    return httpx.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)
