#!/usr/bin/env bash
# Local Confluent-compatible Schema Registry: Apicurio Registry, in-memory storage, on 127.0.0.1,
# built from Maven Central through scripts/registry/pom.xml (see scripts/registry/README.md for
# the measured times and every difference from Confluent's registry found so far).
# Needs: java >= 17, mvn (for the build; the first one downloads ~210 MB into ~/.m2). No Docker.
#
# Usage: scripts/registry.sh <command>
#   build    mvn package into $STATE/build-<version> (skipped when its quarkus-run.jar exists and
#            pom.xml and application.properties are unchanged since that build)
#   start    build if needed, start in background (exit 0 at once if a registry already answers)
#   wait     block until GET /apis/ccompat/v7/subjects answers (REGISTRY_WAIT_SECONDS, default 90)
#   url      print the base URL of the Confluent API, http://127.0.0.1:<port>/apis/ccompat/v7
#   stop     SIGTERM, up to REGISTRY_STOP_SECONDS (30) s, then SIGKILL; 0 if not running
#   status   print running / not running (exit 0 / 3)
#   reset    stop, delete log, pid file and class archive (the build is kept; schemas live in
#            memory only, so a stop already forgets them)
#
# Typical: scripts/registry.sh start && scripts/registry.sh wait
#          SCHEMA_REGISTRY_URL="$(scripts/registry.sh url)" deno task dev
#
# Environment (all optional):
#   REGISTRY_STATE_DIR             default: <repo>/.registry (build-<version>/, registry.log, .pid)
#   REGISTRY_PORT                  default 18081 (Confluent's own default, 8081, is left free)
#   REGISTRY_WAIT_SECONDS          default 90
#   REGISTRY_STOP_SECONDS          default 30
#   REGISTRY_GLOBAL_COMPATIBILITY  default BACKWARD, as Confluent's registry (Apicurio's own default
#                                  is no rule at all); NONE turns the global rule off
#   REGISTRY_HEAP_OPTS             default "-Xmx256m"
#   REGISTRY_GC_OPTS               default "-XX:+UseSerialGC"
#   REGISTRY_JVM_OPTS              extra JVM flags, last wins; e.g. "-XX:TieredStopAtLevel=4"
#                                  restores the full JIT (C2) for long or heavy runs
#   REGISTRY_CDS                   default 1: class-data-sharing archive for faster JVM starts
#   REGISTRY_LOG_LEVEL             default INFO
#   REGISTRY_MVN_OPTS              extra mvn arguments for build, e.g. "-o" or
#                                  "-Dmaven.repo.local=/path" (CI caches)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
POM="$SCRIPT_DIR/registry/pom.xml"
APP_PROPS="$SCRIPT_DIR/registry/src/main/resources/application.properties"

HOST=127.0.0.1
PORT="${REGISTRY_PORT:-18081}"
BASE_URL="http://$HOST:$PORT"
CCOMPAT_URL="$BASE_URL/apis/ccompat/v7"
# The readiness probe is the API itself: Quarkus opens the port before the REST layer is up.
PROBE_URL="$CCOMPAT_URL/subjects"

VERSION="$(sed -n 's:.*<apicurio\.version>\(.*\)</apicurio\.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$VERSION" ]] || { echo "registry.sh: cannot read <apicurio.version> from $POM" >&2; exit 1; }

STATE_DIR="${REGISTRY_STATE_DIR:-$REPO_ROOT/.registry}"
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
BUILD_DIR="$STATE_DIR/build-$VERSION"
APP_DIR="$BUILD_DIR/quarkus-app"
RUN_JAR="$APP_DIR/quarkus-run.jar"
STAMP="$BUILD_DIR/.complete"
LOG_FILE="$STATE_DIR/registry.log"
BUILD_LOG="$STATE_DIR/build.log"
PID_FILE="$STATE_DIR/registry.pid"
JAVA="${JAVA:-java}"
CDS="${REGISTRY_CDS:-1}"
COMPATIBILITY="${REGISTRY_GLOBAL_COMPATIBILITY:-BACKWARD}"

# JVM for start-up on a small (2-core) box; measured there (CPU seconds until the API answers,
# the figure that load on a shared box does not distort; see scripts/registry/README.md):
#  - defaults (G1, C2, heap 1/4 of RAM): 6-9 s CPU, ~215 MB RSS
#  - SerialGC + -Xmx256m + TieredStopAtLevel=1 (C1 only): 4-6 s CPU, ~192 MB
#  - plus AppCDS (the first run records its classes at exit, on `stop`; later starts map them):
#    ~3 s CPU, ~178 MB. The archive lives in the build dir (a rebuild drops it), keyed by the JDK.
# C1 only is plenty for a test registry: it serves a few hundred small requests per run.
# shellcheck disable=SC2206 # the *_OPTS variables are word-split on purpose
JVM_OPTS=(${REGISTRY_HEAP_OPTS:--Xmx256m} ${REGISTRY_GC_OPTS:--XX:+UseSerialGC}
  -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
  -Xlog:cds=off -Xlog:cds+dynamic=off -Djava.awt.headless=true -Dfile.encoding=UTF-8)
