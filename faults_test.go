package rotatingmysql_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Fault tests: the real MariaDB and the Secrets Manager emulator, whose
// counters see every HTTP attempt (the SDK's own retries included; a refused
// connection is no request, so those cases count the connector's fetches).
// Where the password does not change during the fault, the application must
// see no error at all; where it does, API calls stay bounded and new
// connections work again once the fault ends.

// stageCalls returns the GetSecretValue requests the emulator received for
// AWSCURRENT and AWSPENDING.
func (b *bed) stageCalls() (cur, pend int) {
	return b.sm.GetSecretValueCalls("AWSCURRENT"), b.sm.GetSecretValueCalls("AWSPENDING")
}

// authErrors returns the errors that say the server refused the
// credentials or blocked the account: what a fault must never cause.
func authErrors(errs []error) []error {
	var out []error
	for _, err := range errs {
		var ce *rotatingmysql.ConnectError
		if errors.As(err, &ce) || retry.IsAuthError(err) || retry.IsAccountLocked(err) {
			out = append(out, err)
		}
	}
	return out
}

// sdkMaxAttempts is the AWS SDK's default attempts per API operation (its
// standard retryer): every fetch may cost that many requests.
const sdkMaxAttempts = 3

// faultCase is a fault of the Secrets Manager emulator.
type faultCase struct {
	name     string
	inject   func(b *bed)
	clear    func(b *bed)
	duration time.Duration
	// refused: the fault refuses connections, which the emulator does not
	// count; bounds apply to the connector's fetches instead.
	refused bool
}

var smFaults = []faultCase{
	{
		name:     "throttling",
		inject:   func(b *bed) { b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ThrottlingException"}) },
		clear:    func(b *bed) { b.sm.ClearFaults() },
		duration: 5 * time.Second,
	},
	{
		name: "500s",
		inject: func(b *bed) {
			b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "InternalServiceError", Status: 500})
		},
		clear:    func(b *bed) { b.sm.ClearFaults() },
		duration: 3 * time.Second,
	},
	{
		name: "connections refused",
		inject: func(b *bed) {
			if err := b.sm.SetDown(true); err != nil {
				b.t.Error(err)
			}
		},
		clear: func(b *bed) {
			if err := b.sm.SetDown(false); err != nil {
				b.t.Error(err)
			}
		},
		duration: 3 * time.Second,
		refused:  true,
	},
}

// TestFaultPasswordUnchanged: while the Secrets Manager fails (throttling,
// 500s, connections refused) and the cached AWSCURRENT expires again and
// again, new connections keep working with the cached password (0
// application errors), AWSPENDING is never asked for (no 1045 happened), and
// the failing service is asked at most once per TTL.
func TestFaultPasswordUnchanged(t *testing.T) {
	t.Parallel()
	const ttl = 500 * time.Millisecond
	for _, fc := range smFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "unchanged-Pw-"+fc.name[:4])
			c, db := b.openWithConnector(rotatingmysql.WithTTL(ttl))
			db.SetMaxIdleConns(0)
			ping(t, db)
			cur0, pend0 := b.stageCalls()
			fetches0 := c.Stats().Fetches[credsource.Current]
			sink := &errorSink{}
			// 32 workers: during the fault a query may wait up to 1 s for
			// the failing fetch before the cached password serves, and at
			// least 50 must meet the fault.
			l := dialLoad(db, 32, 15*time.Second, sink)
			time.Sleep(200 * time.Millisecond)
			fc.inject(b)
			injected := time.Now()
			time.Sleep(fc.duration)
			fc.clear(b)
			cleared := time.Now()
			time.Sleep(2 * ttl)
			queries := l.finish()
			l.meets(t, injected, cleared, "the fault")

			cur, pend := b.stageCalls()
			cur, pend = cur-cur0, pend-pend0
			fetches := c.Stats().Fetches[credsource.Current] - fetches0
			errs := sink.all()
			t.Logf("%s for %v: %d queries, %d errors; AWSCURRENT: %d fetches, %d requests; AWSPENDING: %d requests; stale served %d",
				fc.name, fc.duration, queries, len(errs), fetches, cur, pend, c.Stats().StaleServed)
			for i, err := range errs {
				if i == 3 {
					break
				}
				t.Errorf("application error: %v", err)
			}
			if queries == 0 {
				t.Error("the load ran no query")
			}
			if pend != 0 {
				t.Errorf("%d AWSPENDING requests, want 0: the password never changed", pend)
			}
			// One fetch per TTL, however many connections wait.
			maxFetches := int(fc.duration/ttl) + 4
			if fetches > uint64(maxFetches) {
				t.Errorf("%d AWSCURRENT fetches, want at most %d (one per TTL)", fetches, maxFetches)
			}
			if !fc.refused && cur > sdkMaxAttempts*maxFetches {
				t.Errorf("%d AWSCURRENT requests, want at most %d", cur, sdkMaxAttempts*maxFetches)
			}
		})
	}
}

