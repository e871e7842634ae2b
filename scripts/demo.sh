#!/usr/bin/env bash
# scripts/demo.sh — run pgturnout in front of a throwaway local PostgreSQL.
#
# Installs missing Debian packages, builds build/pgturnout, starts a
# PostgreSQL 15 in a temp dir on a free loopback port with the demo database
# (docker/init.sql: public.users for v1, app_v2.users_v2 for v2), writes a
# config derived from docker/pgturnout.ini, starts pgturnout on 127.0.0.1:6432
# (or the next free port) and stays up until Ctrl-C; then stops both and
# removes the temp dir.
#
# Environment: PGT_SKIP_DEPS=1 skips the package check; PGT_DEMO_PORT and
# PGT_DEMO_HTTP_PORT pick the first ports to try.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

trap pgt_cleanup EXIT
trap 'echo; pgt_log "stopping"; trap "" INT TERM; exit 0' INT TERM

[[ ${PGT_SKIP_DEPS:-0} == 1 ]] || pgt_install_deps

pgt_log "building build/pgturnout"
cmake -S "$PGT_ROOT" -B "$PGT_ROOT/build" -DPGT_WERROR=ON >/dev/null
cmake --build "$PGT_ROOT/build" -j"$PGT_JOBS" --target pgturnout

demo_dir=$(mktemp -d -t pgturnout-demo.XXXXXX)
PGT_TMP_DIRS+=("$demo_dir")
pgt_log "starting PostgreSQL 15 in $demo_dir"
pgt_pg_start "$demo_dir" "$PGT_ROOT/docker/init.sql"

port=$(pgt_free_port_from "${PGT_DEMO_PORT:-6432}")
http_port=$(pgt_free_port_from "${PGT_DEMO_HTTP_PORT:-6480}")
mkdir -p "$demo_dir/journal"
cp "$PGT_ROOT/docker/userlist.txt" "$demo_dir/userlist.txt"
# the compose demo's config, pointed at the local server
sed -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
    -e "s|^http_listen = .*|http_listen = 127.0.0.1:$http_port|" \
    -e "s|^auth_file = .*|auth_file = $demo_dir/userlist.txt|" \
    -e "s|^journal_dir = .*|journal_dir = $demo_dir/journal|" \
    -e "s|^host = postgres|host = 127.0.0.1|" \
    -e "s|^port = 5432|port = $PGT_PGPORT|" \
    "$PGT_ROOT/docker/pgturnout.ini" >"$demo_dir/pgturnout.ini"

"$PGT_ROOT/build/pgturnout" -c "$demo_dir/pgturnout.ini" &
pgt_track_pid $!
proxy_pid=$!

for _ in $(seq 100); do
	kill -0 "$proxy_pid" 2>/dev/null || pgt_die "pgturnout exited; config: $demo_dir/pgturnout.ini"
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

cat <<EOF

pgturnout is running (pid $proxy_pid), PostgreSQL 15 on 127.0.0.1:$PGT_PGPORT.
  config:         $demo_dir/pgturnout.ini
  connect (v1):   psql "host=127.0.0.1 port=$port dbname=app user=app"          password: app
  as v2:          psql "host=127.0.0.1 port=$port dbname=app user=app options='-c pgturnout.version=v2'"
  admin console:  psql -h 127.0.0.1 -p $port -U admin pgturnout                  password: admin
  HTTP:           curl http://127.0.0.1:$http_port/healthz
Try:  SELECT id, name FROM users;   (v1 SQL; runs on app_v2.users_v2 when routed to new)
      SELECT id, nickname FROM users;              (v1 on new: nickname from full_name)
      SELECT id, email_domain FROM users_v2;       (v2 on old: email_domain from email)
      SET force_path = new   /   SHOW MAPPING      (in the admin console)
      SET dual_write = on (console), then as v1:
        INSERT INTO users (name, email) VALUES ('Barbara Liskov', 'barbara@mit.example.edu');
        (app_v2.users_v2 gets email_domain 'mit.example.edu'), and as v2:
        INSERT INTO users_v2 (full_name, email) VALUES ('Donald Knuth', 'don@example.com');
        (public.users gets nickname 'Donald')
Press Ctrl-C to stop.

EOF
wait "$proxy_pid" || pgt_log "pgturnout exited with status $?"
