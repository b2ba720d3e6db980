package compat_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func (b *bed) deniedLogins() int64 {
	b.t.Helper()
	n, err := b.srv.AccessDeniedErrors(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// rotateUnderLoad runs workers goroutines calling work in a loop while a
// full single-user rotation runs, with window between setSecret and
// finishSecret (the time in which only the new password logs in), and
// for a moment after it. It fails the test if work returned any error, if
// it never ran, or if no new connection met the window (the server refused
// no login but the rotation's own).
func (b *bed) rotateUnderLoad(workers int, window time.Duration, work func(ctx context.Context, worker, i int) error) {
	b.t.Helper()
	denied0 := b.deniedLogins()
	ctx, cancel := context.WithCancel(context.Background())
	var ops, fails atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				opCtx, opCancel := context.WithTimeout(ctx, 15*time.Second)
				err := work(opCtx, w, i)
				opCancel()
				switch {
				case err == nil:
					ops.Add(1)
				case ctx.Err() != nil:
					// Stopped mid-operation: GORM reports the cancellation
					// joined with a rollback error that does not wrap it.
				default:
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	b.rot.Pause = window
	err := b.rot.Rotate(context.Background())
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if err != nil {
		b.t.Fatalf("rotation: %v", err)
	}
	// The rotation's setSecret first tries AWSPENDING, as the AWS template
	// does: one refused login that is not the driver's.
	refused := b.deniedLogins() - denied0 - 1
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