// TestFaultDuringRotation: a single-user rotation runs while the Secrets
// Manager fails and 128 goroutines dial (as many as may wait at once:
// enough that 50 connections meet the fault). The new password cannot be
// learned until the fault ends, so connections wait for it (within the retry
// bound); the API sees at most a few requests per stage, the SDK's retries
// included; and once the fault ends, new connections work.
func TestFaultDuringRotation(t *testing.T) {
	t.Parallel()
	for _, fc := range smFaults {
		t.Run(fc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "rotfault-Pw-"+fc.name[:4])
			c, db := b.openWithConnector()
			db.SetMaxIdleConns(0)
			ping(t, db)
			cur0, pend0 := b.stageCalls()
			st0 := c.Stats()
			sink := &errorSink{}
			l := dialLoad(db, 128, 17*time.Second, sink)
			time.Sleep(200 * time.Millisecond)

			fc.inject(b)
			injected := time.Now()
			faultEnd := injected.Add(fc.duration)
			clear := time.AfterFunc(fc.duration, func() { fc.clear(b) })
			defer clear.Stop()
			b.rot.Pause = time.Second
			if err := b.rot.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(faultEnd))
			// The retry bound (10 s) covers the fault: the connections
			// waiting when it ends recover, and the load then runs clean.
			// Settled within 7 s: a throttled request begun just before
			// the end fails after the SDK's retries (about 2.5 s), then
			// forced refreshes back off 4 s after failures in a row.
			settled := time.Now().Add(7 * time.Second)
			time.Sleep(time.Until(settled) + 1500*time.Millisecond)
			queries := l.finish()
			l.meets(t, injected, faultEnd, "the fault")

			cur, pend := b.stageCalls()
			cur, pend = cur-cur0, pend-pend0
			st := c.Stats()
			fCur, fPend := st.Fetches[credsource.Current]-st0.Fetches[credsource.Current], st.Fetches[credsource.Pending]-st0.Fetches[credsource.Pending]
			errs := sink.all()
			t.Logf("%s for %v during a rotation, 128 dialers: %d queries, %d errors; AWSCURRENT %d fetches %d requests; AWSPENDING %d fetches %d requests",
				fc.name, fc.duration, queries, len(errs), fCur, cur, fPend, pend)
			for i, err := range authErrors(errs) {
				if i == 0 {
					t.Logf("first refused connection: %v", err)
				}
			}
			for i, err := range sink.after(settled) {
				if i == 3 {
					break
				}
				t.Errorf("error after the fault ended: %v", err)
			}
			if queries == 0 {
				t.Error("the load ran no query")
			}
			ping(t, db)
			var one int
			if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
			// Forced refreshes back off after failures (1 s, 2 s, then 4 s
			// after the failure ended): within a fault of 5 s at most 3
			// failed fetches per stage, then the one that succeeds.
			const maxFetches = 4
			for _, s := range []struct {
				stage             string
				fetches, requests int
			}{{"AWSCURRENT", int(fCur), cur}, {"AWSPENDING", int(fPend), pend}} {
				if s.fetches > maxFetches {
					t.Errorf("%s: %d fetches, want at most %d", s.stage, s.fetches, maxFetches)
				}
				if max := sdkMaxAttempts*(maxFetches-1) + 1; !fc.refused && s.requests > max {
					t.Errorf("%s: %d requests, want at most %d", s.stage, s.requests, max)
				}
			}
		})
	}
}

