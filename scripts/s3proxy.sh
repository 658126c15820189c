#!/usr/bin/env bash
# Local S3-compatible object storage (s3proxy on a directory) on 127.0.0.1, for the lake's S3 store
# in development and tests. The server jar is resolved from Maven Central through
# scripts/s3proxy/pom.xml. Needs: java >= 17, mvn (only for the first fetch), curl.
#
# Usage: scripts/s3proxy.sh <command> [args]
#   fetch              copy the s3proxy jar into $STATE/libs-<version> (skipped when present)
#   start              fetch if needed, write config, start in background
#                      (exit 0 at once if something already answers on the port)
#   wait               block until the server answers HTTP (S3PROXY_WAIT_SECONDS, default 30)
#   bucket [name ...]  create the buckets if missing (default: $S3PROXY_BUCKET)
#   stop               SIGTERM, up to S3PROXY_STOP_SECONDS (15) s, then SIGKILL; 0 if not running
#   status             print running / not running (exit 0 / 3)
#   reset              stop, delete the stored objects, config and log (the jar is kept)
#
# Typical: scripts/s3proxy.sh start && scripts/s3proxy.sh wait && scripts/s3proxy.sh bucket
# Clients then use: AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000 AWS_REGION=us-east-1
#   AWS_ACCESS_KEY_ID=streamgate AWS_SECRET_ACCESS_KEY=streamgate-secret-key, path-style URLs.
#
# Why s3proxy 4.0.0 on filesystem-nio2: the lake's commit protocol needs two concurrent
# `PUT If-None-Match: *` of one key to be decided atomically. Measured with scripts/s3_race.ts
# (200 rounds x 8 concurrent writers): s3proxy 3.0.0 checks the condition with a HEAD, then
# writes, on every local backend; rounds with exactly one winner: filesystem 17, filesystem-nio2
# 27, transient 169, transient-nio2 147 (the others had 2-8 winners). 4.0.0's nio2 stores
# publish by hard link, which fails when the name is taken: 1000/1000 rounds had one winner.
# `If-Match: <etag>` on PUT is still a read followed by a write in 4.0.0 (9/200 rounds had one
# winner): never build on it. scripts/s3_race.ts re-checks a server (e.g. after an upgrade).
#
# Environment (all optional):
#   S3PROXY_VERSION       default: <s3proxy.version> in scripts/s3proxy/pom.xml
#   S3PROXY_STATE_DIR     default: <repo>/.s3proxy (libs-<version>/, data/, s3proxy.log, .pid)
#   S3PROXY_PORT          default 9000
#   S3PROXY_PROVIDER      jclouds provider, default filesystem-nio2 (objects under $STATE/data)
#   S3PROXY_IDENTITY      access key id, default streamgate
#   S3PROXY_CREDENTIAL    secret access key, default streamgate-secret-key
#   S3PROXY_REGION        region clients sign for, default us-east-1
#   S3PROXY_BUCKET        default bucket of `bucket`, default streamgate
#   S3PROXY_WAIT_SECONDS  default 30
#   S3PROXY_STOP_SECONDS  default 15
#   S3PROXY_HEAP_OPTS     default "-Xms64m -Xmx256m"
#   S3PROXY_JVM_OPTS      extra JVM flags, last wins
#   S3PROXY_LOG_LEVEL     s3proxy's log level, default info (trace logs every request)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
POM="$SCRIPT_DIR/s3proxy/pom.xml"

HOST=127.0.0.1
PORT="${S3PROXY_PORT:-9000}"
ENDPOINT="http://$HOST:$PORT"
PROVIDER="${S3PROXY_PROVIDER:-filesystem-nio2}"
IDENTITY="${S3PROXY_IDENTITY:-streamgate}"
CREDENTIAL="${S3PROXY_CREDENTIAL:-streamgate-secret-key}"
REGION="${S3PROXY_REGION:-us-east-1}"

VERSION="${S3PROXY_VERSION:-$(sed -n 's:.*<s3proxy\.version>\(.*\)</s3proxy\.version>.*:\1:p' "$POM" | head -n1)}"
[[ -n "$VERSION" ]] || { echo "s3proxy.sh: cannot read <s3proxy.version> from $POM" >&2; exit 1; }

STATE_DIR="${S3PROXY_STATE_DIR:-$REPO_ROOT/.s3proxy}"
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
LIBS_DIR="$STATE_DIR/libs-$VERSION"
JAR="$LIBS_DIR/s3proxy-$VERSION-jar-with-dependencies.jar"
DATA_DIR="$STATE_DIR/data"
LOG_FILE="$STATE_DIR/s3proxy.log"
PID_FILE="$STATE_DIR/s3proxy.pid"
CONF_FILE="$STATE_DIR/s3proxy.properties"
JAVA="${JAVA:-java}"

