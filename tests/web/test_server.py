"""The web app's server (app/web): the pages, where they find the gateways, and the headers that
keep an injected script from running."""

import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from app.web.main import create_app
from app.web.settings import Settings
from harness.procs import ROOT

ENROLL = "https://api.registrar.example.edu/enroll_api"
AUTH = "https://login.registrar.example.edu:8443/auth_api"


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(Settings(enroll_api=ENROLL + "/", auth_api=AUTH)))


def test_the_page_loads_its_script_and_styles_from_this_origin(client):
    page = client.get("/")

    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="js/app.js"></script>' in page.text
    assert client.get("/js/app.js").status_code == 200
    assert client.get("/js/api.js").status_code == 200
    assert client.get("/app.css").status_code == 200


def test_config_tells_the_browser_where_both_gateways_are(client):
    assert client.get("/config.json").json() == {"enroll_api": ENROLL, "auth_api": AUTH}


def test_every_answer_allows_scripts_from_here_and_requests_to_the_gateways_only(client):
    for path in ("/", "/js/app.js", "/config.json", "/missing"):
        headers = client.get(path).headers
        policy = dict(
            part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
        )

        assert policy["script-src"] == "'self'"  # no inline or foreign script runs
        assert policy["connect-src"] == (
            "'self' https://api.registrar.example.edu https://login.registrar.example.edu:8443"
        )
        assert policy["frame-ancestors"] == "'none'"
        assert headers["x-content-type-options"] == "nosniff"


def test_no_page_holds_an_inline_script_the_policy_would_block():
    pages = (ROOT / "share" / "web").rglob("*.html")
    for page in pages:
        text = page.read_text()
        assert "<script>" not in text and " on" + "click=" not in text, page


def test_a_path_outside_the_pages_is_a_404(client):
    assert client.get("/../app/web/main.py").status_code == 404
    assert client.get("/%2e%2e/app/web/main.py").status_code == 404


@pytest.mark.parametrize(
    ("name", "value"),
    [("WEB_ENROLL_API", "ftp://127.0.0.1/enroll_api"), ("WEB_AUTH_API", "127.0.0.1:5400")],
)
def test_a_bad_gateway_address_stops_the_server_naming_the_variable(name, value):
    started = subprocess.run(
        [sys.executable, "-c", "from app.web.main import serve; serve()"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode != 0
    assert f"{name}: " in started.stderr and "not an http(s) base URL" in started.stderr
