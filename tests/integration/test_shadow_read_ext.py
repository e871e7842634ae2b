"""Shadow reads beyond the simple protocol (SPEC §12): the extended protocol,
sessions with dual writes on, noise calibration, per-fingerprint metrics.

The schema is test_shadow_read's (the demo's users table; users_v2 on new,
name as full_name, nick the lower-case names), plus on both sides a function
jitter() that returns random() and a function stamp() that returns now():
the proxy's own volatility check knows random() and now() by name, not what
a function of the application's calls, so their statements run on both
paths and differ every time.

Covered: libpq's named (PQprepare/PQexecPrepared) and unnamed
(PQexecParams) statements with text, binary (int4) and NULL parameters,
compared like simple queries (with the wrong rule, exactly the statements
reading name differ); pgbench -M prepared and -M extended through a
parameterised select script with the right rule: 0 mismatches; a session
with dual writes on (inserting through the proxy between its reads) has its
reads compared; noise calibration: jitter()/stamp() statements are counted
noisy (re-run on the session's own path, they differ from themselves), not
as mismatches and not as guard input, while the wrong-rule statements stay
mismatches after their calibration run; SHOW SHADOW_READS' noisy column and
the per-fingerprint metrics (bounded to 20 fingerprints); the proxy's RSS
stays flat while two pgbench runs (one reconnecting for every transaction)
are shadowed for 10 s (60 s with PGT_BIG=1).
"""

import os
import re
import subprocess
import time

import pytest

from conftest import run_pqclient, sanitized_binary
from test_shadow_read import (Admin, Layout, NEW_OBJECTS, OLD_OBJECTS, RIGHT, WRONG, metrics,
                              run_all, start)
from twopaths import created, wait_for

pytestmark = pytest.mark.proxy_only

FUNCTIONS = """
CREATE FUNCTION jitter() RETURNS float8 LANGUAGE sql VOLATILE AS 'SELECT random()';
CREATE FUNCTION stamp() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT clock_timestamp()';
CREATE TABLE knob (v int);
INSERT INTO knob VALUES (1);
CREATE FUNCTION knobbed() RETURNS float8 LANGUAGE sql VOLATILE
  AS 'SELECT CASE WHEN (SELECT v FROM knob) = 1 THEN random() ELSE 0 END';
"""


class NoisyLayout(Layout):
    def objects(self, role):
        return (OLD_OBJECTS if role == "old" else NEW_OBJECTS) + FUNCTIONS


@pytest.fixture
def layout(pg):
    yield from created(NoisyLayout(pg))


def rows_by_sample(admin):
    return {r["sample"]: r for r in admin.shadow_reads()}


def test_extended_protocol_reads_are_compared_with_their_parameters(
        proxy_factory, layout, pqclient):
    p = start(proxy_factory, layout, WRONG)
    admin = Admin(p)
    dsn = p.dsn()
    try:
        # name read through a text parameter, a binary one, in WHERE: differ
        run_pqclient(pqclient, "params", dsn, 2, "SELECT id, name FROM users WHERE id = $1", "3")
        run_pqclient(pqclient, "params", dsn, 2,
                     "SELECT id FROM users WHERE name = $1 ORDER BY id", "User 4")
        run_pqclient(pqclient, "params", dsn, 2,
                     "SELECT name FROM users WHERE id = $1", "int4:5")
        # no name read: equal, whatever the parameter's format
        run_pqclient(pqclient, "params", dsn, 2,
                     "SELECT email FROM users WHERE id = $1", "int4:7")
        run_pqclient(pqclient, "params", dsn, 2,
                     "SELECT count(*) FROM users WHERE email IS DISTINCT FROM $1", "null")
        run_pqclient(pqclient, "params", dsn, 2,
                     "SELECT id, email FROM users WHERE id BETWEEN $1 AND $2 ORDER BY id",
                     "int4:10", "20")
        expected = 6 * 4
        m = wait_for(lambda: (lambda m: m if m.get("pgturnout_shadow_reads_total") == expected
                              else None)(metrics(p)), "%d shadow reads compared" % expected, 60)
        assert m["pgturnout_shadow_reads_extended_total"] == expected, m
        assert m["pgturnout_shadow_read_mismatches_total"] == 3 * 4, m
        assert m["pgturnout_shadow_read_noisy_total"] == 0, m
        rows = rows_by_sample(admin)
        for sql in ("SELECT id, name FROM users WHERE id = $1",
                    "SELECT id FROM users WHERE name = $1 ORDER BY id",
                    "SELECT name FROM users WHERE id = $1"):
            assert rows[sql]["runs"] == "4" and rows[sql]["mismatches"] == "4", rows[sql]
        assert rows["SELECT id, name FROM users WHERE id = $1"]["last_difference"] in (
            "only on old: (3, User 3) (1 rows on old, 1 on new)",
            "only on new: (3, user 3) (1 rows on old, 1 on new)")
        # "User 4" is found on old only: nick holds "user 4"
        assert rows["SELECT id FROM users WHERE name = $1 ORDER BY id"]["last_difference"] == \
            "only on old: (4) (1 rows on old, 0 on new)"
        for sql in ("SELECT email FROM users WHERE id = $1",
                    "SELECT count(*) FROM users WHERE email IS DISTINCT FROM $1",
                    "SELECT id, email FROM users WHERE id BETWEEN $1 AND $2 ORDER BY id"):
            assert rows[sql]["runs"] == "4" and rows[sql]["mismatches"] == "0", rows[sql]
    finally:
        admin.close()


