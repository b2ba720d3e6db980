#!/usr/bin/env bash
# bench.sh runs the benchmarks of bench_test.go against the real MariaDB that
# internal/testdb starts, then prints:
#   1. benchstat's comparison with the plain go-sql-driver/mysql driver as the
#      base column (every benchmark has driver=plain and driver=rotatingmysql
#      sub-benchmarks, compared with `benchstat -col /driver`);
#   2. a table of ratios rotatingmysql/plain with the issue's targets;
#   3. the counting tests' figures (count_test.go): Secrets Manager calls and
#      failed logins per rotation at 1, 64 and 256 concurrent dialers.
#
# Environment: COUNT (rounds, default 40), BENCHTIME (per benchmark and
# round, default 100ms), RECOVERY_BENCHTIME (default 30x: each iteration sets
# up a rotation with the timer stopped), OUT (raw output, default bench.out),
# BENCH (a -bench regexp: run only those benchmarks, all with BENCHTIME, and
# skip the counting tests; e.g. BENCH=PooledQuery for a longer rerun),
# NICE (e.g. -10 as root: run the benchmarks and the MariaDB server they
# start at that priority, to keep other work on a shared machine out of the
# figures; both drivers run at the same priority).
#
# `go test -count N` would run each sub-benchmark N times in a row, so that a
# burst of load from another process lands on one driver only. Instead each
# benchmark runs COUNT rounds (ROTATINGMYSQL_BENCH_ROUNDS), every round
# running each plain/rotatingmysql pair back to back, in alternating order;
# the ratio table divides the medians and shows the spread of the per-round
# ratios.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO="${GO:-go}"
COUNT="${COUNT:-40}"
BENCHTIME="${BENCHTIME:-100ms}"
RECOVERY_BENCHTIME="${RECOVERY_BENCHTIME:-30x}"
OUT="${OUT:-bench.out}"
NICE="${NICE:-}"
BENCH="${BENCH:-}"
# Pinned: x/perf has no tagged releases.
BENCHSTAT="golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
echo "# machine: $($GO version | sed 's/^go version //'), ${cpu:-unknown CPU}, $(nproc) cores"
echo "# command: COUNT=$COUNT BENCHTIME=$BENCHTIME RECOVERY_BENCHTIME=$RECOVERY_BENCHTIME${NICE:+ NICE=$NICE}${BENCH:+ BENCH=$BENCH} make bench"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"

bin="$(mktemp -d)/rotatingmysql.test"
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" .
run=("$bin")
if [ -n "$NICE" ]; then
	run=(nice -n "$NICE" "$bin")
fi

export ROTATINGMYSQL_BENCH_ROUNDS="$COUNT"
if [ -n "$BENCH" ]; then
	"${run[@]}" -test.run '^$' -test.benchmem -test.timeout 60m \
		-test.bench "$BENCH" -test.benchtime "$BENCHTIME" >"$OUT"
else
	"${run[@]}" -test.run '^$' -test.benchmem -test.timeout 60m \
		-test.bench '^Benchmark(PooledQuery|NewConnection|Connect)$' -test.benchtime "$BENCHTIME" >"$OUT"
	"${run[@]}" -test.run '^$' -test.benchmem -test.timeout 60m \
		-test.bench '^BenchmarkRecovery$' -test.benchtime "$RECOVERY_BENCHTIME" >>"$OUT"
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"

echo
echo "## benchstat -col /driver -ignore /round (base: plain)"
$GO run "$BENCHSTAT" -col '/driver@(plain rotatingmysql)' -ignore /round "$OUT"

echo
echo "## rotatingmysql / plain ($COUNT rounds)"
echo
# benchstat's verdict on sec/op, by benchmark: its CSV has a section per
# unit, each a row naming the unit, then name,plain,CI,rotatingmysql,CI,change,p.
sig="$(dirname "$bin")/significance.csv"
$GO run "$BENCHSTAT" -col '/driver@(plain rotatingmysql)' -ignore /round -format csv "$OUT" 2>/dev/null |
	awk -F, '$2 != "" && $3 == "CI" { unit = $2; next } unit == "sec/op" && $1 != "" && $1 != "geomean" { n = $1; sub(/-[0-9]+$/, "", n); print n "," $6 " (" $7 ")" }' >"$sig"
