#!/usr/bin/env bash
# HTTP load through TokenAuthLayer with wrk, on loopback: req/s and latency percentiles for
# no authentication, HS256 and ES256 cold (cache off, and the default cache missing every
# time) and warm (cache hit); writes docs/load-results.md and the chart docs/load.svg.
#
#   scripts/load.sh                                   # about 2.5 min
#   DURATION=10 THREADS=2 CONNECTIONS=32 scripts/load.sh
#   SCENARIOS='none es256-cold es256-warm' scripts/load.sh
#
# How: builds tools/loadtarget.rs in release and starts it on 127.0.0.1 (a free port). It
# signs TOKENS distinct tokens per cold scenario and one per warm scenario into a temporary
# directory. For each scenario wrk runs a WARMUP-second warm-up, then DURATION seconds with
# THREADS threads and CONNECTIONS connections and --latency; every request (all scenarios,
# so the client's own cost is the same everywhere) is built by one Lua script that cycles
# through the scenario's token file (`Authorization: Bearer <token>`): the cold scenarios send
# a different token each request (a verified-token cache miss; `*-nocache`: the same tokens
# to a layer with the cache off), the warm ones the same token (a hit). Cycling through a big
# token file costs the client more than repeating one token, so there are two controls
# without authentication: `none` (one token, compared with the warm scenarios) and
# `none-cold` (the HS256 cold token file, compared with the cold ones). Cache hit/miss counts are read from the server's /stats before and after each run.
# Any non-2xx answer or socket error fails the script. The server is stopped on exit
# (trap), whatever happens. wrk is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
TOKENS=${TOKENS:-65536}
SCENARIOS=${SCENARIOS:-none none-cold hs256-nocache hs256-cold hs256-warm es256-nocache es256-cold es256-warm}
SERVER_THREADS=${SERVER_THREADS:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
RESULTS=${RESULTS:-docs/load-results.md}
CHART=${CHART:-docs/load.svg}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk; then
  if [ "$(id -u)" -ne 0 ] && need sudo; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
need python3 || { echo "python3 is required" >&2; exit 1; }

echo "== building tools/loadtarget (release)"
cargo build --release --example loadtarget
BIN=$TARGET_DIR/release/examples/loadtarget

work=$(mktemp -d)
raw=$TARGET_DIR/load
rm -rf "$raw"
mkdir -p "$raw"
server_pid=
wrk_pid=
cleanup() {
  if [ -n "$wrk_pid" ]; then kill "$wrk_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
server_args=(--port 0 --tokens "$TOKENS" --token-dir "$work/tokens")
[ -n "$SERVER_THREADS" ] && server_args+=(--threads "$SERVER_THREADS")
"$BIN" "${server_args[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 1200); do
  grep -q '^LISTENING ' "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "loadtarget exited:" >&2; cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
url=$(awk '/^LISTENING /{print $2; exit}' "$work/server.out")
[ -n "$url" ] || { echo "loadtarget did not start within 120 s" >&2; exit 1; }
case "$url" in http://127.0.0.1:*) ;; *) echo "unexpected address $url" >&2; exit 1 ;; esac
cat "$work/server.err"
echo "== server at $url"

# Sanity: the layer is really there.
URL=$url TOK="$work/tokens" python3 - <<'PY'
import os, urllib.request, urllib.error
url, tok = os.environ["URL"], os.environ["TOK"]
def status(path, token=None):
    req = urllib.request.Request(url + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
es = open(f"{tok}/es256-warm.txt").readline().strip()
hs = open(f"{tok}/hs256-cold.txt").readline().strip()
checks = [("/none", None, 200), ("/es256-warm", None, 401), ("/es256-warm", es, 200),
          ("/hs256-cold", es, 401), ("/hs256-cold", hs, 200)]
for path, token, want in checks:
    got = status(path, token)
    assert got == want, f"{path} with{'out' if not token else ''} token: {got}, expected {want}"
print("sanity: /none 200; /es256-warm 401 without a token, 200 with; /hs256-cold 401 with an ES256 token")
PY

cat >"$work/tokens.lua" <<'LUA'
-- Cycles through the token file $TOKEN_FILE; thread k of $THREADS sends tokens k, k+T, k+2T, ...
-- (from $START), so every token is used once per pass over the file, whatever the threads.
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end
function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKEN_FILE")) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  step = tonumber(os.getenv("THREADS"))
  i = (tonumber(os.getenv("START") or "0") + id) % #tokens
  headers = {}
end
function request()
  headers["Authorization"] = tokens[i + 1]
  i = (i + step) % #tokens
  return wrk.format("GET", nil, headers)
end
LUA

stats() { curl_py "$url/stats"; }
# wrk, bounded in time, in the background so that a signal reaches the trap at once.
run_wrk() { # OUTPUT SECONDS ARGS...
  local out=$1 secs=$2
  shift 2
  THREADS=$THREADS timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" "$@" >"$out" &
  wrk_pid=$!
  wait "$wrk_pid"
  wrk_pid=
}
curl_py() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }

half=$((TOKENS / 2))
for s in $SCENARIOS; do
  path=$s
  case "$s" in
    none) file=es256-warm.txt ;;
    none-cold) file=hs256-cold.txt path=none ;;
    hs256-cold|hs256-warm|es256-cold|es256-warm) file=$s.txt ;;
    hs256-nocache|es256-nocache) file=${s%-nocache}-cold.txt ;;
    *) echo "unknown scenario $s" >&2; exit 1 ;;
  esac
  echo "== $s: ${WARMUP} s warm-up, then ${DURATION} s, $THREADS threads, $CONNECTIONS connections"
  if [ "$WARMUP" -gt 0 ]; then
    TOKEN_FILE="$work/tokens/$file" START=$half \
      run_wrk /dev/null "$WARMUP" -s "$work/tokens.lua" "$url/$path"
  fi
  stats >"$raw/$s.stats-before.json"
  TOKEN_FILE="$work/tokens/$file" START=0 \
    run_wrk "$raw/$s.wrk" "$DURATION" --latency -s "$work/tokens.lua" "$url/$path"
  cat "$raw/$s.wrk"
  stats >"$raw/$s.stats-after.json"
