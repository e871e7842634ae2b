"""Integration test harness: the real pgturnout binary against a real PostgreSQL.

- One PostgreSQL per run: the one scripts/test.sh started (PGT_PGHOST,
  PGT_PGPORT, PGT_PGSOCK, PGT_CA_DIR in the environment), or, when pytest is
  run standalone, one started here with the same recipe (scripts/pg.sh) and
  stopped at the end of the session.
- A fresh pgturnout per test: the `proxy` fixture starts one with the default
  test config; `proxy_factory(**overrides)` starts one with changed keys or
  extra sections. Each writes its config and userlist into the test's temp
  dir, listens on a free loopback port, and is killed by PID at teardown; its
  log is printed then (pytest shows it when the test failed).
- PGT_TEST_DIRECT=1 runs the same tests straight against PostgreSQL (the
  "proxy" is the server itself) to prove the test logic; tests marked
  `proxy_only` are skipped then.
"""

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import pgwire  # noqa: E402

DIRECT = os.environ.get("PGT_TEST_DIRECT") == "1"
BIG = os.environ.get("PGT_BIG") == "1"

# Users and plain passwords of the test server (scripts/pg.sh).
PASSWORDS = {
    "app": "app",
    "admin": "admin",
    "md5user": "md5pass",
    "scramuser": "scrampass",
    "trustuser": "trustpass",
    "pwuser": "pwpass",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "proxy_only: needs the pgturnout binary (skipped with PGT_TEST_DIRECT=1)")


def pytest_collection_modifyitems(config, items):
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="proxy-specific (PGT_TEST_DIRECT=1)")
    for item in items:
        if "proxy_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unique(prefix="t"):
    """A name no other test uses (tables, channels, databases)."""
    return "%s_%s" % (prefix, uuid.uuid4().hex[:10])


def pg_tool(name):
    return os.path.join(os.environ.get("PGT_PGBIN", "/usr/lib/postgresql/15/bin"), name)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    want = min(want, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Postgres:
    """The test server. Superuser access goes over the unix socket."""

    def __init__(self, host, port, sockdir, ca_dir, pid=None):
        self.host = host
        self.port = int(port)
        self.sockdir = sockdir
        self.ca_dir = ca_dir
        self.pid = int(pid) if pid else None

    @property
    def ca(self):
        return os.path.join(self.ca_dir, "ca.crt")

    def dsn(self, user="app", dbname="app", **kw):
        d = {"host": self.host, "port": self.port, "user": user, "dbname": dbname,
             "password": PASSWORDS.get(user, ""), "sslmode": "disable",
             "connect_timeout": 10}
        d.update(kw)
        return " ".join("%s='%s'" % (k, str(v).replace("'", "\\'")) for k, v in d.items())

    def connect(self, user="app", dbname="app", **kw):
        import psycopg2
        conn = psycopg2.connect(self.dsn(user, dbname, **kw))
        conn.autocommit = True
        return conn

    def superuser(self, dbname="app"):
        import psycopg2
        conn = psycopg2.connect(host=self.sockdir, port=self.port, user="postgres", dbname=dbname)
        conn.autocommit = True
        return conn

    def sql(self, query, dbname="app"):
        """Runs QUERY as superuser; returns all rows (or None)."""
        conn = self.superuser(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


@pytest.fixture(scope="session")
def pg():
    if os.environ.get("PGT_PGPORT"):
        yield Postgres(os.environ.get("PGT_PGHOST", "127.0.0.1"), os.environ["PGT_PGPORT"],
                       os.environ["PGT_PGSOCK"], os.environ["PGT_CA_DIR"],
                       os.environ.get("PGT_PG_PID"))
        return
    with started_server(export=True) as server:
        yield server


@contextlib.contextmanager
def started_server(export=False):
    """A PostgreSQL of its own (scripts/pg.sh) for the block, stopped after it;
    EXPORT puts its PGT_* facts into os.environ."""
    d = tempfile.mkdtemp(prefix="pgturnout-pg.")
    try:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "start", d], check=True)
        env = {}
        with open(os.path.join(d, "env.sh")) as f:
            for line in f:
                m = re.match(r"export (\w+)=(.*)", line.strip())
                if m:
                    env[m.group(1)] = m.group(2)
        if export:
            os.environ.update(env)
        yield Postgres(env["PGT_PGHOST"], env["PGT_PGPORT"], env["PGT_PGSOCK"],
                       env["PGT_CA_DIR"], env.get("PGT_PG_PID"))
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "stop", d])
        shutil.rmtree(d, ignore_errors=True)


