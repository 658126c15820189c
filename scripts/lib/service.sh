# shellcheck shell=bash
# Shared by the scripts that run a local Java service for development and tests (kafka.sh,
# s3proxy.sh, …): logging, ports, the pid a state dir started, a Maven Central fetch into a
# state dir, and a stop that escalates from SIGTERM to SIGKILL.
#
# The sourcing script sets: SERVICE (its name in log lines), HOST, STATE_DIR, PID_FILE, and for
# fetching POM, VERSION, LIBS_DIR.

log() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo "${t:0:-3}"; }
port_open() { timeout 2 bash -c "</dev/tcp/$HOST/$1" 2>/dev/null; }

# Keep the state dir (jars, data, logs) out of git even where .gitignore does not name it.
ignore_state_dir() {
  [[ -f "$STATE_DIR/.gitignore" ]] || echo '*' >"$STATE_DIR/.gitignore"
}

# pid in PID_FILE, if alive and its command line still holds "$1" (the process this state dir
# started, not a recycled pid).
pid_running() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1" || return 1
  echo "$pid"
}

# The libs dir is complete and was fetched with the current pom (else a fetch re-runs).
libs_stamp() { echo "$VERSION $(cksum <"$POM" | cut -d' ' -f1)"; }
libs_ready() { [[ -f "$LIBS_DIR/.complete" && "$(cat "$LIBS_DIR/.complete")" == "$(libs_stamp)" ]]; }

# maven_fetch LABEL VERSION_PROPERTY EXPECTED_JAR: copies the pom's runtime dependencies into
# LIBS_DIR (atomically: a temp dir renamed into place), unless they are there already.
maven_fetch() {
  local label="$1" property="$2" expected="$3"
  libs_ready && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch $label $VERSION)"
  mkdir -p "$STATE_DIR"
  ignore_state_dir
  local tmp="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp"
  log "fetching $label $VERSION from Maven Central into $LIBS_DIR ..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM" "-D$property=$VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp.mvn.log" | grep -v '^\[ERROR\] *$' >&2 # Debian's mvn colours even with -B
    rm -rf "$tmp" "$tmp.mvn.log"
    die "maven could not resolve $label $VERSION (see above)"
  fi
  rm -f "$tmp.mvn.log"
  [[ -f "$tmp/$expected" ]] || { rm -rf "$tmp"; die "$expected missing after fetch"; }
  libs_stamp >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars"
}

# stop_pid PID LIMIT_SECONDS: SIGTERM, then SIGKILL after LIMIT_SECONDS. Returns 1 if it had to
# kill (a clean exit returns 0).
stop_pid() {
  local pid="$1" limit="$2" i
  log "stopping pid $pid ..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null || return 0
  log "still alive after ${limit}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
  return 1
}

# service_layout NAME VERSION STATE_DIR: the pom's <NAME.version> unless VERSION is set, and the
# state dir's files (libs-<version>/, data/, NAME.log, NAME.pid). Needs POM.
service_layout() {
  local name="$1"
  VERSION="${2:-$(sed -n "s:.*<$name\\.version>\\(.*\\)</$name\\.version>.*:\\1:p" "$POM" | head -n1)}"
  [[ -n "$VERSION" ]] || die "cannot read <$name.version> from $POM"
  STATE_DIR="$3"
  [[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
  LIBS_DIR="$STATE_DIR/libs-$VERSION"
  DATA_DIR="$STATE_DIR/data"
  LOG_FILE="$STATE_DIR/$name.log"
  PID_FILE="$STATE_DIR/$name.pid"
}
