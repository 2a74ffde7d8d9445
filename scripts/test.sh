#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (idempotently),
# then runs every test with both crypto backends and checks the quickstart end to end.
#
#   scripts/test.sh            # everything
#   QUICK=1 scripts/test.sh    # skip the rust-crypto run and the quickstart check
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if ! need apt-get; then echo "please install: $*" >&2; exit 1; fi
  if [ "$(id -u)" -ne 0 ] && need sudo; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
need curl || apt_install curl
need cargo || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
# A real redis-server for the Redis revocation tests (they start their own on a free port).
need redis-server || apt_install redis-server
# A real OpenID provider (node oidc-provider) for the remote-key tests.
if ! need node || ! need npm; then apt_install nodejs npm; fi
if [ ! -f tests/oidc/node_modules/.package-lock.json ] || [ tests/oidc/package-lock.json -nt tests/oidc/node_modules/.package-lock.json ]; then
  echo "== installing the OpenID provider fixture (tests/oidc)"
  npm ci --prefix tests/oidc --no-audit --no-fund
fi

echo "== tests, all features (aws-lc-rs and rust-crypto both on: aws-lc-rs is used)"
cargo test --all-features

if [ -z "${QUICK:-}" ]; then
  echo "== tests, pure-Rust backend only (rust-crypto): everything that verifies or signs"
  # The modules of the one test binary (tests/suite), by filter: libtest filters are OR'ed
  # substring matches, and each `name::` here matches only its own module's tests. Left out:
  # remote_keys:: and cache:: (fetching and caching logic, backend-independent, and about 70 s
  # here because their fixtures generate RSA keys in pure Rust); the JWK rules they rely on are
  # in safety:: and config::.
  cargo test --no-default-features --features rust-crypto,axum,cookie,metrics --test suite -- \
    interop:: attacks:: reasons:: config:: smoke:: issuer:: safety::

  echo "== quickstart, end to end"
  examples_dir="${CARGO_TARGET_DIR:-target}/debug/examples"
  cargo build --all-features --example quickstart --example doctor
  port=$(( 20000 + RANDOM % 20000 ))
  log=$(mktemp)
  PORT=$port "$examples_dir/quickstart" >"$log" 2>/dev/null &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
  for _ in $(seq 1 100); do grep -q "^Public page" "$log" 2>/dev/null && break; sleep 0.1; done
  mapfile -t lines < <(grep '^curl -i -H' "$log")
  [ "${#lines[@]}" -eq 3 ] || { echo "quickstart printed ${#lines[@]} curl lines, expected 3"; cat "$log"; exit 1; }
  expect=("200" "401 expired" "401 wrong_audience")
  for i in 0 1 2; do
    out=$(bash -c "${lines[$i]} -s")
    status=$(printf '%s' "$out" | head -1 | awk '{print $2}')
    want=(${expect[$i]})
    [ "$status" = "${want[0]}" ] || { echo "curl line $((i+1)): status $status, expected ${want[0]}"; exit 1; }
    if [ -n "${want[1]:-}" ]; then
      printf '%s' "$out" | grep -q "\"reason\":\"${want[1]}\"" || { echo "curl line $((i+1)): reason ${want[1]} not in body"; exit 1; }
      printf '%s' "$out" | grep -qi '^www-authenticate: Bearer realm="quickstart", error="invalid_token"' || { echo "curl line $((i+1)): WWW-Authenticate missing"; exit 1; }
    fi
  done
  echo "quickstart: 3 curl lines answered 200, 401 expired, 401 wrong_audience"
  # The doctor lines printed under the rejected tokens, run with the built binary (not
  # `cargo run`, which would build again).
  mapfile -t doctor_lines < <(grep '^cargo run --example doctor -- ' "$log")
  [ "${#doctor_lines[@]}" -eq 2 ] || { echo "quickstart printed ${#doctor_lines[@]} doctor lines, expected 2"; cat "$log"; exit 1; }
  doctor=$(printf '%q' "$examples_dir/doctor")
  doctor_expect=("expired" "wrong_audience")
  for i in 0 1; do
    rc=0
    out=$(bash -c "$doctor ${doctor_lines[$i]#cargo run --example doctor -- }") || rc=$?
    [ "$rc" -eq 1 ] || { echo "doctor line $((i+1)): exit $rc, expected 1"; printf '%s\n' "$out"; exit 1; }
    printf '%s' "$out" | grep -q "^INVALID: rejected as ${doctor_expect[$i]} (401" || { echo "doctor line $((i+1)): does not name ${doctor_expect[$i]}"; printf '%s\n' "$out"; exit 1; }
  done
  secret=$(printf '%s' "${doctor_lines[0]}" | sed -n 's/.* --secret-file \([^ ]*\) .*/\1/p')
  [ -f "$secret" ] || { echo "quickstart: secret file $secret missing"; exit 1; }
  kill "$pid" && wait "$pid" 2>/dev/null || true
  [ ! -e "$secret" ] || { echo "quickstart: secret file $secret left after SIGTERM"; exit 1; }
  echo "quickstart: doctor lines exit 1 naming expired, wrong_audience; secret file removed on exit"

  echo "== oidc example against the OpenID provider fixture"
  cargo build --all-features --example oidc
  plog=$(mktemp); elog=$(mktemp); ex_pid=
  node tests/oidc/provider.mjs >"$plog" 2>/dev/null & oidc_pid=$!
  trap 'kill ${pid:-} $oidc_pid ${ex_pid:-} 2>/dev/null || true; rm -f "${log:-}" "$plog" "$elog"' EXIT
  for _ in $(seq 1 100); do grep -q '^LISTENING ' "$plog" && break; sleep 0.1; done
  issuer=$(awk '/^LISTENING /{print $2; exit}' "$plog")
  [ -n "$issuer" ] || { echo "OpenID provider fixture did not start: npm ci --prefix tests/oidc"; exit 1; }
  "$examples_dir/oidc" "$issuer" api://orders --allow-http --access-token-profile --port 0 >"$elog" 2>/dev/null & ex_pid=$!
  for _ in $(seq 1 100); do grep -q '^Listening on ' "$elog" && break; sleep 0.1; done
  grep -q '^Keys loaded: 3 ' "$elog" || { echo "oidc example: keys did not load"; cat "$elog"; exit 1; }
  url=$(awk '/^Listening on /{print $3; exit}' "$elog")
  token=$(curl -s -u test-client:test-secret -d grant_type=client_credentials -d resource=api://orders \
    -d scope=orders:read "$issuer/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -sf -H "Authorization: Bearer $token" "$url/me" | grep -q '"client_id":"test-client"' \
    || { echo "oidc example: /me did not accept the provider's token"; exit 1; }
  curl -sf "$url/ready" | grep -q '"ready":true' || { echo "oidc example: /ready is not 200 ready"; exit 1; }
  echo "oidc example: provider token accepted on /me, /ready is 200"
fi
echo "scripts/test.sh: all passed"
