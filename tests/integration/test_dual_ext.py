"""Dual writes through the extended query protocol (SPEC §7: "simple and
extended protocol alike"), in both layouts of test_dual.py.

- COMMIT sent as Parse/Bind/Execute (unnamed, and a named statement
  prepared once and executed for every transaction, as JDBC drivers do)
  goes through the same commit path as a simple-protocol COMMIT: two-phase
  with `dual_commit = 2pc` (counted, no prepared transaction left), the
  commit intent with `ordered`; a PREPARE that fails on new rolls back both
  sides and the client's extended COMMIT gets 23505; ROLLBACK leaves
  nothing on either side; a failed transaction's COMMIT answers as the
  server does;
- PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED sent in the
  extended protocol are mirrored with `2pc` as they are in the simple one.
"""

import re
import struct
import subprocess

import pytest

import pgwire
from conftest import BIG, free_port
from test_dual import (databases_layout, journal_file, layout, metrics,  # noqa: F401
                       msg_bind, msg_execute, msg_parse, msg_sync, pgbench, read_journal,
                       read_results, run, schemas_layout)
from test_dual_2pc import gid_prefix, prepared, twopc_config, twopc_paths, users_ids
from test_dual_keys import assert_applied_by_key, hot, hot_script  # noqa: F401
from test_dual_keys import config as keys_config

pytestmark = pytest.mark.proxy_only

HOT_SECONDS = 30 if BIG else 3


def ext(w, sql, params=(), stmt=""):
    """One statement through Parse (unless STMT is a prepared name)/Bind/Execute/Sync."""
    data = b""
    if not stmt:
        data += msg_parse("", sql)
    data += msg_bind(stmt, list(params)) + msg_execute() + msg_sync()
    w.send(data)
    return read_results(w, 1)[0]


def twophase_commits(proxy):
    m = re.search(r"^pgturnout_twophase_commits_total (\d+)", metrics(proxy.http), re.M)
    return int(m.group(1)) if m else 0


def start(proxy_factory, layout, commit, flags=None):
    http = free_port()
    p = proxy_factory(settings={"http_listen": "127.0.0.1:%d" % http}, paths=twopc_paths(layout),
                      extra=twopc_config(layout, flags, commit=commit))
    p.http = http
    return p


# (each mode and primary in one layout or the other, to keep the file short)
@pytest.mark.parametrize("commit,canary,kind", [
    ("2pc", "0", "schemas"), ("2pc", "100", "databases"),
    ("ordered", "0", "databases"), ("ordered", "100", "schemas")])
def test_extended_commit_goes_through_the_commit_path(proxy_factory, request, commit, canary,
                                                      kind):
    layout = request.getfixturevalue(kind + "_layout")
    p = start(proxy_factory, layout, commit, {"canary_percent": canary})
    ins = "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)"
    w = p.wire_login()
    try:
        # unnamed COMMIT
        for i in range(1, 4):
            assert ext(w, "BEGIN") == (["BEGIN"], None, "T")
            assert ext(w, ins, (i, "n%d" % i, "e")) == (["INSERT 0 1"], None, "T")
            assert ext(w, "COMMIT") == (["COMMIT"], None, "I")
        # a named COMMIT prepared once, executed per transaction
        w.send(msg_parse("jdbc_commit", "COMMIT") + msg_parse("jdbc_begin", "BEGIN") +
               msg_parse("jdbc_ins", ins) + msg_sync())
        assert read_results(w, 1)[0] == ([], None, "I")
        for i in range(4, 7):
            assert ext(w, None, stmt="jdbc_begin") == (["BEGIN"], None, "T")
            assert ext(w, None, (i, "m", "f"), stmt="jdbc_ins") == (["INSERT 0 1"], None, "T")
            assert ext(w, None, stmt="jdbc_commit") == (["COMMIT"], None, "I")
        # one batch: BEGIN, INSERT, COMMIT, Sync
        w.send(msg_bind("jdbc_begin", []) + msg_execute() + msg_bind("jdbc_ins", [7, "b", "g"]) +
               msg_execute() + msg_bind("jdbc_commit", []) + msg_execute() + msg_sync())
        assert read_results(w, 1)[0] == (["BEGIN", "INSERT 0 1", "COMMIT"], None, "I")
        # pipelined: two transactions, one Sync each, sent before any answer
        batch = b""
        for i in (8, 9):
            batch += msg_bind("jdbc_begin", []) + msg_execute() + msg_sync()
            batch += msg_bind("jdbc_ins", [i, "p", "h"]) + msg_execute() + msg_sync()
            batch += msg_bind("jdbc_commit", []) + msg_execute() + msg_sync()
        w.send(batch)
        res = read_results(w, 6)
        assert [r[1] for r in res] == [None] * 6, res
        assert [r[2] for r in res] == ["T", "T", "I"] * 2, res
        # ROLLBACK in the extended protocol: nothing on either side
        assert ext(w, "BEGIN")[2] == "T"
        assert ext(w, ins, (50, "r", "r"))[2] == "T"
        assert ext(w, "ROLLBACK") == (["ROLLBACK"], None, "I")
        # a failed transaction: its COMMIT answers ROLLBACK, as the server's
        assert ext(w, "BEGIN")[2] == "T"
        assert ext(w, ins, (51, "f", "f"))[2] == "T"
        tags, err, status = ext(w, "SELECT 1/0")
        assert err["C"] == "22012" and status == "E"
        assert ext(w, "COMMIT") == (["ROLLBACK"], None, "I")
        # an autocommit write afterwards still works
        assert ext(w, ins, (10, "a", "i")) == (["INSERT 0 1"], None, "I")
    finally:
        w.terminate()
    assert users_ids(layout, "old") == list(range(1, 11))
    assert layout.assert_identical() == 10
    assert prepared(layout, "pgturnout_") == []
    if commit == "2pc":
        # every transaction that committed above went through two phases
        # (the 9 transactions and the wrapped autocommit write)
        assert twophase_commits(p) == 10, twophase_commits(p)
        assert prepared(layout, gid_prefix(p)) == []
    else:
        assert "without a durable intent" not in p.log()


