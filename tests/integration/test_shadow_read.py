"""Shadow reads (SPEC §12): reads of sampled sessions also run, rewritten, on
the other path, and the two results are compared.

The schema is the demo's: old has users(id, name, email), new has
users_v2(id, full_name, nick, email), where nick holds the names in lower
case. The right rule maps name to full_name; the deliberately wrong one maps
it to nick, so exactly the statements that read name (in their select list
or their WHERE) see different values on new.

Covered: with the wrong rule, mismatches for exactly the statements reading
name, each with its first differing row in SHOW SHADOW_READS (ordered and
multiset comparisons); volatile functions, now() and LIMIT without ORDER BY
counted unstable and not run; reads inside a transaction block skipped; a
v2 session's reads compared on old; with the right rule, concurrent read
traffic at shadow_reads = 100 gives 0 mismatches and 0 unstable, and its side
connections close once shadow_reads is 0; /metrics.
With the other path not answering (a socket that accepts and never speaks),
clients never wait for it (their statements per second stay within a tenth
of shadow_reads = 0 in alternating runs of 1 s, where waiting would crawl;
docs/performance.md has the benchmark figures), work is dropped
and counted, the queue stays bounded and the proxy's memory flat.
"""

import os
import re
import threading
import time

import pytest

from conftest import free_port, sanitized_binary, unique
from test_http import call
from twopaths import Admin as BaseAdmin, BlackHole, TwoPathLayout, created, wait_for

pytestmark = pytest.mark.proxy_only

OLD_OBJECTS = """
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO users (name, email)
  SELECT 'User ' || g, 'u' || g || '@example.com' FROM generate_series(1, 50) g;
"""

NEW_OBJECTS = """
CREATE TABLE users_v2 (id integer PRIMARY KEY, full_name text NOT NULL, nick text, email text);
INSERT INTO users_v2 (id, full_name, nick, email)
  SELECT g, 'User ' || g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 50) g;
"""

RIGHT = "column.users.name = full_name"
WRONG = "column.users.name = nick"


class Layout(TwoPathLayout):
    def __init__(self, pg):
        super().__init__(pg, "schemas", unique("sr"))

    def objects(self, role):
        return OLD_OBJECTS if role == "old" else NEW_OBJECTS


@pytest.fixture
def layout(pg):
    yield from created(Layout(pg))


class Admin(BaseAdmin):
    def shadow_reads(self):
        return self.run("SHOW SHADOW_READS")

    def by_sample(self):
        return {r["sample"]: r for r in self.shadow_reads()}


def start(proxy_factory, layout, rule, shadow="100", paths=None, canary="0", guard="",
          dual_write="off"):
    port = free_port()
    p = proxy_factory(settings={"http_listen": "127.0.0.1:%d" % port},
                      paths=paths or layout.paths,
                      extra="\n[migration]\nold = old\nnew = new\nsalt = %s\n"
                            "version.v1 = old\nversion.v2 = new\n"
                            "\n[rewrite]\ntable.users = users_v2\n%s\n"
                            "\n[flags]\nshadow_reads = %s\ncanary_percent = %s\n"
                            "dual_write = %s\n"
                            "\n[guard]\n%s\n" % (unique("salt"), rule, shadow, canary, dual_write,
                                                 guard))
    p.http = "http://127.0.0.1:%d" % port
    return p


def metrics(p):
    status, _, text = call(p, "GET", "/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(r"^(pgturnout_shadow_\w+)(\{[^}]*\})? ([\d.e+-]+)$", text, re.M):
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


READING_NAME = [
    "SELECT id, name FROM users WHERE id = 3",
    "SELECT name, email FROM users ORDER BY id",
    "SELECT id FROM users WHERE name LIKE 'User 1%'",
]
NOT_READING_NAME = [
    "SELECT email FROM users WHERE id < 10 ORDER BY id",
    "SELECT count(*) FROM users",
    "SELECT id, email FROM users WHERE email LIKE 'u1%'",
]
UNSTABLE = [
    "SELECT random()",
    "SELECT id FROM users LIMIT 3",
    "SELECT now(), id FROM users WHERE id = 1",
]


def run_all(conn, statements, times=1):
    with conn.cursor() as cur:
        for _ in range(times):
            for sql in statements:
                cur.execute(sql)
                cur.fetchall()


