package compat_test

import (
	"context"
	"database/sql"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// bed is one test's world: the real MariaDB, an application account with a
// database of its own, the Secrets Manager emulator holding the account's
// secret (the AWS environment points at it), and a rotator for it.
type bed struct {
	t        *testing.T
	srv      *testdb.Server
	sm       *rotatingmysqltest.SecretsManager
	rot      *rotatingmysqltest.Rotator
	user, db string
	arn      string
	// watched is the connector made by connector(), whose Stats count the
	// refused logins; nil when the tool opens the driver by name.
	watched *rotatingmysql.Connector
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
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	host, portStr, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	arn, _, err := sm.Store().CreateSecret(testdb.UniqueName("compat"), rotatingmysqltest.SecretJSON(host, port, user, password, db))
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{t: t, srv: srv, sm: sm, user: user, db: db, arn: arn}
	b.rot = rotatingmysqltest.NewRotator(sm.Store(), arn, srv.Root(), rotatingmysqltest.SingleUser)
	return b
}

// connector returns a connector on the bed's secret with parseTime on,
// closed when the test ends (Close is idempotent, so a test may close it
// itself first). rotateUnderLoad reads the refused logins from its Stats.
func (b *bed) connector() *rotatingmysql.Connector {
	b.t.Helper()
	cfg := rotatingmysql.NewConfig(b.arn)
	err := cfg.Apply(
		rotatingmysql.WithAWSConfig(b.sm.AWSConfig()),
		rotatingmysql.WithMySQLConfig(func(c *gomysql.Config) error { c.ParseTime = true; return nil }),
	)
	if err != nil {
		b.t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	b.watched = c
	return c
}

// refusals returns how many logins the server has refused: the watched
// connector's count when the test has one, else the server's own count of
// access-denied errors (tests run one at a time).
func (b *bed) refusals() int64 {
	b.t.Helper()
	if b.watched != nil {
		return int64(b.watched.Stats().AuthRefused)
	}
	n, err := b.srv.AccessDeniedErrors(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// opInterval is how often each worker of rotateUnderLoad starts an
// operation: with the pool keeping no idle connection, 4 workers open about
// 200 connections a second, enough to meet a one-second rotation window
// many times without running the machine flat out.
const opInterval = 20 * time.Millisecond

// rotateUnderLoad runs workers goroutines calling work every opInterval
// while a full single-user rotation runs, with window between setSecret and
// finishSecret (the time in which only the new password logs in), and for
// a moment after it. The caller's pool must open new connections during
// the run (SetMaxIdleConns(0)). It fails the test if work returned any
// error, if it never ran, or if no new connection met the window (no login
// refused but the rotation's own): the driver absorbed every refusal.
func (b *bed) rotateUnderLoad(workers int, window time.Duration, work func(ctx context.Context, worker, i int) error) {
	b.t.Helper()
	refused0 := b.refusals()
	// Workers stop between operations, so that no operation is cut short:
	// every error counts, and no span records a cancellation.
	stop := make(chan struct{})
	var ops, fails atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(opInterval)
			defer tick.Stop()
			for i := 0; ; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := work(ctx, w, i)
				cancel()
				if err == nil {
					ops.Add(1)
				} else {
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	b.rot.Pause = window
	err := b.rot.Rotate(context.Background())
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		b.t.Fatalf("rotation: %v", err)
	}
	refused := b.refusals() - refused0
	if b.watched == nil {
		// The rotation's setSecret first tries AWSPENDING, as the AWS
		// template does: one refused login that is not the driver's.
		refused--
	} else if n := b.watched.Stats().GaveUp; n > 0 {
		b.t.Errorf("the connector gave up %d times", n)
	}
	b.t.Logf("during the rotation: %d operations, %d errors; the driver absorbed %d refused logins", ops.Load(), fails.Load(), refused)
	if n := fails.Load(); n > 0 {
		b.t.Errorf("the application saw %d errors (of %d operations); first: %v", n, n+ops.Load(), firstErr.Load())
	}
	if ops.Load() == 0 {
		b.t.Error("no operation ran during the rotation")
	}
	if refused < 1 {
		b.t.Error("no new connection met the rotation window: the test proves nothing")
	}
}

// nothingLeft polls, at most 5 s, until the account has no connection to
// the server and the emulator holds no connection from the SDK's client,
// then checks with goleak that no goroutine is left that the options do
// not ignore (goleak.IgnoreCurrent() taken before the pool was opened).
func (b *bed) nothingLeft(opts ...goleak.Option) {
	b.t.Helper()
	sessions, conns := b.sessions(), b.sm.OpenConnections()
	for deadline := time.Now().Add(5 * time.Second); (sessions > 0 || conns > 0) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		sessions, conns = b.sessions(), b.sm.OpenConnections()
	}
	if sessions > 0 {
		b.t.Errorf("%d connections of the account left open on the server, want 0", sessions)
	}
	if conns > 0 {
		b.t.Errorf("%d connections to the Secrets Manager emulator left open, want 0", conns)
	}
	goleak.VerifyNone(b.t, opts...)
}

// sessions returns the number of the account's connections to the server.
func (b *bed) sessions() int {
	b.t.Helper()
	var n int
	err := b.srv.Root().QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", b.user).Scan(&n)
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// createNamedTable creates table with an auto-increment id, a name and a
// created_at DATETIME(6) that the server fills in (read into a time.Time
// only with parseTime=true).
func createNamedTable(t *testing.T, db interface {
	Exec(query string, args ...any) (sql.Result, error)
}, table string) {
	t.Helper()
	_, err := db.Exec("CREATE TABLE " + table + ` (
		id BIGINT AUTO_INCREMENT PRIMARY KEY,
		name VARCHAR(64) NOT NULL,
		created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`)
	if err != nil {
		t.Fatal(err)
	}
}
