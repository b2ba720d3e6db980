package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Boundary tests (issue 21, "Evidence with boundaries"): logins that hang,
// greet late, are cut short by the caller, or meet a locked account, on the
// real MariaDB. The logins each account made are counted by a LoginProxy in
// front of the server (the secret points at it), not by the server's global
// counters, so that most of these tests may run beside others; the
// max_password_errors one is serial (a global).

// proxied puts a LoginProxy in front of the bed's server and points the
// secret at it (a new AWSCURRENT version, same password). Versions written
// afterwards through the bed (putWrong) point at it too. Call it before
// opening any pool.
func (b *bed) proxied() *rotatingmysqltest.LoginProxy {
	b.t.Helper()
	p, err := rotatingmysqltest.NewLoginProxy(b.srv.Addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { p.Close() })
	b.host, b.port = p.Host(), p.Port()
	if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, b.password, b.db), nil); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// openParams opens a pool on the bed's secret with DSN parameters (as
// sql.Open would parse them: "loginTimeout=3s&retryTimeout=1s") through the
// Go API, with the program's aws.Config pointing at the emulator.
func (b *bed) openParams(params string, opts ...rotatingmysql.Option) *sql.DB {
	b.t.Helper()
	cfg, err := rotatingmysql.ParseDSN(b.arn + "?" + params)
	if err != nil {
		b.t.Fatal(err)
	}
	_, db := openConfig(b.t, cfg, append([]rotatingmysql.Option{rotatingmysql.WithAWSConfig(b.sm.AWSConfig())}, opts...)...)
	db.SetMaxIdleConns(0) // every Ping dials
	return db
}

// burst opens n connections of db at once (all held until every one is
// open, so each is a login of its own) and returns the errors.
func burst(db *sql.DB, n int, timeout time.Duration) []error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	conns := make(chan *sql.Conn, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conn, err := db.Conn(ctx)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			conns <- conn
		}()
	}
	close(start)
	wg.Wait()
	close(conns)
	for c := range conns {
		c.Close()
	}
	return errs
}

// logTally logs what the proxy saw of user's logins from from.
func logTally(t *testing.T, p *rotatingmysqltest.LoginProxy, user string, from time.Time, what string) rotatingmysqltest.LoginTally {
	t.Helper()
	n := p.Tally(user, from)
	t.Logf("%s: %d logins reached the server (%d accepted, %d refused %v, %d cut), %d abandoned before it",
		what, n.Sent, n.Accepted, n.Refused, n.Codes, n.Cut, n.Abandoned)
	return n
}

// TestBoundHungLoginHoldsNoOne: the first login of a version not yet
// proven hangs (the endpoint accepts TCP and never greets). Other Pings,
// with 5 s deadlines, succeed meanwhile; the hung Ping, which has no
// deadline, returns by itself within loginTimeout (3 s here) plus 5 s; and
// the hang marks nothing (no refusal, the version keeps working).
func TestBoundHungLoginHoldsNoOne(t *testing.T) {
	t.Parallel()
	const loginTimeout = 3 * time.Second
	b := newBed(t, "bound-Hung-pw")
	p := b.proxied()
	p.HangNext(1)
	db := b.openParams("loginTimeout=3s")

	start := time.Now()
	hung := make(chan error, 1)
	go func() { hung <- db.Ping() }()
	waitFor(t, "the first login to hang", func() bool { return p.Hung() == 1 })

	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pstart := time.Now()
		err := db.PingContext(ctx)
		cancel()
		if err != nil {
			t.Errorf("Ping %d beside the hung login (after %v): %v", i+1, time.Since(pstart).Round(time.Millisecond), err)
		}
	}
	select {
	case err := <-hung:
		took := time.Since(start)
		t.Logf("the hung Ping returned after %v: %v", took.Round(time.Millisecond), err)
		if took > loginTimeout+5*time.Second {
			t.Errorf("the hung Ping returned after %v, want within loginTimeout (%v) + 5s", took, loginTimeout)
		}
	case <-time.After(loginTimeout + 10*time.Second):
		p.ReleaseHung()
		<-hung
		t.Fatalf("the hung Ping (no deadline) had not returned after %v; loginTimeout is %v", time.Since(start), loginTimeout)
	}
	if n := logTally(t, p, b.user, time.Time{}, "hung login"); n.Refused != 0 {
		t.Errorf("%d refused logins, want 0", n.Refused)
	}
	ping(t, db)
}

