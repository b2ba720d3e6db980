package compat_test

import (
	"context"
	"database/sql"
	"expvar"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The Examples run in `go test` without a network: setUpExample puts the
// test kit's Secrets Manager emulator in front of the MariaDB server that
// TestMain starts and points the AWS environment variables at it. In
// production the secret lives in Secrets Manager and the database in RDS.

// Example_gorm opens GORM on rotatingmysql: the driver by name, the
// secret's ARN as the DSN.
func Example_gorm() {
	stage := setUpExample()
	defer stage.Close()
	secretARN := stage.SecretARN

	// mysql.Open(dsn) would pick the "mysql" driver: name ours instead.
	db, err := gorm.Open(mysql.New(mysql.Config{
		DriverName: "rotatingmysql",
		DSN:        secretARN + "?parseTime=true",
	}), &gorm.Config{
		// Query errors are go-sql-driver/mysql's own, so GORM can
		// translate a duplicate key into gorm.ErrDuplicatedKey.
		TranslateError: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	type Product struct {
		ID        uint
		Code      string `gorm:"size:32;uniqueIndex"`
		CreatedAt time.Time
	}
	if err := db.AutoMigrate(&Product{}); err != nil {
		log.Fatal(err)
	}
	if err := db.Create(&Product{Code: "D42"}).Error; err != nil {
		log.Fatal(err)
	}
	var p Product
	if err := db.First(&p, "code = ?", "D42").Error; err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Code)

	// With options set from code, hand GORM a pool built on a connector:
	//
	//	connector, err := rotatingmysql.NewConnector(cfg)
	//	db, err := gorm.Open(mysql.New(mysql.Config{Conn: sql.OpenDB(connector)}), &gorm.Config{})
	sqlDB, _ := db.DB()
	sqlDB.Close()
	// Output: D42
}

// Example_sqlx opens sqlx on rotatingmysql.
func Example_sqlx() {
	stage := setUpExample()
	defer stage.Close()
	secretARN := stage.SecretARN

	db, err := sqlx.Open("rotatingmysql", secretARN)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var user struct {
		Name string `db:"name"`
	}
	if err := db.Get(&user, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AS name"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(user.Name == stage.User)
	// Output: true
}

// Example_expvar publishes a connector's Stats at /debug/vars with the
// standard library's expvar.
func Example_expvar() {
	cfg := rotatingmysql.NewConfig("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf")
	connector, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	// Read on each request to /debug/vars, served by net/http's
	// DefaultServeMux once the program imports expvar.
	expvar.Publish("rotatingmysql", expvar.Func(func() any { return connector.Stats() }))
}

// statsCollector exports a connector's Stats to Prometheus, read on each
// scrape. The library does not depend on Prometheus: this is the whole
// bridge.
type statsCollector struct {
	c                                     *rotatingmysql.Connector
	fetches, refused, pendingUsed, gaveUp *prometheus.Desc
	staleServed, recovered, fetchErrors   *prometheus.Desc
}

func newStatsCollector(c *rotatingmysql.Connector) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("rotatingmysql_"+name, help, labels, nil)
	}
	return &statsCollector{
		c:           c,
		fetches:     d("fetches_total", "Versions of the secret fetched, by source.", "source"),
		fetchErrors: d("fetch_errors_total", "Fetches of the secret that failed."),
		staleServed: d("stale_served_total", "Failed fetches answered with the last good version."),
		refused:     d("auth_refused_total", "Logins the server refused with 1045."),
		recovered:   d("recovered_total", "Connects that met 1045 and then logged in."),
		pendingUsed: d("pending_used_total", "Switches to an AWSPENDING version."),
		gaveUp:      d("gave_up_total", "Connects that returned a ConnectError."),
	}
}

func (s *statsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }

func (s *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.c.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for source, n := range st.FetchesBySource {
		counter(s.fetches, n, source)
	}
	counter(s.fetchErrors, st.FetchErrors)
	counter(s.staleServed, st.StaleServed)
	counter(s.refused, st.AuthRefused)
	counter(s.recovered, st.Recovered)
	counter(s.pendingUsed, st.PendingUsed)
	counter(s.gaveUp, st.GaveUp)
}

// Example_prometheus registers a collector that reads Stats on each scrape.
func Example_prometheus() {
	stage := setUpExample()
	defer stage.Close()
	connector := stage.Connector()
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}

	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	reg.MustRegister(newStatsCollector(connector))

	// What a scrape of promhttp.HandlerFor(reg, ...) reports:
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			label := ""
			for _, l := range m.GetLabel() {
				label = fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			fmt.Printf("%s%s %v\n", f.GetName(), label, m.GetCounter().GetValue())
		}
	}
	// Output:
	// rotatingmysql_auth_refused_total 0
	// rotatingmysql_fetch_errors_total 0
	// rotatingmysql_fetches_total{source="secretsmanager"} 1
	// rotatingmysql_gave_up_total 0
	// rotatingmysql_pending_used_total 0
	// rotatingmysql_recovered_total 0
	// rotatingmysql_stale_served_total 0
}