// TestFaultSlowSecretsManager: the Secrets Manager answers later than the
// callers' deadlines.
func TestFaultSlowSecretsManager(t *testing.T) {
	t.Parallel()
	const delay = 3 * time.Second
	slow := rotatingmysqltest.Fault{Delay: delay}
	t.Run("first connection returns at its deadline", func(t *testing.T) {
		t.Parallel()
		b := newBed(t, "slow-Pw-1")
		b.sm.Fail("GetSecretValue", slow)
		db := b.open()
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			start := time.Now()
			err := db.PingContext(ctx)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want the deadline's", err)
			}
			if !containsAll(err.Error(), b.arn, "AWSCURRENT") {
				t.Errorf("error does not name the secret and stage: %v", err)
			}
			if took > time.Second {
				t.Errorf("Ping with a 500ms deadline returned after %v", took)
			}
		}
		// The waiters gave up; the one fetch under way was not repeated.
		if n := b.apiCalls(); n > 1 {
			t.Errorf("%d API calls, want 1 (one fetch, shared)", n)
		}
	})
	t.Run("password unchanged: cached password serves", func(t *testing.T) {
		t.Parallel()
		b := newBed(t, "slow-Pw-2")
		const ttl = 500 * time.Millisecond
		db := b.open(rotatingmysql.WithTTL(ttl))
		db.SetMaxIdleConns(0)
		ping(t, db)
		calls0 := b.apiCalls()
		sink := &errorSink{}
		// Each query must be done before the answer (3 s): one that waited
		// for it fails. The cache waits for a fetch at most 1 s (and half
		// of what remains of the query's context), then serves the cached
		// password; the rest of the deadline is for the login, which a
		// machine busy with other tests may slow.
		l := dialLoad(db, 32, delay-500*time.Millisecond, sink)
		time.Sleep(200 * time.Millisecond)
		b.sm.Fail("GetSecretValue", slow)
		slowFrom := time.Now()
		time.Sleep(2 * delay)
		b.sm.ClearFaults()
		slowTo := time.Now()
		time.Sleep(2 * ttl)
		queries := l.finish()
		l.meets(t, slowFrom, slowTo, "the slow Secrets Manager")
		errs := sink.all()
		calls := b.apiCalls() - calls0
		t.Logf("Secrets Manager %v slow for %v, queries bounded by %v: %d queries, %d errors, %d API calls", delay, 2*delay, delay-500*time.Millisecond, queries, len(errs), calls)
		for i, err := range errs {
			if i == 3 {
				break
			}
			t.Errorf("application error: %v", err)
		}
		if queries == 0 {
			t.Error("the load ran no query")
		}
		// A slow answer holds its fetch: no second request for it.
		if max := int(2*delay/delay) + 3; calls > max {
			t.Errorf("%d API calls, want at most %d", calls, max)
		}
	})
}