// TestBoundSlowGreeting: a server that greets late (an Aurora Serverless
// instance resuming from auto-pause greets after about 15 s) still takes
// the logins of a Ping with a 30 s deadline and of a db.Ping() without one:
// retryTimeout bounds waiting and fetching, never a login under way, and
// the login bound (loginTimeout, default 30 s) is longer than the delay.
// The 12 s variant uses the defaults (retryTimeout 10 s) and runs the two
// Pings together, on a version not yet proven: one waits for the other's
// trial (its claim lasts about 3 s, less than retryTimeout), then logs in.
// The 3 s variant scales retryTimeout down to 1 s, below the claim's
// lease, which is not scaled: so its Pings run one after the other, each a
// login of 3 s under a retryTimeout of 1 s.
func TestBoundSlowGreeting(t *testing.T) {
	t.Parallel()
	goRun, waitRuns := concurrentSubtests(t)
	for _, tc := range []struct {
		name     string
		delay    time.Duration
		params   string
		together bool
	}{
		{"3s greeting, retryTimeout=1s", 3 * time.Second, "retryTimeout=1s", false},
		{"12s greeting, defaults", 12 * time.Second, "", true},
	} {
		goRun(tc.name, func(t *testing.T) {
			if testing.Short() && tc.delay > 5*time.Second {
				t.Skipf("-short: a %v greeting; the 3 s variant checks the same rule", tc.delay)
			}
			b := newBed(t, "bound-Slow-greeting-pw")
			p := b.proxied()
			p.SetGreetingDelay(tc.delay)
			db := b.openParams(tc.params)

			pings := []struct {
				what string
				ping func() error
			}{
				{"Ping with a 30 s deadline", func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					return db.PingContext(ctx)
				}},
				{"db.Ping() without deadline", db.Ping},
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var slowest time.Duration // a Ping that dialed waited for the greeting
			for _, pg := range pings {
				run := func() {
					start := time.Now()
					err := pg.ping()
					took := time.Since(start)
					mu.Lock()
					slowest = max(slowest, took)
					mu.Unlock()
					t.Logf("%s: %v after %v", pg.what, err, took.Round(time.Millisecond))
					if err != nil {
						t.Errorf("%s, greeting %v late: %v", pg.what, tc.delay, err)
					}
				}
				if !tc.together {
					run()
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					run()
				}()
			}
			wg.Wait()
			if n := logTally(t, p, b.user, time.Time{}, "slow greeting"); n.Accepted < 1 || n.Refused != 0 || slowest < tc.delay {
				t.Errorf("%d logins accepted through the proxy, %d refused, slowest Ping %v; want at least 1, none, and one that waited the %v greeting",
					n.Accepted, n.Refused, slowest, tc.delay)
			}
		})
	}
	waitRuns()
}

