"""Named prepared statements while pgturnout tracks them (two paths
configured): found by name in constant time, replayed after a path switch,
and capped per session by max_prepared_statements with 54000.

Timing of many statements is measured by tests/bench/prepared.sh, not here.
"""

import struct

import pgwire
import pytest
from twopaths import Admin

pytestmark = pytest.mark.proxy_only

MIGRATION = "\n[migration]\nold = old\nnew = new\nsalt = prepared\n[flags]\nforce_path = none\n"


def start(proxy_factory, cap):
    return proxy_factory(settings={"max_prepared_statements": str(cap), "log_level": "info"},
                         paths={"old": {}, "new": {}}, extra=MIGRATION)


def login(proxy):
    w = pgwire.Conn(proxy.host, proxy.port, timeout=60)
    w.startup("app", "app", password="app")
    return w


def parse(name, sql):
    return pgwire.message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind_execute(name):
    return (pgwire.message(b"B", b"\0" + name.encode() + b"\0" + struct.pack("!HHH", 0, 0, 0))
            + pgwire.message(b"E", b"\0" + struct.pack("!I", 0)))


def close_stmt(name):
    return pgwire.message(b"C", b"S" + name.encode() + b"\0")


SYNC = pgwire.message(b"S")


def answers(w):
    """The messages up to ReadyForQuery: (kinds, error or None, data rows)."""
    kinds, err, rows = [], None, []
    while True:
        kind, body = w.recv_message()
        kinds.append(kind)
        if kind == b"E":
            err = pgwire.WireError(pgwire.parse_error_fields(body))
        elif kind == b"D":
            (ln,) = struct.unpack("!i", body[2:6])
            rows.append(body[6:6 + ln].decode())
        elif kind == b"Z":
            return kinds, err, rows


def prepare_many(w, first, count, batch=2000):
    for start_at in range(first, first + count, batch):
        n = min(batch, first + count - start_at)
        w.send(b"".join(parse("s%d" % i, "SELECT %d" % i) for i in range(start_at, start_at + n)) + SYNC)
        kinds, err, _ = answers(w)
        assert err is None, err
        assert kinds.count(b"1") == n


def run(w, name):
    w.send(bind_execute(name) + SYNC)
    return answers(w)


def test_a_parse_over_the_cap_is_refused_with_54000_and_the_session_goes_on(proxy_factory):
    proxy = start(proxy_factory, 50)
    w = login(proxy)
    prepare_many(w, 0, 50)
    # one more: refused, as PostgreSQL refuses a statement it cannot take
    w.send(parse("s50", "SELECT 50") + bind_execute("s50") + SYNC)
    _, err, _ = answers(w)
    assert err is not None and err.sqlstate == "54000", err
    assert "max_prepared_statements = 50" in err.message
    # the session goes on; its statements still run
    assert run(w, "s0")[2] == ["0"] and run(w, "s49")[2] == ["49"]
    # re-preparing a tracked name is no new statement: allowed at the cap
    w.send(close_stmt("s49") + parse("s49", "SELECT 4949") + SYNC)
    assert answers(w)[1] is None
    assert run(w, "s49")[2] == ["4949"]
    # closing one makes room for another
    w.send(close_stmt("s1") + parse("s51", "SELECT 51") + SYNC)
    assert answers(w)[1] is None
    assert run(w, "s51")[2] == ["51"]
    assert "max_prepared_statements" in proxy.log()
    # others are unaffected
    other = login(proxy)
    prepare_many(other, 0, 50)
    other.close()
    w.close()


def test_many_statements_are_replayed_after_a_path_switch(proxy_factory):
    proxy = start(proxy_factory, 0)
    w = login(proxy)
    n = 20000
    prepare_many(w, 0, n)
    w.send(close_stmt("s7") + SYNC)
    answers(w)
    admin = Admin(proxy)
    admin.run("SET force_path = new")
    # the next transaction runs on new, where every open statement is
    # replayed first, and the closed one is not
    assert w.query("SELECT current_setting('port')") is not None
    for i in (0, 1234, n - 1):
        assert run(w, "s%d" % i)[2] == [str(i)]
    _, err, _ = run(w, "s7")
    assert err is not None and err.sqlstate == "26000", err
    assert "replayed 0 settings and %d prepared statements on path new" % (n - 1) in proxy.log()
    w.close()
