#!/usr/bin/env bash
# Instructions per request for every variant of benches/overhead.rs, counted by callgrind.
# Instruction counts are stable on a noisy shared machine; times are not.
#
#   scripts/callgrind.sh                              # every variant (about 3 min on 2 cores)
#   VARIANTS='ES256/' scripts/callgrind.sh            # a regex over GROUP/VARIANT names
#   N_SMALL=20 N_LARGE=220 JOBS=2 scripts/callgrind.sh
#   ANNOTATE='ES256/ours_cold HS256/ours_cold' scripts/callgrind.sh   # per-function breakdowns
#
# How: builds tools/callgrind_probe.rs in release (it runs N requests of one variant,
# defined in benches/common/mod.rs like the criterion bench), runs each variant under
# `valgrind --tool=callgrind` with N_SMALL and N_LARGE requests, counting only inside the
# probe's request loop (--toggle-collect), and reports
#   instructions per request = (Ir(N_LARGE) - Ir(N_SMALL)) / (N_LARGE - N_SMALL)
# so set-up and one-time costs cancel out. Every run uses the same tokens (kept in
# target/callgrind-tokens), so the counts repeat exactly from run to run of the same code. Ratios are against the hand-written baseline layer
# of the same algorithm (the rejections against the ES256 baseline), plus the ratio each
# issue target is about. For the ANNOTATE variants, callgrind_annotate's inclusive counts of
# both runs are subtracted the same way, giving instructions per request per function.
#
# Writes target/callgrind/ (raw outputs) and docs/callgrind-results.md (tables).
# Installs valgrind with apt-get when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N_SMALL=${N_SMALL:-20}
N_LARGE=${N_LARGE:-220}
JOBS=${JOBS:-2}
VARIANTS=${VARIANTS:-.}
ANNOTATE=${ANNOTATE-HS256/baseline HS256/ours_cold RS256/ours_cold ES256/ours_cold ES256/ours_miss ES256/router_warm ES256_rejections/warm_expired}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/callgrind
RESULTS=${RESULTS:-docs/callgrind-results.md}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need valgrind || ! need callgrind_annotate; then
  if [ "$(id -u)" -ne 0 ] && need sudo; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi
need python3 || { echo "python3 is required" >&2; exit 1; }

echo "== building tools/callgrind_probe (release)"
# `remote` for the introspection group (opaque tokens); every group runs the same binary.
cargo build --release --example callgrind_probe --features remote
BIN=$TARGET_DIR/release/examples/callgrind_probe
rm -rf "$OUT"
mkdir -p "$OUT"

# One set of tokens for every run, kept between script runs (ES256 signatures are randomized
# and the cost of verifying one depends on it); --prepare signs the missing ones and checks
# every variant once, natively.
export BENCH_TOKEN_DIR=${BENCH_TOKEN_DIR:-$TARGET_DIR/callgrind-tokens}
"$BIN" --prepare

mapfile -t variants < <("$BIN" --list | grep -E -- "$VARIANTS")
[ "${#variants[@]}" -gt 0 ] || { echo "no variant matches VARIANTS=$VARIANTS" >&2; exit 1; }

run_one() { # VARIANT N
  local file="$OUT/${1//\//__}.$2.out"
  if ! timeout 300 valgrind --tool=callgrind --collect-atstart=no \
      --toggle-collect='*callgrind_probe::run_loop*' \
      --callgrind-out-file="$file" "$BIN" "$1" "$2" >"$file.log" 2>&1; then
    echo "callgrind run failed: $1 N=$2 (log: $file.log)" >&2
    tail -20 "$file.log" >&2
    return 1
  fi
}
export -f run_one
export OUT BIN

echo "== ${#variants[@]} variants x N=$N_SMALL and N=$N_LARGE under callgrind ($JOBS at a time)"
start=$SECONDS
printf '%s\n' "${variants[@]}" |
  xargs -P "$JOBS" -I{} bash -c "run_one {} $N_SMALL && run_one {} $N_LARGE"
echo "   done in $((SECONDS - start)) s"

for v in $ANNOTATE; do
  for n in "$N_SMALL" "$N_LARGE"; do
    f="$OUT/${v//\//__}.$n.out"
    if [ -f "$f" ]; then callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$f.annotate" 2>/dev/null; fi
  done
done

