"""Protections (PgBouncer's): query_timeout, query_wait_timeout,
idle_transaction_timeout, client_idle_timeout, server_lifetime, the health
check of kept server connections (server_check_query, server_check_delay),
max_db_connections / max_user_connections, and the admin console's
reserved slot over max_client_conn.

Backends stopped with SIGSTOP are resumed with SIGCONT in cleanup, by PID.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager

import psycopg2
import pytest

import pgwire
from conftest import unique
from test_pool import alive, backend_pid, one, reused_pid as reuse
from twopaths import Admin, wait_for

pytestmark = pytest.mark.proxy_only


@contextmanager
def stopped(pid):
    """The backend PID stopped (SIGSTOP) for the block, resumed after it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def closed_with(wire, timeout=15):
    """The error the proxy sent before closing WIRE (raw client, idle)."""
    wire.sock.settimeout(timeout)
    err = pgwire.first_error(wire.read_until_closed())
    assert err is not None, "closed without an ErrorResponse"
    return err


# ---- query_timeout -----------------------------------------------------------

def test_query_timeout_cancels_the_statement_and_the_session_goes_on(proxy_factory):
    proxy = proxy_factory(settings={"query_timeout": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    with pytest.raises(psycopg2.errors.QueryCanceled) as exc:
        one(conn, "SELECT 1 FROM pg_sleep(60)")
    assert exc.value.pgcode == "57014"
    assert any("query_timeout" in n for n in conn.notices), conn.notices
    # statement_timeout-like: the same session and backend go on
    assert one(conn, "SELECT 41 + 1") == 42
    assert backend_pid(conn) == pid
    conn.close()


def test_query_timeout_inside_a_transaction_aborts_only_the_transaction(proxy_factory):
    proxy = proxy_factory(settings={"query_timeout": "1s"})
    conn = proxy.connect(autocommit=False)
    with pytest.raises(psycopg2.errors.QueryCanceled):
        one(conn, "SELECT 1 FROM pg_sleep(60)")
    conn.rollback()
    assert one(conn, "SELECT 7") == 7
    conn.close()


def test_query_timeout_with_a_stopped_backend_closes_the_client_with_57014(proxy_factory, pg):
    proxy = proxy_factory(settings={"query_timeout": "1s"})
    c = proxy.wire_login()
    pid = int(c.query("SELECT pg_backend_pid()")[0][0])
    with stopped(pid):
        c.send(pgwire.message(b"Q", b"SELECT 1\0"))
        err = closed_with(c)
        assert err["C"] == "57014", err
        assert err["S"] == "FATAL"
        assert "did not answer the cancel" in err["M"]
    # the stopped backend is not handed to anyone: it ends once resumed
    wait_for(lambda: not alive(pg, pid), "the stopped backend to exit")
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    fresh.close()


def test_query_timeout_with_a_stopped_backend_does_not_hang_libpq(proxy_factory):
    proxy = proxy_factory(settings={"query_timeout": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    with stopped(pid):
        with pytest.raises(psycopg2.Error) as exc:
            one(conn, "SELECT 1")
        # libpq reports the FATAL 57014 or the closed socket, by timing
        assert exc.value.pgcode in ("57014", None), exc.value
        proxy.wait_log(r"closing: query_timeout")
    assert conn.closed


def test_query_timeout_zero_lets_long_statements_run(proxy_factory):
    proxy = proxy_factory(settings={"query_timeout": "0"})
    conn = proxy.connect()
    assert one(conn, "SELECT 1 FROM pg_sleep(1.5)") == 1
    conn.close()


# ---- query_wait_timeout --------------------------------------------------------

def test_query_wait_timeout_closes_a_client_held_at_pause(proxy_factory):
    proxy = proxy_factory(settings={"query_wait_timeout": "1s"})
    idle = proxy.connect()
    waiting = proxy.wire_login()
    admin = Admin(proxy)
    try:
        admin.run("PAUSE")
        waiting.send(pgwire.message(b"Q", b"SELECT 1\0"))
        err = closed_with(waiting)
        assert err["C"] == "57014", err
        assert "query_wait_timeout" in err["M"]
        admin.run("RESUME")
        # a client that sent nothing was not waiting: it is still there
        assert one(idle, "SELECT 3") == 3
    finally:
        admin.run("RESUME")
        admin.close()
        idle.close()


# ---- idle timeouts ---------------------------------------------------------------

def test_idle_transaction_timeout_closes_the_client_and_rolls_back(proxy_factory, pg):
    proxy = proxy_factory(settings={"idle_transaction_timeout": "1s"})
    key = int(time.time() * 1000) % 1000000007
    conn = proxy.connect(autocommit=False)
    pid = backend_pid(conn)
    one(conn, "SELECT pg_advisory_xact_lock(%d) IS NULL" % key)
    proxy.wait_log(r"closing: idle_transaction_timeout")
    with pytest.raises(psycopg2.Error):    # the 25P03 itself: test_..._sends_25P03
        one(conn, "SELECT 1")
    # the backend is closed, its transaction rolled back (the lock is gone)
    wait_for(lambda: not alive(pg, pid), "the backend to exit")
    assert pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %d"
                  % key)[0][0] == 0


def test_idle_transaction_timeout_sends_25P03(proxy_factory):
    proxy = proxy_factory(settings={"idle_transaction_timeout": "1s"})
    c = proxy.wire_login()
    c.query("BEGIN")
    err = closed_with(c)
    assert err["C"] == "25P03", err


def test_idle_transaction_timeout_spares_idle_sessions_and_running_statements(proxy_factory):
    proxy = proxy_factory(settings={"idle_transaction_timeout": "1s"})
    conn = proxy.connect(autocommit=False)
    one(conn, "SELECT 1 FROM pg_sleep(2)")     # busy, not idle, in the transaction
    conn.commit()
    time.sleep(1.5)                                # idle outside a transaction
    assert one(conn, "SELECT 5") == 5
    conn.close()


def test_client_idle_timeout_closes_an_idle_client_with_57P05(proxy_factory):
    proxy = proxy_factory(settings={"client_idle_timeout": "1s"})
    busy = proxy.connect()
    c = proxy.wire_login()
    deadline = time.time() + 2.5
    while time.time() < deadline:                  # a client that keeps talking stays
        assert one(busy, "SELECT 1") == 1
        time.sleep(0.2)
    err = closed_with(c)
    assert err["C"] == "57P05", err
    assert one(busy, "SELECT 1") == 1
    busy.close()


def test_client_idle_timeout_leaves_the_idle_backend_to_the_next_client(proxy_factory, pg):
    proxy = proxy_factory(settings={"client_idle_timeout": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    proxy.wait_log(r"closing: client_idle_timeout")
    conn.close()
    time.sleep(0.3)
    assert alive(pg, pid)
    again, got = reuse(proxy, pid)
    assert got == pid
    again.close()


# ---- server_lifetime -------------------------------------------------------------

def test_server_lifetime_closes_old_backends_instead_of_keeping_them(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_lifetime": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    time.sleep(1.2)
    conn.close()
    wait_for(lambda: not alive(pg, pid), "the old backend to be closed")
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    fresh.close()


def test_server_lifetime_ends_a_kept_backend_at_its_age(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_lifetime": "2s", "server_idle_timeout": "60s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    assert alive(pg, pid)                          # kept while young
    wait_for(lambda: not alive(pg, pid), "server_lifetime to close the kept backend")


# ---- health check -------------------------------------------------------------------

@pytest.mark.parametrize("delay,checked", [("0", True), ("60s", False)])
def test_check_query_runs_on_a_kept_backend_idle_past_the_delay(proxy_factory, pg, delay, checked):
    seq = unique("chk")
    pg.sql("CREATE SEQUENCE %s; GRANT USAGE ON SEQUENCE %s TO PUBLIC" % (seq, seq))
    try:
        proxy = proxy_factory(settings={"server_check_delay": delay,
                                        "server_check_query": "select nextval('%s')" % seq})
        conn = proxy.connect()
        pid = backend_pid(conn)
        conn.close()
        time.sleep(0.3)
        conn, got = reuse(proxy, pid)
        assert got == pid
        assert pg.sql("SELECT is_called FROM %s" % seq)[0][0] is checked
        conn.close()
    finally:
        pg.sql("DROP SEQUENCE %s" % seq)


def test_failed_check_gives_the_client_a_fresh_backend(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_check_delay": "0",
                                    "server_check_query": "select 1/0"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    assert one(fresh, "SELECT 1") == 1
    proxy.wait_log(r"failed its check: server_check_query failed")
    wait_for(lambda: not alive(pg, pid), "the failed backend to be closed")
    fresh.close()


def test_terminated_kept_backend_next_client_works(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_check_delay": "0"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    pg.sql("SELECT pg_terminate_backend(%d)" % pid)
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    assert one(fresh, "SELECT 1") == 1
    fresh.close()


def test_stopped_kept_backend_is_replaced_after_the_check_times_out(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_check_delay": "0", "server_connect_timeout": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    with stopped(pid):
        fresh = proxy.connect()
        assert backend_pid(fresh) != pid
        assert one(fresh, "SELECT 1") == 1
        proxy.wait_log(r"failed its check: no answer to server_check_query")
        fresh.close()
    wait_for(lambda: not alive(pg, pid), "the stopped backend to exit")


# ---- limits ------------------------------------------------------------------------------

def connect_in_thread(proxy, **kw):
    """Starts a psycopg2 connect (and one query) in a thread; returns a dict
    filled with 'conn' or 'error' and the thread."""
    out = {}

    def run():
        try:
            conn = proxy.connect(**kw)
            out["value"] = one(conn, "SELECT 1")
            out["conn"] = conn
        except psycopg2.Error as e:
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return out, t


@pytest.mark.parametrize("key", ["max_db_connections", "max_user_connections"])
def test_client_over_the_server_limit_waits_for_a_slot(proxy_factory, key):
    proxy = proxy_factory(settings={key: 1, "query_wait_timeout": "30s"})
    first = proxy.connect()
    assert one(first, "SELECT 1") == 1
    out, t = connect_in_thread(proxy)
    proxy.wait_log(r"waits for a slot")
    time.sleep(0.3)
    assert t.is_alive() and not out              # held while the slot is taken
    first.close()                                 # its backend is kept: closed to make room
    t.join(30)
    assert not t.is_alive()
    assert out.get("value") == 1, out
    out["conn"].close()


@pytest.mark.parametrize("key", ["max_db_connections", "max_user_connections"])
def test_client_over_the_server_limit_gets_53300_after_query_wait_timeout(proxy_factory, key):
    proxy = proxy_factory(settings={key: 1, "query_wait_timeout": "1s"})
    first = proxy.connect()
    with pytest.raises(psycopg2.Error) as exc:
        proxy.connect()
    assert "no server connection slot" in str(exc.value)
    with proxy.wire() as c:                       # raw: the SQLSTATE
        with pytest.raises(pgwire.WireError) as wexc:
            c.startup("app", "app", "app")
        assert wexc.value.sqlstate == "53300", wexc.value.fields
    assert one(first, "SELECT 1") == 1
    first.close()


def test_max_user_connections_counts_each_user_apart(proxy_factory):
    proxy = proxy_factory(settings={"max_user_connections": 1, "query_wait_timeout": "1s"})
    app = proxy.connect()
    other = proxy.connect(user="scramuser")
    assert one(other, "SELECT current_user") == "scramuser"
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
        assert exc.value.sqlstate == "53300", exc.value.fields
    app.close()
    other.close()


def test_admin_console_still_connects_when_max_client_conn_is_reached(proxy_factory):
    proxy = proxy_factory(settings={"max_client_conn": 2})
    conns = [proxy.connect() for _ in range(2)]
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
        assert exc.value.sqlstate == "53300", exc.value.fields
    admin = Admin(proxy)
    assert len(admin.run("SHOW CLIENTS")) >= 3
    # the console session does not take a client's slot
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
        assert exc.value.sqlstate == "53300"
    conns.pop().close()
    time.sleep(0.3)
    again = proxy.connect()
    assert one(again, "SELECT 1") == 1
    again.close()
    admin.close()
    for conn in conns:
        conn.close()


# ---- read-only console, unix socket ------------------------------------------------------------

def test_stats_users_may_run_show_commands_only(proxy_factory):
    proxy = proxy_factory(settings={"stats_users": "scramuser"})
    viewer = proxy.connect(user="scramuser", dbname="pgturnout")
    with viewer.cursor() as cur:
        for show in ("SHOW CLIENTS", "SHOW STATS", "SHOW FLAGS", "SHOW CONFIG", "SHOW PATHS"):
            cur.execute(show)
            cur.fetchall()
        for command in ("SET canary_percent = 10", "RELOAD", "PAUSE", "RESUME", "SHUTDOWN"):
            with pytest.raises(psycopg2.Error) as exc:
                cur.execute(command)
            assert exc.value.pgcode == "42501", (command, exc.value)
        cur.execute("SHOW FLAGS")
        flags = {r[0]: r[1] for r in cur.fetchall()}
    assert flags["canary_percent"] == "0"
    viewer.close()
    assert proxy.alive()
    admin = Admin(proxy)                          # admin_users keep every command
    admin.run("PAUSE")
    admin.run("RESUME")
    admin.close()
    conn = proxy.connect()
    assert one(conn, "SELECT 1") == 1
    conn.close()


def test_users_in_neither_list_are_refused_the_console(proxy_factory):
    proxy = proxy_factory(settings={"stats_users": "scramuser"})
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "pgturnout", "app")
        assert exc.value.sqlstate == "28000", exc.value.fields


def test_unix_socket_dir_accepts_clients(proxy_factory, tmp_path):
    sockdir = str(tmp_path / "sock")
    os.makedirs(sockdir)
    proxy = proxy_factory(settings={"unix_socket_dir": sockdir})
    path = os.path.join(sockdir, ".s.PGSQL.%d" % proxy.port)
    wait_for(lambda: os.path.exists(path), "the unix socket")
    conn = psycopg2.connect(host=sockdir, port=proxy.port, user="app", dbname="app",
                            password="app", connect_timeout=10)
    conn.autocommit = True
    assert one(conn, "SELECT 1") == 1
    admin = Admin(proxy)
    addrs = [r["address"] for r in admin.run("SHOW CLIENTS")]
    assert "unix" in addrs, addrs
    admin.close()
    conn.close()
    assert proxy.stop() == 0
    assert not os.path.exists(path)               # removed at exit
