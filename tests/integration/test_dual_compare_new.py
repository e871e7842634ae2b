"""Value comparison for sessions whose primary is new (SPEC §7, "Results are
compared"; docs/dual-writes.md, "Comparing results").

A v2 session (version tag) or a canary session runs a captured write on old
first; new then runs the apply of old's values in place of the client's
statement, with the client's own RETURNING list followed by a marker and the
applied columns. pgturnout strips those from what the client gets and
compares them with old's captured rows: a trigger of new's that changes a
written value is a mismatch, counted on path new, logged, and journaled by
key with old authoritative, so that `repair --journal` makes new equal to
old again. Without such a trigger nothing is counted, and the client's
results are PostgreSQL's own (RowDescription, DataRows, command tags,
Describe answers), byte for byte.

Both layouts of test_dual_keys' hot table: one database with two schemas
(hot / hot_v2, v renamed val) and two databases (hot on both).
"""

import subprocess
import threading

import pytest

import pgwire
from conftest import BIG, PASSWORDS, unique
from pgwire import message, msg_bind, msg_execute, msg_parse, msg_sync
from test_dual import journal_file, pgbench, read_journal, read_results, run
from test_dual_keys import hot, journal_entries, repair_journal, shout  # noqa: F401 (fixture)
from twopaths import Admin

pytestmark = pytest.mark.proxy_only

SECONDS = 15 if BIG else 4


def start(proxy_factory, hot, canary):
    """Tags v1 (old) and v2 (new); untagged sessions are canaried at CANARY."""
    paths = {role: dict(p, user="app") for role, p in hot.paths.items()}
    text = ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "version.v1 = old\nversion.v2 = new\n" % unique("salt"))
    if hot.renamed():
        text += "\n[rewrite]\ntable.hot = hot_v2\ncolumn.hot.v = val\n"
    text += ("\n[flags]\ncanary_percent = %d\ndual_write = on\nshadow_failure = journal\n"
             % canary)
    p = proxy_factory(paths=paths, extra=text)
    p.wait_log(r"catalog of path new: \d+ tables")
    return p


def mismatches(p):
    return {path: int(r["mismatches"]) for path, r in Admin(p).stats().items()}


def fetch(conn, sql):
    """(column names or None, rows or None, command tag) of SQL."""
    with conn.cursor() as cur:
        cur.execute(sql)
        if cur.description is None:
            return None, None, cur.statusmessage
        return [d.name for d in cur.description], cur.fetchall(), cur.statusmessage


