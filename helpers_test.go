package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// TestMain runs the tests against a private MariaDB and then fails the run
// if any goroutine outlives them, with no exception: every source closes
// its connections with the database (TestOpenCloseLeavesNothing).
func TestMain(m *testing.M) { goleak.VerifyTestMain(testdbMain{m}) }

// bed is one test's world: the real MariaDB, an application user with its
// own database, the Secrets Manager emulator holding that user's secret, and
// a rotator for it.
type bed struct {
	t        *testing.T
	srv      *testdb.Server
	sm       *rotatingmysqltest.SecretsManager
	user, db string
	password string
	arn      string
	host     string
	port     int
	rot      *rotatingmysqltest.Rotator
}

func newBed(t *testing.T, password string) *bed {
	t.Helper()
	srv := testdb.Require(t)
	user, db := srv.TempUser(t, password)
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
	b := &bed{t: t, srv: srv, sm: sm, user: user, db: db, password: password, host: host, port: port}
	b.arn, _, err = sm.Store().CreateSecret(testdb.UniqueName("app"), rotatingmysqltest.SecretJSON(host, port, user, password, db))
	if err != nil {
		t.Fatal(err)
	}
	b.rot = rotatingmysqltest.NewRotator(sm.Store(), b.arn, srv.Root(), rotatingmysqltest.SingleUser)
	return b
}

// open returns a sql.DB on the bed's secret through the Go API (the
// program's own aws.Config pointing at the emulator).
func (b *bed) open(opts ...rotatingmysql.Option) *sql.DB {
	b.t.Helper()
	cfg := rotatingmysql.NewConfig(b.arn)
	if err := cfg.Apply(append([]rotatingmysql.Option{rotatingmysql.WithAWSConfig(b.sm.AWSConfig())}, opts...)...); err != nil {
		b.t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	db := sql.OpenDB(c)
	b.t.Cleanup(func() { db.Close() })
	return db
}

// openDSN returns a sql.DB opened the way an application does,
// sql.Open("rotatingmysql", dsn), with the AWS environment pointing at the
// emulator.
func (b *bed) openDSN(dsn string) *sql.DB {
	b.t.Helper()
	for k, v := range b.sm.Env() {
		b.t.Setenv(k, v)
	}
	db, err := sql.Open("rotatingmysql", dsn)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { db.Close() })
	return db
}

func (b *bed) apiCalls() int { return b.sm.Calls("GetSecretValue") }

func (b *bed) deniedLogins() int64 {
	b.t.Helper()
	n, err := b.srv.AccessDeniedErrors(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

func ping(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// load runs workers goroutines that query db in a loop until stop is
// called, and counts queries and errors. With db.SetMaxIdleConns(0) every
// query dials a new connection.
type load struct {
	queries, errors atomic.Int64
	firstErr        atomic.Value
	cancel          context.CancelFunc
	wg              sync.WaitGroup
}

func startLoad(db *sql.DB, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				qctx, qcancel := context.WithTimeout(ctx, 15*time.Second)
				var one int
				err := db.QueryRowContext(qctx, "SELECT 1").Scan(&one)
				qcancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					l.errors.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
				} else if err == nil {
					l.queries.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if n := l.errors.Load(); n > 0 {
		t.Errorf("application saw %d query errors (of %d); first: %v", n, n+l.queries.Load(), l.firstErr.Load())
	}
	if l.queries.Load() == 0 {
		t.Errorf("load ran no query")
	}
	t.Logf("load: %d queries, %d errors", l.queries.Load(), l.errors.Load())
}