def test_a_wrong_rule_is_reported_for_exactly_the_statements_reading_its_column(
        proxy_factory, layout):
    p = start(proxy_factory, layout, WRONG)
    admin = Admin(p)
    conn = p.connect()
    v2 = p.connect(options="-c pgturnout.version=v2")
    try:
        run_all(conn, READING_NAME + NOT_READING_NAME + UNSTABLE, times=2)
        with conn.cursor() as cur:                    # inside a transaction: skipped
            cur.execute("BEGIN")
            cur.execute("SELECT id, name FROM users WHERE id = 4")
            cur.execute("COMMIT")
        # a v2 session's reads run on new and are compared on old, rewritten back
        run_all(v2, ["SELECT id, nick FROM users_v2 WHERE id = 5",
                     "SELECT id, full_name FROM users_v2 WHERE id = 6"])
        expected = len(READING_NAME + NOT_READING_NAME) * 2 + 2
        wait_for(lambda: metrics(p).get("pgturnout_shadow_reads_total") == expected,
                 "%d shadow reads compared" % expected, 15)
        rows = admin.by_sample()
        for sql in READING_NAME:
            assert rows[sql]["runs"] == "2" and rows[sql]["mismatches"] == "2", rows[sql]
            assert rows[sql]["unstable"] == "0"
        for sql in NOT_READING_NAME:
            assert rows[sql]["runs"] == "2" and rows[sql]["mismatches"] == "0", rows[sql]
            assert rows[sql]["last_difference"] is None
        # the first differing row of the last mismatch
        diff = rows[READING_NAME[0]]["last_difference"]
        assert diff.startswith("only on ") and ("(3, User 3)" in diff or "(3, user 3)" in diff), diff
        assert rows[READING_NAME[1]]["last_difference"] == \
            "row 1: old (User 1, u1@example.com), new (user 1, u1@example.com)"
        assert rows[READING_NAME[2]]["last_difference"].startswith("only on old: ("), rows
        for sql in UNSTABLE:
            assert rows[sql]["unstable"] == "2" and rows[sql]["runs"] == "0", rows[sql]
            assert rows[sql]["mismatches"] == "0"
        # from v2, rewritten back with the wrong rule: nick reads old's name, and
        # full_name, which no rule maps back, fails on old
        v2rows = {r["sample"]: r for r in admin.shadow_reads() if "users_v2" in r["sample"]}
        assert v2rows["SELECT id, nick FROM users_v2 WHERE id = 5"]["mismatches"] == "1"
        e = v2rows["SELECT id, full_name FROM users_v2 WHERE id = 6"]
        assert e["mismatches"] == "1" and e["errors"] == "1", e
        assert e["last_difference"] == 'error on old only: 42703 column "full_name" does not exist'
        m = metrics(p)
        assert m["pgturnout_shadow_read_mismatches_total"] == 3 * 2 + 2
        assert m["pgturnout_shadow_read_errors_total"] == 1
        assert m["pgturnout_shadow_read_unstable_total"] == 3 * 2
        assert m['pgturnout_shadow_reads_skipped_total{reason="in_transaction"}'] >= 1
        assert m['pgturnout_shadow_read_duration_seconds_count{path="new"}'] == expected
        assert "shadow read mismatch (fingerprint" in p.log()
    finally:
        conn.close()
        v2.close()
        admin.close()


def test_right_rules_under_concurrent_reads_give_no_mismatch(proxy_factory, layout):
    p = start(proxy_factory, layout, RIGHT)
    admin = Admin(p)
    stop = threading.Event()
    errors = []

    def reader(i):
        conn = p.connect(application_name="reader%d" % i)
        try:
            n = 0
            with conn.cursor() as cur:
                while not stop.is_set():
                    n += 1
                    k = (n * 7 + i) % 50 + 1
                    for sql, args in (("SELECT id, name, email FROM users WHERE id = %s", (k,)),
                                      ("SELECT name FROM users WHERE id BETWEEN %s AND %s "
                                       "ORDER BY name", (k, k + 5)),
                                      ("SELECT count(*), max(name) FROM users", None)):
                        cur.execute(sql, args)
                        cur.fetchall()
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(10)
    try:
        assert not errors, errors
        m = wait_for(lambda: (lambda m: m if m["pgturnout_shadow_read_queue"] == 0 else None)(
            metrics(p)), "an empty queue", 15)
        assert m["pgturnout_shadow_reads_total"] > 100, m
        assert m["pgturnout_shadow_read_mismatches_total"] == 0
        assert m["pgturnout_shadow_read_unstable_total"] == 0
        assert all(r["mismatches"] == "0" and r["unstable"] == "0" for r in admin.shadow_reads())
        print("compared %d shadow reads, dropped %s" % (
            m["pgturnout_shadow_reads_total"],
            {k: v for k, v in m.items() if "dropped" in k and v}))
        # the side connections (up to 4 pairs for this user) go once shadow reads are off
        side = ("SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'pgturnout shadow reads %s'" % p.port)
        assert 2 <= layout.pg.sql(side)[0][0] <= 8
        admin.run("SET shadow_reads = 0")
        wait_for(lambda: layout.pg.sql(side)[0][0] == 0, "the side connections to close", 5)
    finally:
        admin.close()


