#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another (for humans; not part of the test
# command). Installs cargo-fuzz if missing. The stable toolchain is used with
# RUSTC_BOOTSTRAP=1 (libFuzzer needs nightly-only compiler flags).
#
#   scripts/fuzz.sh                    # every target, 100000 executions each
#   scripts/fuzz.sh 10000000           # every target, 10 million executions each
#   scripts/fuzz.sh 1000000 validate   # one target
#
# Environment:
#   FUZZ_MAX_TIME=900       stop a target after this many seconds even if the runs are not done
#   FUZZ_SANITIZER=none     cargo-fuzz sanitizer (none, address, ...); the crate forbids unsafe
#                           code, so the default is none (about 4x the executions of address)
#   FUZZ_CORPUS=dir         keep the growing corpus in dir/<target> (default: a temp dir that is
#                           deleted afterwards); it starts from the committed fuzz/seeds/<target>
#   FUZZ_JOBS=1             libFuzzer -fork=N workers per target
#
# A crash stops the script; its input is saved in fuzz/artifacts/<target>/ (git-ignored).
# Reproduce with:  RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-100000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sources validate jwks)
fi
max_time="${FUZZ_MAX_TIME:-0}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_CORPUS:-}" ]; then
  corpus_root="$FUZZ_CORPUS"
  mkdir -p "$corpus_root"
else
  corpus_root="$(mktemp -d)"
  trap 'rm -rf "$corpus_root"' EXIT
fi

cd fuzz
cargo fuzz build -s "$sanitizer"

dict_for() {
  case "$1" in
    sources) echo dict/sources.dict ;;
    *) echo dict/json.dict ;;
  esac
}

for t in "${targets[@]}"; do
  corpus="$corpus_root/$t"
  mkdir -p "$corpus" "artifacts/$t"
  cp -n "seeds/$t/"* "$corpus/" 2>/dev/null || true
  echo "== $t: $runs runs (time cap: ${max_time}s, sanitizer: $sanitizer)"
  log="$corpus_root/$t.log"
  args=(-runs="$runs" -max_total_time="$max_time" -dict="$(dict_for "$t")"
        -print_final_stats=1 -artifact_prefix="artifacts/$t/")
  if [ "$jobs" -gt 1 ]; then
    args+=(-fork="$jobs")
  fi
  set +e
  cargo fuzz run -s "$sanitizer" "$t" "$corpus" -- "${args[@]}" 2>&1 | tee "$log" \
    | grep --line-buffered -E '^(#[0-9]+[[:space:]]+(pulse|DONE)|Done|stat::|==[0-9]+==|thread .* panicked)'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "!! $t failed (exit $status): see $log and fuzz/artifacts/$t/" >&2
    [ -n "${FUZZ_CORPUS:-}" ] || trap - EXIT # keep the log
    exit 1
  fi
done
echo "== all targets done"
