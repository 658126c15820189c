#!/usr/bin/env bash
# The README's test command (`deno task test`): every unit and integration test, against a real
# Redis, a real Kafka broker, a local S3 server (s3proxy) and a real schema registry (Apicurio).
# Starts each one where it is not running (and stops Kafka, s3proxy and the registry at exit if it
# started them), and fails (never skips) when it cannot. Extra arguments go to `deno test` (e.g. a
# file or --filter).
#
# Tests find the registry's Confluent API at SCHEMA_REGISTRY_URL_TEST (exported here; set it
# beforehand to use another registry and start none). Not SCHEMA_REGISTRY_URL: that is the
# gateway's own setting, and every gateway a test spawns would inherit it.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "test.sh: installing redis-server"
      apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
      echo "test.sh: Redis is not running on 127.0.0.1:6379 and redis-server is not installed" >&2
      exit 1
    fi
  fi
  echo "test.sh: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "test.sh: Redis did not come up" >&2; exit 1; }
fi

# The dashboard test drives Debian's Chromium with playwright-core (it cannot download browsers
# here). Without it that test fails under CI=true and is skipped otherwise.
if [ -z "${CHROMIUM_PATH:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "test.sh: /usr/bin/chromium is missing and cannot be installed (not root with apt-get)" >&2
  fi
fi

# Kafka, s3proxy and the registry start in the background side by side; each is stopped at exit
# only if this script started it.
started_kafka=0
started_s3proxy=0
started_registry=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [ "$started_kafka" = 1 ]; then bash scripts/kafka.sh stop || true; fi
  if [ "$started_s3proxy" = 1 ]; then bash scripts/s3proxy.sh stop || true; fi
  if [ "$started_registry" = 1 ]; then bash scripts/registry.sh stop || true; fi
}
trap cleanup EXIT
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka.sh start
  started_kafka=1
fi
if ! bash scripts/s3proxy.sh status >/dev/null 2>&1; then
  bash scripts/s3proxy.sh start
  started_s3proxy=1
fi
# The registry's first start builds it (2-3 min from Maven Central) while Kafka boots.
if [ -z "${SCHEMA_REGISTRY_URL_TEST:-}" ] && ! bash scripts/registry.sh status >/dev/null 2>&1; then
  bash scripts/registry.sh start
  started_registry=1
fi
bash scripts/kafka.sh wait
bash scripts/kafka.sh topics >/dev/null
bash scripts/s3proxy.sh wait
if [ -z "${SCHEMA_REGISTRY_URL_TEST:-}" ]; then
  bash scripts/registry.sh wait
  SCHEMA_REGISTRY_URL_TEST="$(bash scripts/registry.sh url)"
fi
export SCHEMA_REGISTRY_URL_TEST

# The S3 store's tests (tests/s3_store_test.ts) read these, with the same values as defaults.
# They always name the s3proxy above: to test against another S3, run that file directly.
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:${S3PROXY_PORT:-9000}"
export AWS_REGION="${S3PROXY_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${S3PROXY_IDENTITY:-streamgate}"
export AWS_SECRET_ACCESS_KEY="${S3PROXY_CREDENTIAL:-streamgate-secret-key}"
export S3_TEST_BUCKET="${S3_TEST_BUCKET:-streamgate-test}"
bash scripts/s3proxy.sh bucket "$S3_TEST_BUCKET"

log=$(mktemp)
set +e
deno test --allow-all "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain summary line that any CI reads: "tests: N passed, N failed".
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
rm -f "$log"
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
if [ "${passed:-0}" = 0 ] && [ "$status" = 0 ]; then
  echo "test.sh: no test ran" >&2
  exit 1
fi
exit "$status"
