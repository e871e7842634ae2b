"""Limits and resources: max_client_conn, 1000 idle clients (RSS per idle
client is printed), and backpressure: a slow COPY reader must not grow the
proxy's memory (VmRSS sampled during the transfer, limit 64 MB)."""

import os
import subprocess
import threading
import time

import psycopg2
import pytest

import pgwire
from conftest import BIG, DIRECT, raise_nofile, run_pqclient, sanitized_binary, vmrss_kb


@pytest.mark.proxy_only
def test_max_client_conn_refuses_the_extra_client_with_53300(proxy_factory):
    proxy = proxy_factory(settings={"max_client_conn": 5})
    conns = [proxy.connect() for _ in range(5)]
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
        assert exc.value.sqlstate == "53300", exc.value.fields
        assert "too many clients" in exc.value.message
    for conn in conns:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    conns.pop().close()
    time.sleep(0.3)
    conn = proxy.connect()            # a freed slot is usable again
    conn.close()
    for conn in conns:
        conn.close()


def test_1000_idle_clients_all_served(proxy_factory, pg):
    n = 1000
    raise_nofile()
    proxy = proxy_factory(settings={"auth_type": "trust", "max_client_conn": 2000},
                          users={"trustuser": "trustpass"})
    conns = []
    rss_before = None if DIRECT else proxy.rss_kb()
    try:
        for i in range(n):
            conns.append(psycopg2.connect(proxy.dsn(user="trustuser")))
        rss_after = None if DIRECT else proxy.rss_kb()
        # every one of them still answers
        for i, conn in enumerate(conns):
            with conn.cursor() as cur:
                cur.execute("SELECT %s", (i,))
                assert cur.fetchone() == (i,)
        if not DIRECT:
            per_client = (rss_after - rss_before) * 1024 / n
            print("pgturnout VmRSS: %d kB before, %d kB with %d idle clients: %.1f kB per idle client"
                  % (rss_before, rss_after, n, per_client / 1024))
            with open(os.path.join(proxy.dir, "rss.txt"), "w") as f:
                f.write("%d %d %d\n" % (rss_before, rss_after, n))
            # generous bound; the number itself is what we report
            if not sanitized_binary():
                assert per_client < 256 * 1024
    finally:
        for conn in conns:
            conn.close()


def sample_rss(pid, stop, samples):
    while not stop.is_set():
        try:
            samples.append(vmrss_kb(pid))
        except OSError:
            return
        time.sleep(0.05)


@pytest.mark.proxy_only
def test_slow_copy_reader_keeps_proxy_memory_bounded(proxy, pqclient):
    rowsize = 1000
    total_mb = 1024 if BIG else 200
    rows = total_mb * 1024 * 1024 // (rowsize + 1)
    rate = (100 if BIG else 40) * 1024 * 1024     # bytes per second the reader accepts
    stop = threading.Event()
    samples = []
    sampler = threading.Thread(target=sample_rss, args=(proxy.pid, stop, samples))
    sampler.start()
    try:
        r = run_pqclient(pqclient, "copyout-slow", proxy.dsn(), rows, rowsize, rate,
                         timeout=600)
    finally:
        stop.set()
        sampler.join()
    out = r.stdout
    assert "rows %d" % rows in out, out
    peak = max(samples)
    print("slow COPY reader: %d MB at %d MB/s; pgturnout VmRSS peak %.1f MB over %d samples"
          % (total_mb, rate >> 20, peak / 1024, len(samples)))
    if sanitized_binary():
        print("ASan build: quarantine and shadow memory count in VmRSS; bound not checked")
        return
    assert peak < 64 * 1024, "VmRSS peaked at %.1f MB" % (peak / 1024)


def test_large_result_streams_through(proxy):
    conn = proxy.connect(autocommit=False)
    with conn.cursor(name="big_cursor") as cur:
        cur.itersize = 5000
        cur.execute("SELECT g, repeat('y', 200) FROM generate_series(1, 200000) g")
        count = sum(1 for _ in cur)
    conn.rollback()
    assert count == 200000
    conn.close()


def test_startup_takes_as_many_parameters_as_fit(proxy):
    """PostgreSQL has no parameter count limit below the packet size: 300
    custom settings in one startup packet all reach the server."""
    params = {"pgt_test.p%d" % i: "v%d" % i for i in range(300)}
    c = proxy.wire()
    c.startup("app", "app", "app", **params)
    assert c.query("SELECT current_setting('pgt_test.p0'), "
                   "current_setting('pgt_test.p299')") == [("v0", "v299")]
    c.terminate()
