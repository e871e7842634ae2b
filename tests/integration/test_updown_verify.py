"""verify, repair and backfill through up/down expressions (SPEC §6, §11).

The five worked examples of docs/rewriting.md, each on a table of its own,
in two layouts ("one_database": a schema per path in one database;
"two_servers": a schema on each of two PostgreSQL servers):

1. add a derived column: users_v2.email_domain = split_part(email, '@', 2)
2. drop a column: old's users.nickname = split_part(full_name, ' ', 1)
3. change a type: orders.price numeric(12,2) -> price_cents bigint (renamed,
   a value each way), and orders.paid int -> boolean under the same name
   (no rule: compared and copied by value, cast to the target's type)
4. split a column: people.full_name -> people_v2.first_name, last_name
5. rename: users.name -> users_v2.full_name

users.legacy (old only, nullable) and users_v2.extra (new only, with a
default) have neither counterpart nor expression: reported as not compared.

The killed backfill runs in the one-database layout, and in both with
PGT_BIG=1.

Every test ends by checking with SQL, row by row, that each expression holds
on every row (the value the expression gives over one side's row equals the
column on the other side, key by key) and that verify reports 0
differences.
"""

import json
import os
import zlib
from decimal import Decimal

import pytest

from conftest import BIG, started_server, unique
from test_repair import backfill_killed, run_tool, tool_json
from test_verify import run_json as verify_json, run_verify
from twopaths import Admin, drop_sides, open_sides

pytestmark = pytest.mark.proxy_only

OLD_TABLES = """
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                    nickname text, legacy int);
CREATE TABLE orders (id int PRIMARY KEY, price numeric(12,2) NOT NULL, paid int NOT NULL);
CREATE TABLE people (id int PRIMARY KEY, full_name text NOT NULL);
"""

NEW_TABLES = """
CREATE TABLE users_v2 (id int PRIMARY KEY, full_name text NOT NULL, email text NOT NULL,
                       email_domain text, extra int DEFAULT 0);
CREATE TABLE orders (id int PRIMARY KEY, price_cents bigint NOT NULL, paid boolean NOT NULL);
CREATE TABLE people_v2 (id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL);
"""

LAST_NAME = "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"

RULES = """
[rewrite]
table.users = users_v2
column.users.name = full_name
up.users_v2.email_domain = split_part(email, '@', 2)
down.users.nickname = split_part(full_name, ' ', 1)
column.orders.price = price_cents
up.orders.price_cents = (price * 100)::bigint
down.orders.price = price_cents / 100.0
table.people = people_v2
up.people_v2.first_name = split_part(full_name, ' ', 1)
up.people_v2.last_name = %s
down.people.full_name = first_name || ' ' || last_name
""" % LAST_NAME

USERS, ORDERS, PEOPLE = 600, 500, 200

# (what, side the expression reads, its query, other side, the column's query):
# each query gives (key, value...) for every row, in key order.
HOLDS = [
    ("users: rename, email, up email_domain",
     "old", "SELECT id, name, email, split_part(email, '@', 2) FROM users",
     "new", "SELECT id, full_name, email, email_domain FROM users_v2"),
    ("users: down nickname",
     "new", "SELECT id, split_part(full_name, ' ', 1) FROM users_v2",
     "old", "SELECT id, nickname FROM users"),
    ("orders: up price_cents, paid as boolean",
     "old", "SELECT id, (price * 100)::bigint, paid::boolean FROM orders",
     "new", "SELECT id, price_cents, paid FROM orders"),
    ("orders: down price",
     "new", "SELECT id, (price_cents / 100.0)::numeric(12,2) FROM orders",
     "old", "SELECT id, price FROM orders"),
    ("people: up first_name, last_name",
     "old", "SELECT id, split_part(full_name, ' ', 1), %s FROM people" % LAST_NAME,
     "new", "SELECT id, first_name, last_name FROM people_v2"),
    ("people: down full_name",
     "new", "SELECT id, first_name || ' ' || last_name FROM people_v2",
     "old", "SELECT id, full_name FROM people"),
]


@pytest.fixture(scope="module")
def second_pg():
    with started_server() as server:
        yield server