// Example_openTelemetry observes Stats with OpenTelemetry asynchronous
// counters, read at each collection.
func Example_openTelemetry() {
	stage := setUpExample()
	defer stage.Close()
	connector := stage.Connector()
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}

	// In a program: meter := otel.Meter("rotatingmysql"), with the
	// exporter of your choice behind the global MeterProvider.
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("rotatingmysql")

	refused, _ := meter.Int64ObservableCounter("rotatingmysql.auth_refused", metric.WithDescription("Logins the server refused with 1045."))
	pending, _ := meter.Int64ObservableCounter("rotatingmysql.pending_used", metric.WithDescription("Switches to an AWSPENDING version."))
	gaveUp, _ := meter.Int64ObservableCounter("rotatingmysql.gave_up", metric.WithDescription("Connects that returned a ConnectError."))
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := connector.Stats()
		o.ObserveInt64(refused, int64(s.AuthRefused))
		o.ObserveInt64(pending, int64(s.PendingUsed))
		o.ObserveInt64(gaveUp, int64(s.GaveUp))
		return nil
	}, refused, pending, gaveUp)
	if err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				lines = append(lines, fmt.Sprintf("%s %d", m.Name, p.Value))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// rotatingmysql.auth_refused 0
	// rotatingmysql.gave_up 0
	// rotatingmysql.pending_used 0
}

// exampleStage is the world the Examples run in; see setUpExample.
type exampleStage struct {
	SecretARN string
	User      string

	srv *testdb.Server
	db  string
	sm  *rotatingmysqltest.SecretsManager
	env map[string]*string // the variables' values before setUpExample
}

// setUpExample creates an account with its own database on the server
// TestMain started, stores its secret in the emulator, and points the AWS
// environment variables at the emulator until Close. Examples run one at a
// time, after the tests, so setting the environment is safe.
func setUpExample() *exampleStage {
	srv, err := testdb.Shared()
	if err != nil {
		log.Fatalf("the Examples need the MariaDB server that TestMain starts: %v", err)
	}
	s := &exampleStage{srv: srv, User: testdb.UniqueName("ex"), db: testdb.UniqueName("exdb"), env: map[string]*string{}}
	password := "example-Password-1"
	if err := srv.CreateUser(context.Background(), s.User, password, s.db); err != nil {
		log.Fatal(err)
	}
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		log.Fatal(err)
	}
	s.sm = sm
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	if s.SecretARN, _, err = sm.Store().CreateSecret(testdb.UniqueName("example"), rotatingmysqltest.SecretJSON(host, port, s.User, password, s.db)); err != nil {
		log.Fatal(err)
	}
	for k, v := range sm.Env() {
		if old, ok := os.LookupEnv(k); ok {
			s.env[k] = &old
		} else {
			s.env[k] = nil
		}
		os.Setenv(k, v)
	}
	return s
}

// Connector returns a connector on the example's secret.
func (s *exampleStage) Connector() *rotatingmysql.Connector {
	cfg := rotatingmysql.NewConfig(s.SecretARN)
	if err := cfg.Apply(rotatingmysql.WithAWSConfig(s.sm.AWSConfig())); err != nil {
		log.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// Close restores the environment and removes what setUpExample made.
func (s *exampleStage) Close() {
	for k, v := range s.env {
		if v == nil {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, *v)
		}
	}
	s.sm.Close()
	ctx := context.Background()
	if err := s.srv.DropUser(ctx, s.User); err != nil {
		log.Print(err)
	}
	if err := s.srv.DropDatabase(ctx, s.db); err != nil {
		log.Print(err)
	}
}