# Run-time settings of the registry (Quarkus reads -D system properties above all other sources).
APP_OPTS=(
  -Dquarkus.http.host="$HOST"
  -Dquarkus.http.port="$PORT"
  # In-memory H2 (Apicurio's default, named here so a REGISTRY_DATASOURCE_URL in the
  # environment cannot point the test registry at a real database).
  "-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:registry_db"
  -Dquarkus.log.level="${REGISTRY_LOG_LEVEL:-INFO}"
  # Two warnings per start about Sentry, which is disabled anyway.
  '-Dquarkus.log.category."io.sentry".level=ERROR'
)
if [[ "${COMPATIBILITY^^}" != NONE ]]; then
  # A default global rule: every subject without its own compatibility setting gets this one.
  APP_OPTS+=(-Dregistry.rules.global.compatibility="${COMPATIBILITY^^}")
fi

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo "${t:0:-3}"; }

port_open() { timeout 2 bash -c "</dev/tcp/$HOST/$PORT" 2>/dev/null; }
api_answers() { curl -fsS -m 3 -o /dev/null "$PROBE_URL" 2>/dev/null; }

# pid of the registry this state dir started, if it is alive and still that JVM.
registry_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-jar $RUN_JAR" || return 1
  echo "$pid"
}

# "17.0.15+6-Debian-1deb12u1" from the JDK's release file (no JVM start needed).
java_runtime_version() {
  local bin home
  bin="$(command -v "$JAVA")" || return 1
  home="$(dirname "$(dirname "$(readlink -f "$bin")")")"
  sed -n 's/^JAVA_RUNTIME_VERSION="\(.*\)"/\1/p' "$home/release" 2>/dev/null | head -n1
}
# Class-data-sharing archives are only valid for the JDK and the jars that wrote them.
JDK_ID="$(java_runtime_version || true)"
JDK_ID="${JDK_ID//[^A-Za-z0-9._-]/_}"
JDK_ID="${JDK_ID:-unknown}"
JSA="$BUILD_DIR/.cds-$JDK_ID.jsa"

# Keep the state dir (build, logs) out of git even where the repo's .gitignore does not reach.
ignore_state_dir() {
  mkdir -p "$STATE_DIR"
  [[ -f "$STATE_DIR/.gitignore" ]] || echo '*' >"$STATE_DIR/.gitignore"
}

# The build is complete and was made from the current pom and application.properties.
build_stamp() { echo "$VERSION $(cat "$POM" "$APP_PROPS" | cksum | cut -d' ' -f1)"; }
build_ready() { [[ -f "$RUN_JAR" && -f "$STAMP" && "$(cat "$STAMP")" == "$(build_stamp)" ]]; }

cmd_build() {
  if build_ready; then
    log "build of Apicurio Registry $VERSION is up to date ($APP_DIR)"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to build Apicurio Registry $VERSION)"
  ignore_state_dir
  local tmp="$STATE_DIR/build.tmp.$$" t0 ms pid
  rm -rf "$tmp"
  if pid="$(registry_pid)"; then
    die "the registry (pid $pid) runs from the build being replaced; run: $0 stop"
  fi
  log "building Apicurio Registry $VERSION into $BUILD_DIR (the first build downloads ~210 MB" \
    "from Maven Central, 2-3 min; later ones 15-70 s); log: $BUILD_LOG"
  t0="$(now_ms)"
  # shellcheck disable=SC2086 # REGISTRY_MVN_OPTS is word-split on purpose
  if ! mvn -B -Dstyle.color=never -f "$POM" ${REGISTRY_MVN_OPTS:-} package -DskipTests \
    -DbuildDir="$tmp" >"$BUILD_LOG" 2>&1; then
    # Debian's mvn colours even with -B; show the errors only.
    sed 's/\x1b\[[0-9;]*m//g' "$BUILD_LOG" | grep -E '^\[(ERROR|FATAL)\]' | grep -v '^\[ERROR\] *$' |
      head -n 40 >&2 || true
    rm -rf "$tmp"
    die "maven could not build Apicurio Registry $VERSION (full log: $BUILD_LOG)"
  fi
  [[ -f "$tmp/quarkus-app/quarkus-run.jar" ]] ||
    { rm -rf "$tmp"; die "quarkus-app/quarkus-run.jar missing after the build (see $BUILD_LOG)"; }
  build_stamp >"$tmp/.complete"
  rm -rf "$BUILD_DIR"
  mv "$tmp" "$BUILD_DIR"
  ms=$(($(now_ms) - t0))
  log "built in $((ms / 1000)).$((ms % 1000 / 100))s ($(du -sh "$APP_DIR" | cut -f1))"
}

