#!/usr/bin/env bash
# Private MySQL/MariaDB servers without Docker and without installing anything
# into the system.
#
#   scripts/servers.sh prepare SERVER         fetch + extract (once); prints what it has
#   scripts/servers.sh init SERVER DATADIR    bootstrap an empty data directory (root, no password)
#   scripts/servers.sh exec SERVER [ARGS...]  exec the server binary (through the root's own loader)
#   scripts/servers.sh serve SERVER DIR PORT [ARGS...]
#                                             exec the server on 127.0.0.1:PORT, data in DIR/data
#   scripts/servers.sh start SERVER [DIR]     init + start on a spare loopback port; prints
#                                             MYSQL_URL=... PID=... DIR=... (stop: kill PID)
#   scripts/servers.sh list                   the servers it knows
#
# SERVER is one of:
#   mariadb-10.11  the machine's own MariaDB binaries (/usr/sbin/mariadbd); nothing fetched
#   mysql-9.7      Oracle MySQL, Debian sid's mysql-server-core
#   mariadb-11.8   MariaDB, Debian trixie's mariadb-server-core
#
# Fetched servers come from the Debian mirror this machine already uses, through
# a private apt configuration (own sources list, lists, cache and an empty dpkg
# status) under $LOCKTABLE_SERVERS_DIR (default ~/.cache/locktable-servers). The
# packages (the server and its dependency closure, including the newer libc it
# needs) are unpacked with dpkg-deb into a private root and the server runs
# through that root's dynamic loader, so the system's libraries are never mixed
# in. The archive moves: whatever version it offers now is taken, and said.
# With LOCKTABLE_SERVER_DEBS=/folder the .deb files are taken from that folder
# instead (the folder, or its SERVER/ subfolder, holds the server and its
# closure; nothing is downloaded). When a server cannot be had, the script
# exits non-zero with one line "servers.sh: SERVER: why".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE="${LOCKTABLE_SERVERS_DIR:-${HOME:-/tmp}/.cache/locktable-servers}"
ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
TRIPLET="$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
case "$ARCH" in amd64) TRIPLET=x86_64-linux-gnu ;; arm64) TRIPLET=aarch64-linux-gnu ;; esac

die() { echo "servers.sh: $1" >&2; exit 1; }

known() {
  case "$1" in
    mariadb-10.11|mysql-9.7|mariadb-11.8) return 0 ;;
    *) return 1 ;;
  esac
}

# suite package binary-name
spec() {
  case "$1" in
    mysql-9.7) echo "sid mysql-server-core mysqld" ;;
    mariadb-11.8) echo "trixie mariadb-server-core mariadbd" ;;
  esac
}

# The Debian mirror the machine's own sources use (deb822 or one-line format).
mirror() {
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v -- '-security' | head -n1 | tr -d ' ' || true)"
  echo "${m:-http://deb.debian.org/debian/}"
}

keyring() {
  local k
  for k in /usr/share/keyrings/debian-archive-keyring.gpg /etc/apt/trusted.gpg.d/debian-archive-keyring.gpg; do
    [ -f "$k" ] && { echo "$k"; return; }
  done
  echo ""
}

# Private apt: apt_ SUITE CMD ARGS...
apt_() {
  local suite="$1"; shift
  local a="$BASE/apt/$suite"
  "$@" -o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts="$a/empty" \
    -o Dir::Etc::Preferences="$a/empty/none" -o Dir::Etc::PreferencesParts="$a/empty" \
    -o Dir::Etc::Parts="$a/empty" -o Dir::State="$a/state" -o Dir::State::status="$a/status" \
    -o Dir::Cache="$a/cache" -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" \
    -o APT::Default-Release="$suite" -o Acquire::Languages=none -o Debug::NoLocking=1 \
    -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root
}

apt_setup() {
  local suite="$1" a="$BASE/apt/$1" key
  mkdir -p "$a/empty" "$a/state/lists/partial" "$a/cache/archives/partial"
  : >"$a/status"
  key="$(keyring)"
  [ -n "$key" ] || die "$SERVER: no Debian archive keyring (/usr/share/keyrings/debian-archive-keyring.gpg) to check the $suite archive with"
  printf 'deb [signed-by=%s] %s %s main\n' "$key" "$(mirror)" "$suite" >"$a/sources.list"
}

