"""Failures around a session: a path whose server is down, a backend killed
with pg_terminate_backend, and bad bytes from clients (SPEC §10). After each,
the proxy still serves a normal client."""

import socket
import struct
import time

import psycopg2
import psycopg2.errors
import pytest

import pgwire
from conftest import free_port


def assert_serves(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 'served'")
        assert cur.fetchone() == ("served",)
    conn.close()


# -- server down -----------------------------------------------------------

@pytest.mark.proxy_only
def test_backend_down_gives_08006_and_proxy_keeps_accepting(proxy_factory):
    proxy = proxy_factory(paths={"old": {"port": free_port()}},
                          settings={"server_connect_timeout": "2s"})
    for _ in range(2):
        start = time.time()
        with proxy.wire() as c:
            with pytest.raises(pgwire.WireError) as exc:
                c.startup("app", "app", "app")
            assert exc.value.sqlstate == "08006", exc.value.fields
            assert "pgturnout" in exc.value.message
        assert time.time() - start < 5
    assert proxy.alive()


@pytest.mark.proxy_only
def test_backend_down_does_not_affect_other_proxy(proxy_factory):
    bad = proxy_factory(paths={"old": {"port": free_port()}})
    good = proxy_factory()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(bad.dsn())
    assert_serves(good)


# -- pg_terminate_backend --------------------------------------------------

def test_terminated_backend_error_reaches_client_as_sent(proxy):
    victim = proxy.connect()
    other = proxy.connect()
    killer = proxy.connect()
    victim_pid = victim.get_backend_pid()
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (victim_pid,))
        assert cur.fetchone() == (True,)
    time.sleep(0.3)
    with victim.cursor() as cur:
        with pytest.raises(psycopg2.Error) as exc:
            cur.execute("SELECT 1")
    err = exc.value
    # libpq reports either the server's FATAL 57P01 or the closed socket,
    # depending on timing; never an error made by the proxy (the exact bytes
    # are checked by test_terminated_backend_seen_by_raw_client)
    assert err.pgcode in ("57P01", None), (err.pgcode, str(err))
    assert "pgturnout" not in str(err)
    assert victim.closed
    with other.cursor() as cur:
        cur.execute("SELECT 'other still works'")
        assert cur.fetchone() == ("other still works",)
    other.close()
    killer.close()
    assert_serves(proxy)


