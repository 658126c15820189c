#!/usr/bin/env bash
# Long variants of the reliability tests, outside CI: SOAK times the kills and traffic of the
# fault tests, FUZZ_RUNS times the fuzzing inputs. Defaults: SOAK=10, FUZZ_RUNS=40 (about
# 30 kills, 200k produced events, ~176k generated inputs). Same services as `deno task test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK="${SOAK:-10}" FUZZ_RUNS="${FUZZ_RUNS:-40}"
exec bash scripts/test.sh tests/faults_test.ts tests/embedded_test.ts tests/hostile_process_test.ts \
  routes/body_fuzz_test.ts pipeline/validate_fuzz_test.ts lake/query/query_fuzz_test.ts "$@"
