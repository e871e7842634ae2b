"""Helpers shared by the tests of two-path setups (routing, dual writes).

- TwoPathLayout: where each path's objects live, in one of two layouts:
  "schemas" (one database, a schema per path, told apart by search_path) or
  "databases" (a database per path, schema public). Subclasses say what
  each path holds (objects()).
- Admin: an admin console session (psycopg2, simple query protocol).
- wait_for: polls a predicate.
"""

import time

import psycopg2


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
