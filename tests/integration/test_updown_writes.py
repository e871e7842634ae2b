"""Writes through up/down expressions (SPEC §6 "Beyond renames", §7).

The five worked examples of docs/rewriting.md on three tables: users (1. a
derived column email_domain only new has, 2. a column nickname only old
keeps, 5. name renamed full_name), orders (3. price numeric(12,2) retyped
as price_cents bigint) and people (4. full_name split into first_name and
last_name). Old generates the keys (serial); new's ids have no default.

With dual writes on, v1 and v2 clients write through pgturnout at canary 0
and 50: INSERT (multi-row, INSERT ... SELECT, DEFAULT), UPDATE (absolute,
`col = col + n`, of an expression's input and of other columns), DELETE,
ON CONFLICT, a volatile UPDATE (applied by key), in the simple protocol and
as named prepared statements; then pgbench runs v1 and v2 scripts with
several clients each. Afterwards every row of both sides is compared
through the mapping, each expression evaluated by SQL on the side holding
its inputs, and the journal and mismatch counters are empty.

Layouts: one database with a schema per path, and a PostgreSQL server per
path.
"""

import pytest

import pgwire
from conftest import BIG, started_server, unique
from test_dual import journal_file, pgbench, read_journal, run
from test_updown import Layout, extended
from test_updown_verify import RULES  # the five worked examples of docs/rewriting.md
from test_verify import run_json as verify_json
from twopaths import Admin

pytestmark = pytest.mark.proxy_only

SECONDS = 15 if BIG else 3

OLD_OBJECTS = """
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, nickname text);
CREATE TABLE orders (id serial PRIMARY KEY, price numeric(12,2) NOT NULL);
CREATE TABLE people (id serial PRIMARY KEY, full_name text NOT NULL);
INSERT INTO users (name, email, nickname)
  SELECT 'First' || g || ' Last' || g, 'u' || g || '@d' || (g % 3) || '.example', 'First' || g
  FROM generate_series(1, 20) g;
INSERT INTO orders (price) SELECT g * 1.25 FROM generate_series(1, 20) g;
INSERT INTO people (full_name) SELECT 'Given' || g || ' Family' || g FROM generate_series(1, 20) g;
"""

NEW_OBJECTS = """
CREATE TABLE users_v2 (id int PRIMARY KEY, full_name text NOT NULL, email text NOT NULL,
                       email_domain text);
CREATE TABLE orders (id int PRIMARY KEY, price_cents bigint NOT NULL);
CREATE TABLE people_v2 (id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL);
INSERT INTO users_v2
  SELECT g, 'First' || g || ' Last' || g, 'u' || g || '@d' || (g % 3) || '.example',
         'd' || (g % 3) || '.example'
  FROM generate_series(1, 20) g;
INSERT INTO orders SELECT g, g * 125 FROM generate_series(1, 20) g;
INSERT INTO people_v2 SELECT g, 'Given' || g, 'Family' || g FROM generate_series(1, 20) g;
"""



class WritesLayout(Layout):
    def objects(self, role):
        return OLD_OBJECTS if role == "old" else NEW_OBJECTS


@pytest.fixture(scope="module")
def second_pg():
    with started_server() as server:
        yield server


@pytest.fixture(params=["one_database", "two_servers"])
def layout(request, pg):
    kind = "schemas" if request.param == "one_database" else "servers"
    second = request.getfixturevalue("second_pg") if kind == "servers" else None
    lay = WritesLayout(pg, kind, second)
    lay.create()
    try:
        yield lay
    finally:
        lay.drop()


def start(proxy_factory, layout, canary, commit="auto"):
    extra = ("\n[migration]\nold = old\nnew = new\nsalt = %s\nversion.v1 = old\n"
             "version.v2 = new\ndual_commit = %s\n%s\n[flags]\ncanary_percent = %s\n"
             "dual_write = on\nshadow_failure = journal\nforce_path = none\n"
             % (unique("salt"), commit, RULES, canary))
    p = proxy_factory(paths=layout.paths, extra=extra)
    p.wait_log(r"catalog of path new: \d+ tables")
    return p


