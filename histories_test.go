package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The histories around a rotation, on the real MariaDB: what the ledger's
// model test (internal/ledger) generates by the thousand, played here
// once each against the server, with the holds shortened through the
// configuration (refusedHold, ttl), never faked.

// pingUntil pings db every 250 ms until a Ping succeeds or the deadline
// passes, and returns when the first success ended and how many Pings it
// took, that one included.
func pingUntil(t *testing.T, db *sql.DB, deadline time.Time) (time.Time, int, error) {
	t.Helper()
	var last error
	for n := 1; time.Now().Before(deadline); n++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		last = db.PingContext(ctx)
		cancel()
		if last == nil {
			return time.Now(), n, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Time{}, 0, fmt.Errorf("no Ping succeeded; last error: %w", last)
}

// TestHistoryColdStartOutage: a *sql.DB opened while Secrets Manager is
// down (500s, throttling, refused connections) connects within 2 s after
// the service is back, pinged every 250 ms: a failed first fetch is not
// remembered (it used to be, for the whole TTL).
func TestHistoryColdStartOutage(t *testing.T) {
	t.Parallel()
	for _, fc := range smFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "cold-Start-pw")
			fc.inject(b)
			db := b.open()
			outage := 2 * time.Second
			failedPings := 0
			for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := db.PingContext(ctx)
				cancel()
				if err == nil {
					t.Fatal("Ping succeeded during the outage")
				}
				failedPings++
			}
			fc.clear(b)
			back := time.Now()
			ok, pings, err := pingUntil(t, db, back.Add(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d failed pings during the outage; connected %v and %d pings after the service came back",
				fc.name, failedPings, ok.Sub(back).Round(time.Millisecond), pings)
			if ok.Sub(back) > 2*time.Second {
				t.Errorf("connected %v after the service came back, want within 2s", ok.Sub(back))
			}
		})
	}
}

// TestHistoryNotFoundKeepsServing: a ResourceNotFound answer to a refresh
// in mid-life does not erase the version that works: new connections keep
// logging in with it while the TTL expires again and again.
func TestHistoryNotFoundKeepsServing(t *testing.T) {
	t.Parallel()
	b := newBed(t, "not-Found-pw")
	c, db := b.openWithConnector(rotatingmysql.WithTTL(100 * time.Millisecond))
	db.SetMaxIdleConns(0)
	ping(t, db)
	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ResourceNotFoundException", Status: 400})
	defer b.sm.ClearFaults()
	calls0 := b.apiCalls()
	for range 20 {
		ping(t, db)
		time.Sleep(50 * time.Millisecond)
	}
	if b.apiCalls() == calls0 {
		t.Fatal("the TTL refreshes were not made: the test proves nothing")
	}
	if st := c.Stats(); st.CurrentVersionID == "" {
		t.Errorf("Stats lost the version in use: %+v", st)
	}
}

// TestHistoryMigrationToLaterUser: the secret's new AWSCURRENT names a user
// created later. The driver tries it (refused: no such user yet) and keeps
// the old version, which works. Once the new user exists and the old
// version breaks for a reason other than 1045 (its database dropped), a
// Ping succeeds within the hold plus a few seconds: nothing pins the dead
// version.
func TestHistoryMigrationToLaterUser(t *testing.T) {
	t.Parallel()
	b := newBed(t, "migrate-Old-pw")
	ctx := context.Background()
	hold := 2 * time.Second
	c, db := b.openWithConnector(rotatingmysql.WithRefusedHold(hold), rotatingmysql.WithTTL(500*time.Millisecond))
	db.SetMaxIdleConns(0)
	ping(t, db)

	newUser, newDB := testdb.UniqueName("mig"), testdb.UniqueName("migdb")
	if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, newUser, "migrate-New-pw", newDB), nil); err != nil {
		t.Fatal(err)
	}
	// The TTL refresh brings the new AWSCURRENT; its trial is refused (no
	// such user) and the old version keeps serving.
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().AuthRefused == 0 && time.Now().Before(deadline) {
		ping(t, db)
		time.Sleep(50 * time.Millisecond)
	}
	if c.Stats().AuthRefused == 0 {
		t.Fatal("the new AWSCURRENT was never tried")
	}
	for range 5 {
		ping(t, db)
	}
	if err := b.srv.CreateUser(ctx, newUser, "migrate-New-pw", newDB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.srv.DropUser(context.Background(), newUser)
		_ = b.srv.DropDatabase(context.Background(), newDB)
	})
	if err := b.srv.DropDatabase(ctx, b.db); err != nil {
		t.Fatal(err)
	}
	broken := time.Now()
	ok, _, err := pingUntil(t, db, broken.Add(hold+5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the old version broke; a Ping succeeded %v later (hold %v)", ok.Sub(broken).Round(time.Millisecond), hold)
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// TestHistorySecretFirstThenAlterUser: the runbook order "update the
// secret, then ALTER USER a few seconds later", under 8 goroutines that
// dial per query: 0 application errors from 2 s after the ALTER USER (in
// our runs, none at all). With a short TTL the driver meets the new
// AWSCURRENT first and is refused; the ALTER USER then proves the server
// changed, which clears that refusal.
func TestHistorySecretFirstThenAlterUser(t *testing.T) {
	t.Parallel()
	for _, ttl := range []time.Duration{0, 500 * time.Millisecond} {
		t.Run(fmt.Sprintf("ttl=%v", ttl), func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "secret-First-Old")
			opts := []rotatingmysql.Option{}
			if ttl > 0 {
				opts = append(opts, rotatingmysql.WithTTL(ttl))
			}
			_, db := b.openWithConnector(opts...)
			db.SetMaxIdleConns(0)
			ping(t, db)
			l := startLoad(db, 8)
			time.Sleep(300 * time.Millisecond)
			if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "secret-First-New", b.db), nil); err != nil {
				t.Fatal(err)
			}
			put := time.Now()
			time.Sleep(3 * time.Second)
			if err := b.srv.SetPassword(context.Background(), b.user, "secret-First-New"); err != nil {
				t.Fatal(err)
			}
			altered := time.Now()
			time.Sleep(3 * time.Second)
			l.stopCleanFrom(t, altered.Add(2*time.Second), "2s after ALTER USER")
			l.meets(t, put, altered, "the time between the secret's change and the ALTER USER")
		})
	}
}

