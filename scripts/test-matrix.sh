#!/usr/bin/env bash
# npm run test:matrix [-- SERVER...]
# Runs the whole test suite (`npm test`: unit and integration tests, the fault
# tests on a private server of the same kind, the short chaos runs) once per
# server:
#   mariadb-10.11  the machine's own MariaDB binaries
#   mysql-9.7      Oracle MySQL 9.7 (Debian sid's mysql-server-core)
#   mariadb-11.8   MariaDB 11.8 (Debian trixie's mariadb-server-core)
# each started by scripts/servers.sh in a fresh data directory on a spare
# loopback port with the same settings, and stopped afterwards (MYSQL_URL is
# not used: the matrix brings its own servers).
# and prints one line per server (version, passing/failing/pending, minutes).
# Exits non-zero when any server's run failed or a server could not be had.
set -uo pipefail
cd "$(dirname "$0")/.."

servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(mariadb-10.11 mysql-9.7 mariadb-11.8)
logs="${LOCKTABLE_MATRIX_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/locktable-matrix-XXXXXX")}"
mkdir -p "$logs"
summary=()
failed=0
matrix_started=$(date +%s)
started_pids=()
cleanup() {
  local p
  for p in "${started_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

for server in "${servers[@]}"; do
  echo "== test:matrix: $server"
  started=$(date +%s)
  dir="$(mktemp -d "${TMPDIR:-/tmp}/locktable-matrix-$server-XXXXXX")"
  if ! line="$(scripts/servers.sh start "$server" "$dir")"; then
    summary+=("$server: could not be had (see above)")
    failed=1
    rm -rf "$dir"
    continue
  fi
  url="$(sed -E 's/.*MYSQL_URL=([^ ]+).*/\1/' <<<"$line")"
  pid="$(sed -E 's/.*PID=([0-9]+).*/\1/' <<<"$line")"
  started_pids+=("$pid")
  log="$logs/$server.log"
  LOCKTABLE_SERVER="$server" MYSQL_URL="$url" npm test 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  [ "$code" = 0 ] || failed=1
  version="$(grep -m1 -oE 'locktable tests: server [^;]+' "$log" | sed 's/locktable tests: server //')"
  counts="$(grep -E '^ +[0-9]+ (passing|failing|pending)' "$log" | sed -E 's/ \([^)]*\)//; s/^ +//' | paste -sd, - | sed 's/,/, /g')"
  chaos="$(grep -m1 -E 'overlaps: [0-9]+; token regressions' "$log" | sed -E 's/^ +//; s/; unclosed.*//')"
  kinds="$(grep -m1 -E 'overlaps with an exclusive section: [0-9]+' "$log" | sed -E 's/^ +//; s/; unclosed.*//')"
  bound="$(grep -m1 -E '^ +waits: [0-9]+, median' "$log" | grep -oE 'over the bound: [0-9]+; overtaken in line: [0-9]+')"
  summary+=("$server ($version): ${counts:-no result} [exit $code] in $(( ($(date +%s) - started) / 60 ))m$(( ($(date +%s) - started) % 60 ))s; chaos ${chaos:-not run}; kinds ${kinds:-not run}${bound:+; $bound}")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -rf "$dir"
done

echo
echo "== test:matrix: $(( ($(date +%s) - matrix_started) / 60 ))m$(( ($(date +%s) - matrix_started) % 60 ))s in all; logs in $logs"
for line in "${summary[@]}"; do echo "  $line"; done
exit $failed
