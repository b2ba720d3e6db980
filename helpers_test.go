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

// deniedLogins returns the logins of the bed's user (and of its clone, the
// second user of a multi-user rotation) that the server refused, counted
// per account from the server's log: parallel tests do not add to it.
// Compare two calls.
func (b *bed) deniedLogins() int64 {
	b.t.Helper()
	n, err := b.srv.FailedLogins(b.user, b.user+"_clone")
	if errors.Is(err, testdb.ErrExternal) {
		b.t.Skip("counting failed logins per account reads the private server's error log; an external server (" + testdb.EnvRootDSN + ") has none to read")
	}
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

// loadRate is how many queries a load starts per second, all its workers
// together; with db.SetMaxIdleConns(0) each one dials a new connection.
// The loads used to dial flat out, thousands a second on two cores, which
// made the suite CPU-bound and its timing flaky. What a load must prove is
// that new connections meet the window (a rotation, a fault): 200 a second
// puts 50 into any quarter of a second, and each test that asserts 0
// errors through a window also asserts, with meets, that at least
// minMeeting connections were in flight during it.
const loadRate = 200

// minMeeting is how many of a load's connections must be in flight during
// a window (a rotation's steps, a fault) for the test to prove anything.
const minMeeting = 50

// load runs workers goroutines that query db at loadRate queries a second
// in all until stopped, and records when each query began and ended and
// when each error happened. With db.SetMaxIdleConns(0) every query dials a
// new connection. Queries that block (waiting for a password, a fault) hold
// their worker; the others keep starting queries at the rate, so workers
// bounds how many wait at once.
type load struct {
	queries  atomic.Int64
	mu       sync.Mutex
	errs     []timedErr
	spans    []span // the latest maxSpans, a ring
	recorded int
	sink     *errorSink
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type timedErr struct {
	at  time.Time
	err error
}

// span is when one query of a load began and ended.
type span struct{ began, ended time.Time }

// startLoad starts a load of workers goroutines on db, each query bounded
// by 15 s. stop or stopCleanFrom ends it and checks its errors.
func startLoad(db *sql.DB, workers int) *load {
	return runLoad(db, workers, loadRate, 15*time.Second, nil)
}

// dialLoad starts a load of workers goroutines on db, each query bounded by
// timeout, whose errors go to sink (an error of a query cut short by the
// load's end is none). finish ends it.
func dialLoad(db *sql.DB, workers int, timeout time.Duration, sink *errorSink) *load {
	return runLoad(db, workers, loadRate, timeout, sink)
}

// runLoad starts a load of workers goroutines on db that start rate
// queries a second in all (rate 0: each worker back to back, flat out),
// each bounded by timeout; with a sink, errors go there.
func runLoad(db *sql.DB, workers, rate int, timeout time.Duration, sink *errorSink) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, sink: sink}
	tokens := make(chan struct{})
	if rate <= 0 {
		close(tokens) // unpaced: every receive succeeds at once
	} else {
		l.wg.Add(1)
		go l.pace(ctx, rate, tokens)
	}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tokens:
				}
				began := time.Now()
				qctx, qcancel := context.WithTimeout(ctx, timeout)
				var one int
				err := db.QueryRowContext(qctx, "SELECT 1").Scan(&one)
				qcancel()
				ended := time.Now()
				l.mu.Lock()
				l.record(span{began, ended})
				switch {
				case err == nil:
					l.queries.Add(1)
				case sink != nil:
					if ctx.Err() == nil {
						sink.add(err)
					}
				case !errors.Is(err, context.Canceled):
					l.errs = append(l.errs, timedErr{ended, err})
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// maxSpans bounds the queries a load remembers, the latest: enough for
// any window of these tests, and TestSoak's heap does not grow with its
// length.
const maxSpans = 1 << 13

// record remembers s, in place of the oldest once maxSpans are held.
// Callers hold l.mu.
func (l *load) record(s span) {
	if len(l.spans) < maxSpans {
		l.spans = append(l.spans, s)
	} else {
		l.spans[l.recorded%maxSpans] = s
	}
	l.recorded++
}

// pace sends on tokens rate times a second until ctx ends. While every
// worker is busy the ticker drops ticks (its channel holds one), so a load
// never bursts to catch up.
func (l *load) pace(ctx context.Context, rate int, tokens chan<- struct{}) {
	defer l.wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// finish ends the load and returns how many queries succeeded.
func (l *load) finish() int64 {
	l.halt()
	return l.queries.Load()
}

// meeting returns how many of the load's queries were in flight at some
// moment of [from, to]: began before to and ended after from.
func (l *load) meeting(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.spans {
		if s.began.Before(to) && s.ended.After(from) {
			n++
		}
	}
	return n
}

// meetings returns how many queries of loads were in flight at some moment
// of [from, to], all loads together.
func meetings(loads []*load, from, to time.Time) int {
	n := 0
	for _, l := range loads {
		n += l.meeting(from, to)
	}
	return n
}

// meets fails the test unless at least minMeeting of the load's
// connections were in flight during [from, to] (what names the window):
// a window no connection met proves nothing. Call it after the load ended.
func (l *load) meets(t *testing.T, from, to time.Time, what string) {
	t.Helper()
	meet(t, l.meeting(from, to), from, to, what)
}

// meet fails the test unless n, the connections in flight during [from,
// to], is at least minMeeting.
func meet(t *testing.T, n int, from, to time.Time, what string) {
	t.Helper()
	t.Logf("%d connections met %s (%v)", n, what, to.Sub(from).Round(time.Millisecond))
	if n < minMeeting {
		t.Errorf("only %d connections met %s, want at least %d: the window proves nothing", n, what, minMeeting)
	}
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