@pytest.fixture(params=["one_database", "two_servers"])
def sides(request, pg):
    s = open_sides(request, pg, unique("uv"))
    try:
        s["old"].sql("SET ROLE app;" + OLD_TABLES)
        s["new"].sql("SET ROLE app;" + NEW_TABLES)
        yield s
    finally:
        drop_sides(s)


def seed_old(sides, users=USERS, orders=ORDERS, people=PEOPLE):
    """Old's rows, consistent with the down expressions; a tenth of the orders
    cost 0 (a wrong up expression `price * 10` still holds on those)."""
    sides["old"].sql(
        "INSERT INTO users SELECT g, 'First%s Last' || g, 'u' || g || '@d' || (g %% 7) || '.example',"
        " 'First%s', CASE WHEN g %% 2 = 0 THEN g END FROM generate_series(1, %d) g;"
        "INSERT INTO orders SELECT g, CASE WHEN g %% 10 = 0 THEN 0 ELSE g * 1.25 END, g %% 2"
        " FROM generate_series(1, %d) g;"
        "INSERT INTO people SELECT g, CASE WHEN g %% 5 = 0 THEN 'Grace' || g || ' Brewster Hopper'"
        " ELSE 'Ada' || g || ' Lovelace' || g END FROM generate_series(1, %d) g"
        % ("' || g || '", "' || g || '", users, orders, people))


def write_config(sides, tmp_path, rules=RULES, name="pgturnout.ini"):
    lines = ["[pgturnout]", "listen = 127.0.0.1:1", "auth_type = trust",
             "journal_dir = %s" % (tmp_path / "journal")]
    for role in ("old", "new"):
        s = sides[role]
        lines += ["", "[path %s]" % role, "host = %s" % s.server.host, "port = %s" % s.server.port,
                  "dbname = app", "user = app", "password = app", "sslmode = disable",
                  "search_path = %s" % s.schema]
    lines += ["", "[migration]", "old = old", "new = new", rules]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def by_table(summary):
    return {t["table"].split(".")[-1]: t for t in summary["tables"]}


def report_rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rows_of(sides, role, query):
    return sides[role].sql(query + " ORDER BY 1")


def broken(sides):
    """{what: keys} of every check of HOLDS that does not hold, row by row."""
    out = {}
    for what, src, q_src, dst, q_dst in HOLDS:
        a = {r[0]: r[1:] for r in rows_of(sides, src, q_src)}
        b = {r[0]: r[1:] for r in rows_of(sides, dst, q_dst)}
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if keys:
            out[what] = keys
    return out


def verify_text_and_json(config, journal_dir, report):
    """One verify run: (exit code, its text output, its JSON summary as
    recorded in JOURNAL_DIR/verify.last.json)."""
    r = run_verify(config, "--report", report)
    assert r.returncode in (0, 1, 2), r.stderr
    with open(os.path.join(str(journal_dir), "verify.last.json")) as f:
        return r.returncode, r.stdout, json.load(f)


def assert_equal(sides, config, tmp_path, orders=ORDERS):
    assert broken(sides) == {}
    code, s = verify_json(config, "--report", tmp_path / "equal.jsonl")
    assert code == 0, report_rows(tmp_path / "equal.jsonl")[:20]
    t = by_table(s)
    assert t["users"]["rows"] == USERS and t["orders"]["rows"] == orders
    assert t["people"]["rows"] == PEOPLE
    return s


