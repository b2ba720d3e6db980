package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rotatingmysql/rotatingmysql/otelrotatingmysql"
)

// setupOTel gives the drill's connectors otelrotatingmysql's tracer, its
// metrics read by a ManualReader, and returns what prints them.
func setupOTel(o *options) (print func(io.Writer) error, err error) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t, err := otelrotatingmysql.New(otelrotatingmysql.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	o.tracer = t
	return func(w io.Writer) error {
		defer t.Close()
		ctx := context.Background()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			return err
		}
		writeMetrics(w, rm)
		return mp.Shutdown(ctx)
	}, nil
}

// writeMetrics prints the metrics of otelrotatingmysql's scope, a line per
// data point, in the Prometheus text style: name{key="value",...} value.
func writeMetrics(w io.Writer, rm metricdata.ResourceMetrics) {
	fmt.Fprintln(w, "\nOpenTelemetry metrics exported by otelrotatingmysql (read in the process):")
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelrotatingmysql.ScopeName {
			continue
		}
		var lines []string
		for _, m := range sm.Metrics {
			line := func(attrs attribute.Set, v string) {
				var kv []string
				for _, a := range attrs.ToSlice() {
					kv = append(kv, fmt.Sprintf("%s=%q", a.Key, a.Value.Emit()))
				}
				lines = append(lines, fmt.Sprintf("  %s{%s} %s", m.Name, strings.Join(kv, ","), v))
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					line(p.Attributes, fmt.Sprint(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					line(p.Attributes, fmt.Sprint(p.Value))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					line(p.Attributes, fmt.Sprintf("%.3f", p.Value))
				}
			}
		}
		slices.Sort(lines)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}
