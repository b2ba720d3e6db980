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
# Environment: COUNT (rounds, default 20), BENCHTIME (per benchmark and
# round, default 200ms), RECOVERY_BENCHTIME (default 50x: each iteration sets
# up a rotation with the timer stopped), OUT (raw output, default bench.out).
#
# `go test -count N` would run each sub-benchmark N times in a row, so that a
# burst of load from another process lands on one driver only. Instead the
# test binary runs COUNT times, each run doing every plain/rotatingmysql
# pair back to back, in alternating order (ROTATINGMYSQL_BENCH_REVERSE).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO="${GO:-go}"
COUNT="${COUNT:-20}"
BENCHTIME="${BENCHTIME:-200ms}"
RECOVERY_BENCHTIME="${RECOVERY_BENCHTIME:-50x}"
OUT="${OUT:-bench.out}"
# Pinned: x/perf has no tagged releases.
BENCHSTAT="golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
COL='/driver@(plain rotatingmysql)'

cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
echo "# machine: $($GO version | sed 's/^go version //'), ${cpu:-unknown CPU}, $(nproc) cores"
echo "# command: COUNT=$COUNT BENCHTIME=$BENCHTIME RECOVERY_BENCHTIME=$RECOVERY_BENCHTIME make bench"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo

bin="$(mktemp -d)/rotatingmysql.test"
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" .

: >"$OUT"
for round in $(seq 1 "$COUNT"); do
	reverse=$((round % 2 == 0 ? 1 : 0))
	echo "# round $round of $COUNT (rotatingmysql first: $reverse)"
	ROTATINGMYSQL_BENCH_REVERSE=$reverse "$bin" -test.run '^$' -test.benchmem \
		-test.bench '^Benchmark(PooledQuery|NewConnection|Connect)$' -test.benchtime "$BENCHTIME" >>"$OUT"
	ROTATINGMYSQL_BENCH_REVERSE=$reverse "$bin" -test.run '^$' -test.benchmem \
		-test.bench '^BenchmarkRecovery$' -test.benchtime "$RECOVERY_BENCHTIME" >>"$OUT"
done

echo
echo "## benchstat -col /driver (base: plain)"
$GO run "$BENCHSTAT" -col "$COL" "$OUT"

echo
echo "## rotatingmysql / plain (medians of $COUNT rounds)"
echo
# benchstat's CSV holds one section per unit: a header row naming the
# columns (plain, rotatingmysql), a row naming the units, then one row per
# benchmark: name, plain, CI, rotatingmysql, CI, change, p.
$GO run "$BENCHSTAT" -col "$COL" -format csv "$OUT" 2>/dev/null | awk -F, '
	$2 == "sec/op" || $2 == "allocs/op" || $2 == "B/op" { unit = $2; next }
	$1 == "" || $1 == "geomean" { next }
	{
		name = $1; sub(/-[0-9]+$/, "", name)
		if (!(name in seen)) { seen[name] = 1; order[++n] = name }
		plain[name, unit] = $2; rot[name, unit] = $4
		if (unit == "sec/op") { change[name] = $6; p[name] = $7 }
	}
	function dur(s) {
		if (s >= 1e-3) return sprintf("%.3f ms", s * 1e3)
		return sprintf("%.2f µs", s * 1e6)
	}
	function target(name, ratio, dallocs) {
		if (name ~ /^PooledQuery\//) return ratio >= 0.99 ? "≥ 0.99 ok" : "≥ 0.99 MISSED"
		if (name ~ /^NewConnection\//) return ratio >= 0.97 ? "≥ 0.97 ok" : "≥ 0.97 MISSED"
		if (name == "Connect") return dallocs < 10 ? "allocs +" dallocs " < 10 ok" : "allocs +" dallocs " ≥ 10 MISSED"
		return "(counts: see below)"
	}
	END {
		print "| benchmark | plain | rotatingmysql | throughput ratio | benchstat change | allocs/op plain → rotatingmysql | target |"
		print "|---|---|---|---|---|---|---|"
		for (i = 1; i <= n; i++) {
			k = order[i]
			ps = plain[k, "sec/op"]; rs = rot[k, "sec/op"]
			if (ps == "" || rs == "") continue
			ratio = ps / rs
			pa = plain[k, "allocs/op"]; ra = rot[k, "allocs/op"]
			printf "| %s | %s | %s | %.3f | %s (%s) | %s → %s | %s |\n", k, dur(ps), dur(rs), ratio, change[k], p[k], pa, ra, target(k, ratio, ra - pa)
		}
	}'
echo
echo "throughput ratio = plain sec/op ÷ rotatingmysql sec/op (1 = as fast as the plain driver)."
echo "benchstat change: ~ means no significant difference at p < 0.05."

echo
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo
echo "## counts per rotation per process (go test -run ^TestCount -v)"
$GO test -run '^TestCount' -count 1 -v . | sed -n 's/^.*count: /- /p'