def test_terminated_backend_seen_by_raw_client(proxy):
    victim = proxy.wire_login()
    killer = proxy.connect()
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (victim.backend_pid,))
    killer.close()
    data = victim.read_until_closed()
    errors = []
    pos = 0
    while pos + 5 <= len(data):
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if data[pos:pos + 1] == b"E":
            errors.append(pgwire.parse_error_fields(data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    # exactly the server's error, once
    assert [e.get("C") for e in errors] == ["57P01"], errors
    victim.close()


# -- bad input ---------------------------------------------------------------

def raw_exchange(proxy, payload, timeout=5):
    """Sends PAYLOAD on a fresh connection, returns what came back until the
    proxy closed it (failing if it does not close within TIMEOUT)."""
    s = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    try:
        s.sendall(payload)
        data = b""
        start = time.time()
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("connection not closed after %.1fs; got %r"
                                     % (time.time() - start, data[:200]))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def assert_protocol_error_or_nothing(data):
    """SPEC §10: an ErrorResponse 08P01 where possible, then close."""
    if not data:
        return
    fields = pgwire.first_error(data)
    assert fields is not None, "expected an ErrorResponse, got %r" % data[:200]
    assert fields.get("C") in ("08P01", "0A000"), fields


BAD_STARTUPS = {
    "garbage": b"\x00\x00\x00\x10" + b"\xde\xad\xbe\xef" * 3,
    "length_below_8": b"\x00\x00\x00\x04",
    "length_zero": b"\x00\x00\x00\x00\x00\x03\x00\x00",
    "length_over_10000": struct.pack("!II", 20000, pgwire.PROTOCOL_3_0) + b"u" * 200,
    "huge_length": struct.pack("!II", 0x7FFFFFFF, pgwire.PROTOCOL_3_0),
    "protocol_2": pgwire.startup_packet({"user": "app", "database": "app"}, version=0x00020000),
    "protocol_4": pgwire.startup_packet({"user": "app", "database": "app"}, version=0x00040000),
    "unterminated_params": struct.pack("!II", 8 + 8, pgwire.PROTOCOL_3_0) + b"user\0app",
    "missing_user": pgwire.startup_packet({"database": "app"}),
    "http_request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.proxy_only
@pytest.mark.parametrize("name", sorted(BAD_STARTUPS))
def test_bad_startup_packet_gets_08P01_and_close(proxy, name):
    data = raw_exchange(proxy, BAD_STARTUPS[name])
    if name == "missing_user":
        fields = pgwire.first_error(data)
        assert fields is not None and fields.get("C") in ("08P01", "28000"), data[:200]
    else:
        assert_protocol_error_or_nothing(data)
    assert_serves(proxy)


@pytest.mark.proxy_only
@pytest.mark.parametrize("name", ["terminate_first", "length_below_8", "length_zero",
                                  "length_over_10000", "huge_length", "http_request"])
def test_startup_with_impossible_length_is_closed_without_reply(proxy, name):
    """SPEC §10: closed without a reply and logged, as PostgreSQL does
    (node-postgres's connect(); end() sends a Terminate before any startup
    packet and must not see an error)."""
    payload = b"X\0\0\0\4" if name == "terminate_first" else BAD_STARTUPS[name]
    assert raw_exchange(proxy, payload) == b""
    proxy.wait_log(r"invalid length of startup packet")
    assert_serves(proxy)


@pytest.mark.proxy_only
def test_ssl_request_with_trailing_plaintext_is_refused(proxy_factory, pg):
    import os
    proxy = proxy_factory(settings={
        "tls_mode": "allow",
        "tls_cert_file": os.path.join(pg.ca_dir, "proxy.crt"),
        "tls_key_file": os.path.join(pg.ca_dir, "proxy.key"),
    })
    payload = pgwire.ssl_request() + pgwire.startup_packet({"user": "app", "database": "app"})
    data = raw_exchange(proxy, payload)
    # never an authentication request in plaintext
    assert b"R\x00\x00\x00" not in data
    if data[:1] == b"S":
        data = data[1:]
    assert_protocol_error_or_nothing(data)
    assert_serves(proxy)


@pytest.mark.proxy_only
def test_silent_client_closed_after_login_timeout(proxy_factory):
    proxy = proxy_factory(settings={"client_login_timeout": "1s"})
    s = socket.create_connection((proxy.host, proxy.port), timeout=10)
    start = time.time()
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    elapsed = time.time() - start
    s.close()
    assert 0.5 < elapsed < 4, elapsed
    if data:    # a FATAL error is welcome; its SQLSTATE is not specified
        fields = pgwire.first_error(data)
        assert fields is not None and fields.get("S") == "FATAL", data[:200]
    assert_serves(proxy)


@pytest.mark.proxy_only
def test_half_startup_closed_after_login_timeout(proxy_factory):
    proxy = proxy_factory(settings={"client_login_timeout": "1s"})
    c = proxy.wire()
    c.send(struct.pack("!II", 40, pgwire.PROTOCOL_3_0) + b"user\0")  # promises 40 bytes
    start = time.time()
    c.read_until_closed()
    assert time.time() - start < 4
    c.close()
    assert_serves(proxy)


@pytest.mark.proxy_only
@pytest.mark.parametrize("key", ["client_login_timeout", "server_connect_timeout"])
def test_timeout_zero_disables_it(proxy_factory, key):
    """0 disables the timeout (docs/configuration.md); it must not fire at once."""
    proxy = proxy_factory(settings={key: "0"})
    c = proxy.wire_login()
    assert c.query("SELECT 'logged in'") == [("logged in",)]
    c.terminate()
    assert_serves(proxy)
    if key == "client_login_timeout":
        # a client slow to log in is not closed
        c = proxy.wire()
        c.sock.settimeout(1.5)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)
        c.close()


def test_unknown_message_type_after_login_is_08P01(proxy):
    c = proxy.wire_login()
    c.send(b"\x01" + struct.pack("!I", 4))
    data = c.read_until_closed()
    fields = pgwire.first_error(data)
    assert fields is not None and fields.get("C") == "08P01", data[:200]
    c.close()
    assert_serves(proxy)


def test_bad_message_length_after_login_is_08P01_or_close(proxy):
    c = proxy.wire_login()
    c.send(b"Q" + struct.pack("!I", 2))  # length below 4
    data = c.read_until_closed()
    if data:
        fields = pgwire.first_error(data)
        assert fields is not None and fields.get("C") == "08P01", data[:200]
    c.close()
    assert_serves(proxy)


def test_client_vanishing_mid_query_leaves_proxy_serving(proxy):
    c = proxy.wire_login()
    c.send(pgwire.message(b"Q", b"SELECT pg_sleep(0.5), repeat('x', 1000000)\0"))
    c.sock.close()
    time.sleep(1)
    assert_serves(proxy)


@pytest.mark.proxy_only
def test_client_names_cannot_forge_text_log_lines(proxy):
    """Control characters and backslashes a client sends (here in its user
    name, before it logged in) are escaped in the text log: one line, no
    terminal escape, no forged line."""
    user = "a\nFAKE LINE \x1b[31mred\\"
    with proxy.wire() as c:
        c.send(pgwire.startup_packet({"user": user, "database": "app"}))
        c.recv_message()    # the authentication request: the user was logged
    proxy.wait_log(r"startup user=a")
    log = proxy.log()
    assert "\x1b" not in log
    assert not any(line.startswith("FAKE LINE") for line in log.splitlines())
    assert r"startup user=a\nFAKE LINE \x1b[31mred\\ database=app" in log