// TestFaultDatabaseRestart: the database restarts under load. Queries in
// flight and dials made while it is down fail with network errors, which
// no driver can avoid; what the library owes is that none of them is
// mistaken for a rotation (no 1045 handling, no ConnectError, no secret
// refetch, no failed login) and that new connections work as soon as the
// server is back.
func TestFaultDatabaseRestart(t *testing.T) {
	// Serial: restarts the shared server, breaking every connection.
	b := newBed(t, "restart-Pw")
	c, db := b.openWithConnector()
	db.SetMaxIdleConns(2)
	ping(t, db)
	calls0 := b.apiCalls()
	sink := &errorSink{}
	l := dialLoad(db, 8, 5*time.Second, sink)
	time.Sleep(500 * time.Millisecond)
	began := time.Now()
	if err := b.srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The pool's broken idle connections are found within the first
	// queries; after a second everything is new.
	clean := back.Add(time.Second)
	time.Sleep(time.Until(clean) + time.Second)
	queries := l.finish()
	l.meets(t, began, clean, "the restart and the second after it")

	errs := sink.all()
	t.Logf("restart took %v; %d queries, %d errors (all before %v after the restart)",
		back.Sub(began).Round(time.Millisecond), queries, len(errs), clean.Sub(back))
	for _, err := range authErrors(errs) {
		t.Errorf("a restart was taken for a rotation: %v", err)
	}
	for i, err := range sink.after(clean) {
		if i == 3 {
			break
		}
		t.Errorf("error a second after the server was back: %v", err)
	}
	if calls := b.apiCalls() - calls0; calls != 0 {
		t.Errorf("%d API calls during the restart, want 0", calls)
	}
	if st := c.Stats(); st.AuthRefused != 0 || st.GaveUp != 0 {
		t.Errorf("stats: %d logins refused, %d gave up; want 0", st.AuthRefused, st.GaveUp)
	}
	// The user's refused logins, over the server's life (this user had
	// none before the restart).
	if n := b.deniedLogins(); n != 0 {
		t.Errorf("%d failed logins of the test's user, want 0", n)
	}
	ping(t, db)
}

// TestCancelDuringBackoff: a context cancelled while Connect waits between
// recovery rounds ends the Connect within 50 ms.
func TestCancelDuringBackoff(t *testing.T) {
	// Serial: bounds a wall-clock delay (50 ms from the cancel) that the
	// CPU load of parallel tests would stretch.
	b := newBed(t, "cancel-Real-Pw")
	// A backoff of 5 s: a Connect that returns soon after the cancel did
	// not sleep it out.
	policy := rotatingmysql.WithRetryPolicy(retry.Policy{InitialInterval: 5 * time.Second, MaxInterval: 5 * time.Second, Timeout: time.Minute})
	for i := range 5 {
		// New wrong passwords each round: a password refused is held back
		// for every pool of the process, so the next pool would not dial
		// the last round's.
		b.putWrong(fmt.Sprintf("cancel-Wrong-Current-%d", i), fmt.Sprintf("cancel-Wrong-Pending-%d", i))
		dials := &dialCounter{}
		db := b.open(policy, dials.option())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- db.PingContext(ctx) }()
		// AWSCURRENT refused, then AWSPENDING in the first round: the
		// Connect then sleeps before the next round.
		deadline := time.Now().Add(5 * time.Second)
		for dials.n.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if dials.n.Load() < 2 {
			cancel()
			t.Fatalf("attempt %d: %d logins after 5s, want 2", i, dials.n.Load())
		}
		time.Sleep(200 * time.Millisecond) // well inside the backoff
		cancelled := time.Now()
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d: Connect still running 10s after the cancel", i)
		}
		took := time.Since(cancelled)
		t.Logf("attempt %d: returned %v after the cancel", i, took)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("attempt %d: error %v, want it to wrap context.Canceled", i, err)
		}
		if took >= 50*time.Millisecond {
			t.Errorf("attempt %d: returned %v after the cancel, want within 50ms", i, took)
		}
	}
}

