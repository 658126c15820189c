#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1,
# with the broker jars resolved from Maven Central through scripts/kafka/pom.xml.
# Needs: java >= 17, mvn (only for the first fetch). No Docker, nothing but Maven Central.
#
# Usage: scripts/kafka.sh <command> [args]
#   fetch                  copy the broker jars into $STATE/libs-<version> (skipped when present)
#   start                  fetch if needed, write config, format storage once, start in background
#                          (exit 0 at once if a broker already answers on the port)
#   wait                   block until the broker answers admin requests and the group
#                          coordinator is loaded (KAFKA_WAIT_SECONDS, default 90)
#   topics [name[:N] ...]  create the app topics and any extra ones if missing (N default 1)
#   stop                   SIGTERM, up to KAFKA_STOP_SECONDS (30) s, then SIGKILL; 0 if not running
#   status                 print running / not running (exit 0 / 3)
#   reset                  stop, delete data/config/log (the downloaded libs are kept)
#   perf [N] [SIZE]        Kafka's own ProducerPerformance, acks=all (default 200000 x 300 B)
#
# Typical: scripts/kafka.sh start && scripts/kafka.sh wait && scripts/kafka.sh topics
#
# Environment (all optional):
#   KAFKA_VERSION            default: <kafka.version> in scripts/kafka/pom.xml
#   KAFKA_STATE_DIR          default: <repo>/.kafka (libs-<version>/, data/, kafka.log, kafka.pid)
#   KAFKA_PORT               default 9092 (PLAINTEXT listener for clients)
#   KAFKA_CONTROLLER_PORT    default 9093 (KRaft controller listener)
#   KAFKA_WAIT_SECONDS       default 90
#   KAFKA_STOP_SECONDS       default 30
#   KAFKA_HEAP_OPTS          default "-Xms256m -Xmx512m"
#   KAFKA_GC_OPTS            default "-XX:+UseSerialGC"
#   KAFKA_JVM_OPTS           extra broker JVM flags, last wins; e.g. "-XX:TieredStopAtLevel=4"
#                            restores the full JIT (C2) for throughput runs
#   KAFKA_CDS                default 1: class-data-sharing archives for faster JVM starts
#   KAFKA_LOG_LEVEL          broker log level, default INFO
#   KAFKA_TOPIC_EVENTS       default events        (3 partitions)
#   KAFKA_TOPIC_DEAD_LETTER  default events.dlq    (1 partition)
#   KAFKA_TOPIC_ALERTS       default fraud.alerts  (1 partition)
#   KAFKA_PERF_PROPS         extra producer props for perf, e.g. "linger.ms=10 batch.size=262144"
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
POM="$SCRIPT_DIR/kafka/pom.xml"

HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
BOOTSTRAP="$HOST:$PORT"

SERVICE=kafka.sh
# shellcheck source=scripts/lib/service.sh
source "$SCRIPT_DIR/lib/service.sh"
service_layout kafka "${KAFKA_VERSION:-}" "${KAFKA_STATE_DIR:-$REPO_ROOT/.kafka}"
CONF_FILE="$STATE_DIR/server.properties"
LOG4J_FILE="$STATE_DIR/log4j2.properties"
TOOLS_LOG4J_FILE="$STATE_DIR/tools-log4j2.properties"
ADMIN_CONF="$STATE_DIR/admin.properties"
JAVA="${JAVA:-java}"
CDS="${KAFKA_CDS:-1}"

# Broker JVM, tuned for start-up on a small (2-core) box; measured there:
#  - SerialGC: no parallel GC threads competing with the app; starts at least as fast as G1.
#  - TieredStopAtLevel=1 (C1 only): about 1 s faster to ready. Costs ~25% peak throughput
#    for Kafka's Java producer (ProducerPerformance); kafkajs measured the same either way.
#  - AppCDS: the first broker run records its classes at exit (on `stop`), later starts
#    map them (another ~1 s). Archives live in libs-<version>/, keyed by the JDK.
# shellcheck disable=SC2206 # the *_OPTS variables are word-split on purpose
BROKER_JVM_OPTS=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} ${KAFKA_GC_OPTS:--XX:+UseSerialGC}
  -XX:TieredStopAtLevel=1 -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError
  -Xlog:cds=off -Xlog:cds+dynamic=off -Djava.awt.headless=true -Dfile.encoding=UTF-8
  -Dlog4j2.configurationFile="$LOG4J_FILE" -Dkafka.logs.dir="$STATE_DIR")