cmd_start() {
  local pid jv cds=()
  if pid="$(registry_pid)"; then
    log "already running (pid $pid, $CCOMPAT_URL)"
    return 0
  fi
  if api_answers; then
    log "a registry already answers on $CCOMPAT_URL (not started from $STATE_DIR); nothing to do"
    return 0
  fi
  port_open && die "port $HOST:$PORT is in use by something that is not a registry (set REGISTRY_PORT)"
  command -v "$JAVA" >/dev/null || die "java not found"
  jv="$(java_runtime_version || true)"
  if [[ "$jv" =~ ^([0-9]+) ]] && ((BASH_REMATCH[1] < 17)); then
    die "Apicurio Registry $VERSION needs Java 17+, found $jv"
  fi
  command -v curl >/dev/null || die "curl not found (needed to probe the registry)"
  cmd_build
  ignore_state_dir
  if [[ -s "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi # keep one previous log

  rm -f "$JSA.tmp"
  if [[ "$CDS" == 1 && -f "$JSA" ]]; then
    cds=(-XX:SharedArchiveFile="$JSA")
  elif [[ "$CDS" == 1 ]]; then
    cds=(-XX:ArchiveClassesAtExit="$JSA.tmp") # written when the JVM exits; see cmd_stop
  fi
  # setsid: its own session, so Ctrl-C in (or the end of) the calling shell leaves it running.
  # cd: Quarkus resolves a few relative paths (e.g. an optional config/ dir) against it.
  # shellcheck disable=SC2086
  (cd "$STATE_DIR" && exec nohup setsid "$JAVA" "${JVM_OPTS[@]}" "${cds[@]}" ${REGISTRY_JVM_OPTS:-} \
    "${APP_OPTS[@]}" -jar "$RUN_JAR" >>"$LOG_FILE" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started Apicurio Registry $VERSION (pid $pid) on $CCOMPAT_URL; log: $LOG_FILE"
}

cmd_wait() {
  local limit="${REGISTRY_WAIT_SECONDS:-90}" t0 deadline ms
  command -v curl >/dev/null || die "curl not found (needed to probe the registry)"
  t0="$(now_ms)"
  deadline=$((t0 + limit * 1000))
  while (($(now_ms) < deadline)); do
    if api_answers; then
      ms=$(($(now_ms) - t0))
      log "ready on $CCOMPAT_URL after $((ms / 1000)).$((ms % 1000 / 100))s"
      return 0
    fi
    if [[ -f "$PID_FILE" ]] && ! registry_pid >/dev/null; then
      log "registry process $(cat "$PID_FILE") has exited; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "registry not ready on $PROBE_URL after ${limit}s; last lines of $LOG_FILE:"
  tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
  exit 1
}

cmd_stop() {
  local pid limit="${REGISTRY_STOP_SECONDS:-30}" i killed=0
  if ! pid="$(registry_pid)"; then
    rm -f "$PID_FILE" "$JSA.tmp"
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
    killed=1
    sleep 0.5
  fi
  # A first run's class archive is complete only after a clean exit.
  if [[ -f "$JSA.tmp" ]]; then
    if ((killed == 0)) && [[ -s "$JSA.tmp" ]]; then mv -f "$JSA.tmp" "$JSA"; else rm -f "$JSA.tmp"; fi
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(registry_pid)"; then
    echo "running (pid $pid, Apicurio Registry $VERSION, $CCOMPAT_URL, state $STATE_DIR)"
    return 0
  fi
  if api_answers; then
    echo "not running from $STATE_DIR (but a registry answers on $CCOMPAT_URL)"
  elif port_open; then
    echo "not running from $STATE_DIR (but something else listens on $HOST:$PORT)"
  else
    echo "not running"
  fi
  return 3
}

cmd_reset() {
  cmd_stop
  rm -f "$LOG_FILE" "$LOG_FILE.1" "$BUILD_LOG" "$PID_FILE" "$BUILD_DIR"/.cds-*.jsa*
  log "reset $STATE_DIR (kept build-$VERSION; rm -rf $STATE_DIR forces a fresh build)"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  url) echo "$CCOMPAT_URL" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