# Packages a server needs, by name, without perl and friends (scripts only).
closure() {
  local suite="$1" pkg="$2"
  apt_ "$suite" apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances --no-pre-depends "$pkg" 2>/dev/null \
    | grep -E '^[a-z0-9]' | sort -u \
    | grep -vE '^(perl|perl-base|perl-modules-.*|libperl.*|debconf|debconf-2.0|cdebconf|dpkg|install-info|adduser|passwd|login|init-system-helpers|lsb-base|sysvinit-utils|mariadb-common|mysql-common|libdbi-perl|libdbd-.*|psmisc|procps|lsof|coreutils|tar|gzip|sed|grep|diffutils|findutils|base-files|debianutils|bash|dash|util-linux|mount|gawk|mawk|libc-bin|galera-.*|rsync|socat|iproute2|pv|libpam.*|libsystemd.*|libudev.*|libselinux1|libaudit.*|libsemanage.*|libcap-ng0|libdb5.3t64|libtext-.*|liblocale-gettext-perl|tzdata|netbase|ucf|libmariadb3|mariadb-client.*|mysql-client.*|mariadb-server-compat|galera.*)$' || true
}

root_of() { echo "$BASE/$1/root"; }

loader_in() {
  local r="$1" l
  for l in usr/lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2 usr/lib/ld-linux-aarch64.so.1 lib/ld-linux-aarch64.so.1; do
    [ -e "$r/$l" ] && { echo "$r/$l"; return; }
  done
  echo ""
}

prepare() {
  if [ "$SERVER" = mariadb-10.11 ]; then
    local d
    d="$(system_mariadbd)" || die "$SERVER: the machine's MariaDB is not installed (no /usr/sbin/mariadbd): apt-get install mariadb-server"
    echo "$SERVER: $(basename "$d") $("$d" --version 2>/dev/null | head -n1 | sed -E 's/.* Ver ([^ ]+).*/\1/') (the machine's own binaries)"
    return
  fi
  read -r suite pkg bin <<<"$(spec "$SERVER")"
  local dir="$BASE/$SERVER" root
  root="$(root_of "$SERVER")"
  if [ -f "$dir/ready" ]; then
    cat "$dir/ready"
    return
  fi
  # One fetch at a time per server (test processes may ask at once).
  mkdir -p "$BASE"
  exec 9>"$BASE/.$SERVER.lock"
  flock 9
  if [ -f "$dir/ready" ]; then
    cat "$dir/ready"
    return
  fi
  command -v dpkg-deb >/dev/null || die "$SERVER: dpkg-deb is not available to unpack packages"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
  local given="${LOCKTABLE_SERVER_DEBS:-}" source version
  if [ -n "$given" ]; then
    [ -d "$given/$SERVER" ] && given="$given/$SERVER"
    ls "$given"/*.deb >/dev/null 2>&1 || die "$SERVER: LOCKTABLE_SERVER_DEBS=$given holds no .deb files"
    cp "$given"/*.deb "$dir.tmp/debs/"
    source="packages from $given"
  else
    command -v apt-get >/dev/null || die "$SERVER: no apt-get to fetch $pkg from Debian $suite (or set LOCKTABLE_SERVER_DEBS to a folder of its .deb files)"
    apt_setup "$suite"
    local log="$dir.tmp/apt.log"
    if ! apt_ "$suite" apt-get update -qq >"$log" 2>&1; then
      die "$SERVER: the Debian $suite archive at $(mirror) did not answer or verify: $(grep -E '^(E|W):' "$log" | head -n1 | cut -c1-200)"
    fi
    version="$(apt_ "$suite" apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$version" ] && [ "$version" != "(none)" ] || die "$SERVER: Debian $suite offers no $pkg any more"
    local pkgs
    pkgs="$(closure "$suite" "$pkg")"
    [ -n "$pkgs" ] || die "$SERVER: could not resolve the dependencies of $pkg in Debian $suite"
    # shellcheck disable=SC2086
    if ! (cd "$dir.tmp/debs" && apt_ "$suite" apt-get download -qq $pkgs >"$log" 2>&1); then
      die "$SERVER: downloading $pkg $version and its dependencies from Debian $suite failed: $(grep -E '^(E|W):' "$log" | head -n1 | cut -c1-200)"
    fi
    source="$pkg $version from Debian $suite at $(mirror)"
  fi
  local deb
  for deb in "$dir.tmp/debs"/*.deb; do
    local out
    out="$(dpkg-deb -x "$deb" "$dir.tmp/root" 2>&1)" || die "$SERVER: could not unpack $(basename "$deb"): $(echo "$out" | head -n1 | sed 's/^dpkg-deb: //')"
  done
  [ -n "$(loader_in "$dir.tmp/root")" ] || die "$SERVER: the packages hold no dynamic loader (libc6 missing from them)"
  [ -x "$dir.tmp/root/usr/sbin/$bin" ] || die "$SERVER: the packages hold no usr/sbin/$bin"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  [ -n "${suite:-}" ] && rm -rf "$BASE/apt/$suite/state/lists" "$BASE/apt/$suite/cache" # only needed to fetch
  rm -rf "$dir/debs/partial"
  root="$(root_of "$SERVER")"
  local said
  said="$(run_in_root "$root" "$root/usr/sbin/$bin" --no-defaults --version 2>&1 | head -n1)" \
    || die "$SERVER: the unpacked $bin does not run: $said"
  said="$(echo "$said" | sed -E 's/.* Ver ([^ ]+).*/\1/')"
  echo "$SERVER: $bin $said ($source; $(du -sh "$dir/debs" | cut -f1) of packages)" >"$dir/ready"
  cat "$dir/ready"
}