// TestCancelWhileFetching: the same bound holds while Connect waits for a
// slow secret fetch, first use and recovery alike.
func TestCancelWhileFetching(t *testing.T) {
	// Serial: bounds a wall-clock delay (50 ms from the cancel) that the
	// CPU load of parallel tests would stretch.
	b := newBed(t, "cancel-Fetch-Pw")
	for _, phase := range []string{"first fetch", "refresh after 1045"} {
		db := b.open()
		db.SetMaxIdleConns(0)
		if phase == "refresh after 1045" {
			ping(t, db)
			if err := errors.Join(b.rot.CreateSecret(context.Background()), b.rot.SetSecret(context.Background())); err != nil {
				t.Fatal(err)
			}
		}
		b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 5 * time.Second})
		for i := range 3 {
			calls0 := b.sm.TotalCalls()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- db.PingContext(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for b.sm.TotalCalls() == calls0 && time.Now().Before(deadline) && i == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			cancelled := time.Now()
			cancel()
			err := <-done
			took := time.Since(cancelled)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s, attempt %d: error %v, want it to wrap context.Canceled", phase, i, err)
			}
			if took >= 50*time.Millisecond {
				t.Errorf("%s, attempt %d: returned %v after the cancel, want within 50ms", phase, i, took)
			}
			t.Logf("%s, attempt %d: returned %v after the cancel", phase, i, took)
		}
		b.sm.ClearFaults()
	}
}

// TestFaultAgentKilledMidRotation: the Secrets Manager Agent dies right
// after the rotation's setSecret step (the database has the new password,
// nobody has fetched it yet) and comes back 2 s later, with an empty cache,
// while 64 goroutines dial (as many as may wait at once: enough that at
// least 50 connections meet the downtime). Alone, the agent source makes
// connections wait for it (within the retry bound) and asks it a bounded
// number of times; in the chain agent,secretsmanager the API answers meanwhile. Either way the
// application sees no error.
func TestFaultAgentKilledMidRotation(t *testing.T) {
	t.Parallel()
	const down = 2 * time.Second
	for _, source := range []string{"agent", "agent,secretsmanager"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "agent-Killed-Pw")
			ag, err := rotatingmysqltest.NewAgent(b.sm.Store(), badAgentToken)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ag.Close() })
			c, db := b.openWithConnector(
				func(c *rotatingmysql.Config) error { c.Source = source; return nil },
				rotatingmysql.WithAgentEndpoint(ag.URL()), rotatingmysql.WithAgentToken(ag.Token()),
			)
			db.SetMaxIdleConns(0)
			ping(t, db)
			st0, calls0 := c.Stats(), b.apiCalls()
			sink := &errorSink{}
			l := dialLoad(db, 64, 15*time.Second, sink)
			time.Sleep(200 * time.Millisecond)

			var killed, back time.Time
			restarted := make(chan struct{})
			b.rot.OnStep = func(s rotatingmysqltest.Step) {
				if s != rotatingmysqltest.StepTestSecret {
					return
				}
				if err := ag.Stop(); err != nil {
					t.Error(err)
				}
				killed = time.Now()
				time.AfterFunc(down, func() {
					if err := ag.Start(); err != nil {
						t.Error(err)
					}
					back = time.Now()
					close(restarted)
				})
			}
			b.rot.Pause = 500 * time.Millisecond
			if err := b.rot.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			<-restarted
			time.Sleep(3 * time.Second)
			queries := l.finish()
			l.meets(t, killed, back, "the agent's downtime")

			st := c.Stats()
			fCur := st.Fetches[credsource.Current] - st0.Fetches[credsource.Current]
			fPend := st.Fetches[credsource.Pending] - st0.Fetches[credsource.Pending]
			errs := sink.all()
			t.Logf("agent down %v mid-rotation (source=%s): %d queries, %d errors; fetches AWSCURRENT %d, AWSPENDING %d; %d agent requests, %d API calls, by source %v",
				down, source, queries, len(errs), fCur, fPend, ag.Requests(), b.apiCalls()-calls0, st.FetchesBySource)
			for i, err := range errs {
				if i == 3 {
					break
				}
				t.Errorf("application error: %v", err)
			}
			if queries == 0 || len(sink.after(back)) > 0 {
				t.Errorf("no clean load after the agent came back")
			}
			if fCur > 4 || fPend > 4 {
				t.Errorf("fetches AWSCURRENT %d, AWSPENDING %d; want at most 4 each", fCur, fPend)
			}
			if source == "agent" && b.apiCalls() != calls0 {
				t.Errorf("source=agent called the API %d times", b.apiCalls()-calls0)
			}
		})
	}
}
