#!/usr/bin/env bash
# Local Confluent-compatible Schema Registry: Apicurio Registry, in-memory storage, on 127.0.0.1,
# built from Maven Central through scripts/registry/pom.xml (see scripts/registry/README.md for
# the measured times and every difference from Confluent's registry found so far).
# Needs: java >= 17, mvn (for the build; the first one downloads ~210 MB into ~/.m2). No Docker.
#
# Usage: scripts/registry.sh <command>
#   build    mvn package into $STATE/libs-<version> (skipped when its quarkus-run.jar exists and
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
#   REGISTRY_STATE_DIR             default: <repo>/.registry (libs-<version>/, registry.log, .pid)
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
CCOMPAT_URL="http://$HOST:$PORT/apis/ccompat/v7"
# The readiness probe is the API itself: Quarkus opens the port before the REST layer is up.
PROBE_URL="$CCOMPAT_URL/subjects"

SERVICE=registry.sh
# shellcheck source=scripts/lib/service.sh
source "$SCRIPT_DIR/lib/service.sh"
service_layout registry "" "${REGISTRY_STATE_DIR:-$REPO_ROOT/.registry}" apicurio.version
# The build is made from the pom and the build-time Quarkus settings: a change to either rebuilds.
STAMP_FILES=("$APP_PROPS")
APP_DIR="$LIBS_DIR/quarkus-app"
RUN_JAR="$APP_DIR/quarkus-run.jar"
JAVA="${JAVA:-java}"
CDS="${REGISTRY_CDS:-1}"
# The archive lives in the build dir (a rebuild drops it), keyed by the JDK.
JSA="$LIBS_DIR/.cds-$(jdk_id).jsa"
COMPATIBILITY="${REGISTRY_GLOBAL_COMPATIBILITY:-BACKWARD}"

# JVM for start-up on a small (2-core) box; measured there (CPU seconds until the API answers,
# the figure that load on a shared box does not distort; see scripts/registry/README.md):
#  - defaults (G1, C2, heap 1/4 of RAM): 6-9 s CPU, ~215 MB RSS
#  - SerialGC + -Xmx256m + TieredStopAtLevel=1 (C1 only): 4-6 s CPU, ~192 MB
#  - plus AppCDS (the first run records its classes at exit, on `stop`; later starts map them):
#    ~3 s CPU, ~178 MB.
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

api_answers() { curl -fsS -m 3 -o /dev/null "$PROBE_URL" 2>/dev/null; }

# pid of the registry this state dir started, if it is alive and still that JVM.
service_pid() { pid_running "-jar $RUN_JAR"; }

cmd_build() {
  local t0 pid
  if libs_ready; then
    log "build of Apicurio Registry $VERSION is up to date ($APP_DIR)"
    return 0
  fi
  if pid="$(service_pid)"; then
    die "the registry (pid $pid) runs from the build being replaced; run: $0 stop"
  fi
  log "building Apicurio Registry $VERSION into $LIBS_DIR (the first build downloads ~210 MB" \
    "from Maven Central, 2-3 min; later ones 15-70 s); log: $STATE_DIR/maven.log"
  t0="$(now_ms)"
  # shellcheck disable=SC2086 # REGISTRY_MVN_OPTS is word-split on purpose
  maven_into "Apicurio Registry" buildDir quarkus-app/quarkus-run.jar ${REGISTRY_MVN_OPTS:-} \
    package -DskipTests
  log "built in $(elapsed_since "$t0") ($(du -sh "$APP_DIR" | cut -f1))"
}

cmd_start() {
  local pid
  if pid="$(service_pid)"; then
    log "already running (pid $pid, $CCOMPAT_URL)"
    return 0
  fi
  if api_answers; then
    log "a registry already answers on $CCOMPAT_URL (not started from $STATE_DIR); nothing to do"
    return 0
  fi
  port_open "$PORT" && die "port $HOST:$PORT is in use by something that is not a registry (set REGISTRY_PORT)"
  require_java "Apicurio Registry $VERSION"
  command -v curl >/dev/null || die "curl not found (needed to probe the registry)"
  cmd_build
  rotate_log
  cds_flags "$JSA"
  # The working dir is the state dir: Quarkus resolves a few relative paths (e.g. an optional
  # config/ dir) against it.
  # shellcheck disable=SC2086
  pid="$(spawn "$JAVA" "${JVM_OPTS[@]}" "${CDS_FLAGS[@]}" ${REGISTRY_JVM_OPTS:-} "${APP_OPTS[@]}" \
    -jar "$RUN_JAR")"
  log "started Apicurio Registry $VERSION (pid $pid) on $CCOMPAT_URL; log: $LOG_FILE"
}

cmd_wait() {
  local limit="${REGISTRY_WAIT_SECONDS:-90}" t0 deadline
  command -v curl >/dev/null || die "curl not found (needed to probe the registry)"
  t0="$(now_ms)"
  deadline=$((t0 + limit * 1000))
  while (($(now_ms) < deadline)); do
    if api_answers; then
      log "ready on $CCOMPAT_URL after $(elapsed_since "$t0")"
      return 0
    fi
    if [[ -f "$PID_FILE" ]] && ! service_pid >/dev/null; then
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

cmd_status() {
  local pid
  if pid="$(service_pid)"; then
    echo "running (pid $pid, Apicurio Registry $VERSION, $CCOMPAT_URL, state $STATE_DIR)"
    return 0
  fi
  if api_answers; then
    echo "not running from $STATE_DIR (but a registry answers on $CCOMPAT_URL)"
  elif port_open "$PORT"; then
    echo "not running from $STATE_DIR (but something else listens on $HOST:$PORT)"
  else
    echo "not running"
  fi
  return 3
}

cmd_stop() { service_stop "${REGISTRY_STOP_SECONDS:-30}" "$JSA"; }

cmd_reset() {
  cmd_stop
  rm -f "$LOG_FILE" "$LOG_FILE.1" "$STATE_DIR/maven.log" "$PID_FILE" "$LIBS_DIR"/.cds-*.jsa*
  log "reset $STATE_DIR (kept libs-$VERSION; rm -rf $STATE_DIR forces a fresh build)"
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