// TestHistoryRollbackAfterPending: a rotation stuck after setSecret, the
// process on AWSPENDING, then rolled back (the old password restored on the
// server, AWSPENDING removed): 0 application errors from 2 s after the
// rollback.
func TestHistoryRollbackAfterPending(t *testing.T) {
	t.Parallel()
	b := newBed(t, "rollback-Old-pw")
	ctx := context.Background()
	c, db := b.openWithConnector()
	db.SetMaxIdleConns(0)
	ping(t, db)
	l := startLoad(db, 32)
	changed := time.Now()
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().PendingUsed == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c.Stats().PendingUsed == 0 {
		t.Fatal("the driver never switched to AWSPENDING")
	}
	time.Sleep(500 * time.Millisecond)
	if err := b.srv.SetPassword(ctx, b.user, b.password); err != nil {
		t.Fatal(err)
	}
	if err := b.sm.Store().RemoveStage(b.arn, rotatingmysqltest.StagePending); err != nil {
		t.Fatal(err)
	}
	rolledBack := time.Now()
	time.Sleep(4 * time.Second)
	l.stopCleanFrom(t, rolledBack.Add(2*time.Second), "2s after the rollback")
	l.meets(t, changed, rolledBack, "the stuck rotation and its rollback")
}

// TestHistoryWrongEverywhereHolds: a secret wrong everywhere, 12
// goroutines that start together and keep dialing for several hold
// periods, with max_password_errors just above the documented budget (one
// trial, then one probe per hold, the hold doubling up to the TTL): the
// account is not blocked, and the right password still logs in.
//
// make test runs it with a 125 ms hold and a 1 s TTL for 2 s (budget: 1 +
// 4 probes, at 125 ms, 375 ms, 875 ms and 1.875 s);
// ROTATINGMYSQL_WRONG_FOR=3m runs the default 1-minute hold for 3 minutes
// with max_password_errors = 10 (budget: 1 + 2 probes).
func TestHistoryWrongEverywhereHolds(t *testing.T) {
	// Serial: sets the server-wide max_password_errors, which would block
	// the accounts of parallel tests.
	hold, ttl, run, limit := 125*time.Millisecond, time.Second, 2*time.Second, 6
	// Scaled with the hold: the last Pings run up to retryTimeout past the
	// end (2.5 s), which the next probe (1 s, the TTL, after the one at
	// 1.875 s) must not reach.
	retryTimeout := 500 * time.Millisecond
	if v := os.Getenv("ROTATINGMYSQL_WRONG_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("ROTATINGMYSQL_WRONG_FOR: %v", err)
		}
		hold, ttl, run, limit, retryTimeout = rotatingmysql.DefaultRefusedHold, 15*time.Minute, d, 10, time.Second
	}
	b := newBed(t, "wrong-Everywhere-Real")
	b.srv.TempGlobal(t, "max_password_errors", limit)
	if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "wrong-Everywhere-X", b.db), nil); err != nil {
		t.Fatal(err)
	}
	c, db := b.openWithConnector(rotatingmysql.WithRefusedHold(hold), rotatingmysql.WithTTL(ttl),
		rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: retryTimeout}))
	db.SetMaxIdleConns(0)
	denied0 := b.deniedLogins()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var attempts, refused atomic.Int64
	end := time.Now().Add(run)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for time.Now().Before(end) {
				err := db.Ping()
				attempts.Add(1)
				if err == nil {
					t.Error("Ping succeeded with a wrong secret")
					return
				}
				if n := mysqlErrNumber(err); n != erAccessDenied {
					t.Errorf("error %d %v, want 1045 in a ConnectError", n, err)
					return
				}
				refused.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	close(start)
	wg.Wait()
	denied := b.deniedLogins() - denied0
	t.Logf("%v wrong everywhere, hold %v: %d Pings, %d failed logins on the server, %d GetSecretValue calls, Stats.AuthRefused %d",
		run, hold, attempts.Load(), denied, b.apiCalls(), c.Stats().AuthRefused)
	if denied >= int64(limit) {
		t.Errorf("%d failed logins reach max_password_errors = %d", denied, limit)
	}
	if err := b.directLogin(b.password); err != nil {
		t.Fatalf("the right password no longer logs in (error %d): %v", mysqlErrNumber(err), err)
	}
}

