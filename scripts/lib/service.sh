# shellcheck shell=bash
# Shared by the scripts that run a local Java service for development and tests (kafka.sh,
# s3proxy.sh, registry.sh): logging, ports, the pid a state dir started, the JDK check, the
# class-data-sharing archive, a Maven run into a state dir, the background start, and a stop that
# escalates from SIGTERM to SIGKILL.
#
# The sourcing script sets: SERVICE (its name in log lines), HOST, STATE_DIR, PID_FILE, LOG_FILE
# (service_layout sets the last three), JAVA, and for Maven runs POM, VERSION, LIBS_DIR. It defines
# service_pid, which prints the pid of the process this state dir started (see pid_running).

log() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo "${t:0:-3}"; }
port_open() { timeout 2 bash -c "</dev/tcp/$HOST/$1" 2>/dev/null; }
# "12.3s" since a now_ms reading.
elapsed_since() { local ms=$(($(now_ms) - $1)); echo "$((ms / 1000)).$((ms % 1000 / 100))s"; }

# Keep the state dir (jars, data, logs) out of git even where .gitignore does not name it.
ignore_state_dir() {
  mkdir -p "$STATE_DIR"
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

# "17.0.15+6-Debian-1deb12u1" from the JDK's release file (no JVM start needed).
java_runtime_version() {
  local bin home
  bin="$(command -v "$JAVA")" || return 1
  home="$(dirname "$(dirname "$(readlink -f "$bin")")")"
  sed -n 's/^JAVA_RUNTIME_VERSION="\(.*\)"/\1/p' "$home/release" 2>/dev/null | head -n1
}

# The JDK as a file-name-safe id: class-data-sharing archives are valid only for the JDK that
# wrote them, so their names carry it.
jdk_id() {
  local id
  id="$(java_runtime_version || true)"
  id="${id//[^A-Za-z0-9._-]/_}"
  echo "${id:-unknown}"
}

# require_java LABEL: dies unless java runs and is 17 or newer.
require_java() {
  local jv
  command -v "$JAVA" >/dev/null || die "java not found"
  jv="$(java_runtime_version || true)"
  if [[ "$jv" =~ ^([0-9]+) ]] && ((BASH_REMATCH[1] < 17)); then
    die "$1 needs Java 17+, found $jv"
  fi
}

# cds_flags ARCHIVE: sets CDS_FLAGS for a JVM start when CDS=1. A start without the archive
# records one at exit (ARCHIVE.tmp, moved into place by cds_keep after a clean stop); later
# starts map it.
# shellcheck disable=SC2034 # CDS_FLAGS is read by the sourcing script
cds_flags() {
  CDS_FLAGS=()
  rm -f "$1.tmp"
  [[ "${CDS:-1}" == 1 ]] || return 0
  if [[ -f "$1" ]]; then
    CDS_FLAGS=(-XX:SharedArchiveFile="$1")
  else
    CDS_FLAGS=(-XX:ArchiveClassesAtExit="$1.tmp")
  fi
}

# cds_keep ARCHIVE KILLED: a first run's archive is complete only after a clean exit (KILLED=0).
cds_keep() {
  [[ -f "$1.tmp" ]] || return 0
  if (($2 == 0)) && [[ -s "$1.tmp" ]]; then mv -f "$1.tmp" "$1"; else rm -f "$1.tmp"; fi
}

# The LIBS_DIR is complete and was made from the current pom and STAMP_FILES (else Maven re-runs).
libs_stamp() { echo "$VERSION $(cat "$POM" "${STAMP_FILES[@]}" | cksum | cut -d' ' -f1)"; }
libs_ready() { [[ -f "$LIBS_DIR/.complete" && "$(cat "$LIBS_DIR/.complete")" == "$(libs_stamp)" ]]; }
STAMP_FILES=()

# maven_into LABEL OUTPUT_PROPERTY EXPECTED MVN_ARGS...: runs mvn on POM with
# -D<OUTPUT_PROPERTY>=<a temp dir> and renames that dir to LIBS_DIR once it holds EXPECTED (a
# path inside it), so a failed or interrupted run never leaves a half-made LIBS_DIR. Maven's
# output goes to $STATE_DIR/maven.log; on failure its errors are shown.
maven_into() {
  local label="$1" property="$2" expected="$3"
  shift 3
  command -v mvn >/dev/null || die "mvn not found (needed once for $label $VERSION)"
  ignore_state_dir
  local tmp="$LIBS_DIR.tmp.$$" mvn_log="$STATE_DIR/maven.log"
  rm -rf "$tmp"
  if ! mvn -B -Dstyle.color=never -f "$POM" "$@" "-D$property=$tmp" >"$mvn_log" 2>&1; then
    # Debian's mvn colours even with -B; show the errors only.
    sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | grep -E '^\[(ERROR|FATAL)\]' | grep -v '^\[ERROR\] *$' |
      head -n 40 >&2 || true
    rm -rf "$tmp"
    die "maven failed for $label $VERSION (full log: $mvn_log)"
  fi
  [[ -e "$tmp/$expected" ]] || { rm -rf "$tmp"; die "$expected missing after maven (see $mvn_log)"; }
  libs_stamp >"$tmp/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
}

# maven_fetch LABEL VERSION_PROPERTY EXPECTED_JAR: copies the pom's runtime dependencies into
# LIBS_DIR, unless they are there already.
maven_fetch() {
  local label="$1" property="$2" expected="$3"
  libs_ready && return 0
  log "fetching $label $VERSION from Maven Central into $LIBS_DIR ..."
  maven_into "$label" outputDirectory "$expected" -q "-D$property=$VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime
  log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars"
}

# A start begins a new LOG_FILE and keeps the previous run's as LOG_FILE.1.
rotate_log() {
  ignore_state_dir
  if [[ -s "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi
}

# spawn COMMAND...: starts the service in the background from STATE_DIR, output appended to
# LOG_FILE, pid in PID_FILE; prints the pid.
# setsid: its own session, so Ctrl-C in (or the end of) the calling shell leaves it running.
spawn() {
  ignore_state_dir
  (cd "$STATE_DIR" && exec nohup setsid "$@" >>"$LOG_FILE" 2>&1 </dev/null) &
  echo "$!" >"$PID_FILE"
  echo "$!"
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

# service_stop LIMIT_SECONDS [CDS_ARCHIVE]: stops the process this state dir started (nothing to
# do when it is not running) and keeps a first run's class archive if it exited cleanly.
service_stop() {
  local pid killed=0
  if ! pid="$(service_pid)"; then
    rm -f "$PID_FILE"
    [[ -z "${2:-}" ]] || rm -f "$2.tmp"
    log "not running"
    return 0
  fi
  stop_pid "$pid" "$1" || killed=1
  [[ -z "${2:-}" ]] || cds_keep "$2" "$killed"
  rm -f "$PID_FILE"
  log "stopped"
}

# service_layout NAME VERSION STATE_DIR [POM_PROPERTY]: the pom's <POM_PROPERTY> (default
# NAME.version) unless VERSION is set, and the state dir's files (libs-<version>/, data/,
# NAME.log, NAME.pid). Needs POM.
service_layout() {
  local name="$1" property="${4:-$1.version}"
  VERSION="${2:-$(sed -n "s:.*<$property>\\(.*\\)</$property>.*:\\1:p" "$POM" | head -n1)}"
  [[ -n "$VERSION" ]] || die "cannot read <$property> from $POM"
  STATE_DIR="$3"
  [[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
  LIBS_DIR="$STATE_DIR/libs-$VERSION"
  # shellcheck disable=SC2034 # read by the sourcing script
  DATA_DIR="$STATE_DIR/data"
  LOG_FILE="$STATE_DIR/$name.log"
  PID_FILE="$STATE_DIR/$name.pid"
}