// TestBoundCancelledTrialOfNewUser: AWSCURRENT moves to a new user B (a
// migration); the first connection to try B gives up after 150 ms, while
// its login is held on the way. That proves nothing about B: the next
// connections use B, and once they do, locking the old user A fails
// nothing.
func TestBoundCancelledTrialOfNewUser(t *testing.T) {
	t.Parallel()
	b := newBed(t, "bound-User-A-pw")
	p := b.proxied()
	const pwB = "bound-User-B-pw"
	userB, dbB := b.srv.TempUser(t, pwB)
	db := b.openParams("ttl=1s")
	ping(t, db)

	if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, userB, pwB, dbB), nil); err != nil {
		t.Fatal(err)
	}
	p.DelayLogins(userB, 1, 5*time.Second)
	// Short Pings until one has tried B (the TTL of 1 s lets the driver
	// see the new version).
	deadline := time.Now().Add(15 * time.Second)
	for p.Tally(userB, time.Time{}).Abandoned == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no connection tried user B within 15 s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		db.PingContext(ctx) // ends at its deadline when it tried B
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	cancelled := time.Now()

	// The next connections use B (the cancelled trial's claim lapses
	// after its lease, about 3 s).
	var asA int
	for {
		if time.Now().After(cancelled.Add(10 * time.Second)) {
			t.Fatalf("no connection logged in as B within 10 s of the cancelled trial (%d as A)", asA)
		}
		user, err := currentUser(db)
		if err != nil {
			t.Fatalf("after the cancelled trial: %v", err)
		}
		if user == userB {
			break
		}
		asA++
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the first connection as B came %v after the cancelled trial; %d connections as A in between",
		time.Since(cancelled).Round(time.Millisecond), asA)

	if err := b.srv.AlterUser(context.Background(), b.user, "ACCOUNT LOCK"); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	for i := range 20 {
		user, err := currentUser(db)
		if err != nil {
			t.Fatalf("connection %d after user A was locked: %v", i+1, err)
		}
		if user != userB {
			t.Fatalf("connection %d after user A was locked ran as %s", i+1, user)
		}
	}
	if n := logTally(t, p, b.user, locked, "user A after its lock"); n.Sent != 0 {
		t.Errorf("%d logins as the locked user A, want 0", n.Sent)
	}
	if n := logTally(t, p, userB, time.Time{}, "user B"); n.Refused != 0 {
		t.Errorf("%d refused logins as B, want 0", n.Refused)
	}
}

// currentUser runs SELECT CURRENT_USER() on a new connection of db (its
// pool keeps no idle connection) and returns the user name.
func currentUser(db *sql.DB) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var account string
	if err := db.QueryRowContext(ctx, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)").Scan(&account); err != nil {
		return "", err
	}
	return account, nil
}

// TestBoundTLSPoolBesidePlainPool: on an account created REQUIRE SSL, a
// pool with TLS keeps working (0 errors over 40 Pings, each a new login)
// while a second pool on the same secret without TLS is refused (1045)
// again and again: a refusal under other login settings is no evidence
// against the password.
func TestBoundTLSPoolBesidePlainPool(t *testing.T) {
	t.Parallel()
	b := newBed(t, "bound-TLS-pw")
	tlsCfg := b.srv.RequireTLS(t)
	if err := b.srv.AlterUser(context.Background(), b.user, "REQUIRE SSL"); err != nil {
		t.Fatal(err)
	}
	tlsDB := b.open(rotatingmysql.WithTLSConfig(tlsCfg))
	tlsDB.SetMaxIdleConns(0)
	// retryTimeout 1 s: the plain pool's Pings, held back after its
	// refusal, give up after a second rather than the default 10 s.
	plainDB := b.open(func(c *rotatingmysql.Config) error { c.Retry.Timeout = time.Second; return nil })
	plainDB.SetMaxIdleConns(0)

	// The worst order: the plain pool meets 1045 first.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := plainDB.PingContext(ctx)
	cancel()
	if n := mysqlErrNumber(err); n != erAccessDenied {
		t.Fatalf("plain pool on a REQUIRE SSL account: error %d %v, want 1045", n, err)
	}
	// Both pools dial together: the plain one 3 times, the TLS one 40.
	plainErrs, tlsErrs := &errorSink{}, &errorSink{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pingN(plainDB, 3, plainErrs)
	}()
	start := time.Now()
	pingN(tlsDB, 40, tlsErrs)
	took := time.Since(start)
	wg.Wait()

	t.Logf("TLS pool: %d errors in 40 Pings (%v); plain pool: %d errors in 3 Pings", len(tlsErrs.all()), took.Round(time.Millisecond), len(plainErrs.all()))
	for i, err := range tlsErrs.all() {
		if i == 3 {
			break
		}
		t.Errorf("TLS pool: %v", err)
	}
	if n := len(plainErrs.all()); n != 3 {
		t.Errorf("the plain pool logged in %d times of 3 on a REQUIRE SSL account", 3-n)
	}
}

