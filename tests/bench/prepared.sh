#!/usr/bin/env bash
# tests/bench/prepared.sh — one session preparing many named statements
# through pgturnout (two paths configured, so it tracks every statement for
# replays) against the same straight to PostgreSQL, and how long another
# session's SELECT 1 waits meanwhile.
#
#   PGT_PGHOST=127.0.0.1 PGT_PGPORT=5432 PGT_PGUSER=postgres PGT_PGPASSWORD=... tests/bench/prepared.sh
#
# BENCH_STATEMENTS (default 100000) Parse messages, pipelined 1,000 to a
# Sync, BENCH_ROUNDS times (default 3) each way, interleaved. Environment:
# PGT_BIN (default build/pgturnout). The last line is machine-readable:
# PREPARED_SUMMARY {json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PGT_PGHOST:?set PGT_PGHOST}" "${PGT_PGPORT:?set PGT_PGPORT}"
BIN=${PGT_BIN:-build/pgturnout}
dir=$(mktemp -d -t pgt-prepared.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
	printf '[pgturnout]\nlisten = 127.0.0.1:%s\nauth_type = trust\njournal_dir = %s/journal\n' "$port" "$dir"
	printf 'max_prepared_statements = 0\nlog_level = warning\n'
	for role in old new; do
		printf '[path %s]\nhost = %s\nport = %s\ndbname = postgres\nuser = %s\n' \
			"$role" "$PGT_PGHOST" "$PGT_PGPORT" "${PGT_PGUSER:-postgres}"
		printf 'password = %s\nsslmode = disable\n' "${PGT_PGPASSWORD:-}"
	done
	printf '[migration]\nold = old\nnew = new\n'
} >"$dir/bench.ini"
# a build from before max_prepared_statements existed runs without it
"$BIN" --check -c "$dir/bench.ini" >/dev/null 2>&1 || sed -i '/^max_prepared_statements/d' "$dir/bench.ini"
"$BIN" -c "$dir/bench.ini" >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
	sleep 0.1
done

PYTHONPATH=tests/integration python3 - "$port" <<'PY'
import json, os, struct, sys, threading, time
import pgwire

proxy_port = int(sys.argv[1])
host, pg_port = os.environ["PGT_PGHOST"], int(os.environ["PGT_PGPORT"])
user, password = os.environ.get("PGT_PGUSER", "postgres"), os.environ.get("PGT_PGPASSWORD")
n = int(os.environ.get("BENCH_STATEMENTS", "100000"))
rounds = int(os.environ.get("BENCH_ROUNDS", "3"))

def login(port):
    w = pgwire.Conn(host, port, timeout=600)
    w.startup(user, "postgres", password=password)
    return w

def drain(w):
    while True:
        kind, body = w.recv_message()
        if kind == b"E":
            raise pgwire.WireError(pgwire.parse_error_fields(body))
        if kind == b"Z":
            return

def prepare_all(port):
    w = login(port)
    t0 = time.monotonic()
    for first in range(0, n, 1000):
        w.send(b"".join(pgwire.message(b"P", b"s%d\0SELECT %d\0\0\0" % (i, i))
                        for i in range(first, min(n, first + 1000))) + pgwire.message(b"S"))
        drain(w)
    took = time.monotonic() - t0
    w.close()
    return took

def one_way(port):
    other = login(port)
    worst, done = [0.0], threading.Event()
    def probe():
        while not done.is_set():
            t = time.monotonic()
            other.query("SELECT 1")
            worst[0] = max(worst[0], time.monotonic() - t)
            time.sleep(0.01)
    th = threading.Thread(target=probe)
    th.start()
    took = prepare_all(port)
    done.set()
    th.join()
    other.close()
    return took, worst[0]

res = {"proxy": [], "direct": []}
for _ in range(rounds):
    for name, port in (("proxy", proxy_port), ("direct", pg_port)):
        res[name].append(one_way(port))
for name in res:
    t = sorted(r[0] for r in res[name])
    w = sorted(r[1] for r in res[name])
    print("%-6s %d statements: best %.2f s, median %.2f s; other session's SELECT 1 worst %.3f s"
          % (name, n, t[0], t[len(t) // 2], w[len(w) // 2]))
print("PREPARED_SUMMARY " + json.dumps({k: [[round(a, 3), round(b, 3)] for a, b in v] for k, v in res.items()}))
PY
