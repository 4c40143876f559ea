"""A fresh seeded enrollment database per test, served through FastAPI's TestClient."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.settings import Settings
from tests.enrollment.helpers import Api, make_secret_file


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    db_path = tmp_path / "enroll.db"
    init_db(db_path)
    secret_file = make_secret_file(tmp_path)
    settings = Settings(database=db_path, gateway_secret_file=secret_file, instance="test")
    with TestClient(create_app(settings)) as client:
        yield Api(client, secret_file.read_text(), db_path)