def assert_mapping_holds(layout):
    """Every row of both sides, through the rename map, with each expression
    computed by SQL on the side that holds its inputs."""
    def q(role, sql):
        return {r[0]: tuple(r[1:]) for r in layout.sql(role, sql)}
    checks = [
        # (old query, new query): rows by id; the tuples must be equal
        ("SELECT id, name, email, split_part(email, '@', 2), nickname FROM users",
         "SELECT id, full_name, email, email_domain, split_part(full_name, ' ', 1) FROM users_v2"),
        ("SELECT id, (price * 100)::bigint, price FROM orders",
         "SELECT id, price_cents, (price_cents / 100.0)::numeric(12,2) FROM orders"),
        ("SELECT id, split_part(full_name, ' ', 1), "
         "substr(full_name, length(split_part(full_name, ' ', 1)) + 2), full_name FROM people",
         "SELECT id, first_name, last_name, first_name || ' ' || last_name FROM people_v2"),
    ]
    total = 0
    for old_sql, new_sql in checks:
        old, new = q("old", old_sql), q("new", new_sql)
        assert sorted(old) == sorted(new), (old_sql, sorted(set(old) ^ set(new))[:10])
        diff = [(k, old[k], new[k]) for k in sorted(old) if old[k] != new[k]]
        assert diff == [], (old_sql, len(diff), diff[:5])
        total += len(old)
    return total


def assert_clean(p):
    assert read_journal(journal_file(p)) == []
    stats = Admin(p).run("SHOW STATS")
    assert all(int(r["mismatches"]) == 0 for r in stats), stats
    # and pgturnout verify, through the same expressions, finds nothing
    code, summary = verify_json(p.config_path)
    assert code == 0 and summary["result"] == "equal", summary
    compared = {t["table"].split(".")[-1]: t for t in summary["tables"]}
    assert {"users", "orders", "people"} <= set(compared), compared
    assert all(t["equal"] and t["rows"] > 0 for t in compared.values()), compared
    assert {e["column"] for e in compared["users"]["expressions"]} == {"nickname", "email_domain"}


V1_WRITES = [
    "INSERT INTO users (name, email, nickname) VALUES ('Ada Lovelace', 'ada@math.org', 'Ada'), "
    "('Alan Turing', 'alan@bletchley.uk', 'Alan')",
    "INSERT INTO users (name, email, nickname) SELECT 'Grace Hopper', 'grace@navy.mil', 'Grace'",
    "UPDATE users SET email = 'ada@lovelace.org' WHERE name = 'Ada Lovelace'",
    "UPDATE users SET name = name || ' Jr' WHERE name = 'Alan Turing'",
    # volatile: applied to new by key, email_domain evaluated with the capture
    "UPDATE users SET email = 'g' || (random() < 2)::int || '@hopper.dev' WHERE name = 'Grace Hopper'",
    "INSERT INTO users (name, email, nickname) VALUES ('Tmp User', 't@tmp.org', 'Tmp') "
    "ON CONFLICT (id) DO NOTHING",
    "DELETE FROM users WHERE name = 'Tmp User'",
    "INSERT INTO orders (id, price) VALUES (DEFAULT, 12.50), (DEFAULT, 3.99)",
    "UPDATE orders SET price = price + 1 WHERE price < 5",
    "INSERT INTO orders (id, price) VALUES (3, 7.25) ON CONFLICT (id) DO UPDATE "
    "SET price = orders.price + EXCLUDED.price",
    "INSERT INTO people (full_name) VALUES ('Barbara Liskov'), ('Edsger W Dijkstra')",
    "UPDATE people SET full_name = 'Barbara J Liskov' WHERE full_name = 'Barbara Liskov'",
    "DELETE FROM people WHERE id = 2",
]

V2_WRITES = [
    "INSERT INTO users_v2 (id, full_name, email) VALUES (DEFAULT, 'Donald Knuth', 'don@stanford.edu')",
    "UPDATE users_v2 SET full_name = 'Donald E Knuth' WHERE email = 'don@stanford.edu'",
    # the v2 client names email_domain: old has no such column; new's value
    # comes back through old (its up expression over old's email)
    "INSERT INTO users_v2 (full_name, email, email_domain) VALUES ('Niklaus Wirth', 'nw@ethz.ch', 'ethz.ch')",
    # a v2 client's own statement runs on new as written: it keeps its own
    # email_domain up to date, as the v2 application does
    "UPDATE users_v2 SET email = 'niklaus@inf.ethz.ch', email_domain = 'inf.ethz.ch' "
    "WHERE full_name = 'Niklaus Wirth'",
    "INSERT INTO orders (price_cents) VALUES (1999)",
    "UPDATE orders SET price_cents = price_cents * 2 WHERE price_cents = 1999",
    "INSERT INTO people_v2 (first_name, last_name) VALUES ('Ken', 'Thompson'), ('Brian', 'Kernighan')",
    "UPDATE people_v2 SET last_name = 'Ritchie', first_name = 'Dennis' WHERE last_name = 'Thompson'",
    "UPDATE people_v2 SET last_name = 'W Kernighan' WHERE first_name = 'Brian'",
    "INSERT INTO people_v2 (id, first_name, last_name) VALUES (5, 'Ada', 'Byron') "
    "ON CONFLICT (id) DO UPDATE SET last_name = EXCLUDED.last_name",
    "DELETE FROM people_v2 WHERE first_name = 'Given7'",
    "INSERT INTO people_v2 (first_name, last_name) SELECT 'Alan', 'Kay' || g FROM generate_series(1, 3) g",
]