system_mariadbd() {
  local p
  for p in /usr/sbin/mariadbd /usr/sbin/mysqld; do [ -x "$p" ] && { echo "$p"; return 0; }; done
  return 1
}

libpath() {
  local r="$1"
  echo "$r/usr/lib/$TRIPLET:$r/lib/$TRIPLET:$r/usr/lib:$r/lib"
}

# run_in_root ROOT BINARY ARGS...: exec BINARY through ROOT's loader and libraries only.
run_in_root() {
  local r="$1" b="$2"; shift 2
  exec "$(loader_in "$r")" --inhibit-cache --library-path "$(libpath "$r")" --argv0 "$b" "$b" "$@"
}

# exec SERVER ARGS...: the server binary with the root's paths filled in.
server_exec() {
  if [ "$SERVER" = mariadb-10.11 ]; then
    exec "$(system_mariadbd)" "$@"
  fi
  read -r suite pkg bin <<<"$(spec "$SERVER")"
  local r
  r="$(root_of "$SERVER")"
  [ -f "$BASE/$SERVER/ready" ] || die "$SERVER: not prepared: run scripts/servers.sh prepare $SERVER"
  local first=() rest=("$@")
  # --no-defaults must come first.
  if [ "${1:-}" = --no-defaults ]; then first=(--no-defaults); rest=("${@:2}"); fi
  local paths=(--basedir="$r/usr" --lc-messages-dir="$r/usr/share/$( [ "$bin" = mysqld ] && echo mysql || echo mariadb )"
    --character-sets-dir="$r/usr/share/$( [ "$bin" = mysqld ] && echo mysql || echo mariadb )/charsets")
  if [ "$bin" = mysqld ]; then
    paths+=(--plugin-dir="$r/usr/lib/mysql/plugin")
  else
    paths+=(--plugin-dir="$r/usr/lib/mysql/plugin")
  fi
  run_in_root "$r" "$r/usr/sbin/$bin" "${first[@]}" "${paths[@]}" "${rest[@]}"
}