def test_backfill_then_verify_through_expressions(sides, tmp_path):
    seed_old(sides)
    config = write_config(sides, tmp_path)
    code, s = tool_json("backfill", config)
    assert code == 0, s
    assert {k: v["inserted"] for k, v in by_table(s).items()} == \
        {"users": USERS, "orders": ORDERS, "people": PEOPLE}
    assert broken(sides) == {}
    code, text, s = verify_text_and_json(config, tmp_path / "journal", tmp_path / "r.jsonl")
    assert code == 0 and s["differences"] == 0

    # what was compared, through which expression, and what was not
    t = by_table(s)
    assert (t["users"]["rows"], t["orders"]["rows"], t["people"]["rows"]) == (USERS, ORDERS, PEOPLE)
    assert {(e["column"], e["kind"]) for e in t["users"]["expressions"]} == \
        {("email_domain", "up"), ("nickname", "down")}
    assert {(e["column"], e["kind"], e["expression"]) for e in t["orders"]["expressions"]} == \
        {("price_cents", "up", "(price * 100)::bigint"), ("price", "down", "price_cents / 100.0")}
    assert {(e["column"], e["kind"]) for e in t["people"]["expressions"]} == \
        {("first_name", "up"), ("last_name", "up"), ("full_name", "down")}
    assert sorted((c["column"], c["side"], c["reason"]) for c in t["users"]["not_compared"]) == \
        [("extra", "new", "default-only"), ("legacy", "old", "default-only")]
    assert t["users"]["only_on_old"] == ["legacy"] and t["users"]["only_on_new"] == ["extra"]
    assert t["orders"]["not_compared"] == [] and t["people"]["not_compared"] == []
    assert "only on old: legacy (default-only): not compared" in text
    assert "price_cents = (price * 100)::bigint (up)" in text
    # columns nothing fills stay at their default
    assert sides["new"].sql("SELECT count(*) FROM users_v2 WHERE extra = 0") == [(USERS,)]

    # a second backfill copies nothing
    code, s = tool_json("backfill", config)
    assert code == 0 and all(v["inserted"] == 0 for v in by_table(s).values()), s


def test_wrong_expression_is_caught(sides, tmp_path, proxy_factory, request):
    backfilled(sides, tmp_path)
    assert broken(sides) == {}

    # up: price * 10 where price * 100 was meant
    rules = RULES.replace("up.orders.price_cents = (price * 100)::bigint",
                          "up.orders.price_cents = price * 10")
    wrong = write_config(sides, tmp_path, rules, "wrong.ini")
    report = tmp_path / "wrong.jsonl"
    code, text, s = verify_text_and_json(wrong, tmp_path / "journal", report)
    assert code == 1
    expect = [k for (k,) in sides["old"].sql(
        "SELECT id FROM orders WHERE (price * 10)::bigint IS DISTINCT FROM (price * 100)::bigint"
        " ORDER BY id")]
    assert len(expect) == ORDERS - ORDERS // 10
    o = by_table(s)["orders"]
    assert o["different"] == len(expect) and o["columns"] == {"price_cents": len(expect)}, o
    assert o["missing_on_old"] == 0 and o["missing_on_new"] == 0
    assert by_table(s)["users"]["equal"] and by_table(s)["people"]["equal"]
    lines = [r for r in report_rows(report) if r["table"].endswith(".orders")]
    assert sorted(int(r["key"]["id"]) for r in lines) == expect
    first = [r for r in lines if r["key"]["id"] == "1"][0]
    assert first["columns"] == ["price_cents"]
    assert first["values"]["price_cents"] == {"kind": "up", "expression": "price * 10",
                                              "expected": "13", "found": "125"}
    d = o["column_diffs"][0]
    assert d["column"] == "price_cents" and d["rows"] == len(expect)
    assert d["example"] == "price_cents: expected price * 10 = 13, found 125 (id 1)"
    assert "price_cents: expected price * 10 = 13, found 125 (id 1)" in text

    # down: the second word where the first was meant
    rules = RULES.replace("down.users.nickname = split_part(full_name, ' ', 1)",
                          "down.users.nickname = split_part(full_name, ' ', 2)")
    code, s = verify_json(write_config(sides, tmp_path, rules, "wrong2.ini"),
                        "--report", report)
    assert code == 1
    u = by_table(s)["users"]
    assert u["different"] == USERS and u["columns"] == {"nickname": USERS}, u
    assert u["column_diffs"][0]["example"] == \
        "nickname: expected split_part(full_name, ' ', 2) = Last1, found First1 (id 1)"

    # an expression the old side cannot compute: that pair is not compared,
    # the others are
    rules = RULES.replace("(price * 100)::bigint", "no_such_fn(price)")
    code, s = verify_json(write_config(sides, tmp_path, rules, "bad.ini"), "--report", report)
    assert code == 2
    assert by_table(s)["orders"]["error"] == (
        "up.orders.price_cents = no_such_fn(price) cannot be computed on path old:"
        " function no_such_fn(numeric) does not exist"), s
    assert by_table(s)["users"]["equal"] and by_table(s)["people"]["equal"]

    # the proxy shows it: SHOW VERIFY (one layout is enough)
    if request.node.callspec.params["sides"] != "one_database":
        return
    paths = {role: {"host": sides[role].server.host, "port": sides[role].server.port,
                    "dbname": "app", "search_path": sides[role].schema, "user": "app"}
             for role in ("old", "new")}
    proxy = proxy_factory(paths=paths, extra="\n[migration]\nold = old\nnew = new\n" +
                          RULES.replace("(price * 100)::bigint", "price * 10"))
    code, _ = verify_json(proxy.config_path, "--report", report)
    assert code == 1
    state = json.load(open(os.path.join(proxy.dir, "journal", "verify.last.json")))
    assert "price_cents: expected price * 10 = 13, found 125 (id 1)" in \
        by_table(state)["orders"]["differing_columns"]
    admin = Admin(proxy)
    try:
        rows = {r["new_table"].split(".")[-1]: r for r in admin.run("SHOW VERIFY")}
    finally:
        admin.close()
    assert rows["orders"]["different"] == str(len(expect))
    assert rows["orders"]["differing_columns"].startswith(
        "price_cents: expected price * 10 = 13, found 125 (id 1)")
    assert rows["users_v2"]["not_compared"] == "legacy (old, default-only), extra (new, default-only)"