awk '
	function sort(a, n,    i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	}
	function median(a, n) { sort(a, n); return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
	# quartile q (1 or 3) of a sorted array, nearest rank
	function quartile(a, n, q) { return a[int((n - 1) * q / 4 + 1.5)] }
	function dur(ns) { return ns >= 1e6 ? sprintf("%.3f ms", ns / 1e6) : sprintf("%.2f µs", ns / 1e3) }
	# A ratio under its target that benchstat cannot tell from 1 (~) is
	# reported as such: on a noisy machine it is not a measured loss.
	function vs(min, ratio, verdict) {
		if (ratio >= min) return "≥ " min ": ok"
		return "≥ " min ": " (verdict ~ /^~/ ? "below, not significant" : "MISSED")
	}
	function target(name, ratio, dallocs, verdict) {
		if (name ~ /^PooledQuery\//) return vs(0.99, ratio, verdict)
		if (name ~ /^NewConnection\//) return vs(0.97, ratio, verdict)
		# The login bound (loginTimeout: a deadline on the TCP connect and
		# one on the connection during the handshake) costs about 13
		# allocations a new connection; the query path none.
		if (name == "Connect") return dallocs <= 16 ? sprintf("allocs +%g ≤ 16: ok", dallocs) : sprintf("allocs +%g: MISSED", dallocs)
		return "counts below"
	}
	FNR == NR { i = index($0, ","); verdict[substr($0, 1, i - 1)] = substr($0, i + 1); next }
	/^Benchmark/ && / ns\/op/ {
		name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
		drv = name; sub(/.*driver=/, "", drv); sub(/\/.*/, "", drv)
		rnd = ""; if (match(name, /round=[0-9]+/)) rnd = substr(name, RSTART + 6, RLENGTH - 6) + 0
		gsub(/\/round=[0-9]+/, "", name); gsub(/\/driver=[a-z]+/, "", name)
		if (rnd == "") rnd = ++seen[name, drv]
		for (i = 2; i < NF; i++) {
			if ($(i+1) == "ns/op") ns[name, drv, rnd] = $i
			if ($(i+1) == "allocs/op") allocs[name, drv, rnd] = $i
		}
		if (!(name in known)) { known[name] = 1; order[++names] = name }
		if (rnd > rounds[name]) rounds[name] = rnd
	}
	END {
		print "| benchmark | plain | rotatingmysql | throughput ratio | per-round ratios, middle half | benchstat | allocs/op | target |"
		print "|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= names; i++) {
			k = order[i]; n = 0
			delete r; delete p; delete q; delete pa; delete qa
			for (j = 1; j <= rounds[k]; j++) {
				if (!((k, "plain", j) in ns) || !((k, "rotatingmysql", j) in ns)) continue
				n++
				p[n] = ns[k, "plain", j]; q[n] = ns[k, "rotatingmysql", j]
				r[n] = p[n] / q[n]
				pa[n] = allocs[k, "plain", j]; qa[n] = allocs[k, "rotatingmysql", j]
			}
			if (n == 0) continue
			mp = median(p, n); mq = median(q, n); ma = median(pa, n); mb = median(qa, n)
			ratio = mp / mq
			sort(r, n)
			printf "| %s | %s | %s | %.3f | %.3f–%.3f | %s | %g → %g | %s |\n", k, dur(mp), dur(mq), ratio, quartile(r, n, 1), quartile(r, n, 3), verdict[k], ma, mb, target(k, ratio, mb - ma, verdict[k])
		}
	}' "$sig" "$OUT"
echo
echo "plain, rotatingmysql: median time per operation over the rounds. Throughput ratio: the"
echo "plain median over the rotatingmysql median (1 = as fast as the plain driver; benchstat's"
echo "change is the other way up). Per-round ratios: plain over rotatingmysql within each round,"
echo "the pair run back to back; the middle half of them shows the machine's noise. benchstat: ~"
echo "means no significant difference (p < 0.05 needed)."

if [ -z "$BENCH" ]; then
	echo
	echo "## counts per rotation per process (go test -run ^TestCount -v)"
	$GO test -run '^TestCount' -count 1 -v . | sed -n 's/^.*count: /- /p'
fi