def pgbench(p, mode, script, seconds, clients=4):
    env = dict(os.environ, **p.env())
    cmd = ["pgbench", "-n", "-M", mode, "-c", str(clients), "-j", "2", "-T", str(seconds),
           "-f", str(script), "app"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    assert r.returncode == 0, r.stdout + r.stderr
    tps = re.search(r"tps = ([\d.]+)", r.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert failed is None or failed.group(1) == "0", r.stdout
    return float(tps.group(1)) if tps else 0.0


SELECT_SCRIPT = """\\set id random(1, 50)
SELECT id, name, email FROM users WHERE id = :id;
SELECT name FROM users WHERE id BETWEEN :id AND :id + 5 ORDER BY name;
"""


@pytest.mark.parametrize("mode", ["prepared", "extended"])
def test_pgbench_prepared_and_extended_with_the_right_rule_give_no_mismatch(
        proxy_factory, layout, tmp_path, mode):
    p = start(proxy_factory, layout, RIGHT)
    admin = Admin(p)
    script = tmp_path / "select.sql"
    script.write_text(SELECT_SCRIPT)
    try:
        tps = pgbench(p, mode, script, int(os.environ.get("PGT_PGBENCH_SECONDS", "3")))
        m = wait_for(lambda: (lambda m: m if m["pgturnout_shadow_read_queue"] == 0 else None)(
            metrics(p)), "an empty queue", 60)
        print("pgbench -M %s: %.0f tps; compared %d (extended %d), dropped %s" % (
            mode, tps, m["pgturnout_shadow_reads_total"],
            m["pgturnout_shadow_reads_extended_total"],
            {k: v for k, v in m.items() if "dropped" in k and v}))
        assert m["pgturnout_shadow_reads_total"] > 50, m
        assert m["pgturnout_shadow_reads_extended_total"] == m["pgturnout_shadow_reads_total"]
        assert m["pgturnout_shadow_read_mismatches_total"] == 0
        assert m["pgturnout_shadow_read_noisy_total"] == 0
        assert m['pgturnout_shadow_reads_skipped_total{reason="untracked"}'] == 0
        assert all(r["mismatches"] == "0" for r in admin.shadow_reads())
    finally:
        admin.close()


def test_sessions_with_dual_writes_on_are_shadowed(proxy_factory, layout, pqclient):
    """Reads between a session's dual writes see the rows on both sides."""
    p = start(proxy_factory, layout, RIGHT, dual_write="on")
    conn = p.connect()
    fresh = "SELECT id, name, email FROM users WHERE email LIKE 'd%' ORDER BY id"
    try:
        with conn.cursor() as cur:
            for i in range(3):
                cur.execute("INSERT INTO users (name, email) VALUES (%s, %s)",
                            ("Dual %d" % i, "d%d@example.com" % i))
                run_all(conn, [fresh, "SELECT email FROM users WHERE id = 2"])
        run_pqclient(pqclient, "params", p.dsn(), 2,
                     "SELECT id, name FROM users WHERE email = $1", "d1@example.com")
        m = wait_for(lambda: (lambda m: m if m.get("pgturnout_shadow_reads_total") == 6 + 4
                              else None)(metrics(p)), "10 shadow reads compared", 60)
        assert "dual writes on" in p.log()
        assert layout.sql("new", "SELECT count(*) FROM users_v2 WHERE email LIKE 'd%'")[0][0] == 3
        assert m["pgturnout_shadow_read_mismatches_total"] == 0, m
        assert m["pgturnout_shadow_reads_extended_total"] == 4, m
        assert m['pgturnout_shadow_reads_skipped_total{reason="not_a_select"}'] >= 3  # the INSERTs
        admin = Admin(p)
        rows = rows_by_sample(admin)
        admin.close()
        assert rows[fresh]["runs"] == "3" and rows[fresh]["mismatches"] == "0", rows[fresh]
    finally:
        conn.close()


NOISY = [
    "SELECT id, jitter() FROM users WHERE id = 1",
    "SELECT stamp(), count(*) FROM users",
]


def test_noise_calibration_counts_statements_that_differ_by_nature_apart(
        proxy_factory, layout, pqclient):
    p = start(proxy_factory, layout, WRONG, canary="50",
              guard="shadow_read_mismatch_rate = 60% rollback\nwindow = 30s\nmin_sample = 10\n")
    admin = Admin(p)
    conn = p.connect()
    try:
        reading = "SELECT id, name FROM users WHERE id = 3"
        equal = "SELECT email FROM users WHERE id = 2"
        run_all(conn, NOISY + [reading, equal], times=5)
        run_pqclient(pqclient, "params", p.dsn(), 3, "SELECT jitter() FROM users WHERE email = $1",
                     "u2@example.com")
        wait_for(lambda: (lambda m: m["pgturnout_shadow_read_noisy_total"] +
                          m["pgturnout_shadow_reads_total"] == 5 * 4 + 6)(metrics(p)),
                 "every shadow read counted", 60)
        m = metrics(p)
        rows = rows_by_sample(admin)
        for sql in NOISY:
            r = rows[sql]
            assert r["noisy"] == "5" and r["mismatches"] == "0" and r["runs"] == "0", r
        r = rows["SELECT jitter() FROM users WHERE email = $1"]
        assert r["noisy"] == "6" and r["mismatches"] == "0", r
        # a real difference survives its calibration run: the path agrees with itself
        assert rows[reading]["mismatches"] == "5" and rows[reading]["noisy"] == "0"
        assert rows[equal]["mismatches"] == "0" and rows[equal]["runs"] == "5"
        assert m["pgturnout_shadow_read_noisy_total"] == 5 * 2 + 6
        assert m["pgturnout_shadow_read_mismatches_total"] == 5
        assert m["pgturnout_shadow_reads_total"] == 10
        # calibration runs: one per fingerprint until it is known noisy, one per real mismatch
        assert m["pgturnout_shadow_read_calibrations_total"] >= 5 + 3
        assert m["pgturnout_shadow_read_calibrations_total"] <= 5 + 3 * 3
        assert "is noisy (differs when run twice on the same path" in p.log()
        # 5 of 10 compared differ: under the guard's 60 %; noise counted would be 21 of 26
        g = {r["guard"]: r for r in admin.run("SHOW GUARDS")}["shadow_read_mismatch_rate"]
        assert g["state"] != "tripped", g
        # per-fingerprint metrics: labelled by fingerprint, with both paths' latency
        fps = {r["sample"]: r["fingerprint"] for r in admin.shadow_reads()}
        text = metrics_text(p)
        fp = fps[reading]
        assert 'pgturnout_shadow_read_fp_mismatches_total{fingerprint="%s"} 5' % fp in text
        assert 'pgturnout_shadow_read_fp_noisy_total{fingerprint="%s"} 5' % fps[NOISY[0]] in text
        assert re.search(r'pgturnout_shadow_read_fp_duration_seconds_count\{fingerprint="%s",'
                         r'path="new"\} 5$' % fp, text, re.M)
        assert re.search(r'pgturnout_shadow_read_fp_duration_seconds_sum\{fingerprint="%s",'
                         r'path="old"\} [\d.]+$' % fp, text, re.M)
    finally:
        conn.close()
        admin.close()


def test_a_fingerprint_whose_noise_settles_is_compared_again(proxy_factory, layout):
    """Noisy while knob = 1 (knobbed() is random()); once knob = 0 the 16th
    difference is calibrated again, the path agrees with itself, and the
    wrong rule's difference is a mismatch from then on."""
    p = start(proxy_factory, layout, WRONG)
    admin = Admin(p)
    conn = p.connect()
    sql = "SELECT name, knobbed() FROM users WHERE id = 3"
    try:
        run_all(conn, [sql], times=3)
        wait_for(lambda: rows_by_sample(admin).get(sql, {}).get("noisy") == "3", "3 noisy", 60)
        for role in ("old", "new"):
            layout.sql(role, "UPDATE knob SET v = 0")
        run_all(conn, [sql], times=20)
        r = wait_for(lambda: (lambda r: r if int(r["noisy"]) + int(r["mismatches"]) == 23
                              else None)(rows_by_sample(admin)[sql]), "23 differences", 60)
        # about 16 more noisy before the check (reads run on up to 4 side pairs at
        # once, so a few more may be judged while the check is in flight), then
        # mismatches
        assert 3 + 12 <= int(r["noisy"]) <= 3 + 16 + 4 and int(r["mismatches"]) >= 1, r
        assert "is no longer noisy (its path agreed with itself)" in p.log()
        # from then on every difference is a mismatch
        run_all(conn, [sql], times=5)
        r2 = wait_for(lambda: (lambda r: r if int(r["noisy"]) + int(r["mismatches"]) == 28
                               else None)(rows_by_sample(admin)[sql]), "28 differences", 60)
        assert r2["noisy"] == r["noisy"] and int(r2["mismatches"]) == int(r["mismatches"]) + 5, r2
    finally:
        conn.close()
        admin.close()


def metrics_text(p):
    from test_http import call
    status, _, text = call(p, "GET", "/metrics")
    assert status == 200
    return text


def test_per_fingerprint_metrics_are_bounded(proxy_factory, layout):
    p = start(proxy_factory, layout, RIGHT)
    conn = p.connect()
    try:
        # 30 fingerprints (constants and the order of the select list do not count)
        targets = ["id", "name", "email", "id, name", "id, email", "name, email",
                   "id, name, email"]
        wheres = ["id = 3", "id < 3", "id > 48", "email = 'u3@example.com'",
                  "email LIKE 'u4%'", "name = 'User 5'"]
        statements = ["SELECT %s FROM users WHERE %s" % (t, w)
                      for t in targets for w in wheres][:30]
        run_all(conn, statements)
        wait_for(lambda: metrics(p).get("pgturnout_shadow_reads_total") == 30,
                 "30 shadow reads compared", 60)
        text = metrics_text(p)
        labelled = re.findall(r'^pgturnout_shadow_read_fp_runs_total\{fingerprint="([0-9a-f]{16})"\}',
                              text, re.M)
        assert len(labelled) == 20, labelled
        admin = Admin(p)
        assert len(admin.shadow_reads()) == 30
        admin.close()
    finally:
        conn.close()


def test_memory_stays_bounded_under_pgbench_load(proxy_factory, layout, tmp_path):
    """Shadow reads at 100 % under two pgbench runs at once (prepared, and
    extended with a new connection per transaction, so that sessions and
    their tracked statements come and go): RSS flat after the warm-up
    (10 s; 60 s with PGT_BIG=1)."""
    seconds = 60 if os.environ.get("PGT_BIG") == "1" else 10
    p = start(proxy_factory, layout, RIGHT)
    script = tmp_path / "select.sql"
    script.write_text(SELECT_SCRIPT + "SELECT id, jitter() FROM users WHERE id = :id;\n")
    env = dict(os.environ, **p.env())
    runs = [subprocess.Popen(["pgbench", "-n", "-M", mode, "-c", "4", "-j", "1", "-T",
                              str(seconds), "-f", str(script)] + extra + ["app"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for mode, extra in (("prepared", []), ("extended", ["-C"]))]
    samples = []
    try:
        deadline = time.time() + seconds
        while time.time() < deadline:
            samples.append(p.rss_kb())
            time.sleep(1)
        outs = [r.communicate(timeout=60)[0] for r in runs]
    finally:
        for r in runs:
            if r.poll() is None:
                r.kill()
                r.wait()
    for out in outs:
        assert "number of failed transactions: 0" in out or "failed" not in out, out
    m = wait_for(lambda: (lambda m: m if m["pgturnout_shadow_read_queue"] == 0 else None)(
        metrics(p)), "an empty queue", 60)
    tps = [re.search(r"tps = ([\d.]+)", o) for o in outs]
    warm = samples[len(samples) // 4]
    print("RSS over %d s (kB, every second): %s; after warm-up %d, max %d; pgbench tps %s; "
          "compared %d, noisy %d, dropped %s" % (
              seconds, samples, warm, max(samples), [t.group(1) if t else None for t in tps],
              m["pgturnout_shadow_reads_total"], m["pgturnout_shadow_read_noisy_total"],
              {k: v for k, v in m.items() if "dropped" in k and v}))
    assert m["pgturnout_shadow_reads_total"] > 100, m
    assert m["pgturnout_shadow_read_mismatches_total"] == 0, m
    assert m["pgturnout_shadow_read_noisy_total"] > 0, m
    if not sanitized_binary():  # ASan's quarantine grows RSS by itself
        assert max(samples[len(samples) // 4:]) - warm < 8 * 1024, samples