# init SERVER DATADIR: a fresh data directory, copied from a pristine one
# bootstrapped once per server (MySQL's --initialize takes seconds).
server_init() {
  local datadir="$1" tpl="$BASE/$SERVER/pristine"
  [ "$SERVER" = mariadb-10.11 ] && tpl="$BASE/$SERVER-$(system_version)/pristine"
  if [ ! -d "$tpl" ]; then
    local tmp="$tpl.$$"
    rm -rf "$tmp"
    bootstrap "$tmp/data"
    rm -f "$tmp/data.init.sql"
    mv -T "$tmp" "$tpl" 2>/dev/null || rm -rf "$tmp"  # another process won: use its copy
  fi
  mkdir -p "$(dirname "$datadir")"
  cp -a "$tpl/data" "$datadir"
}

system_version() { "$(system_mariadbd)" --version 2>/dev/null | sed -E 's/.* Ver ([^ ]+).*/\1/'; }

# bootstrap DATADIR: an empty data directory with root@localhost/127.0.0.1/::1, no
# password. Its temporary files go next to it, never to the shared /tmp: a
# starting MariaDB deletes every '#sql*' file in its tmpdir, other servers' too.
bootstrap() {
  local datadir="$1" asroot=()
  [ "$(id -u)" = 0 ] && asroot=(--user=root)
  mkdir -p "$(dirname "$datadir")"
  case "$SERVER" in
    mariadb-10.11)
      local idb
      for idb in /usr/bin/mariadb-install-db /usr/bin/mysql_install_db ""; do [ -n "$idb" ] && [ -x "$idb" ] && break; done
      [ -n "$idb" ] || die "$SERVER: mariadb-install-db is not installed: apt-get install mariadb-server"
      "$idb" --no-defaults "${asroot[@]}" --datadir="$datadir" --tmpdir="$(dirname "$datadir")" --auth-root-authentication-method=normal \
        --skip-test-db --innodb-log-file-size=8M >"$datadir.init.log" 2>&1 \
        || die "$SERVER: mariadb-install-db failed: $(tail -n3 "$datadir.init.log" | tr '\n' ' ')"
      ;;
    mariadb-11.8)
      local r w
      r="$(root_of "$SERVER")"
      w="$(wrappers "$r")"
      "$r/usr/bin/mariadb-install-db" --no-defaults "${asroot[@]}" --basedir="$w" --datadir="$datadir" --tmpdir="$(dirname "$datadir")" \
        --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=8M \
        >"$datadir.init.log" 2>&1 \
        || die "$SERVER: mariadb-install-db failed: $(tail -n3 "$datadir.init.log" | tr '\n' ' ')"
      ;;
    mysql-9.7)
      local sql="$datadir.init.sql"
      cat >"$sql" <<'SQL'
CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER 'root'@'::1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
SQL
      ("$0" exec "$SERVER" --no-defaults "${asroot[@]}" --initialize-insecure --datadir="$datadir" --tmpdir="$(dirname "$datadir")" \
        --init-file="$sql" --innodb-redo-log-capacity=16M --log-error="$datadir.init.log" --log-error-verbosity=1 \
        >>"$datadir.init.log" 2>&1) \
        || die "$SERVER: mysqld --initialize-insecure failed: $(grep -i error "$datadir.init.log" | tail -n2 | tr '\n' ' ')"
      ;;
  esac
}