class StoppablePostgres(Postgres):
    """A PostgreSQL of its own (scripts/pg.sh) that the test stops and starts
    (a path's or the flag store's server going away); destroy() at the end."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgturnout-pg2.")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "start", self.dir],
                       check=True, capture_output=True)
        env = {}
        with open(os.path.join(self.dir, "env.sh")) as f:
            for line in f:
                m = re.match(r"export (\w+)=(.*)", line.strip())
                if m:
                    env[m.group(1)] = m.group(2)
        super().__init__(env["PGT_PGHOST"], env["PGT_PGPORT"], env["PGT_PGSOCK"],
                         env["PGT_CA_DIR"], env.get("PGT_PG_PID"))
        self.pgbin = env["PGT_PGBIN"]

    def ctl(self, *args):
        cmd = [os.path.join(self.pgbin, "pg_ctl"), "-D", os.path.join(self.dir, "data"), *args]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE (fast: backends get FATAL 57P01 and close;
        immediate: they exit at once, the server recovers at start)."""
        self.ctl("-m", mode, "-w", "-t", "30", "stop")

    def start(self):
        self.ctl("-l", os.path.join(self.dir, "postgres.log"), "-w", "-t", "60", "start")

    def destroy(self):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "stop", self.dir],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def pgt_bin():
    b = os.environ.get("PGT_BIN")
    if b:
        return b
    for d in ("build", "build-asan", "build-harness"):
        p = os.path.join(ROOT, d, "pgturnout")
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, "build", "pgturnout")