def test_values_new_wrote_otherwise_are_a_mismatch_for_sessions_on_new(proxy_factory, hot):
    """A canary session (v1 SQL, primary new) and a v2 session: their
    INSERT and volatile UPDATE, simple and extended protocol, are applied on
    new with old's values, which new's trigger changes: each is a mismatch
    of path new, journaled by key with old authoritative; repair --journal
    makes new equal to old row by row."""
    p = start(proxy_factory, hot, 100)
    t, v = hot.table("new"), hot.v("new")
    can = p.connect()
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        # equal values first: nothing counted
        run(can, "INSERT INTO hot (id, v, at) VALUES (100, 'same', now())",
            "UPDATE hot SET at = now() WHERE id = 100")
        run(v2, "UPDATE %s SET at = clock_timestamp() WHERE id = 3" % t)
        assert mismatches(p) == {"old": 0, "new": 0}
        shout(hot)
        # the client gets new's result, as PostgreSQL gives it on new
        assert fetch(can, "INSERT INTO hot (id, v, at) VALUES (101, 'quiet', now())"
                          " RETURNING id, v") == (["id", "v"], [(101, "QUIET")], "INSERT 0 1")
        assert mismatches(p) == {"old": 0, "new": 1}
        assert fetch(can, "UPDATE hot SET at = clock_timestamp() WHERE id IN (1, 2)") == \
            (None, None, "UPDATE 2")
        assert mismatches(p) == {"old": 0, "new": 2}
        assert fetch(v2, "INSERT INTO %s (id, %s, at) VALUES (102, 'hush', now())" % (t, v)) == \
            (None, None, "INSERT 0 1")
        assert mismatches(p) == {"old": 0, "new": 3}
        # extended, v2: a read returning rows of new's, then a captured
        # write, in one batch
        w = p.wire_login(options="-c pgturnout.version=v2")
        try:
            w.send(msg_parse("", "SELECT id FROM %s WHERE id = $1" % t) +
                   msg_bind("", [10]) + msg_execute() +
                   msg_parse("", "UPDATE %s SET at = now() WHERE id = $1 RETURNING id, n" % t) +
                   msg_bind("", [5]) + msg_execute() + msg_sync())
            tags, err, _ = read_results(w, 1)[0]
            assert (tags, err) == (["SELECT 1", "UPDATE 1"], None)
        finally:
            w.terminate()
        assert mismatches(p) == {"old": 0, "new": 4}
        # a transaction: journaled when it commits
        run(can, "BEGIN", "UPDATE hot SET token = gen_random_uuid() WHERE id = 6",
            "INSERT INTO hot (id, v) VALUES (103, 'in a transaction')", "COMMIT")
        assert mismatches(p) == {"old": 0, "new": 6}
    finally:
        can.close()
        v2.close()
    p.wait_log(r"dual-write mismatch on path new \(fingerprint [0-9a-f]{16}\): the values "
               r"written differ from path old's \(2 rows compared\)")
    p.wait_log(r"journaled 2 statement\(s\) whose values differ, by key, on path new")
    entries = journal_entries(journal_file(p))
    got = [(e["table"], sorted(k["id"] for k in e["keys"]), e["authoritative"], e["path"])
           for e in entries]
    want = [("hot", ids, "old", "new") for ids in (["101"], ["1", "2"], ["102"], ["5"],
                                                     ["6"], ["103"])]
    assert got == want, entries
    assert all(e["error"].startswith("value mismatch") for e in entries), entries
    assert hot.rows("old") != hot.rows("new")
    hot.sql("new", "DROP TRIGGER shout ON %s" % t)
    repair_journal(p)
    old, new = hot.rows("old"), hot.rows("new")
    assert len(old) == len(new)
    assert [(a, b) for a, b in zip(old, new) if a != b] == []


# ---- what the client sees: PostgreSQL's own answers --------------------------

def msg_describe(kind, name=""):
    return message(b"D", kind + name.encode() + b"\0")


def answers(conn, syncs):
    """The protocol answers up to SYNCS ReadyForQuery, as (kind, body), without
    ParameterStatus and NoticeResponse (which differ between connections)."""
    out, seen = [], 0
    while seen < syncs:
        kind, body = conn.recv_message()
        if kind in (b"S", b"N"):
            continue
        out.append((kind, body))
        seen += kind == b"Z"
    return out


BATCHES = 8


def batch(t, v, base):
    """Pipelined extended batches (one captured write each: see the limits in
    docs/dual-writes.md) on new's table T (value column V), their keys from
    BASE: named and unnamed statements, Describe of statements and portals,
    with and without RETURNING; BATCHES of them."""
    ins = "INSERT INTO %s (id, %s, at) VALUES ($1, $2, now()) RETURNING %s, id" % (t, v, v)
    return (msg_parse("ins", ins) + msg_describe(b"S", "ins") +
            msg_bind("ins", [base, "a"]) + msg_describe(b"P") + msg_execute() + msg_sync() +
            msg_bind("ins", [base + 1, "b"]) + msg_execute() + msg_sync() +
            msg_parse("", "INSERT INTO %s (id, %s) VALUES ($1, 'plain')" % (t, v)) +
            msg_describe(b"S") + msg_bind("", [base + 2]) + msg_execute() + msg_sync() +
            msg_parse("", "UPDATE %s SET at = clock_timestamp(), n = n + 1 WHERE id = $1"
                          " RETURNING n, %s" % (t, v)) +
            msg_bind("", [base]) + msg_describe(b"P") + msg_execute() + msg_sync() +
            msg_parse("", "INSERT INTO %s (id, %s, at) VALUES ($1, 'up', now()) ON CONFLICT (id)"
                          " DO UPDATE SET at = now(), n = %s.n + 10 RETURNING n" % (t, v, t)) +
            msg_bind("", [base + 1]) + msg_execute() + msg_sync() +
            msg_parse("", "DELETE FROM %s WHERE id = $1 AND now() > '2000-01-01'" % t) +
            msg_bind("", [base + 2]) + msg_describe(b"P") + msg_execute() + msg_sync() +
            msg_parse("", "DELETE FROM %s WHERE id = $1 AND random() < 2 RETURNING id" % t) +
            msg_bind("", [base + 2]) + msg_execute() + msg_sync() +
            msg_parse("end", "SELECT 1") + msg_bind("end", []) + msg_execute() +
            message(b"C", b"Send\0") + msg_sync())


