"""SIGKILL of pgturnout during dual writes (SPEC §7: nothing acknowledged to
a client is lost, even if pgturnout is killed at any instant).

Workers run short transactions through the proxy at canary 50 (sessions on
both paths, so both commit orders happen) while the proxy is killed with
SIGKILL and restarted on the same port and journal, again and again. Every
transaction whose COMMIT was acknowledged must be on both sides afterwards.
A transaction in flight at the kill may be on one side only (its client got
no answer): its commit intent was made durable before the primary's COMMIT,
so the next start journals it as in doubt, and the test checks that every
row on one side only is named in the journal.

Run for both `dual_commit` modes. With `2pc` a transaction is prepared on
both sides before its decision is recorded: after the restarts, the
resolver leaves no prepared transaction behind, and no row is on one side
only (beyond what the journal names: a shadow that lost its connection).
"""

import random
import re
import signal
import socket
import threading
import time

import psycopg2
import pytest

from conftest import BIG
from test_dual import dual_config, journal_file, layout, read_journal  # noqa: F401
from test_dual_2pc import gid_prefix, prepared, twopc_config, twopc_paths
from twopaths import wait_for

pytestmark = pytest.mark.proxy_only

KILLS = 20 if BIG else 4
WORKERS = 6


class Worker(threading.Thread):
    def __init__(self, n, port, stop):
        super().__init__(daemon=True)
        self.n = n
        self.port = port
        self.stop = stop
        self.acked = []
        self.errors = 0

    def connect(self):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="app", dbname="app",
                                password="app", sslmode="disable", connect_timeout=3,
                                application_name="kill-%d" % self.n)

    def run(self):
        next_id = self.n * 1000000
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                next_id += 1
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO users (id, name, email) VALUES (%s, %s, 'k')",
                                (next_id, "w%d" % self.n))
                    cur.execute("UPDATE users SET email = email || '.' WHERE id = %s",
                                (next_id,))
                conn.commit()
                self.acked.append(next_id)
            except psycopg2.Error:
                self.errors += 1
                try:
                    if conn is not None:
                        conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def wait_listening(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the restarted proxy does not accept on %d" % port)


@pytest.mark.parametrize("mode", ["ordered", "2pc"])
def test_acknowledged_transactions_survive_sigkill(proxy_factory, layout, mode):
    flags = {"canary_percent": "50"}
    if mode == "2pc":
        p = proxy_factory(paths=twopc_paths(layout), extra=twopc_config(layout, flags))
    else:
        p = proxy_factory(paths=layout.paths, extra=dual_config(layout, flags))
    config = open(p.config_path).read()
    stop = threading.Event()
    workers = [Worker(i + 1, p.port, stop) for i in range(WORKERS)]
    for w in workers:
        w.start()
    current = p
    rng = random.Random(7)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.2))
            current.stop(signal.SIGKILL)
            nxt = proxy_factory(config_text=config, wait=False)
            nxt.port = p.port
            wait_listening(p.port)
            current = nxt
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join(20)
    if mode == "2pc":
        # the last start's resolver finishes what the killed runs left prepared
        prefix = gid_prefix(current)
        wait_for(lambda: prepared(layout, prefix) == [], "no prepared transaction left",
                 timeout=20)
        assert re.search(r"dual writes commit two-phase", current.log())
    acked = sorted(i for w in workers for i in w.acked)
    # a sanitizer build runs several times slower: fewer, but still enough
    assert len(acked) > 20, "too few transactions to judge: %d" % len(acked)
    rows = {role: {r[0]: r for r in layout.rows(role)} for role in ("old", "new")}
    missing = {role: [i for i in acked if i not in rows[role]] for role in ("old", "new")}
    assert missing == {"old": [], "new": []}, \
        "acknowledged transactions lost: %r" % {k: v[:10] for k, v in missing.items()}
    # every row on both sides is the same row there, acknowledged or not
    for i in set(rows["old"]) & set(rows["new"]):
        assert rows["old"][i] == rows["new"][i], (rows["old"][i], rows["new"][i])
    in_doubt = set(rows["old"]) ^ set(rows["new"])
    entries = read_journal(journal_file(p))
    journaled = set()
    for e in entries:
        journaled |= set(int(x) for x in re.findall(r"\b(\d{7})\b", e["statement"]))
    print("%s: %d acknowledged transactions, %d kills, %d in doubt (on one side only), "
          "%d journal entries" % (mode, len(acked), KILLS, len(in_doubt), len(entries)))
    # what is on one side only was never acknowledged, and is journaled for repair
    assert not in_doubt & set(acked)
    assert in_doubt <= journaled, "in doubt, not journaled: %r" % sorted(in_doubt - journaled)
    if mode == "2pc":
        # both sides commit or neither: nothing is on one side only
        assert in_doubt == set(), sorted(in_doubt)
