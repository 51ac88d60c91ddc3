# Sourced by scripts/test.sh: starts a Postgres cluster of its own for the
# tests (a free port, trust auth on 127.0.0.1, no fsync, in a temp dir) and
# exports TEST_POSTGRES_URL; `stop_throwaway_postgres` removes it again.
# Postgres refuses to run as root, so as root the cluster runs as `postgres`.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PG_DIR=$(mktemp -d /tmp/ragchat-postgres.XXXXXX)
as_pg_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[[ $(id -u) -eq 0 ]] && chown postgres "$PG_DIR"
as_pg_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w start \
  -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
stop_throwaway_postgres() {
  as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