// TestBoundFourPoolsOneWrongSecret: four pools on one secret wrong in
// every stage, each with a database of its own (dbname= overrides), two
// with isolated caches and one with its own aws.Config, share their trials
// of the account (user@host:port): with max_password_errors = 3 the account is
// not blocked (the right password still logs in afterwards, no 4150).
func TestBoundFourPoolsOneWrongSecret(t *testing.T) {
	// Serial: sets the server-wide max_password_errors, which would block
	// the accounts of parallel tests.
	b := newBed(t, "bound-Four-pools-pw")
	p := b.proxied()
	b.srv.TempGlobal(t, "max_password_errors", 3)
	b.putWrong("bound-Four-wrong-cur", "bound-Four-wrong-pend")
	dbNames := []string{b.db}
	for range 3 {
		dbNames = append(dbNames, b.grantedDatabase())
	}
	// The four pools differ as an application's do: a database each, two
	// with caches of their own, one built through the Go API with its own
	// aws.Config.
	pools := []struct {
		what string
		db   *sql.DB
	}{
		// retryTimeout=1s: a Ping held back by the others' refusal gives
		// up after a second rather than wait out the default 10 s.
		{"DSN", b.openDSN(b.arn + "?retryTimeout=1s&dbname=" + dbNames[0])},
		{"DSN, isolateCache=true", b.openDSN(b.arn + "?retryTimeout=1s&isolateCache=true&dbname=" + dbNames[1])},
		{"Go API, own aws.Config", b.open(func(c *rotatingmysql.Config) error {
			c.DBName, c.Retry.Timeout = dbNames[2], time.Second
			return nil
		})},
		{"DSN, isolateCache=true (2)", b.openDSN(b.arn + "?retryTimeout=1s&isolateCache=true&dbname=" + dbNames[3])},
	}
	var wg sync.WaitGroup
	sinks := make([]*errorSink, len(pools))
	for i, pool := range pools {
		pool.db.SetMaxIdleConns(0)
		sinks[i] = &errorSink{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pingN(pool.db, 3, sinks[i])
		}()
	}
	wg.Wait()
	for i, pool := range pools {
		errs := sinks[i].all()
		if len(errs) != 3 {
			t.Errorf("pool %q: %d of 3 Pings failed, want all (the secret is wrong)", pool.what, len(errs))
		}
		// A Connect that made no login of its own still reports the
		// server's 1045 (ConnectError: ErrNoUsableCredentials wrapping the
		// last one).
		for _, err := range errs {
			var ce *rotatingmysql.ConnectError
			if !errors.As(err, &ce) && mysqlErrNumber(err) != erAccessDenied {
				t.Errorf("pool %q: error %T %v, want a ConnectError or the server's 1045", pool.what, err, err)
				break
			}
			if n := mysqlErrNumber(err); n != erAccessDenied {
				t.Errorf("pool %q: error %v wraps MySQL error %d, want the server's 1045 (errors.As finds *mysql.MySQLError)", pool.what, err, n)
				break
			}
		}
	}
	n := logTally(t, p, b.user, time.Time{}, "four pools, wrong secret")
	if n.Refused > 2 {
		t.Errorf("%d refused logins, want at most 2 (max_password_errors is 3)", n.Refused)
	}
	if err := b.directLogin(b.password); err != nil {
		t.Fatalf("the account is blocked after four pools met the wrong secret (error %d): %v", mysqlErrNumber(err), err)
	}
}

// grantedDatabase creates a database the bed's user has every privilege
// on, dropped when the test ends.
func (b *bed) grantedDatabase() string {
	b.t.Helper()
	name := testdb.UniqueName("db")
	ctx := context.Background()
	for _, stmt := range []string{
		"CREATE DATABASE `" + name + "`",
		"GRANT ALL ON `" + name + "`.* TO '" + b.user + "'@'%'",
	} {
		if _, err := b.srv.Root().ExecContext(ctx, stmt); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Cleanup(func() {
		if err := b.srv.DropDatabase(context.Background(), name); err != nil {
			b.t.Error(err)
		}
	})
	return name
}

// concurrentSubtests returns goRun, which runs f as t's subtest name in a
// goroutine of its own, and waitRuns, which waits for those subtests to
// end. The subtests run at once, in the -parallel slot of their parallel
// parent, instead of each waiting for a slot of its own as t.Parallel
// subtests do: for the subtests of a long test that mostly waits, which
// would otherwise start late and end the run late.
func concurrentSubtests(t *testing.T) (goRun func(name string, f func(t *testing.T)), waitRuns func()) {
	var wg sync.WaitGroup
	goRun = func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, f)
		}()
	}
	return goRun, wg.Wait
}