done

CODE="$(git describe --always --dirty 2>/dev/null || echo unknown)" \
RAW=$raw SCENARIOS="$SCENARIOS" RESULTS=$RESULTS CHART=$CHART DURATION=$DURATION THREADS=$THREADS \
  CONNECTIONS=$CONNECTIONS TOKENS=$TOKENS LOAD_BEFORE="$load_before" SERVER_THREADS="$SERVER_THREADS" \
  WRK_VERSION="$(wrk -v 2>&1 | head -1 | sed 's/ Copyright.*//')" python3 - <<'PY'
import datetime, html, json, os, platform, re

env = os.environ
raw, scenarios = env["RAW"], env["SCENARIOS"].split()
# Label (two lines in the chart) of each scenario.
labels = {
    "none": ("no auth", "1 token"),
    "none-cold": ("no auth", "cold tokens"),
    "hs256-nocache": ("HS256 cold", "cache off"),
    "hs256-cold": ("HS256 cold", "cache on"),
    "hs256-warm": ("HS256 warm", "cache hit"),
    "es256-nocache": ("ES256 cold", "cache off"),
    "es256-cold": ("ES256 cold", "cache on"),
    "es256-warm": ("ES256 warm", "cache hit"),
}
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * unit[m.group(2)]


rows = []
for s in scenarios:
    out = open(f"{raw}/{s}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    pct = {int(p): ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    if non2xx or sock:
        raise SystemExit(f"{s}: errors in the wrk run: {non2xx.group(0) if non2xx else ''} {sock.group(0) if sock else ''}")
    before = json.load(open(f"{raw}/{s}.stats-before.json"))
    after = json.load(open(f"{raw}/{s}.stats-after.json"))
    if s in after and after[s]["capacity"] == 0:
        cache = "off"
    elif s in after:
        hits = after[s]["hits"] - before[s]["hits"]
        misses = after[s]["misses"] - before[s]["misses"]
        cache = f"{100 * hits / max(hits + misses, 1):.1f} % hits"
        if s.endswith("-cold") and hits > 0.05 * max(hits + misses, 1):
            print(f"warning: {s} is not cold ({cache}): raise TOKENS (now {env['TOKENS']})")
    else:
        cache = "(no layer)"
    rows.append(dict(s=s, label=labels[s], rps=rps, total=total, p=pct, cache=cache))

rps_of = {r["s"]: r["rps"] for r in rows}


def control(s):
    """The no-auth run with the same client work: the cold token file for cold scenarios."""
    if s.endswith(("-cold", "-nocache")) and "none-cold" in rps_of:
        return "none-cold"
    return "none" if "none" in rps_of else None


def fmt_ms(v):
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms"


head = ["scenario", "req/s", "vs no auth", "p50", "p90", "p99", "cache", "requests"]
table = [
    [
        f"{r['label'][0]}, {r['label'][1]}",
        f"{r['rps']:,.0f}",
        f"{r['rps'] / rps_of[control(r['s'])]:.2f} ({labels[control(r['s'])][1]})"
        if control(r["s"]) and control(r["s"]) != r["s"] else "",
        fmt_ms(r["p"][50]),
        fmt_ms(r["p"][90]),
        fmt_ms(r["p"][99]),
        r["cache"],
        f"{r['total']:,}",
    ]
    for r in rows
]
w = [max(len(x[i]) for x in table + [head]) for i in range(len(head))]
print()
print("== wrk results")
for line in [head] + table:
    print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(line)))

# The chart: req/s bars, p50/p99 under each bar.
W, H, left, top, bottom = 140 + 110 * len(rows), 440, 80, 50, 110
plot_w, plot_h = W - left - 30, H - top - bottom
peak = max(r["rps"] for r in rows)
step = 10 ** (len(str(int(peak))) - 1)
while peak / step < 4:
    step /= 2
