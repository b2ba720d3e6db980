package otelrotatingmysql_test

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/otelrotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// BenchmarkConnect measures a new connection (the fast path: cached
// secret, one login) with no tracer and with this package's, under a
// recording span: what the tracer adds per Connect.
func BenchmarkConnect(b *testing.B) {
	srv := testdb.Require(b)
	user, dbname := srv.TempUser(b, "bench-Otel-pw1")
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sm.Close() })
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	arn, _, err := sm.Store().CreateSecret(testdb.UniqueName("bench"), rotatingmysqltest.SecretJSON(host, port, user, "bench-Otel-pw1", dbname))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	b.Cleanup(func() { tp.Shutdown(ctx) })
	for _, traced := range []bool{false, true} {
		name := "tracer=none"
		opts := []rotatingmysql.Option{rotatingmysql.WithAWSConfig(sm.AWSConfig())}
		if traced {
			name = "tracer=otel"
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { mp.Shutdown(ctx) })
			ot, err := otelrotatingmysql.New(otelrotatingmysql.WithMeterProvider(mp))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { ot.Close() })
			opts = append(opts, rotatingmysql.WithTracer(ot))
		}
		b.Run(name, func(b *testing.B) {
			cfg := rotatingmysql.NewConfig(arn)
			if err := cfg.Apply(opts...); err != nil {
				b.Fatal(err)
			}
			c, err := rotatingmysql.NewConnector(cfg)
			if err != nil {
				b.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			db.SetMaxIdleConns(0)
			sctx, span := tp.Tracer("bench").Start(ctx, "bench")
			defer span.End()
			if err := db.PingContext(sctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := db.PingContext(sctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
