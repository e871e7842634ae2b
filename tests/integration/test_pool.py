"""Server connections kept between clients (server_idle_timeout,
server_reset_query; SPEC §4 session mode).

A client that leaves cleanly with its backend idle hands the backend to the
next client with the same startup packet: same backend pid, none of the
first client's session state (settings, temporary tables, prepared
statements, advisory locks). Anything else gets a backend of its own.
"""

import subprocess
import time

import psycopg2
import pytest

from twopaths import Admin, wait_for

pytestmark = pytest.mark.proxy_only


def backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def one(conn, query):
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchone()[0]


def alive(pg, pid):
    return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %d" % pid)[0][0] == 1


def reused_pid(proxy, pid, **kw):
    """Connects until the proxy hands out backend PID (its reset runs
    asynchronously), or returns the last other pid after 5 s."""
    deadline = time.time() + 5
    while True:
        conn = proxy.connect(**kw)
        got = backend_pid(conn)
        if got == pid or time.time() > deadline:
            return conn, got
        conn.close()
        time.sleep(0.1)


def test_backend_goes_to_the_next_client_with_session_state_reset(proxy):
    first = proxy.connect()
    pid = backend_pid(first)
    with first.cursor() as cur:
        cur.execute("SET work_mem = '7MB'")
        cur.execute("CREATE TEMP TABLE left_behind (x int)")
        cur.execute("PREPARE left_stmt AS SELECT 1")
        cur.execute("SELECT pg_advisory_lock(4242)")
    first.close()
    admin = Admin(proxy)
    idle = lambda: int({r["role"]: r for r in admin.run("SHOW PATHS")}["old"]["idle_server_connections"])
    wait_for(lambda: idle() == 1, "SHOW PATHS to count the kept backend")

    second, got = reused_pid(proxy, pid)
    assert got == pid
    assert idle() == 0
    admin.close()
    assert one(second, "SHOW work_mem") == "4MB"
    assert one(second, "SELECT count(*) FROM pg_class WHERE relname = 'left_behind' "
                       "AND relpersistence = 't'") == 0
    assert one(second, "SELECT count(*) FROM pg_prepared_statements") == 0
    assert one(second, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    # The reused backend works like a fresh one, extended protocol included.
    with second.cursor() as cur:
        cur.execute("SELECT %s::int + 1", (41,))
        assert cur.fetchone()[0] == 42
    second.close()


def test_only_the_same_startup_packet_gets_the_backend(proxy):
    a = proxy.connect(application_name="pool_a")
    pid_a = backend_pid(a)
    a.close()
    time.sleep(0.3)
    b = proxy.connect(application_name="pool_b")
    assert backend_pid(b) != pid_a
    assert one(b, "SHOW application_name") == "pool_b"
    b.close()
    again, got = reused_pid(proxy, pid_a, application_name="pool_a")
    assert got == pid_a
    assert one(again, "SHOW application_name") == "pool_a"
    again.close()
    # Another user never gets it.
    other = proxy.connect(user="trustuser")
    assert backend_pid(other) not in (pid_a,)
    other.close()


def test_client_leaving_inside_a_transaction_ends_its_backend(proxy, pg):
    conn = proxy.connect(autocommit=False)
    pid = backend_pid(conn)  # opens a transaction
    conn.close()              # Terminate while in the transaction
    wait_for(lambda: not alive(pg, pid), "the backend to exit")
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    fresh.close()


def test_client_killed_by_an_error_does_not_pass_its_backend_on(proxy, pg):
    conn = proxy.connect()
    pid = backend_pid(conn)
    pg.sql("SELECT pg_terminate_backend(%d)" % pid)
    with pytest.raises(psycopg2.Error):
        one(conn, "SELECT 1")
    conn.close()
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    assert one(fresh, "SELECT 1") == 1
    fresh.close()


def test_kept_backend_terminated_by_the_server_is_dropped(proxy, pg):
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    pg.sql("SELECT pg_terminate_backend(%d)" % pid)
    wait_for(lambda: not alive(pg, pid), "the backend to exit")
    time.sleep(0.2)
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    assert one(fresh, "SELECT 1") == 1
    fresh.close()


def test_idle_timeout_closes_kept_backends(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_idle_timeout": "1s"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    assert alive(pg, pid)
    wait_for(lambda: not alive(pg, pid), "server_idle_timeout to close the backend", timeout=10)


def test_zero_idle_timeout_closes_backends_with_their_clients(proxy_factory, pg):
    proxy = proxy_factory(settings={"server_idle_timeout": "0"})
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    wait_for(lambda: not alive(pg, pid), "the backend to exit")


def test_reload_drops_kept_backends(proxy, pg):
    conn = proxy.connect()
    pid = backend_pid(conn)
    conn.close()
    time.sleep(0.3)
    assert alive(pg, pid)
    proxy.reload()
    wait_for(lambda: not alive(pg, pid), "the reload to drop the kept backend")
    fresh = proxy.connect()
    assert backend_pid(fresh) != pid
    fresh.close()


def test_connection_per_transaction_pgbench(proxy, pg, tmp_path):
    """pgbench -C (a new connection for every transaction) reuses backends:
    no failures, and about as many backends as concurrent clients."""
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;\n")
    r = subprocess.run(["pgbench", "-n", "-C", "-c", "4", "-j", "1", "-t", "200",
                        "-f", str(script), "app"],
                       capture_output=True, text=True, env=proxy.env(), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "number of failed transactions: 0" in r.stdout, r.stdout
    # 800 connections were made; backends the proxy opened are far fewer.
    log = proxy.log()
    opened = log.count("connecting to path")
    assert opened <= 40, opened