CODE="$(git describe --always --dirty 2>/dev/null || echo unknown)" \
OUT="$OUT" N_SMALL="$N_SMALL" N_LARGE="$N_LARGE" ANNOTATE="$ANNOTATE" RESULTS="$RESULTS" \
  VALGRIND="$(valgrind --version)" python3 - "${variants[@]}" <<'PY'
import datetime, os, platform, re, subprocess, sys

out, results = os.environ["OUT"], os.environ["RESULTS"]
n_small, n_large = int(os.environ["N_SMALL"]), int(os.environ["N_LARGE"])
dn = n_large - n_small
variants = sys.argv[1:]


def fname(v, n):
    return f"{out}/{v.replace('/', '__')}.{n}.out"


def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


per = {v: (total(fname(v, n_large)) - total(fname(v, n_small))) / dn for v in variants}


def get(v):
    return per.get(v)


# The ratio each issue target is about.
def target(v):
    group, name = v.split("/")
    if group == "ES256_rejections":
        ref = "accept_warm" if name.startswith("warm_") else "accept_cold"
        if name.startswith("accept_"):
            return "", None
        r = get(f"{group}/{ref}")
        return (f"/ {ref}", per[v] / r) if r else ("", None)
    if name in ("ours_cold", "ours_miss"):
        b = get(f"{group}/baseline")
        return ("/ baseline", per[v] / b) if b else ("", None)
    if name == "router_warm":
        b = get(f"{group}/bare_router")
        return ("/ bare_router", per[v] / b) if b else ("", None)
    if name == "router_layer":
        b = get(f"{group}/bare_router")
        return ("/ bare_router", per[v] / b) if b else ("", None)
    if name == "ours_warm":
        b = get(f"{group}/bare")
        return ("/ bare", per[v] / b) if b else ("", None)
    if group == "dpop" and name == "dpop_warm":
        b = get("dpop/bearer_warm")
        return ("/ bearer_warm", per[v] / b) if b else ("", None)
    if group == "introspection" and name == "opaque_cached":
        b = get("introspection/jwt_warm")
        return ("/ jwt_warm", per[v] / b) if b else ("", None)
    return "", None


def baseline_ratio(v):
    group = v.split("/")[0]
    base = get(("ES256" if group == "ES256_rejections" else group) + "/baseline")
    return per[v] / base if base else None


rows = []
for v in variants:
    what, r = target(v)
    b = baseline_ratio(v)
    rows.append([
        v,
        f"{per[v]:,.0f}",
        f"{b:.3f}" if b is not None else "",
        f"{r:.3f} {what}" if r is not None else "",
    ])
head = ["variant", "instr/request", "vs baseline", "target ratio"]


def show(head, rows):
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = lambda r: "  ".join(
        (str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])) for i, c in enumerate(r)
    )
    print(fmt(head))
    for r in rows:
        print(fmt(r))


def md(head, rows):
    s = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    return s + "".join("| " + " | ".join(str(c) for c in r) + " |\n" for r in rows)


print()
print(f"== instructions per request: (Ir(N={n_large}) - Ir(N={n_small})) / {dn}")
show(head, rows)

# Targets of issues 6 and 12 (Performance II), where the variants needed were measured.
checks = []
def check(label, num, den, limit):
    a, b = get(num), get(den)
    if a is None or b is None:
        return
    r = a / b
    checks.append([label, f"{r:.3f}", f"≤ {limit}", "met" if r <= limit else "missed"])
for alg in ("RS256", "ES256", "EdDSA"):
    check(f"cold {alg}: ours_cold / baseline", f"{alg}/ours_cold", f"{alg}/baseline", 1.0)
    check(f"cold {alg}: ours_miss / baseline", f"{alg}/ours_miss", f"{alg}/baseline", 1.0)
check("cold HS256: ours_cold / baseline", "HS256/ours_cold", "HS256/baseline", 0.50)
check("cold HS256: ours_miss / baseline", "HS256/ours_miss", "HS256/baseline", 0.50)
check("warm ES256: router_warm / bare_router", "ES256/router_warm", "ES256/bare_router", 1.35)
a, b = get("ES256/router_warm"), get("ES256/bare_router")
if a is not None and b is not None:
    checks.append(["warm ES256: router_warm - bare_router (instructions)", f"{a - b:,.0f}",
                   "≤ 2,500", "met" if a - b <= 2500 else "missed"])
c = get("ES256/router_layer")
if a is not None and c is not None:
    checks.append(["warm ES256: router_warm - router_layer (over any axum layer)", f"{a - c:,.0f}",
                   "(≤ 2,500)", "met" if a - c <= 2500 else "missed"])