def corrupt_new(sides):
    """Breaks every up mapping on some rows of new; returns nothing."""
    sides["new"].sql(
        "UPDATE orders SET price_cents = price_cents + 1 WHERE id % 7 = 0;"
        "UPDATE orders SET paid = NOT paid WHERE id % 11 = 0;"
        "UPDATE users_v2 SET email_domain = 'wrong.example' WHERE id % 13 = 0;"
        "UPDATE users_v2 SET full_name = full_name || '!' WHERE id % 17 = 0;"
        "UPDATE people_v2 SET last_name = upper(last_name) WHERE id % 3 = 0;"
        "DELETE FROM people_v2 WHERE id % 50 = 0;"
        "DELETE FROM orders WHERE id BETWEEN 100 AND 110;"
        "INSERT INTO people_v2 VALUES (100000, 'Only', 'New')")


def corrupt_old(sides):
    """Breaks every down mapping on some rows of old."""
    sides["old"].sql(
        "UPDATE users SET nickname = 'nick' WHERE id % 9 = 0;"
        "UPDATE users SET nickname = NULL WHERE id % 10 = 0;"
        "UPDATE orders SET price = price + 0.01 WHERE id % 7 = 0;"
        "UPDATE orders SET paid = 1 - paid WHERE id % 11 = 0;"
        "UPDATE people SET full_name = full_name || ' Jr' WHERE id % 4 = 0;"
        "DELETE FROM people WHERE id % 60 = 0;"
        "INSERT INTO orders VALUES (900000, 1.00, 1)")


def backfilled(sides, tmp_path):
    """Old seeded, new backfilled from it; the config."""
    seed_old(sides)
    config = write_config(sides, tmp_path)
    assert tool_json("backfill", config)[0] == 0
    return config


def test_repair_up_direction(sides, tmp_path):
    config = backfilled(sides, tmp_path)
    corrupt_new(sides)
    wrong = broken(sides)
    # (a changed price_cents breaks price's down expression too, and so on)
    assert set(wrong) == {"users: rename, email, up email_domain",
                          "orders: up price_cents, paid as boolean", "orders: down price",
                          "people: up first_name, last_name", "people: down full_name"}, wrong
    report = tmp_path / "r.jsonl"
    code, s = verify_json(config, "--report", report)
    assert code == 1
    t = by_table(s)
    assert set(t["orders"]["columns"]) == {"price_cents", "paid", "price"}, t["orders"]
    assert set(t["users"]["columns"]) == {"email_domain", "name"}, t["users"]
    assert t["people"]["missing_on_new"] == PEOPLE // 50 and t["people"]["missing_on_old"] == 1
    assert t["orders"]["missing_on_new"] == 11

    # dry run: nothing changes
    r = run_tool("repair", config, "--report", report, "--dry-run")
    assert r.returncode == 1 and "would update" in r.stdout
    assert broken(sides) == wrong

    code, s = tool_json("repair", config, "--report", report)
    assert code == 0, s
    assert_equal(sides, config, tmp_path)
    code, s = tool_json("repair", config, "--report", report)
    assert code == 0 and all(v["inserted"] + v["updated"] + v["deleted"] == 0
                             for v in by_table(s).values()), s

    # whole tables too
    corrupt_new(sides)
    code, s = tool_json("repair", config, "--table", "orders", "--table", "users",
                        "--table", "people")
    assert code == 0, s
    assert by_table(s)["orders"]["updated"] > 0 and by_table(s)["orders"]["inserted"] == 11
    assert_equal(sides, config, tmp_path)