# named prepared statements, each run twice (the second time by Bind only)
V1_PREPARED = [
    ("INSERT INTO users (name, email, nickname) VALUES ($1, $2, $3)",
     [["Bob Prep", "bob@prep.io", "Bob"], ["Eve Prep", "eve@prep.io", "Eve"]]),
    ("UPDATE users SET email = $1 WHERE id = $2", [["x1@one.org", 1], ["x2@two.org", 2]]),
    ("UPDATE orders SET price = price + $1 WHERE id = $2", [[2, 4], [3, 5]]),
    ("INSERT INTO people (full_name) VALUES ($1)", [["Tony Hoare"], ["Leslie B Lamport"]]),
]
V2_PREPARED = [
    ("INSERT INTO people_v2 (first_name, last_name) VALUES ($1, $2)",
     [["John", "Backus"], ["Fran", "Allen"]]),
    ("UPDATE orders SET price_cents = $1 WHERE id = $2", [[4321, 6], [99, 7]]),
    ("UPDATE users_v2 SET full_name = $1 WHERE id = $2", [["Renamed Three", 3], ["Renamed Four", 4]]),
    ("INSERT INTO users_v2 (full_name, email) VALUES ($1, $2)", [["Jean Sammet", "js@ibm.com"]] * 2),
    # email_domain's $3 is left out on old (kept typed in a CTE), new gets
    # old's row (its id: users_v2.id has no default)
    ("INSERT INTO users_v2 (full_name, email, email_domain) VALUES ($1, $2, $3)",
     [["Adele Goldberg", "adele@parc.com", "parc.com"]] * 2),
]


def prepared(w, statements):
    for k, (sql, runs) in enumerate(statements):
        name = ("s%d" % k).encode()
        for i, params in enumerate(runs):
            extended(w, sql, params, name=name, parse=(i == 0))


@pytest.mark.parametrize("canary,commit", [("0", "auto"), ("50", "auto")] +
                         ([("50", "ordered"), ("50", "2pc")] if BIG else []))
def test_writes_through_expressions(proxy_factory, layout, canary, commit):
    p = start(proxy_factory, layout, canary, commit)
    v1 = p.connect(options="-c pgturnout.version=v1")
    v2 = p.connect(options="-c pgturnout.version=v2")
    # untagged sessions: at canary 50 some are on new, writing v1 SQL there
    plain = [p.connect() for _ in range(4)]
    w1 = p.wire_login(options="-c pgturnout.version=v1")
    w2 = p.wire_login(options="-c pgturnout.version=v2")
    try:
        run(v1, *V1_WRITES)
        with v1.cursor() as cur:
            # the client's own RETURNING and row count, nothing captured
            cur.execute("INSERT INTO orders (price) VALUES (1.50), (2.50) RETURNING id, price")
            assert [d.name for d in cur.description] == ["id", "price"] and cur.rowcount == 2
            assert [str(r[1]) for r in cur.fetchall()] == ["1.50", "2.50"]
        run(v2, *V2_WRITES)
        with v2.cursor() as cur:
            cur.execute("UPDATE orders SET price_cents = price_cents + 1 WHERE id <= 3 "
                        "RETURNING id, price_cents")
            assert [d.name for d in cur.description] == ["id", "price_cents"] and cur.rowcount == 3
        for i, c in enumerate(plain):
            run(c, "INSERT INTO users (name, email, nickname) VALUES ('Plain %d', 'p%d@plain.org', "
                   "'Plain')" % (i, i),
                "UPDATE users SET email = 'q%d@plain.net' WHERE name = 'Plain %d'" % (i, i),
                "UPDATE orders SET price = price * 2 WHERE id = %d" % (10 + i),
                "INSERT INTO people (full_name) VALUES ('Plain Person%d')" % i)
        # a transaction with a savepoint rolled back
        v1.autocommit = False
        run(v1, "UPDATE users SET email = 'tx@tx.org' WHERE id = 8", "SAVEPOINT s",
            "UPDATE users SET email = 'lost@tx.org' WHERE id = 9", "ROLLBACK TO SAVEPOINT s")
        v1.commit()
        prepared(w1, V1_PREPARED)
        prepared(w2, V2_PREPARED)
    finally:
        for c in [v1, v2] + plain:
            c.close()
        w1.terminate()
        w2.terminate()
    assert assert_mapping_holds(layout) > 60
    # each example on the rows written just now
    assert layout.sql("new", "SELECT email_domain FROM users_v2 WHERE full_name = 'Ada Lovelace'") \
        == [("lovelace.org",)]
    assert layout.sql("old", "SELECT nickname FROM users WHERE name = 'Donald E Knuth'") == [("Donald",)]
    assert layout.sql("new", "SELECT first_name, last_name FROM people_v2 WHERE id = "
                             "(SELECT max(id) FROM people_v2 WHERE last_name = 'B Lamport')") \
        == [("Leslie", "B Lamport")]
    assert layout.sql("old", "SELECT full_name FROM people WHERE full_name LIKE 'Dennis%'") \
        == [("Dennis Ritchie",)]
    assert str(layout.sql("old", "SELECT price FROM orders WHERE id = 6")[0][0]) == "43.21"
    assert_clean(p)


