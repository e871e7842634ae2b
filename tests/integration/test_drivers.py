"""Driver smoke tests through the proxy with SCRAM-SHA-256: psycopg2 (libpq),
node-postgres (npm package `pg`, installed into a temp dir at test time) and
JDBC (Debian's /usr/share/java/postgresql.jar, program compiled with javac).
Each connects, runs a prepared query, a transaction and an error case."""

import json
import os
import shutil
import subprocess

import psycopg2
import psycopg2.errors
import pytest

from conftest import ROOT, unique

JDBC_JAR = os.environ.get("PGT_JDBC_JAR", "/usr/share/java/postgresql.jar")


def make_table(pg):
    t = unique("drv")
    pg.sql("CREATE TABLE %s (id int primary key, note text); ALTER TABLE %s OWNER TO app" % (t, t))
    return t


def test_psycopg2_smoke(proxy, pg):
    t = make_table(pg)
    conn = proxy.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("PREPARE q(int) AS SELECT $1 + 1")
        cur.execute("EXECUTE q(41)")
        assert cur.fetchone() == (42,)
        cur.execute("INSERT INTO " + t + " VALUES (%s, %s)", (1, "one"))
        cur.execute("INSERT INTO " + t + " VALUES (%s, %s)", (2, "it's two"))
        conn.commit()
        with pytest.raises(psycopg2.errors.UniqueViolation) as exc:
            cur.execute("INSERT INTO " + t + " VALUES (%s, %s)", (1, "dup"))
        assert exc.value.pgcode == "23505"
        conn.rollback()
        cur.execute("SELECT note FROM " + t + " ORDER BY id")
        assert cur.fetchall() == [("one",), ("it's two",)]
    conn.close()


NODE_SCRIPT = r"""
const { Client } = require('pg');
(async () => {
  const cfg = JSON.parse(process.argv[2]);
  const c = new Client(cfg);
  await c.connect();
  const out = {};
  let r = await c.query({ name: 'pgt_q', text: 'SELECT $1::int + 1 AS v', values: [41] });
  out.prepared = r.rows[0].v;
  r = await c.query({ name: 'pgt_q', values: [1] });
  out.prepared_again = r.rows[0].v;
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${cfg.table} VALUES ($1, $2)`, [1, 'node']);
  await c.query('COMMIT');
  try { await c.query('SELECT 1/0'); out.error = 'none'; } catch (e) { out.error = e.code; }
  r = await c.query(`SELECT note FROM ${cfg.table}`);
  out.note = r.rows[0].note;
  await c.end();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error('FAILED', e); process.exit(1); });
"""


@pytest.fixture(scope="session")
def node_pg():
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed")
    d = os.environ.get("PGT_NODE_DIR") or os.path.join(ROOT, "build", "node-pg")
    if not os.path.isdir(os.path.join(d, "node_modules", "pg")):
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                            "--prefix", d, "pg@8"], capture_output=True, text=True,
                           timeout=180)
        if r.returncode != 0:
            pytest.skip("npm install pg failed (registry unreachable?): %s" % r.stderr[-500:])
    return d


def test_node_postgres_smoke(proxy, pg, node_pg, tmp_path):
    t = make_table(pg)
    script = tmp_path / "smoke.js"
    script.write_text(NODE_SCRIPT)
    cfg = {"host": proxy.host, "port": proxy.port, "user": "app", "password": "app",
           "database": "app", "table": t}
    env = dict(os.environ, NODE_PATH=os.path.join(node_pg, "node_modules"))
    r = subprocess.run(["node", str(script), json.dumps(cfg)], capture_output=True, text=True,
                       env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"prepared": 42, "prepared_again": 2, "error": "22012", "note": "node"}


JAVA_SOURCE = r"""
import java.sql.*;

public class Smoke {
    public static void main(String[] a) throws Exception {
        String url = a[0], table = a[1];
        try (Connection c = DriverManager.getConnection(url, "app", "app")) {
            try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1")) {
                for (int i = 0; i < 3; i++) {      // prepareThreshold=1: named server statement
                    ps.setInt(1, 41 + i);
                    try (ResultSet rs = ps.executeQuery()) { rs.next(); System.out.println("prepared " + rs.getInt(1)); }
                }
            }
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?)")) {
                ps.setInt(1, 1); ps.setString(2, "jdbc"); ps.executeUpdate();
                ps.setInt(1, 2); ps.setString(2, "jdbc2"); ps.executeUpdate();
            }
            c.commit();
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT 1/0");
                System.out.println("error none");
            } catch (SQLException e) {
                System.out.println("error " + e.getSQLState());
                c.rollback();
            }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM " + table)) {
                rs.next(); System.out.println("count " + rs.getInt(1));
            }
            c.commit();
        }
    }
}
"""


def test_jdbc_smoke(proxy, pg, tmp_path):
    if not shutil.which("javac") or not os.path.exists(JDBC_JAR):
        pytest.skip("no javac or no %s" % JDBC_JAR)
    t = make_table(pg)
    (tmp_path / "Smoke.java").write_text(JAVA_SOURCE)
    r = subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Smoke.java")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    url = "jdbc:postgresql://%s:%d/app?prepareThreshold=1&sslmode=disable" % (proxy.host, proxy.port)
    r = subprocess.run(["java", "-cp", "%s:%s" % (tmp_path, JDBC_JAR), "Smoke", url, t],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split("\n")[:6] == ["prepared 42", "prepared 43", "prepared 44",
                                        "error 22012", "count 2", ""], r.stdout