// openSource opens a pool (no idle connections) on the bed's secret
// through the Secrets Manager API ("secretsmanager") or through the
// Secrets Manager Agent ("agent", with the agent's cache TTL of 300 s, its
// default; its token given with WithAgentToken, not the environment), with
// opts.
func (b *bed) openSource(source string, opts ...rotatingmysql.Option) *sql.DB {
	b.t.Helper()
	if source == "agent" {
		ag, err := rotatingmysqltest.NewAgent(b.sm.Store(), badAgentToken)
		if err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(func() { ag.Close() })
		ag.SetTTL(300 * time.Second)
		opts = append(opts, withAgent(ag))
	}
	db := b.open(opts...)
	db.SetMaxIdleConns(0)
	return db
}

var bothSources = []string{"secretsmanager", "agent"}

// TestBoundManagedRotation: a managed single-user rotation while 8
// goroutines dial, with a window of 3 s between setSecret and finishSecret
// in which connections meet 1045, refusedHold=2s, through the API and
// behind the agent (cache TTL 300 s, so it serves the old AWSCURRENT long
// after finishSecret): from one second after setSecret, through three hold
// periods after finishSecret, no login fails and the application sees no
// error.
func TestBoundManagedRotation(t *testing.T) {
	t.Parallel()
	goRun, waitRuns := concurrentSubtests(t)
	const hold = 2 * time.Second
	for _, source := range bothSources {
		goRun(source, func(t *testing.T) {
			b := newBed(t, "bound-Managed-pw")
			p := b.proxied()
			db := b.openSource(source, rotatingmysql.WithRefusedHold(hold))
			ping(t, db)
			l := startLoad(db, 8)
			var setDone time.Time
			b.rot.OnStep = func(s rotatingmysqltest.Step) {
				if s == rotatingmysqltest.StepTestSecret {
					setDone = time.Now()
				}
			}
			b.rot.Pause = 3 * time.Second
			err := b.rot.Rotate(context.Background())
			time.Sleep(3 * hold)
			from := setDone.Add(time.Second)
			l.stopCleanFrom(t, from, "1 s after setSecret")
			if err != nil {
				t.Fatal(err)
			}
			logTally(t, p, b.user, time.Time{}, "the whole run (the rotator's own logins included)")
			if n := logTally(t, p, b.user, from, "from 1 s after setSecret"); n.Refused != 0 {
				t.Errorf("%d failed logins from 1 s after setSecret, want 0", n.Refused)
			}
		})
	}
	waitRuns()
}

// TestBoundStampedeAfterRotation: a pool idle (no login for more than a
// second) while a rotation completes; then 64 connections are opened at
// once. The version the pool proved before is dialed as a single trial
// first: at most 2 failed logins, and every connection opens.
func TestBoundStampedeAfterRotation(t *testing.T) {
	t.Parallel()
	for _, source := range bothSources {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "bound-Stampede-pw")
			p := b.proxied()
			db := b.openSource(source)
			ping(t, db)
			if err := b.rot.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // idle: the last accepted login is old
			from := time.Now()
			errs := burst(db, 64, 30*time.Second)
			for i, err := range errs {
				if i == 3 {
					break
				}
				t.Errorf("connection failed: %v", err)
			}
			if n := logTally(t, p, b.user, from, "64 connections at once"); n.Refused > 2 {
				t.Errorf("%d failed logins, want at most 2", n.Refused)
			}
		})
	}
}

