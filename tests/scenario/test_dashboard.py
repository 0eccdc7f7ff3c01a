"""The dashboard the AdminServer serves at /, and its JSON API.

The browser test drives Debian's Chromium (apt-get install -y chromium) headless through
Playwright (pip install playwright; it launches /usr/bin/chromium and downloads nothing), takes
screenshots under the test's tmp dir, and checks what a person would see. It fails, never skips,
when Chromium or Playwright is missing.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from tests.support.servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def get_json(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def dashboard(server_factory):
    port = free_port()
    server = server_factory("zkpy", settings={"admin.enableServer": "true",
                                               "admin.serverPort": str(port),
                                               "admin.serverAddress": "127.0.0.1"})
    server.admin_port = port
    client = KazooClient(server.connect_string, timeout=10)
    client.start(timeout=10)
    client.create("/app/config", b'{"color": "blue"}', makepath=True)
    client.create("/app/bin", b"\x00\x01\xff")
    client.create("/app/members/m-", b"", ephemeral=True, sequence=True, makepath=True)
    client.create("/secret", b"hidden", acl=[make_digest_acl("admin", "pw", all=True)])
    client.get("/app/config", watch=lambda event: None)
    server.client = client
    try:
        yield server
    finally:
        client.stop()
        client.close()


def test_znode_api(dashboard):
    port = dashboard.admin_port
    status, view = get_json(port, "/api/znode?path=/app/config")
    assert status == 200
    assert view["data"] == {"encoding": "utf-8", "value": '{"color": "blue"}', "length": 17,
                            "truncated": False}
    stat = dashboard.client.exists("/app/config")
    assert view["stat"]["version"] == stat.version
    assert view["stat"]["dataLength"] == 17
    assert view["stat"]["mzxid"] == hex(stat.mzxid)
    assert view["acl"] == [{"perms": "cdrwa", "scheme": "world", "id": "anyone"}]
    assert view["children"] == []
    assert view["kind"] == "persistent"

    status, view = get_json(port, "/api/znode?path=/app")
    assert view["children"] == ["bin", "config", "members"]

    status, view = get_json(port, "/api/znode?path=/app/bin")
    assert view["data"]["encoding"] == "base64"
    assert base64.b64decode(view["data"]["value"]) == b"\x00\x01\xff"

    member = dashboard.client.get_children("/app/members")[0]
    status, view = get_json(port, f"/api/znode?path=/app/members/{member}")
    assert view["kind"] == "ephemeral"
    assert int(view["stat"]["ephemeralOwner"], 16) == dashboard.client.client_id[0]

    # ACLs apply: the HTTP client is ip:127.0.0.1 without credentials.
    status, view = get_json(port, "/api/znode?path=/secret")
    assert status == 200
    assert view["readable"] is False
    assert view["data"] is None and view["children"] is None and view["acl"] is None
    assert "no READ permission" in view["error"]

    assert get_json(port, "/api/znode?path=/nope")[0] == 404
    assert get_json(port, "/api/znode?path=relative")[0] == 400
    assert get_json(port, "/api/znode?path=/app/")[0] == 400


def test_sessions_and_overview_api(dashboard):
    port = dashboard.admin_port
    status, sessions = get_json(port, "/api/sessions")
    assert status == 200
    session_id = f"0x{dashboard.client.client_id[0]:x}"
    (mine,) = [s for s in sessions["sessions"] if s["sessionId"] == session_id]
    assert mine["client"].startswith("127.0.0.1:")
    assert mine["ephemerals"] == 1
    assert mine["watches"] == 1
    status, overview = get_json(port, "/api/overview")
    assert overview["server"]["mode"] == "standalone"
    assert overview["server"]["sessions"] == 1
    assert overview["server"]["ephemerals_count"] == 1
    assert overview["server"]["znode_count"] >= 10


def test_static_files_and_their_headers(dashboard):
    port = dashboard.admin_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        html = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/html")
        assert "script-src" not in html and "<script>" not in html  # no inline script
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for name in ("app.js", "style.css", "favicon.svg"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/{name}", timeout=10) as response:
            assert response.status == 200
    for path in ("/dashboard/../admin.py", "/dashboard/nope.js", "/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert missing.value.code == 404


def _require_browser():
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (Debian's package; "
                    "the dashboard test drives it headless)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.fail("Playwright for Python is not installed: pip install playwright "
                    "(no browser download needed: the test uses /usr/bin/chromium)", pytrace=False)


def _traffic(connect_string: str, stop: threading.Event) -> None:
    """Bounded load while the page watches: at most 20 s and 20,000 requests."""
    client = KazooClient(connect_string, timeout=10)
    client.start(timeout=10)
    try:
        deadline = time.monotonic() + 20
        for index in range(20_000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            client.set("/app/config", b'{"color": "blue"}') if index % 10 == 0 else client.get("/app/config")
            time.sleep(0.002)
    finally:
        client.stop()
        client.close()


def test_dashboard_in_headless_chromium(dashboard, tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    port = dashboard.admin_port
    session_id = f"0x{dashboard.client.client_id[0]:x}"
    problems: list[str] = []
    stop = threading.Event()
    load = threading.Thread(target=_traffic, args=(dashboard.connect_string, stop), daemon=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM,
                                             headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(15_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/#/app/config")
            page.wait_for_selector("body[data-ready='true']")

            # Who and what this server is.
            expect(page.locator("#server-mode")).to_have_text("standalone")
            expect(page.locator("#cluster-state")).to_have_text("healthy")
            expect(page.locator("#cluster-quorum")).to_have_text("yes")
            expect(page.locator("#cluster-leader")).to_have_text(dashboard.connect_string)
            expect(page.locator("#members-body")).to_contain_text(dashboard.connect_string)
            expect(page.locator("#members-body")).to_contain_text("standalone")
            # The deep link opened /app/config, its data, Stat and ACL.
            expect(page.locator("#znode-path")).to_have_text("/app/config")
            expect(page.locator("#znode-data")).to_have_text('{"color": "blue"}')
            expect(page.locator("#znode-stat")).to_contain_text("dataLength")
            expect(page.locator("#znode-acl")).to_contain_text("anyone")
            expect(page.locator("#tree")).to_contain_text("members")
            # The session list shows kazoo's session, connected, with its ephemeral.
            expect(page.locator("#sessions-body")).to_contain_text(session_id)
            expect(page.locator("#sessions-body")).to_contain_text("connected")
            page.screenshot(path=str(tmp_path / "dashboard-idle.png"), full_page=True)

            # Browse: into a binary node, then a child list, then a protected node.
            page.locator("#tree .row[data-path='/app/bin']").click()
            expect(page.locator("#znode-path")).to_have_text("/app/bin")
            expect(page.locator("#znode-data")).to_have_text("AAH/")
            expect(page.locator("#znode-encoding")).to_contain_text("base64")
            page.locator("#tree .row[data-path='/app/members']").click()
            expect(page.locator("#znode-children")).to_contain_text("m-0000000000")
            page.locator("#znode-children .link").first.click()
            expect(page.locator("#znode-kind")).to_have_text("ephemeral")
            page.locator("#tree .row[data-path='/secret']").click()
            expect(page.locator("#znode-error")).to_contain_text("no READ permission")
            expect(page.locator("#znode-data")).to_have_text("(not readable)")

            # Live traffic shows as a request rate.
            page.locator("#tree .row[data-path='/app/config']").click()
            load.start()
            expect(page.locator("#now-rate")).not_to_have_text("0.0", timeout=15_000)
            expect(page.locator("#stat-connections")).to_have_text("2")
            page.wait_for_timeout(3000)  # a few more points on the chart for the picture
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"dashboard screenshots: {shot} and {tmp_path / 'dashboard-idle.png'}")
        finally:
            stop.set()
            browser.close()
    if load.is_alive() or load.ident is not None:
        load.join(timeout=30)
    assert problems == [], problems
