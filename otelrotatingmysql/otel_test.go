package otelrotatingmysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/otelrotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// TestRotationReported runs a rotation step by step against the real
// MariaDB, with the Secrets Manager emulator, and checks what reached
// OpenTelemetry: the span events on each Connect's span, and metrics that
// match the connector's own Stats.
func TestRotationReported(t *testing.T) {
	ctx := context.Background()
	srv := testdb.Require(t)
	password := "otel-Initial-pw1"
	user, dbname := srv.TempUser(t, password)
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	host, portStr, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	arn, _, err := sm.Store().CreateSecret(testdb.UniqueName("otel"), rotatingmysqltest.SecretJSON(host, port, user, password, dbname))
	if err != nil {
		t.Fatal(err)
	}
	rot := rotatingmysqltest.NewRotator(sm.Store(), arn, srv.Root(), rotatingmysqltest.SingleUser)

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(ctx) })
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { tp.Shutdown(ctx) })
	ot, err := otelrotatingmysql.New(otelrotatingmysql.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ot.Close() })

	cfg := rotatingmysql.NewConfig(arn)
	if err := cfg.Apply(rotatingmysql.WithAWSConfig(sm.AWSConfig()), rotatingmysql.WithTracer(ot)); err != nil {
		t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0) // every Ping dials

	// ping pings under a span of its own and returns the span's events.
	ping := func(name string, wantErr bool) []sdktrace.Event {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		pctx, span := tp.Tracer("test").Start(pctx, name)
		err := db.PingContext(pctx)
		span.End()
		if (err != nil) != wantErr {
			t.Fatalf("%s: Ping: %v", name, err)
		}
		ended := spans.Ended()
		return ended[len(ended)-1].Events()
	}

	// 1. An ordinary first Connect: a fetch, no event but the fetch's.
	if ev := ping("first", false); len(ev) != 1 || ev[0].Name != "rotatingmysql.fetch" {
		t.Errorf("first Connect: events %v, want only the first fetch", names(ev))
	}

	// 2. The rotation window: the database has the new password.
	time.Sleep(credsource.DefaultMinRefreshInterval) // a forced refresh fetches
	if err := errors.Join(rot.CreateSecret(ctx), rot.SetSecret(ctx), rot.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	pending, err := sm.Store().GetSecretValue(arn, "", rotatingmysqltest.StagePending)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Password string }
	if err := json.Unmarshal([]byte(pending.SecretString), &doc); err != nil {
		t.Fatal(err)
	}
	passwords := []string{password, doc.Password}
	ev := ping("window", false)
	// Refused, then one fetch (AWSPENDING holds the new password), its
	// login and the switch.
	want := []string{"rotatingmysql.login", "rotatingmysql.fetch", "rotatingmysql.login", "rotatingmysql.switch"}
	if got := names(ev); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Connect in the window: events %v, want %v", got, want)
	}
	checkAttrs(t, ev[0], map[attribute.Key]string{otelrotatingmysql.AttrOutcome: "refused", otelrotatingmysql.AttrStage: "AWSCURRENT",
		otelrotatingmysql.AttrErrorNumber: "1045", otelrotatingmysql.AttrUser: user})
	checkAttrs(t, ev[1], map[attribute.Key]string{otelrotatingmysql.AttrStage: "AWSPENDING"})
	checkAttrs(t, ev[2], map[attribute.Key]string{otelrotatingmysql.AttrOutcome: "accepted", otelrotatingmysql.AttrStage: "AWSPENDING",
		otelrotatingmysql.AttrVersionID: pending.VersionID})
	checkAttrs(t, ev[3], map[attribute.Key]string{otelrotatingmysql.AttrStage: "AWSPENDING", otelrotatingmysql.AttrVersionID: pending.VersionID})
	if _, ok := attr(ev[0], otelrotatingmysql.AttrHoldUntil); !ok {
		t.Errorf("refused login event has no %s", otelrotatingmysql.AttrHoldUntil)
	}

	// 3. The password changed behind the secret's back: a give-up.
	if err := rot.FinishSecret(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(credsource.DefaultMinRefreshInterval)
	broken := "broken-Otel-pw3"
	passwords = append(passwords, broken)
	if err := srv.SetPassword(ctx, user, broken); err != nil {
		t.Fatal(err)
	}
	ev = ping("broken", true)
	if got := names(ev); len(got) == 0 || got[len(got)-1] != "rotatingmysql.give_up" || !contains(got, "rotatingmysql.login") {
		t.Errorf("Connect with a wrong password everywhere: events %v, want refused logins then a give-up", got)
	}

	// The metrics match the connector's own counts.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	sums := sumsOf(t, rm)
	if n := sums.get(otelrotatingmysql.MetricLogins, otelrotatingmysql.AttrOutcome, "refused"); n < 1 || n != int64(st.AuthRefused) {
		t.Errorf("%s{outcome=refused} = %d, want Stats.AuthRefused = %d (at least 1)", otelrotatingmysql.MetricLogins, n, st.AuthRefused)
	}
	if n := sums.get(otelrotatingmysql.MetricLogins, otelrotatingmysql.AttrOutcome, "accepted", otelrotatingmysql.AttrStage, "AWSPENDING"); n != 1 {
		t.Errorf("%s{outcome=accepted,stage=AWSPENDING} = %d, want 1", otelrotatingmysql.MetricLogins, n)
	}
	if n := sums.get(otelrotatingmysql.MetricSwitches, otelrotatingmysql.AttrStage, "AWSPENDING"); n != 1 || n != int64(st.PendingUsed) {
		t.Errorf("%s{stage=AWSPENDING} = %d, want 1 = Stats.PendingUsed (%d)", otelrotatingmysql.MetricSwitches, n, st.PendingUsed)
	}
	if n := sums.get(otelrotatingmysql.MetricSwitches); n != 1 {
		t.Errorf("%s = %d, want 1 (the first login is not a switch)", otelrotatingmysql.MetricSwitches, n)
	}
	if n := sums.get(otelrotatingmysql.MetricGiveUps); n != 1 || n != int64(st.GaveUp) {
		t.Errorf("%s = %d, want 1 = Stats.GaveUp (%d)", otelrotatingmysql.MetricGiveUps, n, st.GaveUp)
	}
	// AWSCURRENT: the first fetch and at least one in the give-up (after
	// AWSPENDING's not-found answer); AWSPENDING: the window's and at
	// least one in the give-up. (A refresh the cache answers from a fetch under way or
	// just made counts too: more than the source's own count is fine.)
	cur := sums.get(otelrotatingmysql.MetricFetches, otelrotatingmysql.AttrStage, "AWSCURRENT", otelrotatingmysql.AttrFetchResult, "ok")
	pend := sums.get(otelrotatingmysql.MetricFetches, otelrotatingmysql.AttrStage, "AWSPENDING")
	if cur < 2 || pend < 2 {
		t.Errorf("%s: AWSCURRENT ok %d, AWSPENDING %d; want at least 2 and 2 (the source made %v)", otelrotatingmysql.MetricFetches, cur, pend, st.Fetches)
	}
	if n := sums.get(otelrotatingmysql.MetricFetches, otelrotatingmysql.AttrStage, "AWSPENDING", otelrotatingmysql.AttrFetchResult, "not_found"); n < 1 {
		t.Errorf("%s{stage=AWSPENDING,result=not_found} = %d, want at least 1 (after finishSecret)", otelrotatingmysql.MetricFetches, n)
	}
	if n := sums.gauge(otelrotatingmysql.MetricHoldsActive); n < 1 {
		t.Errorf("%s = %v after the give-up, want at least 1", otelrotatingmysql.MetricHoldsActive, n)
	}
	for _, m := range []string{otelrotatingmysql.MetricFetchAge, otelrotatingmysql.MetricLoginAge} {
		if v := sums.gauge(m); v < 0 || v > 600 || math.IsNaN(v) {
			t.Errorf("%s = %v, want the seconds since (at most minutes)", m, v)
		}
	}

	// No metric label holds the user or a password; every one holds the
	// secret id.
	for _, p := range sums.points {
		if _, ok := p.attrs.Value(otelrotatingmysql.AttrSecretID); !ok {
			t.Errorf("%s: a point without %s", p.metric, otelrotatingmysql.AttrSecretID)
		}
		for _, kv := range p.attrs.ToSlice() {
			v := kv.Value.Emit()
			if v == user || contains(passwords, v) || kv.Key == otelrotatingmysql.AttrUser {
				t.Errorf("%s: label %s=%q holds a user name or a password", p.metric, kv.Key, v)
			}
		}
	}
	// No span event holds a password.
	for _, s := range spans.Ended() {
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				for _, pw := range passwords {
					if strings.Contains(kv.Value.Emit(), pw) {
						t.Errorf("event %s: %s holds a password", e.Name, kv.Key)
					}
				}
			}
		}
	}
}