// TestBoundBlackHoleColdStart: on a cold process (nothing cached) a Ping
// with a 30 s deadline while the Secrets Manager never answers returns at
// retryTimeout (2 s) plus a little, with an error that says retryTimeout
// ended it (ErrRetryTimeout), not the caller's deadline.
func TestBoundBlackHoleColdStart(t *testing.T) {
	t.Parallel()
	const retryTimeout = 2 * time.Second
	b := newBed(t, "bound-Black-hole-pw")
	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 10 * time.Minute})
	defer b.sm.ClearFaults()
	db := b.openParams("retryTimeout=2s&sharedCache=false")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := db.PingContext(ctx)
	took := time.Since(start)
	t.Logf("Ping during a black hole returned after %v: %v", took.Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("Ping succeeded with no secret")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(err, context.DeadlineExceeded) with the caller's 30 s deadline far away: %v", err)
	}
	if !errors.Is(err, rotatingmysql.ErrRetryTimeout) {
		t.Errorf("error does not wrap ErrRetryTimeout: %v", err)
	}
	if took > retryTimeout+3*time.Second {
		t.Errorf("returned after %v, want about retryTimeout (%v)", took, retryTimeout)
	}
}

// TestBoundLockedAccount: an account is locked (ALTER USER ... ACCOUNT
// LOCK, MariaDB 4151); one connection meets it, then 16 goroutines open new
// connections for two hold periods: the server sees at most one login per
// hold period after the one that met the lock (one probe per hold), and
// every error says the account is locked: the server's error for a
// connection that met it, a ConnectError wrapping it for the others.
func TestBoundLockedAccount(t *testing.T) {
	t.Parallel()
	const hold = 2 * time.Second
	b := newBed(t, "bound-Locked-pw")
	p := b.proxied()
	db := b.openParams("refusedHold=2s")
	ping(t, db)
	if err := b.srv.AlterUser(context.Background(), b.user, "ACCOUNT LOCK"); err != nil {
		t.Fatal(err)
	}
	// One connection meets the lock (the server's 4151); then 16 goroutines
	// open connections for two hold periods.
	from := time.Now()
	first := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}()
	if n := mysqlErrNumber(first); n != retry.ErMariaDBAccountLocked {
		t.Fatalf("the first Ping after ACCOUNT LOCK: error %d %v, want 4151", n, first)
	}
	sink := &errorSink{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	oks := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(from) < 2*hold {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := db.PingContext(ctx)
				cancel()
				if err == nil {
					mu.Lock()
					oks++
					mu.Unlock()
				}
				sink.add(err)
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(from)
	errs := sink.all()
	n := logTally(t, p, b.user, from, "16 goroutines on a locked account")
	t.Logf("%d Pings failed in %v", len(errs), elapsed.Round(time.Millisecond))
	if oks > 0 {
		t.Errorf("%d Pings succeeded on a locked account", oks)
	}
	if max := 1 + int(math.Ceil(float64(elapsed)/float64(hold))); n.Sent > max {
		t.Errorf("%d logins reached the server in %v, want at most %d (the one that met the lock, one probe per hold of %v)", n.Sent, elapsed, max, hold)
	}
	if n.Codes[retry.ErMariaDBAccountLocked] == 0 {
		t.Errorf("the server never answered 4151: %v", n.Codes)
	}
	var direct, wrapped int
	for _, err := range errs {
		var ce *rotatingmysql.ConnectError
		var me *mysql.MySQLError
		switch {
		case errors.As(err, &ce) && retry.IsAccountLocked(err) && containsAll(err.Error(), "locked"):
			wrapped++
		case errors.As(err, &me) && me.Number == retry.ErMariaDBAccountLocked && err == error(me):
			direct++
		default:
			t.Errorf("error %T %v: want the server's 4151, or a ConnectError wrapping it that says the account is locked", err, err)
			return
		}
	}
	t.Logf("%d errors were the server's 4151, %d ConnectErrors", direct, wrapped)
	if direct > n.Refused {
		t.Errorf("%d connections returned the server's error, but the server refused %d logins", direct, n.Refused)
	}
}