for name in ("missing", "malformed", "bad_signature", "expired"):
    check(f"rejection {name} / accept_cold", f"ES256_rejections/{name}", "ES256_rejections/accept_cold", 1.0)
for name in ("warm_expired", "warm_revoked"):
    check(f"rejection {name} / accept_warm", f"ES256_rejections/{name}", "ES256_rejections/accept_warm", 1.0)
if checks:
    print()
    print("== issue 6 and 12 targets (instruction counts)")
    show(["target", "ratio", "limit", ""], checks)

# Per-function breakdowns.
line_re = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)\s+\[(.*)\]\s*$")
def annotate(path):
    funcs = {}
    try:
        with open(path + ".annotate") as f:
            for line in f:
                m = line_re.match(line)
                if m:
                    name = m.group(2).split(":", 1)[1] if ":" in m.group(2) else m.group(2)
                    funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    except FileNotFoundError:
        return None
    return funcs

breakdowns = []
for v in os.environ.get("ANNOTATE", "").split():
    if v not in per:
        continue
    small, large = annotate(fname(v, n_small)), annotate(fname(v, n_large))
    if small is None or large is None:
        continue
    diff = {k: (large[k] - small.get(k, 0)) / dn for k in large}
    # Functions that cost at least 0.5 % of the request, without the frames around it (the
    # probe, the runtime) and showing only the outermost of a chain of wrappers that cost the
    # same (within 1 %, for entries above 10 % of the request).
    tot = per[v]
    frame = re.compile(r"^(callgrind_probe::|tokio::runtime::|std::|core::ops::function::|<tower::util::oneshot::)")
    ranked = sorted(((c, k) for k, c in diff.items()
                     if 0.005 * tot <= c < 0.999 * tot and not frame.match(k)), reverse=True)
    top = []
    for c, k in ranked:
        if top and c >= 0.1 * tot and c >= 0.99 * top[-1][0]:
            continue
        top.append((c, k))
    top = top[:30]
    short = lambda k: (k[:110] + "…") if len(k) > 111 else k
    rows_f = [[f"{c:,.0f}", f"{100 * c / tot:.1f} %", short(k)] for c, k in top]
    breakdowns.append((v, tot, rows_f))
    print()
    print(f"== {v}: {tot:,.0f} instructions per request; inclusive per function (≥ 0.5 %)")
    show(["instr/req", "share", "function"], rows_f)

cpu = ""
try:
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
except OSError:
    pass
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
doc = [
    "# Instructions per request (callgrind)",
    "",
    f"Measured {now} on {cpu or platform.processor()} ({os.cpu_count()} CPUs), "
    f"{platform.system()} {platform.release()}, {os.environ['VALGRIND']}, release build "
    f"(aws-lc-rs backend) of `{os.environ['CODE']}` (git describe) by `scripts/callgrind.sh`.",
    "",
    "Each variant of `benches/overhead.rs` (defined in `benches/common/mod.rs`) runs in "
    "`tools/callgrind_probe` under `valgrind --tool=callgrind`, counting only inside the "
    f"request loop, with N = {n_small} and N = {n_large} requests; instructions per request = "
    f"(Ir({n_large}) − Ir({n_small})) / {dn}. Instruction counts do not depend on machine load, "
    "so these ratios are the stable ones; under valgrind the crypto library may pick other "
    "code paths than natively (CPU feature detection), so absolute counts of the signature "
    "part are indicative.",
    "",
    md(head, rows),
]
if checks:
    doc += ["## Targets (issues 6 and 12)", "", md(["target", "ratio", "limit", ""], checks)]
for v, tot, rows_f in breakdowns:
    doc += [
        f"## Where the instructions go: `{v}` ({tot:,.0f} per request)",
        "",
        "Inclusive instructions per request per function (callgrind_annotate, the small run "
        "subtracted from the large one), functions with at least 0.5 % of the request; of a "
        "chain of wrappers with the same cost only the outermost is shown.",
        "",
        md(["instr/req", "share", "function"], [[c, s, f"`{k}`"] for c, s, k in rows_f]),
    ]
os.makedirs(os.path.dirname(results) or ".", exist_ok=True)
with open(results, "w") as f:
    f.write("\n".join(doc))
print()
print(f"tables written to {results}; raw callgrind outputs in {out}/")
PY
