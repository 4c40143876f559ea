"""What a service process does once, when uvicorn starts it (the `serve` factories)."""

import gc

from fastapi import FastAPI


def long_lived(app: FastAPI) -> FastAPI:
    """Take the objects that live as long as the process (modules, the app, its routes and
    models: about 50,000) out of the garbage collector's sight with `gc.freeze`.

    Every full collection walks every tracked object. Under a rush, each enrollment instance ran
    one every 20-30 s, and it held that instance's event loop for 86-258 ms (measured with a
    gc.callbacks probe during ./bin/bench), the largest part of the open-loop p99. Frozen, those
    objects are never walked again, and they would never have been garbage anyway."""
    gc.collect()
    gc.freeze()
    return app
