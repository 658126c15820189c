#!/usr/bin/env bash
# Independent Delta Lake reader for tests: Delta's own Java library (delta-standalone) reads a
# table streamgate wrote and prints one JSON summary. Built from tests/delta_reader/pom.xml with
# jars resolved from Maven Central. Needs: java >= 17, mvn (for the build only).
#
# Usage: scripts/delta_reader.sh <command> [args]
#   build                        resolve the jars, compile, record a class-data archive, into
#                                $STATE/build (skipped when the pom and sources are unchanged)
#   read TABLE_URI... [options]  build if needed, then print the table as ONE JSON object on
#                                stdout (several tables: one JSON array, in order; one JVM);
#                                exit 1 with the Java exception on stderr if one is unreadable
#       --txn APPID              also report the table's txn version of APPID (-1: none); repeatable
#       --columns a,b,c          also print those columns' values, one array per row
#       --conf key=value         a Hadoop setting (e.g. fs.s3a.*); repeatable
#   write-sample TABLE_URI       (the harness's own test) write a sample Delta table with
#                                delta-standalone, print the JSON manifest of what it must read as
#   s3proxy-jar                  (the harness's own test) fetch s3proxy, print the jar's path
#   clean                        delete $STATE
#
# TABLE_URI: a local directory, file:///dir, or s3a://bucket/prefix/table (s3:// works too).
# Typical: scripts/delta_reader.sh read data/lake/bronze/events --txn streamgate-bronze
#
# Environment (all optional):
#   DELTA_READER_STATE_DIR   default: <repo>/.delta-reader
#   DELTA_READER_HEAP        default "-Xms32m -Xmx512m"
#   DELTA_READER_JVM_OPTS    extra JVM flags, last wins
#   DELTA_READER_CDS         default 1: a class-data-sharing archive made at build time
#                            (~1 s less CPU per read)
#   DELTA_READER_STACK       set: print the whole Java stack trace of a failure
#   DELTA_READER_TIMING      set: print where a read spends its time (stderr)
#   AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_REGION               the S3-compatible store for s3a:// tables (path-style, SigV4;
#                            an http:// endpoint turns TLS off)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
PROJECT_DIR="$REPO_ROOT/tests/delta_reader"
POM="$PROJECT_DIR/pom.xml"
S3PROXY_VERSION=3.0.0