ymax = step * (int(peak * 1.1 / step) + 1)  # headroom for the value labels
bw = plot_w / len(rows)
colors = {"none": "#9e9e9e", "none-cold": "#c4c4c4", "hs256-nocache": "#0b4f85", "hs256-cold": "#1f77b4",
          "hs256-warm": "#7fb3e0", "es256-nocache": "#8c1515", "es256-cold": "#d62728",
          "es256-warm": "#f08a8b"}
svg = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
    'font-family="Helvetica, Arial, sans-serif" font-size="13">',
    f'<rect width="{W}" height="{H}" fill="white"/>',
    f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
    "tower-token-auth under wrk: requests per second (higher is better)</text>",
    f'<text x="{W / 2}" y="42" text-anchor="middle" fill="#555">'
    f"{env['THREADS']} wrk threads, {env['CONNECTIONS']} connections, {env['DURATION']} s per "
    f"scenario, loopback, {os.cpu_count()} CPUs shared by client and server</text>",
]
y = 0
while y <= ymax:
    py = top + plot_h - plot_h * y / ymax
    svg.append(f'<line x1="{left}" y1="{py:.1f}" x2="{left + plot_w}" y2="{py:.1f}" stroke="#e5e5e5"/>')
    svg.append(f'<text x="{left - 8}" y="{py + 4:.1f}" text-anchor="end" fill="#555">{int(y):,}</text>')
    y += step
svg.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>')
for i, r in enumerate(rows):
    h = plot_h * r["rps"] / ymax
    x = left + i * bw + bw * 0.18
    bar_w = bw * 0.64
    cx = x + bar_w / 2
    svg.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
               f'fill="{colors.get(r["s"], "#555")}"/>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h - h - 6:.1f}" text-anchor="middle" '
               f'font-weight="bold">{r["rps"]:,.0f}</text>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 20}" text-anchor="middle">{html.escape(r["label"][0])}</text>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 36}" text-anchor="middle">{html.escape(r["label"][1])}</text>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 58}" text-anchor="middle" fill="#555">'
               f'p50 {fmt_ms(r["p"][50])}</text>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 76}" text-anchor="middle" fill="#555">'
               f'p99 {fmt_ms(r["p"][99])}</text>')
svg.append(f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" '
           'text-anchor="middle" fill="#555">requests / s</text>')
svg.append("</svg>")
os.makedirs(os.path.dirname(env["CHART"]) or ".", exist_ok=True)
with open(env["CHART"], "w") as f:
    f.write("\n".join(svg) + "\n")

cpu = ""
try:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
except OSError:
    pass
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
chart_rel = os.path.relpath(env["CHART"], os.path.dirname(env["RESULTS"]) or ".")
md = [
    "# Load test (wrk)",
    "",
    f"![requests per second per scenario]({chart_rel})",
    "",
    "| " + " | ".join(head) + " |",
    "|" + "---|" * len(head),
] + ["| " + " | ".join(r) + " |" for r in table] + [
    "",
    "## How this was measured",
    "",
    f"- {now}, `scripts/load.sh`, code `{env['CODE']}` (git describe); {cpu or platform.processor()}, {os.cpu_count()} CPUs, "
    f"{platform.system()} {platform.release()}; load average before the run: {env['LOAD_BEFORE']} "
    "(a shared machine: other work ran at the same time, so compare scenarios of one run, not runs).",
    f"- Server: `tools/loadtarget.rs` (release build, axum 0.8, tokio multi-thread runtime, "
    f"{env['SERVER_THREADS'] or 'one worker per CPU'}), on 127.0.0.1, one `TokenAuthLayer` in its "
    "default configuration (verified-token cache on, 4096 slots) per route; every handler answers `200 ok`.",
    f"- Client: {env['WRK_VERSION']}, `wrk -t{env['THREADS']} -c{env['CONNECTIONS']} -d{env['DURATION']}s --latency` "
    "after a short warm-up, on the same machine (client and server share the CPUs). One Lua script "
    "builds every request of every scenario. Cycling through a big token file costs the client more "
    "than repeating one token, so \"vs no auth\" compares the cold scenarios with `/none` driven with "
    "the cold token file and the warm ones with `/none` driven with one token.",
    f"- Cold: {int(env['TOKENS']):,} distinct tokens (distinct `jti`), cycled through, so a token comes "
    "back only after far more other tokens than the cache has slots: every request is a cache miss and "
    "a full validation (signature included). \"Cold, cache off\": the same tokens to a layer with "
    "`cache_capacity(0)`. Warm: one token, every request a cache hit. The `cache` "
    "column is read from the server's counters, before and after each run.",
    "- Latency percentiles are wrk's (closed loop: a slow answer delays the next request, so tails "
    "are understated compared with an open-loop generator).",
    "",
]
with open(env["RESULTS"], "w") as f:
    f.write("\n".join(md))
print()
print(f"written: {env['RESULTS']}, {env['CHART']}; raw wrk outputs in {raw}/")
PY