def sanitized_binary():
    """True when pgturnout is an ASan build: its RSS then includes the
    allocator's quarantine and shadow memory, so memory bounds do not apply."""
    try:
        with open(pgt_bin(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def pqclient_bin():
    b = os.environ.get("PGT_PQCLIENT")
    if b and os.path.exists(b):
        return b
    for d in ("build", "build-asan", "build-harness"):
        p = os.path.join(ROOT, d, "tests", "integration", "pqclient")
        if os.path.exists(p):
            return p
    pytest.skip("pqclient not built")


def quote_userlist(s):
    return '"%s"' % s.replace('"', '""')


class Proxy:
    """One running pgturnout (or, in direct mode, the server itself)."""

    def __init__(self, pg, workdir, host, port):
        self.pg = pg
        self.dir = workdir
        self.host = host
        self.port = port
        self.proc = None
        self.pid = None
        self.config_path = os.path.join(workdir, "pgturnout.ini")
        self.userlist_path = os.path.join(workdir, "userlist.txt")
        self.log_path = os.path.join(workdir, "pgturnout.log")
        self.expect_exit = False
        self.direct = DIRECT

    # connection helpers -------------------------------------------------
    def dsn(self, user="app", dbname="app", **kw):
        d = {"host": self.host, "port": self.port, "user": user, "dbname": dbname,
             "password": PASSWORDS.get(user, ""), "sslmode": "disable",
             "connect_timeout": 10}
        d.update(kw)
        return " ".join("%s='%s'" % (k, str(v).replace("'", "\\'")) for k, v in d.items())

    def connect(self, user="app", dbname="app", autocommit=True, **kw):
        import psycopg2
        conn = psycopg2.connect(self.dsn(user, dbname, **kw))
        conn.autocommit = autocommit
        return conn

    def wire(self, timeout=10.0):
        return pgwire.Conn(self.host, self.port, timeout=timeout)

    def wire_login(self, user="app", dbname="app", password=None, **params):
        c = self.wire()
        c.startup(user, dbname, PASSWORDS.get(user, "") if password is None else password, **params)
        return c

    def env(self, user="app"):
        """Environment for psql/pgbench subprocesses connecting through us."""
        e = dict(os.environ)
        e.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=user, PGDATABASE="app",
                 PGPASSWORD=PASSWORDS.get(user, ""), PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
        return e

    # process control ------------------------------------------------------
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """SIGHUP."""
        os.kill(self.pid, signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends SIG and waits for the exit; returns the exit status."""
        self.expect_exit = True
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        return self.proc.wait(timeout)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10):
        """Waits until the log matches the regex PATTERN; returns the match."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.1)
        raise AssertionError("log never matched %r; log:\n%s" % (pattern, self.log()[-4000:]))

    def rss_kb(self):
        return vmrss_kb(self.pid)

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)


def default_users():
    return dict(PASSWORDS)


def render_config(proxy, pg, settings=None, paths=None, extra=""):
    """The test config: [pgturnout] SETTINGS over the defaults, [path NAME]
    sections from PATHS (default: one path `old` to the test server, db app),
    then EXTRA verbatim (e.g. [migration], [rewrite])."""
    s = {
        "listen": "127.0.0.1:%d" % proxy.port,
        "auth_type": "scram-sha-256",
        "auth_file": proxy.userlist_path,
        "admin_users": "admin",
        "journal_dir": os.path.join(proxy.dir, "journal"),
        "log_level": "debug",
        "shutdown_timeout": "5s",
        "client_login_timeout": "10s",
    }
    s.update(settings or {})
    lines = ["[pgturnout]"] + ["%s = %s" % (k, v) for k, v in s.items() if v is not None]
    if paths is None:
        paths = {"old": {}}
    for name, p in paths.items():
        d = {"host": pg.host, "port": pg.port, "dbname": "app", "sslmode": "disable"}
        d.update(p)
        lines.append("")
        lines.append("[path %s]" % name)
        lines += ["%s = %s" % (k, v) for k, v in d.items() if v is not None]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def proxy_factory(pg, tmp_path, request):
    started = []

    def start(settings=None, paths=None, extra="", users=None, config_text=None, wait=True):
        workdir = str(tmp_path / ("proxy%d" % len(started)))
        os.makedirs(workdir)
        if DIRECT:
            p = Proxy(pg, workdir, pg.host, pg.port)
            p.pid = pg.pid
            started.append(p)
            return p
        p = Proxy(pg, workdir, "127.0.0.1", free_port())
        users = default_users() if users is None else users
        with open(p.userlist_path, "w") as f:
            for u, secret in users.items():
                f.write("%s %s\n" % (quote_userlist(u), quote_userlist(secret)))
        p.write_config(config_text if config_text is not None
                       else render_config(p, pg, settings, paths, extra))
        logf = open(p.log_path, "w")
        p.proc = subprocess.Popen([pgt_bin(), "-c", p.config_path, "-v"], stdout=logf,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=workdir, preexec_fn=raise_nofile)
        logf.close()
        p.pid = p.proc.pid
        started.append(p)
        if wait:
            deadline = time.time() + 15
            while True:
                if p.proc.poll() is not None:
                    raise AssertionError("pgturnout exited with %s at start; log:\n%s"
                                         % (p.proc.returncode, p.log()))
                try:
                    socket.create_connection((p.host, p.port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise AssertionError("pgturnout does not accept on %d; log:\n%s"
                                             % (p.port, p.log()))
                    time.sleep(0.05)
        return p

    yield start

    problems = []
    for p in started:
        if p.proc is None:
            continue
        died = p.proc.poll() is not None and not p.expect_exit
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        rc = p.proc.returncode
        if died:
            problems.append("pgturnout died during the test (status %s)" % rc)
        if rc is not None and rc < 0 and rc not in (-signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT):
            problems.append("pgturnout ended by signal %d" % -rc)
        if re.search(r"ERROR: \w*Sanitizer|runtime error:", p.log()):
            problems.append("sanitizer report in the log")
        if failed or problems:
            print("----- pgturnout log (%s, status %s) -----" % (p.log_path, rc))
            print(p.log()[-20000:])
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def proxy(proxy_factory):
    return proxy_factory()


@pytest.fixture
def pqclient():
    return pqclient_bin()


def run_pqclient(binary, *args, timeout=120, check=True):
    r = subprocess.run([binary] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("pqclient %s failed (%d):\n%s\n%s" % (args[0], r.returncode,
                                                                   r.stdout, r.stderr))
    return r


def kv_lines(text):
    """Parses "key value..." lines into a dict of lists."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        k, _, v = line.partition(" ")
        out.setdefault(k, []).append(v)
    return out
