package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	xsam "github.com/XSAM/otelsql"
	uptrace "github.com/uptrace/opentelemetry-go-extra/otelsql"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql"
)

// telemetry is an OpenTelemetry SDK that keeps what it records in memory:
// the ended spans in a recorder, the metrics for a manual read.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
}

func newTelemetry() *telemetry {
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	return tel
}

// check fails the test unless the tool recorded a span named span and the
// metric named metric, and unless no span recorded an error: the refused
// logins the driver absorbed stay inside its Connect, out of the traces.
func (tel *telemetry) check(t *testing.T, span, metric string) {
	t.Helper()
	ended := tel.spans.Ended()
	var names []string
	failed := 0
	for _, s := range ended {
		if !slices.Contains(names, s.Name()) {
			names = append(names, s.Name())
		}
		if s.Status().Code == codes.Error {
			failed++
			if failed == 1 {
				t.Errorf("span %s recorded an error: %s", s.Name(), s.Status().Description)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d spans recorded an error, want 0", failed, len(ended))
	}
	if !slices.Contains(names, span) {
		t.Errorf("no span named %q among %d spans (names: %v)", span, len(ended), names)
	}
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var metrics []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			metrics = append(metrics, m.Name)
		}
	}
	if !slices.Contains(metrics, metric) {
		t.Errorf("no metric named %q (metrics: %v)", metric, metrics)
	}
	t.Logf("%d spans (%v), metrics %v", len(ended), names, metrics)
}

// eventsWork creates a table in db and returns the operation the tests
// that drive a *sql.DB run through the rotation: an insert, and a read of
// the row back with its DATETIME column (which needs parseTime).
func eventsWork(t *testing.T, db *sql.DB) func(ctx context.Context, w, i int) error {
	t.Helper()
	createNamedTable(t, db, "events")
	return func(ctx context.Context, w, i int) error {
		name := fmt.Sprintf("w%d-%d", w, i)
		res, err := db.ExecContext(ctx, "INSERT INTO events (name) VALUES (?)", name)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		var got string
		var at time.Time
		if err := db.QueryRowContext(ctx, "SELECT name, created_at FROM events WHERE id = ?", id).Scan(&got, &at); err != nil {
			return err
		}
		if got != name || at.IsZero() {
			return fmt.Errorf("read back %q at %v, wrote %q", got, at, name)
		}
		return nil
	}
}

// TestXSAMOtelsqlThroughRotation wraps the driver with github.com/XSAM/otelsql
// in its three forms, runs a rotation under load, and checks that spans and
// metrics come out, that no span recorded an error, and that db.Close
// closes the connector (otelsql forwards io.Closer): nothing of the
// driver's is left.
func TestXSAMOtelsqlThroughRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, b *bed, opts ...xsam.Option) *sql.DB
	}{
		{
			// Register wraps the driver under a new name; it opens the
			// driver with an empty DSN to find it.
			name: "Register",
			open: func(t *testing.T, b *bed, opts ...xsam.Option) *sql.DB {
				name, err := xsam.Register(rotatingmysql.DriverName, opts...)
				if err != nil {
					t.Fatalf("otelsql.Register: %v", err)
				}
				db, err := sql.Open(name, b.arn+"?parseTime=true")
				if err != nil {
					t.Fatal(err)
				}
				return db
			},
		},
		{
			name: "Open",
			open: func(t *testing.T, b *bed, opts ...xsam.Option) *sql.DB {
				db, err := xsam.Open(rotatingmysql.DriverName, b.arn+"?parseTime=true", opts...)
				if err != nil {
					t.Fatalf("otelsql.Open: %v", err)
				}
				return db
			},
		},
		{
			name: "OpenDB",
			open: func(t *testing.T, b *bed, opts ...xsam.Option) *sql.DB {
				return xsam.OpenDB(b.connector(), opts...)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, "xsam-Initial-pw1")
			tel := newTelemetry()
			before := goleak.IgnoreCurrent()
			db := tc.open(t, b,
				xsam.WithTracerProvider(tel.tp),
				xsam.WithMeterProvider(tel.mp),
				// database/sql's driver.ErrSkip is a signal, not a failure.
				xsam.WithSpanOptions(xsam.SpanOptions{DisableErrSkip: true}),
			)
			defer db.Close()
			db.SetMaxIdleConns(0) // every statement dials: each meets the rotation

			b.rotateUnderLoad(4, time.Second, eventsWork(t, db))
			tel.check(t, string(xsam.MethodConnectorConnect), "db.client.operation.duration")

			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			b.nothingLeft(before)
		})
	}
}

// TestUptraceOtelsqlThroughRotation wraps a connector with
// github.com/uptrace/opentelemetry-go-extra/otelsql's OpenDB, runs a
// rotation under load, and checks that spans and metrics come out. Its
// connector does not forward io.Closer, so db.Close leaves our connector
// open (the SDK client's connection to Secrets Manager stays): the
// application closes the connector itself, after which nothing of the
// driver's is left.
func TestUptraceOtelsqlThroughRotation(t *testing.T) {
	b := newBed(t, "uptrace-Initial-pw1")
	tel := newTelemetry()
	before := goleak.IgnoreCurrent()
	connector := b.connector()
	db := uptrace.OpenDB(connector, uptrace.WithTracerProvider(tel.tp), uptrace.WithMeterProvider(tel.mp))
	defer db.Close()
	db.SetMaxIdleConns(0) // every statement dials: each meets the rotation

	b.rotateUnderLoad(4, time.Second, eventsWork(t, db))
	tel.check(t, "db.Connect", "go.sql.query_timing")

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.sm.OpenConnections(); n == 0 {
		t.Error("after db.Close the connector's client holds no connection to Secrets Manager: the test cannot show that Close is needed")
	}
	if err := connector.Close(); err != nil {
		t.Fatal(err)
	}
	b.nothingLeft(before)
}
