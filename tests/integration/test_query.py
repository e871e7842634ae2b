"""Query protocol through the proxy: simple query, extended query (named and
unnamed statements, binary results, pipelining, Describe), COPY both ways
(libpq API and psql \\copy), LISTEN/NOTIFY, cancel."""

import os
import select
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import kv_lines, run_pqclient, unique


def test_simple_query_returns_rows(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1, 'two', NULL::text, now() IS NOT NULL")
        assert cur.fetchone() == (1, "two", None, True)
        cur.execute("SELECT g FROM generate_series(1, 1000) g")
        assert [r[0] for r in cur.fetchall()] == list(range(1, 1001))
        cur.execute("SELECT current_user, current_database()")
        assert cur.fetchone() == ("app", "app")
    conn.close()


def test_simple_query_multi_statement_and_errors(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchone() == (2,)
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1/0")
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute("SELECT * FROM no_such_table_here")
        with pytest.raises(psycopg2.errors.SyntaxError):
            cur.execute("SELEC 1")
        cur.execute("SELECT 'still alive'")
        assert cur.fetchone() == ("still alive",)
    conn.close()


def test_transaction_commit_and_rollback(proxy, pg):
    t = unique("tx")
    conn = proxy.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE %s (id int)" % t)
        conn.commit()
        cur.execute("INSERT INTO %s VALUES (1)" % t)
        conn.rollback()
        cur.execute("INSERT INTO %s VALUES (2)" % t)
        cur.execute("SAVEPOINT s1")
        cur.execute("INSERT INTO %s VALUES (3)" % t)
        cur.execute("ROLLBACK TO SAVEPOINT s1")
        conn.commit()
    conn.close()
    assert pg.sql("SELECT id FROM %s ORDER BY id" % t) == [(2,)]
    pg.sql("DROP TABLE %s" % t)


def test_notice_and_parameter_status_reach_client(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("DO $$BEGIN RAISE NOTICE 'hello from plpgsql'; END$$")
        assert any("hello from plpgsql" in n for n in conn.notices)
        cur.execute("SET application_name = 'pgt_param_test'")
        assert conn.get_parameter_status("application_name") == "pgt_param_test"
        cur.execute("SET TimeZone = 'Europe/Paris'")
        assert conn.get_parameter_status("TimeZone") == "Europe/Paris"
    conn.close()


def test_extended_named_and_unnamed_statements(proxy, pqclient):
    out = kv_lines(run_pqclient(pqclient, "prepared", proxy.dsn()).stdout)
    assert out["describe_nparams"] == ["2"]
    assert out["describe_nfields"] == ["2"]
    assert out["describe_field"] == ["plus_one 23", "up 25"]
    assert out["named"] == ["41 ABC", "42 ABC", "43 ABC"]
    assert out["unnamed"] == ["42"]
    assert out["binary"] == ["258"]
    assert out["div_error"] == ["22012"]
    assert out["after_error"] == ["2 AFTER"]


def test_extended_pipeline_mode(proxy, pqclient):
    r = run_pqclient(pqclient, "pipeline", proxy.dsn())
    lines = [l for l in r.stdout.splitlines() if not l.startswith("backend_pid")]
    assert lines == [
        "command_ok",                         # Parse of pgt_pipe
        "row 2", "row 4", "row 6", "row 8", "row 10",
        "row unnamed",
        "sync 1",
        "query_error 22012",
        "aborted",
        "sync 2",
        "row segment3",
        "sync 3",
        "results 7",
    ]


def test_copy_in_and_out_with_libpq(proxy, pqclient, pg):
    t = unique("copy")
    pg.sql("CREATE TABLE %s (id int primary key, val text); ALTER TABLE %s OWNER TO app" % (t, t))
    n = 50000
    out = kv_lines(run_pqclient(pqclient, "copyin", proxy.dsn(), t, n).stdout)
    assert out["copied"] == [str(n)]
    assert pg.sql("SELECT count(*), sum(id) FROM %s" % t) == [(n, n * (n + 1) // 2)]
    out = kv_lines(run_pqclient(pqclient, "copyout", proxy.dsn(), t).stdout)
    assert out["rows"] == [str(n)]
    assert out["sum"] == [str(n * (n + 1) // 2)]
    pg.sql("DROP TABLE %s" % t)


def test_copy_in_error_keeps_session_usable(proxy, pg):
    t = unique("copyerr")
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE %s (id int)" % t)
        import io
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
            cur.copy_expert("COPY %s FROM STDIN" % t, io.StringIO("1\nnot-a-number\n"))
        cur.copy_expert("COPY %s FROM STDIN" % t, io.StringIO("5\n6\n"))
        cur.execute("SELECT sum(id) FROM %s" % t)
        assert cur.fetchone() == (11,)
        cur.execute("DROP TABLE %s" % t)
    conn.close()


def test_copy_with_psql_backslash_copy(proxy, tmp_path):
    t = unique("pcopy")
    src = tmp_path / "in.csv"
    dst = tmp_path / "out.csv"
    src.write_text("".join("%d,name %d,\"quoted, comma\"\n" % (i, i) for i in range(1, 2001)))
    script = (
        "CREATE TABLE %(t)s (id int, name text, note text);\n"
        "\\copy %(t)s FROM '%(src)s' WITH (FORMAT csv)\n"
        "\\copy (SELECT * FROM %(t)s ORDER BY id) TO '%(dst)s' WITH (FORMAT csv)\n"
        "SELECT count(*) FROM %(t)s;\n"
        "DROP TABLE %(t)s;\n" % {"t": t, "src": src, "dst": dst})
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At"], input=script, text=True,
                       capture_output=True, env=proxy.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "2000" in r.stdout.split()
    assert dst.read_text() == src.read_text()


def test_listen_notify_pid_matches_notifier(proxy):
    chan = unique("chan")
    listener = proxy.connect()
    notifier = proxy.connect()
    with listener.cursor() as cur:
        cur.execute("LISTEN %s" % chan)
    with notifier.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        notifier_pid = cur.fetchone()[0]
        # the pid a driver learns from BackendKeyData is the backend's own
        assert notifier.get_backend_pid() == notifier_pid
        cur.execute("NOTIFY %s, 'payload-1'" % chan)
    deadline = time.time() + 10
    while not listener.notifies and time.time() < deadline:
        select.select([listener], [], [], 1)
        listener.poll()
    assert listener.notifies, "no notification arrived"
    n = listener.notifies.pop(0)
    assert (n.channel, n.payload, n.pid) == (chan, "payload-1", notifier_pid)
    listener.close()
    notifier.close()


def test_cancel_running_query(proxy):
    conn = proxy.connect()
    timer = threading.Timer(1.0, conn.cancel)
    timer.start()
    start = time.time()
    with conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.QueryCanceled) as exc:
            cur.execute("SELECT pg_sleep(30)")
        assert exc.value.pgcode == "57014"
        elapsed = time.time() - start
        assert elapsed < 8, "cancel took %.1fs" % elapsed
        cur.execute("SELECT 'after cancel'")
        assert cur.fetchone() == ("after cancel",)
    timer.join()
    conn.close()


def test_cancel_with_wrong_key_does_nothing(proxy):
    import pgwire
    c = proxy.wire_login()
    pgwire.cancel_request(proxy.host, proxy.port, c.backend_pid, (c.secret + 1) & 0xFFFFFFFF)
    assert c.query("SELECT pg_sleep(0.5), 'not canceled'") == [("", "not canceled")]
    c.terminate()


def test_startup_parameters_are_forwarded(proxy):
    conn = proxy.connect(options="-c statement_timeout=1234 -c search_path=app_v2,public",
                         application_name="pgt_startup")
    with conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone() == ("1234ms",)
        cur.execute("SHOW search_path")
        assert cur.fetchone() == ("app_v2,public",)
        cur.execute("SELECT current_setting('application_name')")
        assert cur.fetchone() == ("pgt_startup",)
    conn.close()