func names(ev []sdktrace.Event) []string {
	var n []string
	for _, e := range ev {
		n = append(n, e.Name)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func attr(e sdktrace.Event, k attribute.Key) (string, bool) {
	for _, kv := range e.Attributes {
		if kv.Key == k {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

func checkAttrs(t *testing.T, e sdktrace.Event, want map[attribute.Key]string) {
	t.Helper()
	for k, v := range want {
		if got, _ := attr(e, k); got != v {
			t.Errorf("event %s: %s = %q, want %q", e.Name, k, got, v)
		}
	}
}

// point is one data point of a collected metric.
type point struct {
	metric string
	attrs  attribute.Set
	value  float64
}

type collected struct{ points []point }

func sumsOf(t *testing.T, rm metricdata.ResourceMetrics) collected {
	t.Helper()
	var c collected
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelrotatingmysql.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					c.points = append(c.points, point{m.Name, p.Attributes, float64(p.Value)})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					c.points = append(c.points, point{m.Name, p.Attributes, float64(p.Value)})
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					c.points = append(c.points, point{m.Name, p.Attributes, p.Value})
				}
			default:
				t.Errorf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return c
}

// get sums the points of metric whose attributes match the key/value
// pairs given.
func (c collected) get(metric string, kv ...any) int64 {
	return int64(c.sum(metric, kv...))
}

func (c collected) gauge(metric string) float64 { return c.sum(metric) }

func (c collected) sum(metric string, kv ...any) float64 {
	var n float64
next:
	for _, p := range c.points {
		if p.metric != metric {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if v, ok := p.attrs.Value(kv[i].(attribute.Key)); !ok || v.Emit() != kv[i+1].(string) {
				continue next
			}
		}
		n += p.value
	}
	return n
}