def journal_line(obj):
    text = json.dumps(obj, separators=(",", ":"))
    return "%08x %s\n" % (zlib.crc32(text.encode()), text)


def test_repair_down_direction_and_journal(sides, tmp_path):
    config = backfilled(sides, tmp_path)
    corrupt_old(sides)
    wrong = broken(sides)
    assert set(wrong) == {"users: down nickname", "orders: down price",
                          "orders: up price_cents, paid as boolean",
                          "people: down full_name", "people: up first_name, last_name"}, wrong
    report = tmp_path / "r.jsonl"
    assert verify_json(config, "--report", report)[0] == 1
    code, s = tool_json("repair", config, "--report", report, "--from", "new")
    assert code == 0, s
    t = by_table(s)
    assert t["people"]["inserted"] == PEOPLE // 60 and t["orders"]["deleted"] == 1
    assert_equal(sides, config, tmp_path)

    # repair --journal by keys: entries naming rows of new that old lost
    # (authoritative new), and rows of old that new lost (authoritative old)
    sides["new"].sql("UPDATE orders SET price_cents = 99999 WHERE id IN (5, 6);"
                     "UPDATE people_v2 SET first_name = 'Kay' WHERE id = 7")
    sides["old"].sql("UPDATE users SET email = 'x@moved.example' WHERE id = 8")
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir(exist_ok=True)
    entry = {"time": "2026-11-29T12:00:00.000Z", "session": 1, "fingerprint": "0" * 16,
             "parameters": "", "error": "shadow path unavailable"}
    with open(journal_dir / "dual_write_journal.log", "w") as f:
        f.write(journal_line(dict(entry, path="old", statement="UPDATE orders SET price_cents = 99999",
                                  table="orders", keys=[{"id": "5"}, {"id": "6"}],
                                  authoritative="new")))
        f.write(journal_line(dict(entry, path="old", statement="UPDATE people_v2 SET first_name = 'Kay'",
                                  table="people", keys=[{"id": "7"}], authoritative="new")))
        f.write(journal_line(dict(entry, path="new", statement="UPDATE users SET email = 'x'",
                                  table="users", keys=[{"id": "8"}], authoritative="old")))
    code, s = tool_json("repair", config, "--journal")
    assert code == 0, s
    assert s["journal_entries"] == 3
    assert sides["old"].sql("SELECT price FROM orders WHERE id IN (5, 6) ORDER BY id") == \
        [(Decimal("999.99"),), (Decimal("999.99"),)]
    assert sides["old"].sql("SELECT full_name FROM people WHERE id = 7") == [("Kay Lovelace7",)]
    assert sides["new"].sql("SELECT email_domain FROM users_v2 WHERE id = 8") == [("moved.example",)]
    assert_equal(sides, config, tmp_path)


def test_backfill_killed_through_expressions(sides, tmp_path, request):
    if request.node.callspec.params["sides"] == "two_servers" and not BIG:
        pytest.skip("the two-server variant runs with PGT_BIG=1")
    rows, chunk = 8000, 200
    seed_old(sides, orders=rows)
    config = write_config(sides, tmp_path)
    checkpoint = tmp_path / "journal" / "backfill.checkpoint"
    count = lambda: sides["new"].sql("SELECT count(*) FROM orders")[0][0]  # noqa: E731
    backfill_killed(config, "orders", chunk, 3000, lambda: count() >= 2000)
    copied = count()
    assert 2000 <= copied < rows
    assert checkpoint.exists()
    code, s = tool_json("backfill", config, "--table", "orders", "--chunk-rows", str(chunk),
                        "--resume")
    assert code == 0, s
    o = by_table(s)["orders"]
    assert o["inserted"] == rows - copied and o["rows"] <= rows - copied + chunk, (o, copied)
    assert not checkpoint.exists()
    assert tool_json("backfill", config, "--table", "users", "--table", "people")[0] == 0
    assert_equal(sides, config, tmp_path, orders=rows)