# mariadb-install-db runs $basedir/bin/* and $basedir/sbin/mariadbd directly: give
# it a basedir whose binaries are wrappers going through the loader.
wrappers() {
  local r="$1" w="$BASE/$SERVER/wrap" f
  if [ ! -f "$w/done" ]; then
    rm -rf "$w"
    mkdir -p "$w/bin" "$w/sbin"
    ln -s "$r/usr/share" "$w/share"
    ln -s "$r/usr/lib" "$w/lib"
    for f in "$r"/usr/bin/* "$r"/usr/sbin/*; do
      [ -f "$f" ] || continue
      local sub; sub="$(basename "$(dirname "$f")")"
      if head -c4 "$f" | grep -q $'\x7fELF'; then
        printf '#!/bin/sh\nexec "%s" --inhibit-cache --library-path "%s" --argv0 "%s" "%s" "$@"\n' \
          "$(loader_in "$r")" "$(libpath "$r")" "$f" "$f" >"$w/$sub/$(basename "$f")"
        chmod +x "$w/$sub/$(basename "$f")"
      else
        ln -s "$f" "$w/$sub/$(basename "$f")"
      fi
    done
    # mariadb-install-db insists on my_print_defaults (in mariadb-client-core) to read
    # option files; with --no-defaults there are none to read, so a stub that prints none.
    [ -e "$w/bin/my_print_defaults" ] || printf '#!/bin/sh\nexit 0\n' >"$w/bin/my_print_defaults"
    chmod +x "$w/bin/my_print_defaults"
    touch "$w/done"
  fi
  echo "$w"
}

spare_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# serve SERVER DIR PORT [ARGS...]: exec the server on 127.0.0.1:PORT with its data
# in DIR/data (bootstrapped by init), socket, pid file, error log and temporary
# files in DIR (not /tmp, which others may clean).
server_serve() {
  local dir="$1" port="$2"; shift 2
  local asroot=() extra=()
  [ "$(id -u)" = 0 ] && asroot=(--user=root)
  case "$SERVER" in
    mysql-9.7) extra=(--mysqlx=OFF --log-error-verbosity=1 --innodb-redo-log-capacity=16M --secure-file-priv="$dir") ;;
    *) extra=(--innodb-log-file-size=8M) ;;
  esac
  server_exec --no-defaults "${asroot[@]}" --datadir="$dir/data" --socket="$dir/sock" \
    --pid-file="$dir/pid" --log-error="$dir/error.log" --tmpdir="$dir" --port="$port" --bind-address=127.0.0.1 \
    --skip-name-resolve --skip-log-bin --innodb-buffer-pool-size=32M \
    --innodb-flush-log-at-trx-commit=1 --max-connections=500 "${extra[@]}" "$@"
}

spare_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

server_start() {
  local dir="${1:-}"
  [ -n "$dir" ] || dir="$(mktemp -d "${TMPDIR:-/tmp}/locktable-$SERVER-XXXXXX")"
  mkdir -p "$dir"
  [ -d "$dir/data" ] || server_init "$dir/data"
  local port
  port="$(spare_port)"
  nohup "$0" serve "$SERVER" "$dir" "$port" >/dev/null 2>&1 &
  local pid=$! i
  for i in $(seq 1 600); do
    if (cd "$HERE/.." && node -e "require('mysql2/promise').createConnection({uri:'mysql://root@127.0.0.1:$port/mysql',connectTimeout:1000}).then(c=>c.query('CREATE DATABASE IF NOT EXISTS test').then(()=>c.end()),()=>process.exit(1))" 2>/dev/null); then
      echo "MYSQL_URL=mysql://root@127.0.0.1:$port/test PID=$pid DIR=$dir"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$SERVER: the server exited while starting: $(tail -n3 "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  die "$SERVER: the server did not answer within 60 s: $(tail -n3 "$dir/error.log" 2>/dev/null | tr '\n' ' ')"
}

cmd="${1:-}"
[ -n "$cmd" ] || { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
if [ "$cmd" = list ]; then
  echo "mariadb-10.11 mysql-9.7 mariadb-11.8"
  exit 0
fi
SERVER="${1:-}"
[ -n "$SERVER" ] || die "name a server: $(echo mariadb-10.11 mysql-9.7 mariadb-11.8)"
known "$SERVER" || die "$SERVER: unknown server (known: mariadb-10.11 mysql-9.7 mariadb-11.8)"
shift
case "$cmd" in
  prepare) prepare ;;
  init) [ -n "${1:-}" ] || die "$SERVER: init needs a data directory"; prepare >/dev/null; server_init "$1" ;;
  exec) server_exec "$@" ;;
  serve) [ $# -ge 2 ] || die "$SERVER: serve needs DIR PORT"; server_serve "$@" ;;
  start) prepare >&2; server_start "${1:-}" ;;
  *) die "unknown command $cmd (prepare, init, exec, serve, start, list)" ;;
esac