def direct(pg, hot, role):
    """A wire session straight to ROLE's table, as app."""
    db, schema = hot.where[role]
    c = pgwire.Conn(pg.host, pg.port)
    c.startup("app", db, PASSWORDS["app"], options="-c search_path=%s" % schema)
    return c


def test_client_results_on_new_are_postgresql_own(proxy_factory, pg, hot):
    """A v2 session's captured writes, extended protocol, pipelined: every
    answer (ParseComplete ... RowDescription, DataRows, command tags,
    ParameterDescription, NoData, ReadyForQuery) is byte for byte what
    PostgreSQL itself answers on new; a canary session's simple-protocol
    results (psycopg2) are what PostgreSQL answers on old. Nothing counted,
    nothing journaled, both sides identical."""
    p = start(proxy_factory, hot, 100)
    t, v = hot.table("new"), hot.v("new")
    want_conn = direct(pg, hot, "new")
    try:  # PostgreSQL's own answers on new (then undone)
        want_conn.send(batch(t, v, 200))
        want = answers(want_conn, BATCHES)
    finally:
        want_conn.terminate()
    hot.sql("new", "DELETE FROM %s WHERE id BETWEEN 200 AND 202" % t)
    w = p.wire_login(options="-c pgturnout.version=v2")
    try:
        w.send(batch(t, v, 200))
        got = answers(w, BATCHES)
    finally:
        w.terminate()
    assert [k for k, _ in got] == [k for k, _ in want]
    assert got == want

    # a canary session (SQL of old's, primary new), simple protocol
    def plain(got):
        """Without the volatile columns (at, token), rows sorted."""
        cols, rows, tag = got
        if cols is None:
            return got
        keep = [i for i, c in enumerate(cols) if c not in ("at", "token")]
        # (RETURNING * on new lists new's columns, in new's names)
        names = ["v" if cols[i] == hot.v("new") else cols[i] for i in keep]
        return (names, sorted(tuple(r[i] for i in keep) for r in rows), tag)

    expect = {}
    statements = [
        "INSERT INTO hot (id, v, at) VALUES (300, 'x', now()) RETURNING *, 7 AS seven",
        "INSERT INTO hot (id, v) VALUES (301, 'y') -- no RETURNING",
        "INSERT INTO hot AS h (id, v, at) VALUES (301, 'z', now()) ON CONFLICT (id)"
        " DO UPDATE SET at = now(), n = h.n + 1 RETURNING h.v, h.n -- trailing comment",
        "UPDATE hot SET at = clock_timestamp(), n = n + 2 WHERE id IN (300, 301)"
        " RETURNING id, n, v",
        "UPDATE hot SET token = gen_random_uuid() WHERE id = 7",
        "DELETE FROM hot WHERE id = 301 AND random() < 2 RETURNING v",
    ]
    old = pg.connect(dbname=hot.where["old"][0], options="-c search_path=%s" % hot.where["old"][1])
    old.autocommit = False
    try:
        for s in statements:
            expect[s] = plain(fetch(old, s))
        old.rollback()
    finally:
        old.close()
    can = p.connect()
    try:
        for s in statements:
            assert plain(fetch(can, s)) == expect[s], s
    finally:
        can.close()
    assert mismatches(p) == {"old": 0, "new": 0}
    # every write's values were captured (a Describe in the batch included)
    assert "could not be captured" not in p.log()
    assert all(int(r["nondeterministic"]) == 0 for r in Admin(p).run("SHOW STATS"))
    assert read_journal(journal_file(p)) == []
    assert hot.rows("old") == hot.rows("new")