# Short-lived CLI JVMs (storage format, topic admin, readiness probe).
TOOL_JVM_OPTS=(-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -Xlog:disable -Xlog:all=error:stderr -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$TOOLS_LOG4J_FILE")

# pid of the broker this state dir started, if it is alive and still that Kafka JVM.
service_pid() { pid_running "kafka.Kafka $CONF_FILE"; }

# Class-data-sharing archives are only valid for the JDK that wrote them.
JDK_ID="$(jdk_id)"
BROKER_JSA="$LIBS_DIR/.cds-broker-$JDK_ID.jsa"

have_libs() { [[ -f "$LIBS_DIR/.complete" ]]; } # tools of a running broker: any complete fetch

cmd_fetch() { maven_fetch "Apache Kafka" kafka.version "kafka_2.13-$VERSION.jar"; }


# First of the candidate classes present in the libs (cached per libs dir).
find_class() {
  local key="$1"; shift
  local cache="$LIBS_DIR/.class-$key" listing cls
  if [[ -s "$cache" ]]; then cat "$cache"; return 0; fi
  if command -v unzip >/dev/null; then
    listing="$(for j in "$LIBS_DIR"/*.jar; do unzip -Z1 "$j" 2>/dev/null; done)"
  else
    listing="$(for j in "$LIBS_DIR"/*.jar; do jar tf "$j" 2>/dev/null; done)"
  fi
  for cls in "$@"; do
    if grep -qxF "${cls//.//}.class" <<<"$listing"; then
      echo "$cls" | tee "$cache"
      return 0
    fi
  done
  die "none of [$*] found in $LIBS_DIR"
}
storage_tool() { find_class storage kafka.tools.StorageTool org.apache.kafka.tools.StorageTool; }
topic_tool() { find_class topics org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand; }
group_tool() {
  find_class groups org.apache.kafka.tools.consumer.group.ConsumerGroupCommand kafka.admin.ConsumerGroupCommand
}

# run_tool MAIN_CLASS ARGS... : a Kafka CLI class on the broker classpath; logs go to stderr.
# With CDS_DUMP=1 (only where the broker is known to be up, so the run succeeds) a run
# without an archive records one; later runs of that tool start about twice as fast.
run_tool() {
  local jsa="$LIBS_DIR/.cds-$1-$JDK_ID.jsa" tmp="" cds=() rc=0
  [[ -f "$TOOLS_LOG4J_FILE" ]] || write_tools_log4j
  if [[ "$CDS" == 1 && -f "$jsa" ]]; then
    cds=(-XX:SharedArchiveFile="$jsa")
  elif [[ "$CDS" == 1 && "${CDS_DUMP:-0}" == 1 ]]; then
    tmp="$jsa.$$.tmp"
    cds=(-XX:ArchiveClassesAtExit="$tmp")
  fi
  "$JAVA" "${TOOL_JVM_OPTS[@]}" "${cds[@]}" -cp "$LIBS_DIR/*" "$@" || rc=$?
  if [[ -n "$tmp" && -f "$tmp" ]]; then
    if ((rc == 0)); then mv -f "$tmp" "$jsa"; else rm -f "$tmp"; fi
  fi
  return "$rc"
}

write_tools_log4j() {
  mkdir -p "$STATE_DIR"
  cat >"$TOOLS_LOG4J_FILE" <<EOF
# Generated by scripts/kafka.sh: CLI tools log warnings to stderr only (stdout stays parseable).
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

write_config() {
  mkdir -p "$STATE_DIR" "$DATA_DIR"
  ignore_state_dir
  cat >"$CONF_FILE" <<EOF
# Generated by scripts/kafka.sh on every start -- edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
EOF
  cat >"$LOG4J_FILE" <<EOF
# Generated by scripts/kafka.sh. Everything goes to stdout, which start sends to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref = STDOUT
# Full dumps of every config object: long and rarely useful.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  write_tools_log4j
  cat >"$ADMIN_CONF" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=15000
EOF
}

format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local tool cluster_id
  tool="$(storage_tool)"
  cluster_id="$(run_tool "$tool" random-uuid 2>/dev/null | tail -n1)"
  [[ -n "$cluster_id" ]] || die "could not generate a cluster id"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  run_tool "$tool" format --ignore-formatted -t "$cluster_id" -c "$CONF_FILE" >>"$LOG_FILE" 2>&1 \
    || { tail -n 20 "$LOG_FILE" >&2; die "storage format failed"; }
}

cmd_start() {
  local pid
  if pid="$(service_pid)"; then
    log "already running (pid $pid, $BOOTSTRAP)"
    return 0
  fi
  if port_open "$PORT"; then
    log "a broker is already reachable on $BOOTSTRAP (not started from $STATE_DIR); nothing to do"
    return 0
  fi
  if port_open "$CONTROLLER_PORT"; then
    die "controller port $HOST:$CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
  fi
  require_java "Kafka $VERSION"
  cmd_fetch
  write_config
  rotate_log
  format_storage
  cds_flags "$BROKER_JSA"
  # shellcheck disable=SC2086
  pid="$(spawn "$JAVA" "${BROKER_JVM_OPTS[@]}" "${CDS_FLAGS[@]}" ${KAFKA_JVM_OPTS:-} \
    -cp "$LIBS_DIR/*" kafka.Kafka "$CONF_FILE")"
  log "started Kafka $VERSION (pid $pid) on $BOOTSTRAP; log: $LOG_FILE"
}

cmd_wait() {
  local limit="${KAFKA_WAIT_SECONDS:-90}" t0 deadline tool gtool out="" stage=metadata
  t0="$(now_ms)"
  deadline=$((t0 + limit * 1000))
  have_libs || cmd_fetch # a broker started elsewhere: fetch the tools to talk to it
  tool="$(topic_tool)"
  gtool="$(group_tool)"
  [[ -f "$ADMIN_CONF" ]] || write_config
  while (($(now_ms) < deadline)); do
    if [[ -f "$PID_FILE" ]] && ! service_pid >/dev/null && ! port_open "$PORT"; then
      log "broker process $(cat "$PID_FILE") has exited; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      exit 1
    fi
    # 1. The broker answers an admin metadata round trip (Kafka's own topic tool).
    if [[ "$stage" == metadata ]] && port_open "$PORT" &&
      out="$(run_tool "$tool" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONF" --list 2>&1)"; then
      stage=coordinator
    fi
    # 2. Describe a non-existent consumer group: on a fresh broker this creates
    #    __consumer_offsets, and it answers only once the group coordinator has loaded,
    #    so a client's first group join does not fail with "coordinator is loading".
    #    The tool exits 0 even on errors, hence the match on its answer.
    if [[ "$stage" == coordinator ]]; then
      out="$(CDS_DUMP=1 run_tool "$gtool" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONF" \
        --describe --group kafka-sh-readiness 2>&1 || true)"
      if grep -qiE 'not found|does not exist|no active members' <<<"$out"; then
        log "ready on $BOOTSTRAP after $(elapsed_since "$t0")"
        return 0
      fi
    fi
    sleep 0.3
  done
  log "broker not ready on $BOOTSTRAP after ${limit}s (stage: $stage); last tool output:"
  printf '%s\n' "${out:-none}" | grep -v '^[[:space:]]*at ' | tail -n 10 >&2
  log "last lines of $LOG_FILE:"
  tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
  exit 1
}

cmd_topics() {
  have_libs || cmd_fetch # a broker started elsewhere: fetch the tools to talk to it
  [[ -f "$ADMIN_CONF" ]] || write_config
  local tool existing spec name parts specs=(
    "${KAFKA_TOPIC_EVENTS:-events}:3"
    "${KAFKA_TOPIC_DEAD_LETTER:-events.dlq}:1"
    "${KAFKA_TOPIC_ALERTS:-fraud.alerts}:1"
    "$@"
  )
  for spec in "${specs[@]}"; do
    name="${spec%%:*}"
    parts=1
    [[ "$spec" == *:* ]] && parts="${spec#*:}"
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "bad topic name: '$name'"
    [[ "$parts" =~ ^[1-9][0-9]*$ ]] || die "bad partition count for $name: '$parts'"
  done
  port_open "$PORT" || die "no broker on $BOOTSTRAP (run: $0 start && $0 wait)"
  tool="$(topic_tool)"
  existing="$(CDS_DUMP=1 run_tool "$tool" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONF" --list)" \
    || die "cannot list topics on $BOOTSTRAP (is the broker ready? $0 wait)"
  for spec in "${specs[@]}"; do
    name="${spec%%:*}"
    parts=1
    [[ "$spec" == *:* ]] && parts="${spec#*:}"
    if grep -qxF "$name" <<<"$existing"; then
      log "topic $name exists"
      continue
    fi
    run_tool "$tool" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONF" \
      --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
    log "topic $name created ($parts partition$( ((parts == 1)) || echo s))"
    existing+=$'\n'"$name"
  done
}

cmd_stop() { service_stop "${KAFKA_STOP_SECONDS:-30}" "$BROKER_JSA"; }

cmd_status() {
  local pid
  if pid="$(service_pid)"; then
    echo "running (pid $pid, Kafka $VERSION, $BOOTSTRAP, state $STATE_DIR)"
    return 0
  fi
  if port_open "$PORT"; then
    echo "not running from $STATE_DIR (but something else listens on $BOOTSTRAP)"
  else
    echo "not running"
  fi
  return 3
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR"
  rm -f "$CONF_FILE" "$LOG4J_FILE" "$TOOLS_LOG4J_FILE" "$ADMIN_CONF" "$LOG_FILE" "$LOG_FILE.1" "$PID_FILE"
  log "reset $STATE_DIR (kept libs-*)"
}

cmd_perf() {
  local n="${1:-200000}" size="${2:-300}" topic="${KAFKA_PERF_TOPIC:-perf.test}"
  have_libs || die "Kafka $VERSION is not fetched; run: $0 start"
  [[ -f "$TOOLS_LOG4J_FILE" ]] || write_tools_log4j
  cmd_topics "$topic:3" 2>/dev/null
  # shellcheck disable=SC2086
  "$JAVA" -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$TOOLS_LOG4J_FILE" \
    -cp "$LIBS_DIR/*" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
    --num-records "$n" --record-size "$size" --throughput -1 \
    --producer-props bootstrap.servers="$BOOTSTRAP" acks=all ${KAFKA_PERF_PROPS:-}
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  topics) shift; cmd_topics "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  perf) shift; cmd_perf "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
