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
	_, db := b.openWithConnector(opts...)
	return db
}

// openWithConnector is b.open that also returns the connector, for Stats.
func (b *bed) openWithConnector(opts ...rotatingmysql.Option) (*rotatingmysql.Connector, *sql.DB) {
	b.t.Helper()
	return openConfig(b.t, rotatingmysql.NewConfig(b.arn), append([]rotatingmysql.Option{rotatingmysql.WithAWSConfig(b.sm.AWSConfig())}, opts...)...)
}

// openConfig applies opts to cfg, makes its connector and opens a sql.DB
// on it, closed when the test ends.
func openConfig(t testing.TB, cfg *rotatingmysql.Config, opts ...rotatingmysql.Option) (*rotatingmysql.Connector, *sql.DB) {
	t.Helper()
	if err := cfg.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return c, db
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

// load runs workers goroutines that query db in a loop until stopped, and
// counts queries and records when each error happened. With
// db.SetMaxIdleConns(0) every query dials a new connection.
type load struct {
	queries atomic.Int64
	mu      sync.Mutex
	errs    []timedErr
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type timedErr struct {
	at  time.Time
	err error
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
				switch {
				case err == nil:
					l.queries.Add(1)
				case !errors.Is(err, context.Canceled):
					l.mu.Lock()
					l.errs = append(l.errs, timedErr{time.Now(), err})
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// halt ends the load and returns every error it met.
func (l *load) halt() []timedErr {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs
}

// since returns the errors of errs that happened at or after from.
func since(errs []timedErr, from time.Time) []timedErr {
	var out []timedErr
	for _, e := range errs {
		if !e.at.Before(from) {
			out = append(out, e)
		}
	}
	return out
}

// stopCleanFrom ends the load and fails the test if it met an error at or
// after from (what names the moment, for the log).
func (l *load) stopCleanFrom(t *testing.T, from time.Time, what string) {
	t.Helper()
	errs := l.halt()
	late := since(errs, from)
	t.Logf("%d queries, %d errors in all, %d from %s", l.queries.Load(), len(errs), len(late), what)
	if len(late) > 0 {
		t.Errorf("%d errors from %s; first: %v", len(late), what, late[0].err)
	}
}

// stop ends the load and fails the test if it met an error or ran no query.
func (l *load) stop(t *testing.T) {
	t.Helper()
	errs := l.halt()
	if n := len(errs); n > 0 {
		t.Errorf("application saw %d query errors (of %d); first: %v", n, int64(n)+l.queries.Load(), errs[0].err)
	}
	if l.queries.Load() == 0 {
		t.Errorf("load ran no query")
	}
	t.Logf("load: %d queries, %d errors", l.queries.Load(), len(errs))
}