def test_extended_commit_failing_prepare_rolls_back_both(proxy_factory, layout):
    new_table = layout.table("new")
    layout.sql("new", "ALTER TABLE %s ADD CONSTRAINT email_once UNIQUE (email) "
               "DEFERRABLE INITIALLY DEFERRED" % new_table)
    p = start(proxy_factory, layout, "2pc")
    ins = "INSERT INTO users (id, name, email) VALUES ($1, 'x', $2)"
    w = p.wire_login()
    try:
        assert ext(w, "BEGIN")[2] == "T"
        assert ext(w, ins, (1, "same"))[1] is None
        assert ext(w, ins, (2, "same"))[1] is None
        tags, err, status = ext(w, "COMMIT")
        assert err is not None and err["C"] == "23505", (tags, err)
        assert "rolled back on both paths" in err["M"]
        assert status == "I"
        # the session goes on
        assert ext(w, "BEGIN")[2] == "T"
        assert ext(w, ins, (3, "other"))[1] is None
        assert ext(w, "COMMIT") == (["COMMIT"], None, "I")
    finally:
        w.terminate()
    assert users_ids(layout, "old") == [3]
    assert layout.assert_identical() == 1
    assert prepared(layout, gid_prefix(p)) == []


def test_extended_client_two_phase_commit_is_mirrored(proxy_factory, layout):
    p = start(proxy_factory, layout, "2pc")
    ins = "INSERT INTO users (id, name, email) VALUES ($1, 'x', 'y')"
    a, b = p.wire_login(), p.wire_login()
    try:
        for i, finish in ((1, "COMMIT PREPARED"), (2, "ROLLBACK PREPARED")):
            gid = "ext_tx%d" % i
            assert ext(a, "BEGIN")[2] == "T"
            assert ext(a, ins, (i,))[1] is None
            assert ext(a, "PREPARE TRANSACTION '%s'" % gid) == (["PREPARE TRANSACTION"], None, "I")
            assert prepared(layout, gid) == [gid]
            assert prepared(layout, "pgturnout_mirror_" + gid) == ["pgturnout_mirror_" + gid]
            assert ext(b, "%s '%s'" % (finish, gid)) == ([finish], None, "I")
            assert prepared(layout, gid) == [] and prepared(layout, "pgturnout_mirror_" + gid) == []
        # a name never prepared: the server's error
        tags, err, status = ext(b, "COMMIT PREPARED 'never_ext'")
        assert err["C"] == "42704" and status == "I"
        # PREPARE TRANSACTION with more of the batch after it: a clear error
        assert ext(a, "BEGIN")[2] == "T"
        assert ext(a, ins, (3,))[1] is None
        a.send(msg_parse("", "PREPARE TRANSACTION 'ext_tx3'") + msg_bind("", []) +
               msg_execute() + msg_parse("", "SELECT 1") + msg_bind("", []) + msg_execute() +
               msg_sync())
        kind = None
        while kind != b"E":
            kind, body = a.recv_message()
        assert b"last statement of its extended-protocol batch" in body
    finally:
        a.terminate()
        b.terminate()
    assert users_ids(layout, "old") == [1]
    assert layout.assert_identical() == 1
    assert prepared(layout, "ext_tx") == [] and prepared(layout, "pgturnout_mirror_ext") == []