def test_update_leaves_untouched_expression_targets_alone(proxy_factory, layout):
    """An UPDATE that writes no input of an expression does not rewrite its
    target: a deliberately different email_domain on new stays as it is."""
    layout.sql("new", "UPDATE users_v2 SET email_domain = 'kept' WHERE id = 11")
    p = start(proxy_factory, layout, "0")
    v1 = p.connect(options="-c pgturnout.version=v1")
    try:
        run(v1, "UPDATE users SET name = 'First11 Changed', nickname = 'First11' WHERE id = 11")
        with v1.cursor() as cur:
            cur.execute("SHOW server_version")  # the session is still fine
    finally:
        v1.close()
    assert layout.sql("new", "SELECT full_name, email_domain FROM users_v2 WHERE id = 11") \
        == [("First11 Changed", "kept")]
    v1 = p.connect(options="-c pgturnout.version=v1")
    try:
        run(v1, "UPDATE users SET email = 'u11@fixed.example' WHERE id = 11")
    finally:
        v1.close()
    assert layout.sql("new", "SELECT email_domain FROM users_v2 WHERE id = 11") == [("fixed.example",)]
    assert_mapping_holds(layout)
    assert_clean(p)


V1_SCRIPT = """\\set n random(1, 100000)
\\set k random(1, 20)
BEGIN;
INSERT INTO users (name, email, nickname) VALUES ('U' || :n || ' Last', 'u' || :n || '@d' || (:n % 7) || '.org', 'U' || :n);
UPDATE users SET email = 'x' || :n || '@e' || (:n % 5) || '.com' WHERE id = :k;
INSERT INTO orders (price) VALUES (:n / 100.0);
UPDATE orders SET price = price + 1 WHERE id = :k;
INSERT INTO orders (id, price) VALUES (:k, 0.25) ON CONFLICT (id) DO UPDATE SET price = orders.price + EXCLUDED.price;
INSERT INTO people (full_name) VALUES ('P' || :n || ' Q' || :n);
END;
"""

V2_SCRIPT = """\\set n random(1, 100000)
\\set k random(1, 20)
BEGIN;
INSERT INTO users_v2 (full_name, email) VALUES ('V' || :n || ' Two', 'v' || :n || '@d' || (:n % 7) || '.net');
UPDATE users_v2 SET full_name = 'W' || :n || ' Two' WHERE id = :k;
UPDATE orders SET price_cents = price_cents + 100 WHERE id = :k;
INSERT INTO people_v2 (first_name, last_name) VALUES ('F' || :n, 'L' || :n);
UPDATE people_v2 SET last_name = 'M' || :n WHERE id = :k;
END;
"""


@pytest.mark.parametrize("canary,mode", [("0", "simple"), ("50", "prepared")] +
                         ([("50", "simple"), ("0", "prepared")] if BIG else []))
def test_concurrent_writes_through_expressions(proxy_factory, layout, tmp_path, canary, mode):
    import threading
    p = start(proxy_factory, layout, canary)
    s1, s2 = tmp_path / "v1.sql", tmp_path / "v2.sql"
    s1.write_text(V1_SCRIPT)
    s2.write_text(V2_SCRIPT)
    done = {}

    def bench(tag, script):
        env = p.env()
        # v1 clients untagged: at canary 50 part of them run on new, in v1 SQL
        if tag == "v2":
            env["PGOPTIONS"] = "-c pgturnout.version=v2"
        done[tag] = pgbench(env, ["-c", "3", "-j", "1", "-T", SECONDS, "-M", mode, "-f", script],
                            timeout=SECONDS + 90)
    threads = [threading.Thread(target=bench, args=a) for a in (("v1", s1), ("v2", s2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(done) == {"v1", "v2"}, done
    n = assert_mapping_holds(layout)
    assert n == 60 + done["v1"] * 3 + done["v2"] * 2, (n, done)
    assert_clean(p)
