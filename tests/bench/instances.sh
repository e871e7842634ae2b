# tests/bench/instances.sh — throwaway PostgreSQL servers and pgturnout
# instances for the benchmark scripts that compare proxy configurations
# (dual.sh, copy.sh). Sourced, never run; the caller sets `set -euo
# pipefail` and PGBIN.
#
#   inst_init NAME        a temp dir ($dir, mode 755) and an EXIT trap that
#                         stops every process started here, by PID, and
#                         every server inst_pg started, then removes $dir
#   inst_pg S             starts a PostgreSQL with scripts/pg.sh in
#                         $dir/pg-S (loopback only); its port in port_S
#   inst_start NAME BIN BODY
#                         pgturnout BIN with the [pgturnout] section
#                         (listen on a free port, scram-sha-256 against the
#                         userlist "app" "app", its own journal_dir) and
#                         BODY; port[NAME], pid[NAME]
#   inst_path NAME PORT SEARCH_PATH
#                         a [path NAME] section: database app on PORT as app
dir=""
pids=()
declare -A port pid

inst_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for d in "$dir"/pg-*; do [[ -d $d/data ]] && bash scripts/pg.sh stop "$d" || true; done
	rm -rf "$dir"
}

inst_init() {
	dir=$(mktemp -d -t "pgt-$1.XXXXXX")
	chmod 755 "$dir"
	trap inst_cleanup EXIT
	echo '"app" "app"' >"$dir/userlist.txt"
}

inst_pg() {
	mkdir -p "$dir/pg-$1"
	bash scripts/pg.sh start "$dir/pg-$1" >/dev/null
	# shellcheck disable=SC1090
	source "$dir/pg-$1/env.sh"
	declare -g "port_$1=$PGT_PGPORT"
}

inst_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

inst_start() {
	local p
	p=$(inst_free_port)
	{
		printf '[pgturnout]\nlisten = 127.0.0.1:%s\nauth_type = scram-sha-256\nauth_file = %s/userlist.txt\n' "$p" "$dir"
		printf 'log_level = info\njournal_dir = %s/journal-%s\nmax_client_conn = 1000\n\n' "$dir" "$1"
		printf '%s\n' "$3"
	} >"$dir/$1.ini"
	"$2" -c "$dir/$1.ini" >"$dir/$1.log" 2>&1 &
	pids+=($!)
	pid[$1]=$!
	port[$1]=$p
	for _ in $(seq 1 100); do
		"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$p" && return
		sleep 0.1
	done
	echo "pgturnout $1 did not start" >&2
	cat "$dir/$1.log" >&2
	exit 1
}

inst_path() {
	printf '[path %s]\nhost = 127.0.0.1\nport = %s\ndbname = app\nuser = app\nsslmode = disable\nsearch_path = %s\n\n' "$1" "$2" "$3"
}
