#!/usr/bin/env bash
# scripts/pg.sh — one throwaway PostgreSQL 15 for tests and the demo.
#
#   pg.sh start DIR [INIT_SQL]   initdb in DIR/data, start on a free loopback
#                                port, create the test roles and database
#                                `app`, run INIT_SQL (as user app, db app);
#                                writes DIR/env.sh with the connection facts
#   pg.sh stop DIR               stop the server whose data dir is DIR/data
#
# DIR must exist (mktemp -d). When run as root every PostgreSQL program runs
# as the `postgres` OS user. The server listens on 127.0.0.1 only, with its
# unix socket in DIR, ssl=on (certificates of a CA made here, in DIR/ca),
# and this pg_hba:
#   local  postgres           trust
#   host   md5user            md5
#   host   scramuser          scram-sha-256
#   host   trustuser          trust
#   host   pwuser             password (cleartext)
#   host   everyone else      scram-sha-256
# Roles and passwords: md5user/md5pass (stored as md5), scramuser/scrampass,
# trustuser/trustpass, pwuser/pwpass, app/app, admin/admin.
set -euo pipefail

PGBIN=${PGT_PGBIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PGT_PYTHON:-/usr/bin/python3}

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

make_certs() {
	local ca=$1
	mkdir -p "$ca"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=pgturnout test CA" \
		-keyout "$ca/ca.key" -out "$ca/ca.crt" 2>/dev/null
	local name
	for name in server proxy; do
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
			-keyout "$ca/$name.key" -out "$ca/$name.csr" 2>/dev/null
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$ca/$name.ext"
		openssl x509 -req -in "$ca/$name.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
			-CAcreateserial -days 30 -extfile "$ca/$name.ext" -out "$ca/$name.crt" 2>/dev/null
		chmod 600 "$ca/$name.key"
	done
}

start() {
	local dir=$1 init_sql=${2:-}
	[[ -d $dir ]] || { echo "pg.sh: $dir does not exist" >&2; exit 1; }
	dir=$(cd "$dir" && pwd)
	local data=$dir/data port
	port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

	make_certs "$dir/ca"
	chmod 755 "$dir"
	[[ $(id -u) -eq 0 ]] && chown postgres "$dir"
	as_pg "$PGBIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log" >&2; exit 1; }

	install -m 600 "$dir/ca/server.key" "$data/server.key"
	install -m 644 "$dir/ca/server.crt" "$data/server.crt"
	install -m 644 "$dir/ca/ca.crt" "$data/root.crt"
	[[ $(id -u) -eq 0 ]] && chown postgres "$data/server.key" "$data/server.crt" "$data/root.crt"

	cat >>"$data/postgresql.conf" <<EOF

# pgturnout test server
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 1600
max_prepared_transactions = 200
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'root.crt'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
logging_collector = off
EOF
	cat >"$data/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER       ADDRESS        METHOD
local   all       postgres                  trust
host    all       md5user    127.0.0.1/32   md5
host    all       scramuser  127.0.0.1/32   scram-sha-256
host    all       trustuser  127.0.0.1/32   trust
host    all       pwuser     127.0.0.1/32   password
hostssl all       certuser   127.0.0.1/32   cert
host    all       all        127.0.0.1/32   scram-sha-256
EOF
	as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
		|| { cat "$dir/postgres.log" >&2; exit 1; }

	local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres)
	as_pg "${psql[@]}" -d postgres <<'EOF'
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
SET password_encryption = 'scram-sha-256';
CREATE ROLE scramuser LOGIN PASSWORD 'scrampass';
CREATE ROLE trustuser LOGIN PASSWORD 'trustpass';
CREATE ROLE pwuser LOGIN PASSWORD 'pwpass';
CREATE ROLE certuser LOGIN;
CREATE ROLE app LOGIN PASSWORD 'app';
CREATE ROLE admin LOGIN PASSWORD 'admin';
GRANT pg_signal_backend TO app;
CREATE DATABASE app OWNER app;
EOF
	as_pg "${psql[@]}" -d app <<'EOF'
CREATE SCHEMA IF NOT EXISTS app_v2 AUTHORIZATION app;
ALTER SCHEMA public OWNER TO app;
GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;
GRANT CREATE, USAGE ON SCHEMA app_v2 TO PUBLIC;
EOF
	if [[ -n $init_sql ]]; then
		as_pg "${psql[@]}" -d app -c "SET client_min_messages = warning" -c "SET ROLE app" -f - <"$init_sql"
	fi

	local pid
	pid=$(head -1 "$data/postmaster.pid")
	cat >"$dir/env.sh" <<EOF
export PGT_PGHOST=127.0.0.1
export PGT_PGPORT=$port
export PGT_PGSOCK=$dir
export PGT_PGDATA=$data
export PGT_PGBIN=$PGBIN
export PGT_CA_DIR=$dir/ca
export PGT_PG_PID=$pid
EOF
}

stop() {
	local dir=$1 data=$1/data pid
	[[ -f $data/postmaster.pid ]] || return 0
	pid=$(head -1 "$data/postmaster.pid")
	as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 && return 0
	kill -QUIT "$pid" 2>/dev/null || true
}

case ${1:-} in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) echo "usage: pg.sh start DIR [INIT_SQL] | pg.sh stop DIR" >&2; exit 1 ;;
esac
