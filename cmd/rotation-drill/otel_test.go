package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestOTelMetrics runs the short default drill with -otel and checks that
// the report ends with the metrics otelrotatingmysql exported: every
// metric name, refused logins absorbed (more than zero), a switch to
// AWSPENDING, and no user name as a label.
func TestOTelMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-duration", "2s", "-window", "500ms", "-q", "-otel"}, &stdout, &stderr); code != exitPass {
		t.Fatalf("exit status %d, want %d\nstderr:\n%s\nstdout:\n%s", code, exitPass, stderr.String(), stdout.String())
	}
	out := stdout.String()
	_, metrics, ok := strings.Cut(out, "OpenTelemetry metrics exported by otelrotatingmysql")
	if !ok {
		t.Fatalf("-otel printed no metrics:\n%s", out)
	}
	for _, name := range []string{"rotatingmysql.fetches{", "rotatingmysql.logins{", "rotatingmysql.switches{",
		"rotatingmysql.holds.active{", "rotatingmysql.fetch.age{", "rotatingmysql.login.age{"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("-otel output has no %s...}:\n%s", name, metrics)
		}
	}
	if n := metricValue(t, metrics, "rotatingmysql.logins", `rotatingmysql.login.outcome="refused"`); n <= 0 {
		t.Errorf("rotatingmysql.logins{outcome=refused} = %v, want > 0:\n%s", n, metrics)
	}
	if n := metricValue(t, metrics, "rotatingmysql.switches", `rotatingmysql.secret.stage="AWSPENDING"`); n <= 0 {
		t.Errorf("rotatingmysql.switches{stage=AWSPENDING} = %v, want > 0:\n%s", n, metrics)
	}
	if strings.Contains(metrics, "db.user") {
		t.Errorf("a metric has the user name as a label:\n%s", metrics)
	}
}

// metricValue sums the values of the lines of metric whose labels hold
// label.
func metricValue(t *testing.T, out, metric, label string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(metric) + `\{(.*)\} (\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if !strings.Contains(m[1], label) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("%s: value %q: %v", metric, m[2], err)
		}
		sum += v
	}
	return sum
}