HOT_LOG = """
CREATE TABLE hot_log (n bigserial PRIMARY KEY, id int, v text);
CREATE FUNCTION hot_log() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path FROM CURRENT AS
    $$ BEGIN INSERT INTO hot_log (id, v) VALUES (NEW.id, NEW.email); RETURN NULL; END $$;
CREATE TRIGGER hot_log AFTER UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION hot_log();
"""

SLOW_START = """
CREATE FUNCTION slow_start() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END $$;
CREATE TRIGGER slow_start BEFORE UPDATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION slow_start();
"""


def hot_order(layout, role):
    """Per hot row, the values written to it in the order that side wrote
    them (its row lock order: the order of the commits)."""
    out = {}
    for rid, v in layout.sql(role, "SELECT id, v FROM hot_log ORDER BY n"):
        out.setdefault(rid, []).append(v)
    return out


@pytest.mark.parametrize("commit,kind", [("ordered", "schemas"), ("2pc", "databases")])
def test_extended_autocommit_hot_rows_reach_both_sides_in_one_order(proxy_factory, request,
                                                                    tmp_path, commit, kind):
    """16 sessions of prepared (extended-protocol) autocommit absolute updates
    on 10 hot rows (half of them on each path at canary 50): an autocommit
    write of a session on old keeps old's row locks until new applied it,
    so every row receives its writes in the same order on both sides (a
    trigger on each side logs them) and both end identical row by row. New
    is made the slower side (a statement trigger sleeping up to 20 ms before
    any row is locked), so that writes leaving old in one order would often
    reach new in another."""
    layout = request.getfixturevalue(kind + "_layout")
    for role in ("old", "new"):
        layout.sql(role, HOT_LOG % layout.table(role))
    layout.sql("new", SLOW_START % layout.table("new"))
    p = start(proxy_factory, layout, commit, {"canary_percent": "50"})
    seed = p.connect(options="-c pgturnout.version=v1")
    run(seed, "INSERT INTO users (id, name, email) SELECT g, 'n' || g, '0' "
        "FROM generate_series(1, 10) g")
    seed.close()
    script = tmp_path / "hot.sql"
    script.write_text("\\set id random(1, 10)\n\\set v random(1, 1000000)\n"
                      "UPDATE users SET email = :v WHERE id = :id;\n")
    procs = []
    for i in range(2):
        e = p.env()
        e["PGAPPNAME"] = "hot-%d" % i
        procs.append(subprocess.Popen(
            ["pgbench", "-n", "-M", "prepared", "-c", "8", "-j", "2",
             "-T", str(HOT_SECONDS), "-f", str(script)],
            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for pr in procs:
        out, err = pr.communicate(timeout=HOT_SECONDS + 60)
        assert pr.returncode == 0, (out, err[-2000:])
        assert "number of failed transactions: 0" in out or "failed" not in out, out
    old_order, new_order = hot_order(layout, "old"), hot_order(layout, "new")
    assert sum(len(v) for v in old_order.values()) > 100, old_order
    differ = [rid for rid in old_order if old_order[rid] != new_order.get(rid)]
    assert differ == [], "rows written in another order on new: %r" % differ
    old = layout.rows("old")
    assert len(old) == 10
    assert old == layout.rows("new")
    assert read_journal(journal_file(p)) == []
    if commit == "2pc":
        assert prepared(layout, gid_prefix(p)) == []


def msg_describe(kind, name=""):
    return pgwire.message(b"D", kind + name.encode() + b"\0")


def answers(w):
    """The messages up to ReadyForQuery: [(kind, body)]."""
    out = []
    while True:
        kind, body = w.recv_message()
        out.append((kind, body))
        if kind == b"Z":
            return out


def row_description(body):
    n = struct.unpack("!H", body[:2])[0]
    names, pos = [], 2
    for _ in range(n):
        end = body.index(b"\0", pos)
        names.append(body[pos:end].decode())
        pos = end + 1 + 18
    return names


def data_row(body):
    n = struct.unpack("!H", body[:2])[0]
    vals, pos = [], 2
    for _ in range(n):
        ln = struct.unpack("!i", body[pos:pos + 4])[0]
        pos += 4
        vals.append(None if ln < 0 else body[pos:pos + ln].decode())
        pos += max(ln, 0)
    return vals


def by_key_config(hot, canary):
    return keys_config(hot, canary, "table.hot = hot_v2\ncolumn.hot.v = val")


def test_extended_volatile_writes_reach_new_by_key(proxy_factory, hot, tmp_path):
    """Volatile UPDATEs, DELETEs and ON CONFLICT DO UPDATE sent as prepared
    statements (named and unnamed, pipelined) by v1 and v2 clients at once
    (canary 50): old's rows are captured and applied to new by key, the
    client never sees the capture, and both sides end identical row by row
    with nothing counted non-deterministic."""
    paths = {role: dict(p, user="app") for role, p in hot.paths.items()}
    p = proxy_factory(paths=paths, extra=by_key_config(hot, 0))
    p.wait_log(r"catalog of path new: \d+ tables")
    for version in ("v1", "v2"):
        role = "old" if version == "v1" else "new"
        t, v = hot.table(role), hot.v(role)
        w = p.wire_login(options="-c pgturnout.version=%s" % version)
        try:
            # named, described (statement and portal), RETURNING two columns
            upd = "UPDATE %s SET at = now(), token = gen_random_uuid() WHERE id IN ($1, $2) " \
                  "RETURNING id, %s" % (t, v)
            w.send(msg_parse("u", upd) + msg_describe(b"S", "u") + msg_bind("u", [1, 2]) +
                   msg_describe(b"P") + msg_execute() + msg_sync())
            got = answers(w)
            kinds = b"".join(k for k, _ in got)
            assert kinds == b"1tT2TDDCZ", kinds
            assert [row_description(b) for k, b in got if k == b"T"] == [["id", v]] * 2
            assert sorted(data_row(b) for k, b in got if k == b"D") == [["1", "r1"], ["2", "r2"]]
            assert [b for k, b in got if k == b"C"] == [b"UPDATE 2\0"]
            # unnamed, no RETURNING, pipelined with a DELETE and an upsert
            w.send(msg_parse("", "UPDATE %s SET n = n + 1, at = clock_timestamp() WHERE id = $1"
                             % t) + msg_bind("", [3]) + msg_execute() + msg_sync() +
                   msg_parse("", "DELETE FROM %s WHERE id = $1 AND random() < 2" % t) +
                   msg_bind("", [60 - (version == "v2")]) + msg_execute() + msg_sync() +
                   msg_parse("", "INSERT INTO %s (id, %s, at) VALUES ($1, 'x', now()) "
                             "ON CONFLICT (id) DO UPDATE SET at = now() RETURNING id" % (t, v)) +
                   msg_bind("", [5]) + msg_describe(b"P") + msg_execute() + msg_sync())
            got = answers(w) + answers(w) + answers(w)
            assert b"".join(k for k, _ in got) == b"12CZ12CZ12TDCZ", got
            assert [b for k, b in got if k == b"C"] == [b"UPDATE 1\0", b"DELETE 1\0",
                                                         b"INSERT 0 1\0"]
            assert [row_description(b) for k, b in got if k == b"T"] == [["id"]]
        finally:
            w.terminate()
    assert hot.rows("old") == hot.rows("new")
    p.stop()

    p = proxy_factory(paths=paths, extra=by_key_config(hot, 50))
    p.wait_log(r"catalog of path new: \d+ tables")
    s1 = tmp_path / "v1.sql"
    s1.write_text(hot_script(hot, "old"))
    s2 = tmp_path / "v2.sql"
    s2.write_text(hot_script(hot, "new"))
    env2 = dict(p.env(), PGOPTIONS="-c pgturnout.version=v2")
    v2 = subprocess.Popen(["pgbench", "-n", "-M", "prepared", "-c", "4", "-j", "1",
                           "-T", str(HOT_SECONDS), "-f", str(s2)], env=env2,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pgbench(p.env(), ["-M", "prepared", "-c", "8", "-j", "2", "-T", HOT_SECONDS, "-f", s1],
                timeout=HOT_SECONDS + 90)
    finally:
        out, err = v2.communicate(timeout=HOT_SECONDS + 90)
    assert v2.returncode == 0, err[-2000:]
    assert "number of failed transactions: 0" in out or "failed transactions" not in out, out
    assert_applied_by_key(hot, p)
