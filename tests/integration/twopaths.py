"""Helpers shared by the tests of two-path setups (routing, dual writes).

- TwoPathLayout: where each path's objects live, in one of two layouts:
  "schemas" (one database, a schema per path, told apart by search_path) or
  "databases" (a database per path, schema public). Subclasses say what
  each path holds (objects()).
- Admin: an admin console session (psycopg2, simple query protocol).
- wait_for: polls a predicate.
"""

import socket
import threading
import time

import psycopg2

from conftest import unique


class TwoPathLayout:
    """role ("old"/"new") -> (database, schema); TAG makes the names unique."""

    def __init__(self, pg, kind, tag):
        self.pg = pg
        self.kind = kind
        if kind == "schemas":
            self.where = {"old": ("app", "p_old_" + tag), "new": ("app", "p_new_" + tag)}
        else:
            self.where = {"old": ("db_old_" + tag, "public"), "new": ("db_new_" + tag, "public")}

    def objects(self, role):
        """SQL run as role app in ROLE's database and schema at create()."""
        raise NotImplementedError

    def create(self):
        for role in ("old", "new"):
            db, schema = self.where[role]
            if self.kind == "databases":
                self.pg.sql("CREATE DATABASE %s OWNER app" % db, dbname="postgres")
                prefix = "SET ROLE app;"
            else:
                prefix = "SET ROLE app; CREATE SCHEMA %s; SET search_path = %s;" % (schema, schema)
            self.pg.sql(prefix + self.objects(role), dbname=db)

    def drop(self):
        for role in ("old", "new"):
            db, schema = self.where[role]
            try:
                if self.kind == "databases":
                    self.pg.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, dbname="postgres")
                else:
                    self.pg.sql("DROP SCHEMA IF EXISTS %s CASCADE" % schema, dbname=db)
            except psycopg2.Error as e:  # teardown must not hide the test's result
                print("layout cleanup: %s" % e)

    @property
    def paths(self):
        """[path] sections for the proxy's config."""
        out = {}
        for role in ("old", "new"):
            db, schema = self.where[role]
            p = {"dbname": db}
            if self.kind == "schemas":
                p["search_path"] = schema
            out[role] = p
        return out

    def sql(self, role, query):
        """QUERY as superuser in ROLE's database and schema; rows or None."""
        db, schema = self.where[role]
        return self.pg.sql("SET search_path = %s; %s" % (schema, query), dbname=db)


def created(layout):
    """For a fixture: creates LAYOUT's objects, yields it, drops them."""
    layout.create()
    try:
        yield layout
    finally:
        layout.drop()


class Admin:
    """A console session (psycopg2, simple query protocol)."""

    def __init__(self, proxy):
        self.conn = proxy.connect(user="admin", dbname="pgturnout")

    def run(self, command):
        """Rows as dicts, or None for a command without a result."""
        with self.conn.cursor() as cur:
            cur.execute(command)
            if cur.description is None:
                return None
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def stats(self):
        return {r["path"]: r for r in self.run("SHOW STATS")}

    def close(self):
        self.conn.close()


def wait_for(predicate, what, timeout=10):
    """PREDICATE's first true value, polled every 0.1 s for TIMEOUT seconds."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


class Side:
    """One path's tables: schema SCHEMA of database app on SERVER."""

    def __init__(self, server, schema):
        self.server, self.schema = server, schema

    def sql(self, q):
        return self.server.sql("SET search_path = %s; %s" % (self.schema, q))


def open_sides(request, pg, tag):
    """{"old": Side, "new": Side} in the layout request.param names:
    "one_database" (two schemas on PG) or "two_servers" (a schema on PG and
    one on the module's second_pg fixture); the schemas created, owned by
    app. drop_sides() removes them."""
    if request.param == "one_database":
        s = {"old": Side(pg, "p_old_" + tag), "new": Side(pg, "p_new_" + tag)}
    else:
        s = {"old": Side(pg, "p_" + tag), "new": Side(request.getfixturevalue("second_pg"), "p_" + tag)}
    for side in s.values():
        side.server.sql("SET ROLE app; CREATE SCHEMA %s" % side.schema)
    return s


def drop_sides(sides):
    for side in sides.values():
        side.server.sql("DROP SCHEMA IF EXISTS %s CASCADE" % side.schema)


def users_proxy(proxy_factory, sides, migration="", dual_write="off"):
    """A pgturnout over SIDES for the demo's users table (users_v2 on new,
    name renamed full_name): canary by connection at 0, DUAL_WRITE, the
    [migration] lines MIGRATION added."""
    paths = {}
    for role, side in sides.items():
        paths[role] = {"host": side.server.host, "port": side.server.port, "dbname": "app",
                       "search_path": side.schema, "user": "app"}
    return proxy_factory(paths=paths, extra=(
        "\n[migration]\nold = old\nnew = new\nsalt = %s\ncanary_key = connection\n%s"
        "\n[rewrite]\ntable.users = users_v2\ncolumn.users.name = full_name\n"
        "\n[flags]\ndual_write = %s\ncanary_percent = 0\nforce_path = none\n"
        "shadow_failure = journal\n" % (unique("salt"), migration, dual_write)))


class BlackHole:
    """A listening socket that accepts and never answers: a stopped server."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()
