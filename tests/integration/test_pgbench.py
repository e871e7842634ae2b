"""pgbench through the proxy: initialise at scale 1, then 4 clients for a few
seconds with the select-only and the default (TPC-B-like) script in each
query mode (simple, extended, prepared); no transaction may fail."""

import os
import re
import subprocess

import pytest

from conftest import unique

DURATION = os.environ.get("PGT_PGBENCH_SECONDS", "5")


@pytest.fixture(scope="module")
def bench_db(pg):
    """A database of its own, so pgbench's fixed table names do not clash
    with other tests."""
    name = unique("bench")
    pg.sql("CREATE DATABASE %s OWNER app" % name, dbname="postgres")
    yield name
    pg.sql("DROP DATABASE %s WITH (FORCE)" % name, dbname="postgres")


@pytest.fixture
def bench_proxy(proxy_factory, bench_db):
    return proxy_factory(paths={"old": {"dbname": bench_db}})


def pgbench(proxy, db, *args, timeout=180):
    env = proxy.env()
    env["PGDATABASE"] = db
    r = subprocess.run(["pgbench", *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    return r


def test_pgbench_init(bench_proxy, bench_db):
    r = pgbench(bench_proxy, bench_db, "-i", "-s", "1", "-q")
    assert r.returncode == 0, r.stderr
    assert "done" in r.stderr


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
@pytest.mark.parametrize("script", ["select-only", "tpcb-like"])
def test_pgbench_run_has_no_failed_transactions(bench_proxy, bench_db, mode, script):
    args = ["-c", "4", "-j", "2", "-T", DURATION, "-M", mode, "-n"]
    if script == "select-only":
        args.append("-S")
    r = pgbench(bench_proxy, bench_db, *args)
    out = r.stdout
    print(out)
    assert r.returncode == 0, (out, r.stderr[-3000:])
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    tps = re.search(r"tps = ([\d.]+)", out)
    assert processed and int(processed.group(1)) > 0, out
    assert failed is None or int(failed.group(1)) == 0, out
    print("pgbench -M %s %s: %s tps" % (mode, script, tps.group(1) if tps else "?"))