# ---- concurrent sessions on both paths: nothing counted -----------------------

def canary_script(table, v, base):
    return ("\\set k " + str(base) + " + :client_id * 100000 + random(1, 99999)\n"
            "\\set id random(1, 40)\n"
            "INSERT INTO {t} (id, {v}, at) VALUES (:k, 'k' || :k, now())"
            " ON CONFLICT (id) DO NOTHING RETURNING id, {v};\n"
            "UPDATE {t} SET at = clock_timestamp(), n = n + 1 WHERE id = :id RETURNING n;\n"
            "INSERT INTO {t} (id, {v}, at) VALUES (:id, 'up', now())"
            " ON CONFLICT (id) DO UPDATE SET at = now(), n = {t}.n + 1 RETURNING n;\n"
            "DELETE FROM {t} WHERE id = :k AND random() < 0.5;\n").format(t=table, v=v)


def test_concurrent_sessions_on_both_paths_compare_equal(proxy_factory, hot, tmp_path):
    """Canary 50: untagged pgbench -M prepared (half of it on new), v2
    pgbench -M prepared, and psycopg2 sessions on both paths checking their
    RETURNING rows, at once: no mismatch, nothing journaled, nothing
    non-deterministic, both sides identical row by row."""
    p = start(proxy_factory, hot, 50)
    s1 = tmp_path / "v1.sql"
    s1.write_text(canary_script("hot", "v", 10000000))
    s2 = tmp_path / "v2.sql"
    s2.write_text(canary_script(hot.table("new"), hot.v("new"), 20000000))
    env2 = dict(p.env(), PGOPTIONS="-c pgturnout.version=v2")
    errors, out = [], {}

    def v2_bench():
        out["v2"] = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", "3", "-j", "1",
                                    "-T", str(SECONDS), "-f", str(s2)],
                                   capture_output=True, text=True, env=env2, timeout=SECONDS + 90)

    def returning_client(n, options):
        t, v = ("hot", "v") if "v2" not in options else (hot.table("new"), hot.v("new"))
        c = p.connect(options=options) if options else p.connect()
        try:
            for i in range(40):
                k = 2000000 + n * 1000 + i
                got = fetch(c, "INSERT INTO %s (id, %s, at) VALUES (%d, 'r%d', now())"
                               " RETURNING %s, id" % (t, v, k, k, v))
                if got != ([v, "id"], [("r%d" % k, k)], "INSERT 0 1"):
                    errors.append(got)
                got = fetch(c, "UPDATE %s SET at = now(), %s = %s || '!' WHERE id = %d"
                               " RETURNING %s" % (t, v, v, k, v))
                if got != ([v], [("r%d!" % k,)], "UPDATE 1"):
                    errors.append(got)
        finally:
            c.close()

    threads = [threading.Thread(target=v2_bench)]
    threads += [threading.Thread(target=returning_client, args=(n, o))
                for n, o in enumerate(["", "", "-c pgturnout.version=v2",
                                       "-c pgturnout.version=v1"])]
    for th in threads:
        th.start()
    try:
        pgbench(p.env(), ["-M", "prepared", "-c", "6", "-j", "2", "-T", SECONDS, "-f", s1],
                timeout=SECONDS + 90)
    finally:
        for th in threads:
            th.join()
    assert errors == [], errors[:3]
    r = out["v2"]
    assert r.returncode == 0, r.stderr[-2000:]
    assert "number of failed transactions: 0" in r.stdout or \
        "failed transactions" not in r.stdout, r.stdout
    old, new = hot.rows("old"), hot.rows("new")
    assert len(old) == len(new), (len(old), len(new))
    assert [(a, b) for a, b in zip(old, new) if a != b] == []
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    warnings = [line for line in p.log().splitlines() if "WARNING" in line][:5]
    assert all(int(r["mismatches"]) == 0 for r in stats), warnings
    assert all(int(r["nondeterministic"]) == 0 for r in stats), (stats, warnings)
    # sessions on new wrote through old first
    assert int(Admin(p).stats()["old"]["shadow_writes"]) > 0