STATE_DIR="${DELTA_READER_STATE_DIR:-$REPO_ROOT/.delta-reader}"
[[ "$STATE_DIR" == /* ]] || STATE_DIR="$PWD/$STATE_DIR"
BUILD_DIR="$STATE_DIR/build"
JAVA="${JAVA:-java}"
CDS="${DELTA_READER_CDS:-1}"

# Short-lived JVM, tuned for start-up (as scripts/kafka.sh's CLI tools): C1 only, serial GC,
# no perf-data file, JVM warnings to stderr (unified logging prints to stdout by default).
# UTC: Delta's reader turns timestamps into java.sql.Timestamp with the JVM's zone.
# shellcheck disable=SC2206 # the *_OPTS variables are word-split on purpose
JVM_OPTS=(${DELTA_READER_HEAP:--Xms32m -Xmx512m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -XX:-UsePerfData -Xss1m -Xlog:disable -Xlog:all=error:stderr -Djava.awt.headless=true
  -Dfile.encoding=UTF-8 -Duser.timezone=UTC)

log() { printf 'delta_reader.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo "${t:0:-3}"; }
elapsed() { local ms=$(($(now_ms) - $1)); echo "$((ms / 1000)).$((ms % 1000 / 100))s"; }

# "17.0.15+6-Debian-1deb12u1" from the JDK's release file: class-data archives are only valid
# for the JDK that wrote them, so the build stamp includes it.
java_runtime_version() {
  local bin home
  bin="$(command -v "$JAVA")" || return 1
  home="$(dirname "$(dirname "$(readlink -f "$bin")")")"
  sed -n 's/^JAVA_RUNTIME_VERSION="\(.*\)"/\1/p' "$home/release" 2>/dev/null | head -n1
}

# The build is current when the pom, the sources, this script and the JDK are what built it.
build_stamp() {
  {
    java_runtime_version || true
    cat "$0" "$POM"
    find "$PROJECT_DIR/src" -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done
  } | cksum | cut -d' ' -f1
}
build_ready() { [[ -f "$BUILD_DIR/.complete" && "$(cat "$BUILD_DIR/.complete")" == "$(build_stamp)" ]]; }

classpath() { echo "$1/delta-reader.jar:$1/libs/*"; }

# Keep the state dir out of git even where the repo's .gitignore does not list it.
ignore_state_dir() { [[ -f "$STATE_DIR/.gitignore" ]] || echo '*' >"$STATE_DIR/.gitignore"; }

mvn_quiet() {
  local out="$1"; shift
  if ! mvn -B -q -Dstyle.color=never -f "$POM" "$@" >"$out" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -v '^\[ERROR\] *$' >&2 # Debian's mvn colours even with -B
    return 1
  fi
}

cmd_build() {
  build_ready && { [[ "${1:-}" == quiet ]] || log "up to date ($BUILD_DIR)"; return 0; }
  command -v mvn >/dev/null || die "mvn not found (needed to build the Delta reader)"
  mkdir -p "$STATE_DIR"
  ignore_state_dir
  # Tests read tables in parallel: one build at a time, the others wait for it and reuse it.
  exec 9>"$STATE_DIR/.build.lock"
  flock 9
  if build_ready; then flock -u 9; return 0; fi
  local t0 tmp stamp
  t0="$(now_ms)"
  stamp="$(build_stamp)"
  tmp="$BUILD_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building the Delta reader into $BUILD_DIR (the first build downloads ~350 MB of jars) ..."
  mvn_quiet "$tmp/mvn.log" -Ddelta.reader.target="$tmp/target" compile dependency:copy-dependencies \
    -DoutputDirectory="$tmp/libs" -DincludeScope=runtime \
    || { rm -rf "$tmp"; die "maven could not build $POM (see above)"; }
  # A jar, not a classes dir: class-data archives take classes from jars only. First on the
  # classpath, so its log4j.properties is the one that applies.
  jar --create --file "$tmp/delta-reader.jar" -C "$tmp/target/classes" . \
    || { rm -rf "$tmp"; die "cannot package $tmp/target/classes"; }
  rm -rf "$tmp/target" "$tmp/mvn.log"
  log "compiled in $(elapsed "$t0")"
  rm -rf "$BUILD_DIR"
  mv "$tmp" "$BUILD_DIR"
  # Recorded in place: an archive names the absolute classpath it was made with.
  if [[ "$CDS" == 1 ]]; then record_cds_archive "$BUILD_DIR"; fi
  echo "$stamp" >"$BUILD_DIR/.complete"
  flock -u 9
  log "built in $(elapsed "$t0")"
}

# A class-data-sharing archive of everything a read loads: write a sample table and read it
# back once with -XX:ArchiveClassesAtExit. Later reads map those classes instead of loading and
# verifying them from ~120 jars. (Also a smoke test: a build that cannot read is no build.)
record_cds_archive() {
  local dir="$1" t0 sample
  t0="$(now_ms)"
  sample="$(mktemp -d)"
  "$JAVA" "${JVM_OPTS[@]}" -cp "$(classpath "$dir")" streamgate.delta.DeltaWriteSample "$sample/t" >/dev/null \
    || { rm -rf "$sample"; die "the new build cannot write its sample table"; }
  "$JAVA" "${JVM_OPTS[@]}" -XX:ArchiveClassesAtExit="$dir/read.jsa" -cp "$(classpath "$dir")" \
    streamgate.delta.DeltaRead "$sample/t" --txn x --columns event_id,occurred_at >/dev/null \
    || { rm -rf "$sample"; die "the new build cannot read its sample table"; }
  rm -rf "$sample"
  log "class-data archive recorded in $(elapsed "$t0")"
}

run_main() {
  local main="$1"; shift
  local cds=()
  cmd_build quiet
  # Also for s3a:// reads, whose s3a + AWS SDK classes the archive lacks: an archive recorded from
  # an s3a read was measured to save nothing (their time goes to initialising, not loading).
  if [[ "$CDS" == 1 && -f "$BUILD_DIR/read.jsa" ]]; then cds=(-XX:SharedArchiveFile="$BUILD_DIR/read.jsa"); fi
  # shellcheck disable=SC2086
  exec "$JAVA" "${JVM_OPTS[@]}" "${cds[@]}" ${DELTA_READER_JVM_OPTS:-} -cp "$(classpath "$BUILD_DIR")" \
    "$main" "$@"
}

cmd_s3proxy_jar() {
  local dir="$STATE_DIR/s3proxy-$S3PROXY_VERSION"
  local jar="$dir/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar"
  if [[ ! -s "$jar" ]]; then
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch s3proxy)"
    mkdir -p "$dir"
    ignore_state_dir
    log "fetching s3proxy $S3PROXY_VERSION from Maven Central ..."
    mvn_quiet "$dir/mvn.log" dependency:copy -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" \
      -DoutputDirectory="$dir" -Dmdep.overWriteReleases=false \
      || die "maven could not fetch s3proxy $S3PROXY_VERSION (see above)"
    rm -f "$dir/mvn.log"
    [[ -s "$jar" ]] || die "$jar missing after fetch"
  fi
  echo "$jar"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

case "${1:-}" in
  build) cmd_build ;;
  read) shift; [[ $# -ge 1 ]] || { usage; exit 2; }; run_main streamgate.delta.DeltaRead "$@" ;;
  write-sample) shift; [[ $# -eq 1 ]] || { usage; exit 2; }; run_main streamgate.delta.DeltaWriteSample "$@" ;;
  s3proxy-jar) cmd_s3proxy_jar ;;
  clean) rm -rf "$STATE_DIR"; log "removed $STATE_DIR" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