# A small server that must start fast on a shared 2-core box: SerialGC (no GC threads competing
# with the tests) and C1 only (faster start; the server is I/O-bound).
# shellcheck disable=SC2206 # the *_OPTS variables are word-split on purpose
JVM_OPTS=(${S3PROXY_HEAP_OPTS:--Xms64m -Xmx256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Dfile.encoding=UTF-8)

# SHA-256 of an empty body: S3 wants x-amz-content-sha256 on every request (curl does not add it).
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

log() { printf 's3proxy.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo "${t:0:-3}"; }

port_open() { timeout 2 bash -c "</dev/tcp/$HOST/$1" 2>/dev/null; }

# HTTP status of an unsigned GET /: any answer (403 with auth on) means the server is serving.
http_answers() {
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null || true)"
  [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

# pid of the server this state dir started, if it is alive and still that s3proxy JVM.
server_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--properties $CONF_FILE" || return 1
  echo "$pid"
}

# Keep the state dir (jar, objects, logs) out of git even where .gitignore does not name it.
ignore_state_dir() {
  [[ -f "$STATE_DIR/.gitignore" ]] || echo '*' >"$STATE_DIR/.gitignore"
}

libs_stamp() { echo "$VERSION $(cksum <"$POM" | cut -d' ' -f1)"; }
libs_ready() { [[ -f "$LIBS_DIR/.complete" && "$(cat "$LIBS_DIR/.complete")" == "$(libs_stamp)" ]]; }

cmd_fetch() {
  libs_ready && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch s3proxy $VERSION)"
  mkdir -p "$STATE_DIR"
  ignore_state_dir
  local tmp="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp"
  log "fetching s3proxy $VERSION from Maven Central into $LIBS_DIR ..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM" -Ds3proxy.version="$VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp.mvn.log" | grep -v '^\[ERROR\] *$' >&2 # Debian's mvn colours even with -B
    rm -rf "$tmp" "$tmp.mvn.log"
    die "maven could not resolve s3proxy $VERSION (see above)"
  fi
  rm -f "$tmp.mvn.log"
  [[ -f "$tmp/$(basename "$JAR")" ]] || { rm -rf "$tmp"; die "$(basename "$JAR") missing after fetch"; }
  libs_stamp >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  log "fetched $(basename "$JAR")"
}

write_config() {
  mkdir -p "$STATE_DIR" "$DATA_DIR"
  ignore_state_dir
  cat >"$CONF_FILE" <<EOF
# Generated by scripts/s3proxy.sh on every start -- edit the script, not this file.
s3proxy.endpoint=$ENDPOINT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$IDENTITY
s3proxy.credential=$CREDENTIAL
jclouds.provider=$PROVIDER
jclouds.filesystem.basedir=$DATA_DIR
EOF
  chmod 600 "$CONF_FILE" # it holds the credential
}

cmd_start() {
  local pid
  if pid="$(server_pid)"; then
    log "already running (pid $pid, $ENDPOINT)"
    return 0
  fi
  if port_open "$PORT"; then
    log "something already answers on $ENDPOINT (not started from $STATE_DIR); nothing to do"
    return 0
  fi
  command -v "$JAVA" >/dev/null || die "java not found"
  cmd_fetch
  write_config
  if [[ -s "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi # keep one previous log
  # setsid: its own session, so Ctrl-C in (or the end of) the calling shell leaves it running.
  # shellcheck disable=SC2086
  LOG_LEVEL="${S3PROXY_LOG_LEVEL:-info}" nohup setsid "$JAVA" "${JVM_OPTS[@]}" ${S3PROXY_JVM_OPTS:-} \
    -jar "$JAR" --properties "$CONF_FILE" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started s3proxy $VERSION (pid $pid, $PROVIDER) on $ENDPOINT; log: $LOG_FILE"
}

cmd_wait() {
  local limit="${S3PROXY_WAIT_SECONDS:-30}" t0 deadline
  t0="$(now_ms)"
  deadline=$((t0 + limit * 1000))
  while (($(now_ms) < deadline)); do
    if http_answers; then
      local ms=$(($(now_ms) - t0))
      log "ready on $ENDPOINT after $((ms / 1000)).$((ms % 1000 / 100))s"
      return 0
    fi
    if [[ -f "$PID_FILE" ]] && ! server_pid >/dev/null && ! port_open "$PORT"; then
      log "server process $(cat "$PID_FILE") has exited; last lines of $LOG_FILE:"
      tail -n 30 "$LOG_FILE" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "no answer on $ENDPOINT after ${limit}s; last lines of $LOG_FILE:"
  tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
  exit 1
}

# s3_request METHOD PATH: a SigV4-signed request with an empty body; prints the HTTP status.
s3_request() {
  curl -s -o /dev/null -m 10 -w '%{http_code}' -X "$1" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$IDENTITY:$CREDENTIAL" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/$2"
}

cmd_bucket() {
  local name code buckets=("$@")
  ((${#buckets[@]})) || buckets=("${S3PROXY_BUCKET:-streamgate}")
  http_answers || die "no server on $ENDPOINT (run: $0 start && $0 wait)"
  for name in "${buckets[@]}"; do
    # S3's bucket naming rules, so a name that works here works on S3 too.
    [[ "$name" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "bad bucket name: '$name'"
    code="$(s3_request HEAD "$name")"
    case "$code" in
      200) log "bucket $name exists" ;;
      404)
        code="$(s3_request PUT "$name")"
        [[ "$code" == 200 ]] || die "cannot create bucket $name on $ENDPOINT (HTTP $code)"
        log "bucket $name created"
        ;;
      403) die "bucket $name on $ENDPOINT: access denied (HTTP 403); check S3PROXY_IDENTITY/CREDENTIAL" ;;
      *) die "bucket $name on $ENDPOINT: unexpected HTTP $code" ;;
    esac
  done
}

cmd_stop() {
  local pid limit="${S3PROXY_STOP_SECONDS:-15}" i
  if ! pid="$(server_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid ..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after ${limit}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(server_pid)"; then
    echo "running (pid $pid, s3proxy $VERSION, $PROVIDER, $ENDPOINT, state $STATE_DIR)"
    return 0
  fi
  if port_open "$PORT"; then
    echo "not running from $STATE_DIR (but something else listens on $ENDPOINT)"
  else
    echo "not running"
  fi
  return 3
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR"
  rm -f "$CONF_FILE" "$LOG_FILE" "$LOG_FILE.1" "$PID_FILE"
  log "reset $STATE_DIR (kept libs-*)"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  bucket) shift; cmd_bucket "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