// TestErrorsSayWhoseDeadline: when retryTimeout ends the wait, the error
// wraps ErrRetryTimeout and errors.Is(err, context.DeadlineExceeded) is
// false; when the caller's deadline ends it, DeadlineExceeded is true. A
// Connect with no deadline is bounded by retryTimeout, the first fetch
// included.
func TestErrorsSayWhoseDeadline(t *testing.T) {
	t.Parallel()
	b := newBed(t, "whose-Deadline-pw")
	// A Secrets Manager slower than every deadline.
	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 3 * time.Second})
	defer b.sm.ClearFaults()
	db := b.open(rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second}))

	start := time.Now()
	err := db.PingContext(context.Background())
	took := time.Since(start)
	if !errors.Is(err, rotatingmysql.ErrRetryTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no caller deadline: %v; want ErrRetryTimeout and not DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Errorf("a Connect without deadline took %v, want about retryTimeout (1s)", took)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = db.PingContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rotatingmysql.ErrRetryTimeout) {
		t.Errorf("caller's deadline: %v; want DeadlineExceeded and not ErrRetryTimeout", err)
	}
}

// TestSharedCacheEightPools: 8 *sql.DB opened on one secret in one process
// (the way an application opens a writer, readers and an ORM's pool) share
// one source and cache: 1 GetSecretValue call to open them all, at most 4
// during a full rotation under load, and 0 application errors.
func TestSharedCacheEightPools(t *testing.T) {
	t.Parallel()
	b := newBed(t, "shared-Eight-pw")
	// The DSN parsed as sql.Open parses it, and one aws.Config in Go for
	// every pool (rather than the environment), as an application passes
	// its own; its credentials an aws.CredentialsCache, as
	// config.LoadDefaultConfig makes them. (A bare
	// credentials.StaticCredentialsProvider holds a slice: a connector
	// given one keeps its own cache.)
	awsCfg := b.sm.AWSConfig()
	awsCfg.Credentials = aws.NewCredentialsCache(awsCfg.Credentials)
	dbs := make([]*sql.DB, 8)
	for i := range dbs {
		dbs[i] = b.openParams("", rotatingmysql.WithAWSConfig(awsCfg))
	}
	for _, db := range dbs {
		ping(t, db)
	}
	if n := b.apiCalls(); n != 1 {
		t.Errorf("opening 8 databases on one secret made %d GetSecretValue calls, want 1", n)
	}
	// loadRate in all, shared by the pools.
	loads := make([]*load, len(dbs))
	for i, db := range dbs {
		loads[i] = runLoad(db, 2, loadRate/len(dbs), 15*time.Second, nil)
	}
	calls0, denied0 := b.apiCalls(), b.deniedLogins()
	time.Sleep(200 * time.Millisecond)
	b.rot.Pause = 500 * time.Millisecond
	rotating := time.Now()
	if err := b.rot.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	time.Sleep(500 * time.Millisecond)
	for _, l := range loads {
		l.stop(t)
	}
	meet(t, meetings(loads, rotating, rotated), rotating, rotated, "the rotation, 8 pools together")
	calls, denied := b.apiCalls()-calls0, b.deniedLogins()-denied0-1 // the rotator's own
	t.Logf("8 pools through a rotation: %d GetSecretValue calls, %d failed logins by the driver", calls, denied)
	if calls > 4 {
		t.Errorf("%d GetSecretValue calls during the rotation, want at most 4", calls)
	}
	// Isolated, each pool would pay its own refresh: the opt-out works.
	iso := b.openParams("sharedCache=false", rotatingmysql.WithAWSConfig(awsCfg))
	before := b.apiCalls()
	ping(t, iso)
	if b.apiCalls() != before+1 {
		t.Errorf("sharedCache=false: %d calls to open, want 1 of its own", b.apiCalls()-before)
	}
}
