"""The HTTP surface (SPEC §8): /healthz, /metrics (parsed with
prometheus_client), /flags GET and PUT (bearer token from http_token_file,
strict JSON, guard rails), /clients, 404/405."""

import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port

pytestmark = pytest.mark.proxy_only

TOKEN = "s3cret-token-for-tests"


def start(proxy_factory, tmp_path, token=TOKEN, **settings):
    port = free_port()
    s = {"http_listen": "127.0.0.1:%d" % port}
    if token is not None:
        path = tmp_path / "http_token"
        path.write_text(token + "\n")
        s["http_token_file"] = str(path)
    s.update(settings)
    p = proxy_factory(settings=s)
    p.http = "http://127.0.0.1:%d" % port
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise AssertionError("no HTTP listener on %d; log:\n%s" % (port, p.log()))
            time.sleep(0.05)
    return p


def call(p, method, path, body=None, token=None, raw=None):
    """Returns (status, headers, body text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(p.http + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def get_flags(p):
    status, headers, text = call(p, "GET", "/flags")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(text)


def test_http_healthz(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    status, _, text = call(p, "GET", "/healthz")
    assert (status, text) == (200, "ok\n")


def test_http_metrics_parse_as_prometheus_text(proxy_factory, tmp_path):
    parser = pytest.importorskip("prometheus_client.parser")
    p = start(proxy_factory, tmp_path)
    conn = p.connect()
    with conn.cursor() as cur:
        for _ in range(10):
            cur.execute("SELECT 1")
    status, headers, text = call(p, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    for name in ("pgturnout_client_connections", "pgturnout_server_connections",
                 "pgturnout_queries", "pgturnout_request_duration_seconds",
                 "pgturnout_flag_canary_percent", "pgturnout_flag_dual_write",
                 "pgturnout_flag_force_path", "pgturnout_flag_shadow_failure",
                 "pgturnout_flag_changes", "pgturnout_flag_refusals",
                 "pgturnout_rewrite_cache_hits", "pgturnout_rewrite_cache_misses",
                 "pgturnout_rewritten_statements", "pgturnout_refused_statements",
                 "pgturnout_shadow_writes", "pgturnout_shadow_errors", "pgturnout_mismatches",
                 "pgturnout_accepted_connections", "pgturnout_closed_connections",
                 "pgturnout_cancels"):
        assert name in families, name
        assert families[name].documentation, name
    hist = families["pgturnout_request_duration_seconds"]
    assert hist.type == "histogram"
    samples = [s for s in hist.samples if s.labels.get("path") == "old"]
    count = [s.value for s in samples if s.name.endswith("_count")][0]
    inf = [s.value for s in samples if s.labels.get("le") == "+Inf"][0]
    assert count == inf >= 10
    buckets = [s.value for s in samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets)
    clients = {s.labels["path"]: s.value for s in families["pgturnout_client_connections"].samples}
    assert clients["old"] >= 1
    conn.close()
    force = {s.labels["value"]: s.value for s in families["pgturnout_flag_force_path"].samples}
    assert force == {"none": 1, "old": 0, "new": 0}


def test_http_get_flags(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    f = get_flags(p)
    assert f["canary_percent"] == 0
    assert f["dual_write"] is False
    assert f["shadow_failure"] == "journal"
    assert f["force_path"] == "none"
    assert f["changed_by"]["canary_percent"] == "startup"
    assert f["changed_at"]["dual_write"].endswith("Z")


def test_http_put_flags_needs_the_token(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    status, headers, text = call(p, "PUT", "/flags", {"canary_percent": 5})
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in json.loads(text)
    status, _, _ = call(p, "PUT", "/flags", {"canary_percent": 5}, token="wrong")
    assert status == 401
    assert get_flags(p)["canary_percent"] == 0
    status, _, text = call(p, "PUT", "/flags", {"canary_percent": 5, "dual_write": True},
                           token=TOKEN)
    assert status == 200, text
    r = json.loads(text)
    assert r["applied"] == ["canary_percent", "dual_write"]
    f = get_flags(p)
    assert f["canary_percent"] == 5 and f["dual_write"] is True
    assert f["changed_by"]["canary_percent"] == "http"
    # the token file is read on every request: rotating it needs no reload
    (tmp_path / "http_token").write_text("rotated\n")
    status, _, _ = call(p, "PUT", "/flags", {"canary_percent": "7.5"}, token=TOKEN)
    assert status == 401
    status, _, _ = call(p, "PUT", "/flags", {"canary_percent": "7.5"}, token="rotated")
    assert status == 200
    assert get_flags(p)["canary_percent"] == 7.5


def test_http_long_token_is_compared_whole(proxy_factory, tmp_path):
    token = "".join("abcdefghij"[i % 10] for i in range(5000))
    p = start(proxy_factory, tmp_path, token=token)
    for given in (token[:4095], token[:4096], token + "x", token[1:]):
        status, _, _ = call(p, "PUT", "/flags", {"canary_percent": 5}, token=given)
        assert status == 401, len(given)
    assert get_flags(p)["canary_percent"] == 0
    status, _, text = call(p, "PUT", "/flags", {"canary_percent": 5}, token=token)
    assert status == 200, text


def test_http_writes_refused_without_token_file(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path, token=None)
    status, _, _ = call(p, "PUT", "/flags", {"canary_percent": 5}, token="anything")
    assert status == 403


def test_http_auth_reads_needs_the_token_for_everything_but_healthz(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path, http_auth_reads="on")
    assert call(p, "GET", "/healthz")[:3:2] == (200, "ok\n")
    for path in ("/metrics", "/flags", "/clients"):
        status, headers, text = call(p, "GET", path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in json.loads(text)
        assert call(p, "GET", path, token="wrong")[0] == 401, path
        assert call(p, "GET", path, token=TOKEN)[0] == 200, path
    # off (the default): reads are open, writes still need it
    q = start(proxy_factory, tmp_path)
    assert call(q, "GET", "/metrics")[0] == 200


def test_http_put_bad_input_changes_nothing(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    cases = [
        (b'{"canary_percent": 5, "force_path": "sideways"}', "none, old, new"),
        (b'{"canary_percent": 5, "no_such_flag": 1}', "unknown flag"),
        (b'{"canary_percent": [5]}', "strings, numbers or booleans"),
        (b'{"canary_percent": {"x": 1}}', "strings, numbers or booleans"),
        (b'{"canary_percent": null}', "null"),
        (b'{"canary_percent": 5,}', "member name"),
        (b'{"canary_percent": 5} x', "trailing"),
        (b'{"canary_percent": 5, "canary_percent": 6}', "duplicate"),
        (b'[1]', "object"),
        (b'', "object"),
        (b'{"canary_percent": 5, "force": "yes"}', "force"),
        (b'{"canary_percent": 0x10}', ""),
        (b'{"dual_write": "on", "canary_percent": 150}', "canary_percent"),
    ]
    for raw, msg in cases:
        status, _, text = call(p, "PUT", "/flags", raw=raw, token=TOKEN)
        assert status == 400, (raw, status, text)
        assert msg in json.loads(text)["error"], (raw, text)
    f = get_flags(p)
    assert f["canary_percent"] == 0 and f["dual_write"] is False
    assert f["generation"] == 1


def test_http_guard_rail_conflict_and_force(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    status, _, _ = call(p, "PUT", "/flags", {"canary_percent": 10}, token=TOKEN)
    assert status == 200
    status, _, text = call(p, "PUT", "/flags", {"force_path": "old", "salt": "new-salt"},
                           token=TOKEN)
    assert status == 409, text
    r = json.loads(text)
    assert "FORCE" in r["error"]
    assert r["applied"] == ["force_path"]
    assert get_flags(p)["salt"] != "new-salt"
    status, _, text = call(p, "PUT", "/flags", {"salt": "new-salt", "force": True}, token=TOKEN)
    assert status == 200, text
    assert get_flags(p)["salt"] == "new-salt"


def test_http_clients_lists_sessions(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    conn = p.connect(application_name="http-test-app")
    try:
        status, _, text = call(p, "GET", "/clients")
        assert status == 200
        rows = json.loads(text)
        mine = [r for r in rows if r["application"] == "http-test-app"]
        assert len(mine) == 1
        assert mine[0]["user"] == "app" and mine[0]["path"] == "old"
        assert mine[0]["in_transaction"] is False
        assert isinstance(mine[0]["id"], int)
    finally:
        conn.close()


def test_http_unknown_path_and_wrong_method(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    assert call(p, "GET", "/nope")[0] == 404
    status, headers, _ = call(p, "POST", "/flags", raw=b"{}")
    assert status == 405
    assert "PUT" in headers["Allow"]
    assert call(p, "DELETE", "/metrics")[0] == 405
    assert call(p, "PUT", "/healthz", raw=b"x")[0] == 405


def test_http_flag_change_shows_in_console_history(proxy_factory, tmp_path):
    from test_admin import as_dicts, psql
    p = start(proxy_factory, tmp_path)
    status, _, _ = call(p, "PUT", "/flags", {"shadow_failure": "fail"}, token=TOKEN)
    assert status == 200
    hist = as_dicts(psql(p, "SHOW HISTORY"))
    assert [(h["who"], h["surface"], h["name"], h["new"]) for h in hist] == [
        ("http", "http", "shadow_failure", "fail")]
    assert os.path.exists(os.path.join(p.dir, "journal", "flag_history.jsonl"))


def read_to_close(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def raw_exchange(p, data, timeout=5):
    """Sends DATA on a fresh socket; returns everything read until the proxy
    closes it."""
    host, port = p.http[len("http://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        return read_to_close(s)
    finally:
        s.close()


def split_answer(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_http_error_answers_are_json(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path)
    # A body over the limit, announced by Content-Length: refused before it is read.
    status, headers, text = call(p, "PUT", "/flags", raw=b"{" + b" " * 70000 + b"}",
                                 token=TOKEN)
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert "65536" in json.loads(text)["error"]
    for request, code in [(b"NONSENSE\r\n\r\n", 400),
                          (b"BREW /flags HTTP/1.1\r\nHost: x\r\n\r\n", 501),
                          (b"GET /flags HTTP/2.0\r\n\r\n", 505),
                          (b"GET /flags HTTP/1.1\r\nbad header\r\n\r\n", 400),
                          (b"PUT /flags HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                          (b"GET /flags HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n", 431)]:
        status, headers, body = split_answer(raw_exchange(p, request))
        assert status == code, request[:40]
        assert headers["content-type"] == "application/json"
        assert isinstance(json.loads(body)["error"], str)
    assert call(p, "GET", "/healthz")[0] == 200


def test_http_keep_alive_and_head(proxy_factory, tmp_path):
    import http.client
    p = start(proxy_factory, tmp_path)
    host, port = p.http[len("http://"):].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    for _ in range(3):
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"ok\n")
    c.request("HEAD", "/flags")
    r = c.getresponse()
    assert r.status == 200 and int(r.headers["Content-Length"]) > 0 and r.read() == b""
    c.request("PUT", "/flags", body=json.dumps({"canary_percent": 5}),
              headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["applied"] == ["canary_percent"]
    c.close()
    # Pipelined requests are answered in order; Connection: close ends it.
    raw = raw_exchange(p, b"GET /healthz HTTP/1.1\r\n\r\n"
                          b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 1 and raw.count(b"HTTP/1.1 404 Not Found") == 1


def test_http_request_deadline_counts_from_accept(proxy_factory, tmp_path):
    """A byte every half second does not keep a connection open: the whole
    request must arrive within http_request_timeout of the accept."""
    p = start(proxy_factory, tmp_path, http_request_timeout="2s")
    host, port = p.http[len("http://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    t0 = time.time()
    closed = None
    try:
        for b in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"z" * 40:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = time.time() - t0
                break
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    closed = time.time() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = time.time() - t0
                break
    finally:
        s.close()
    assert closed is not None and 1.5 < closed < 4, closed
    assert call(p, "GET", "/healthz")[0] == 200


def test_http_connection_cap(proxy_factory, tmp_path):
    p = start(proxy_factory, tmp_path, http_max_connections=2)
    host, port = p.http[len("http://"):].split(":")
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    time.sleep(0.2)
    waiting = socket.create_connection((host, int(port)), timeout=5)
    waiting.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    waiting.settimeout(1)
    with pytest.raises(socket.timeout):
        waiting.recv(1)
    # PostgreSQL clients are not held up by the HTTP cap.
    conn = p.connect()
    conn.close()
    for s in idle:
        s.close()
    waiting.settimeout(5)
    answer = read_to_close(waiting)
    waiting.close()
    assert split_answer(answer)[0] == 200
    assert call(p, "GET", "/healthz")[0] == 200


def test_http_refused_when_descriptors_run_low(proxy_factory, tmp_path):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 1000000000:
        pytest.skip("no finite descriptor limit")
    # Every descriptor is kept for PostgreSQL clients: HTTP gets none.
    p = start(proxy_factory, tmp_path, http_fd_reserve=hard)
    status, headers, body = split_answer(raw_exchange(p, b"GET /healthz HTTP/1.1\r\n\r\n"))
    assert status == 503
    assert headers["content-type"] == "application/json"
    assert "descriptors" in json.loads(body)["error"]
    conn = p.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
