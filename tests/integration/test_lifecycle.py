"""Process life cycle: --check, start-up failures and exit codes, SIGHUP
reload (good file applied, bad file refused with file:line while the old
configuration keeps serving), graceful SIGTERM and SIGINT."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import Proxy, free_port, pgt_bin, render_config, unique

pytestmark = pytest.mark.proxy_only


def write_files(pg, tmp_path, **kw):
    p = Proxy(pg, str(tmp_path), "127.0.0.1", free_port())
    with open(p.userlist_path, "w") as f:
        f.write('"app" "app"\n"admin" "admin"\n')
    p.write_config(render_config(p, pg, **kw))
    return p


def run_check(config):
    return subprocess.run([pgt_bin(), "--check", "-c", config], capture_output=True, text=True,
                          timeout=30)


def test_check_accepts_good_config(pg, tmp_path):
    p = write_files(pg, tmp_path)
    r = run_check(p.config_path)
    assert r.returncode == 0, r.stderr
    # nothing was started
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p.port), timeout=1).close()


def test_check_reports_every_error_with_file_and_line(pg, tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text(
        "[pgturnout]\n"                          # 1
        "listen = 127.0.0.1:%d\n"                # 2
        "no_such_key = 1\n"                      # 3
        "auth_type = scram-sha-256\n"            # 4
        "max_client_conn = many\n"               # 5
        "\n"                                     # 6
        "[nonsense]\n"                           # 7
        "x = 1\n"                                # 8
        "\n"
        "[path old]\n"
        "host = 127.0.0.1\n"
        "port = %d\n" % (free_port(), pg.port))
    r = run_check(str(cfg))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "%s:3:" % cfg in r.stderr, r.stderr
    assert "no_such_key" in r.stderr
    assert "%s:5:" % cfg in r.stderr, r.stderr
    assert "%s:7:" % cfg in r.stderr, r.stderr


def test_bad_config_at_start_exits_1(pg, tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[pgturnout]\nauth_type = sometimes\n")
    r = subprocess.run([pgt_bin(), "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "%s:2:" % cfg in r.stderr


def test_cannot_listen_exits_2(pg, tmp_path):
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p = write_files(pg, tmp_path, settings={"listen": "127.0.0.1:%d" % busy.getsockname()[1]})
    r = subprocess.run([pgt_bin(), "-c", p.config_path], capture_output=True, text=True,
                       timeout=30)
    busy.close()
    assert r.returncode == 2, (r.stdout, r.stderr)


def show_search_path(proxy):
    conn = proxy.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW search_path")
        value = cur.fetchone()[0]
    conn.close()
    return value.replace(" ", "")


def test_reload_applies_a_good_file(proxy_factory, pg):
    proxy = proxy_factory()
    before = show_search_path(proxy)
    assert before == '"$user",public'
    old_session = proxy.connect()
    proxy.write_config(render_config(proxy, pg, settings={"log_level": "info"},
                                     paths={"old": {"search_path": "app_v2, public"}}))
    proxy.reload()
    deadline = time.time() + 10
    while show_search_path(proxy) != "app_v2,public":
        assert time.time() < deadline, "reload not applied; log:\n" + proxy.log()[-3000:]
        time.sleep(0.2)
    with old_session.cursor() as cur:
        cur.execute("SELECT 'old session survives reload'")
        assert cur.fetchone() == ("old session survives reload",)
    old_session.close()
    assert proxy.alive()


def test_reload_refuses_a_bad_file_and_keeps_serving(proxy_factory, pg):
    proxy = proxy_factory(paths={"old": {"search_path": "app_v2, public"}})
    good = open(proxy.config_path).read()
    lines = good.splitlines()
    bad_line = 3
    lines.insert(bad_line - 1, "definitely_not_a_key = 42")
    proxy.write_config("\n".join(lines) + "\n")
    proxy.reload()
    proxy.wait_log(re.escape("%s:%d:" % (proxy.config_path, bad_line)))
    assert proxy.alive()
    assert show_search_path(proxy) == "app_v2,public"
    # a later good reload still works
    proxy.write_config(good.replace("app_v2, public", "public"))
    proxy.reload()
    deadline = time.time() + 10
    while show_search_path(proxy) != "public":
        assert time.time() < deadline, "good reload after a bad one not applied"
        time.sleep(0.2)


def test_reload_with_unreadable_file_keeps_serving(proxy_factory):
    proxy = proxy_factory()
    os.rename(proxy.config_path, proxy.config_path + ".gone")
    proxy.reload()
    time.sleep(1)
    assert proxy.alive()
    conn = proxy.connect()
    conn.close()


def test_sigterm_lets_open_transaction_commit_then_exits_0(proxy_factory, pg):
    t = unique("term")
    pg.sql("CREATE TABLE %s (id int); ALTER TABLE %s OWNER TO app" % (t, t))
    proxy = proxy_factory(settings={"shutdown_timeout": "10s"})
    conn = proxy.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO %s VALUES (1)" % t)
        os.kill(proxy.pid, signal.SIGTERM)
        proxy.wait_log(r"shutting down")
        # no new clients while shutting down: the listening sockets are
        # closed, so a new client is refused at once instead of hanging
        start = time.time()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((proxy.host, proxy.port), timeout=5).close()
        assert time.time() - start < 1
        cur.execute("INSERT INTO %s VALUES (2)" % t)
    conn.commit()
    conn.close()
    proxy.expect_exit = True
    assert proxy.proc.wait(15) == 0
    assert pg.sql("SELECT count(*) FROM %s" % t) == [(2,)]
    pg.sql("DROP TABLE %s" % t)


def test_sigterm_gives_up_after_shutdown_timeout(proxy_factory):
    proxy = proxy_factory(settings={"shutdown_timeout": "1s"})
    conn = proxy.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")        # a transaction stays open
    start = time.time()
    rc = proxy.stop(signal.SIGTERM, timeout=15)
    assert time.time() - start < 6
    assert rc == 0
    conn.close()


def test_sigterm_with_idle_clients_exits_promptly(proxy_factory):
    proxy = proxy_factory(settings={"shutdown_timeout": "20s"})
    conns = [proxy.connect() for _ in range(3)]
    start = time.time()
    assert proxy.stop(signal.SIGTERM, timeout=30) == 0
    assert time.time() - start < 5, "idle sessions should not hold shutdown"
    for c in conns:
        c.close()


def test_sigint_exits_at_once(proxy_factory):
    proxy = proxy_factory()
    conn = proxy.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    start = time.time()
    proxy.stop(signal.SIGINT, timeout=10)
    assert time.time() - start < 3
    conn.close()
