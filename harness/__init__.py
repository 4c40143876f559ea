"""What the tests and the benchmarks both need, in one place both import: starting real
processes on free loopback ports (uvicorn, LiteFS nodes, KrakenD), the whole cluster behind its
gateways, a small load client, and the SPEC §2 invariant checks. Imports app/, never tests/ or
bench/."""