def test_a_stopped_other_path_drops_work_and_leaves_clients_alone(proxy_factory, layout):
    hole = BlackHole()
    paths = layout.paths
    paths["new"] = dict(paths["new"], host="127.0.0.1", port=hole.port)
    p = start(proxy_factory, layout, RIGHT, shadow="0", paths=paths)
    admin = Admin(p)
    conns = [p.connect(application_name="reader%d" % i) for i in range(4)]
    seconds = float(os.environ.get("PGT_SHADOW_SECONDS", "1"))

    def throughput():
        counts = [0] * len(conns)
        stop = threading.Event()

        def loop(i):
            with conns[i].cursor() as cur:
                while not stop.is_set():
                    cur.execute("SELECT id, name FROM users WHERE id = %s", (counts[i] % 50 + 1,))
                    cur.fetchall()
                    counts[i] += 1
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(conns))]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(10)
        return sum(counts) / seconds

    try:
        # alternating runs, so that the load of a shared machine falls on both
        base, shadowed = [], []
        rss_before = None
        for _ in range(3):
            admin.run("SET shadow_reads = 0")
            base.append(throughput())
            admin.run("SET shadow_reads = 100")
            shadowed.append(throughput())
            if rss_before is None:
                rss_before = p.rss_kb()
        rss_after = p.rss_kb()
        m = metrics(p)
        print("select TPS: shadow_reads=0 %s, =100 with new not answering %s; RSS %d -> %d kB; %s"
              % ([round(x) for x in base], [round(x) for x in shadowed], rss_before, rss_after,
                 {k: v for k, v in m.items() if "dropped" in k}))
        # a client waiting for its shadow (10 s per statement) would crawl to
        # under 1 statement a second; how close the two are is measured by the
        # benchmark (docs/performance.md), not here: a shared machine's runs
        # of 1 s vary by half between themselves
        assert sorted(shadowed)[1] > max(0.1 * sorted(base)[1], 20), (base, shadowed)
        assert m['pgturnout_shadow_reads_dropped_total{reason="queue_full"}'] > 0
        assert m["pgturnout_shadow_read_queue"] <= 256
        assert m["pgturnout_shadow_reads_total"] == 0
        if not sanitized_binary():  # ASan's quarantine grows RSS by itself
            assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
        # the clients never noticed; the proxy says why work is dropped
        assert "shadow reads: path new" in p.log() or \
            m['pgturnout_shadow_reads_dropped_total{reason="queue_full"}'] > 0
    finally:
        for c in conns:
            c.close()
        admin.close()
        hole.close()


def test_mismatch_rate_guard_rolls_the_canary_back(proxy_factory, layout):
    """Reads that differ on new are reason enough to stop the canary."""
    p = start(proxy_factory, layout, WRONG, shadow="100", canary="50",
              guard="shadow_read_mismatch_rate = 10% rollback\nwindow = 10s\nmin_sample = 20\n")
    admin = Admin(p)
    conns = [p.connect(application_name="reader%d" % i) for i in range(4)]
    try:
        for _ in range(10):
            for c in conns:
                run_all(c, READING_NAME[:1] + NOT_READING_NAME[:1])
        g = wait_for(lambda: (lambda r: r if r["state"] == "tripped" else None)(
            {r["guard"]: r for r in admin.run("SHOW GUARDS")}["shadow_read_mismatch_rate"]),
            "the shadow read guard to trip", 10)
        assert re.match(r"\d+ of \d+ shadow reads differed: 50\.00%", g["tripped_by"]), g
        assert {r["name"]: r["value"] for r in admin.run("SHOW FLAGS")}["canary_percent"] == "0"
        last = admin.run("SHOW HISTORY")[-1]
        assert last["who"].startswith("guard shadow_read_mismatch_rate: 50.00% of ")
    finally:
        for c in conns:
            c.close()
        admin.close()
