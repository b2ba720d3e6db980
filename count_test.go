package rotatingmysql_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The counting tests measure what one rotation costs one process: calls to
// Secrets Manager (counted by the emulator) and failed logins (counted by a
// mysql DialFunc that records every dial, and checked against the server's
// count of the account's refused logins). They assert counts and orderings, never durations.
// Each logs a "count:" line that scripts/bench.sh collects for the README.

// connectRecord is what one Connect did: when it ran and the dials it made.
type connectRecord struct {
	start, end time.Time
	mu         sync.Mutex
	dials      []*dialRecord
	err        error
}

// dialRecord is one dial (one login attempt) of a Connect.
type dialRecord struct {
	start    time.Time
	closedAt atomic.Int64 // unix nanoseconds; 0 while open
}

// failed reports whether the login of d failed: the mysql driver closes the
// connection of a failed handshake before Connect returns, and hands back
// the connection of a good one.
func (d *dialRecord) failed(connectEnd time.Time) bool {
	c := d.closedAt.Load()
	return c != 0 && c <= connectEnd.UnixNano()
}

type recordKey struct{}

// logDial is a mysql DialFunc that records each dial in the connectRecord
// carried by the Connect's context. It dials with a plain net.Dialer: it
// measures, it fakes nothing.
func logDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &dialRecord{start: time.Now()}
	if rec, ok := ctx.Value(recordKey{}).(*connectRecord); ok {
		rec.mu.Lock()
		rec.dials = append(rec.dials, d)
		rec.mu.Unlock()
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		d.closedAt.Store(time.Now().UnixNano())
		return nil, err
	}
	h, _ := ctx.Value(holdKey{}).(*hold)
	return &loggedConn{Conn: conn, rec: d, hold: h}, nil
}

type loggedConn struct {
	net.Conn
	rec  *dialRecord
	once sync.Once

	hold          *hold
	wrote, passed bool
}

type holdKey struct{}

// hold keeps a login from returning after the server has accepted it: the
// connection's Read of the server's OK packet (the first packet after the
// client's auth response that starts with 0x00) signals verified and waits
// for release.
type hold struct {
	verified, release chan struct{}
}

func (c *loggedConn) Write(p []byte) (int, error) {
	c.wrote = true
	return c.Conn.Write(p)
}

func (c *loggedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.hold != nil && c.wrote && !c.passed && n >= 5 && p[4] == 0x00 {
		c.passed = true
		close(c.hold.verified)
		<-c.hold.release
	}
	return n, err
}

func (c *loggedConn) Close() error {
	c.once.Do(func() { c.rec.closedAt.Store(time.Now().UnixNano()) })
	return c.Conn.Close()
}

// apiLog is an aws.HTTPClient that counts the requests in flight, to tell
// one round trip of two parallel calls from two round trips.
type apiLog struct {
	inner            *http.Client
	inFlight, most   atomic.Int64
	requests, rounds atomic.Int64 // rounds: requests sent while none was in flight
}

func (a *apiLog) Do(r *http.Request) (*http.Response, error) {
	a.requests.Add(1)
	n := a.inFlight.Add(1)
	if n == 1 {
		a.rounds.Add(1)
	}
	for m := a.most.Load(); n > m && !a.most.CompareAndSwap(m, n); m = a.most.Load() {
	}
	defer a.inFlight.Add(-1)
	return a.inner.Do(r)
}

// counted is a connector on a bed's secret with its dials and API requests
// recorded.
type counted struct {
	c   *rotatingmysql.Connector
	api *apiLog

	mu   sync.Mutex
	recs []*connectRecord
}

func newCounted(t *testing.T, b *bed, opts ...rotatingmysql.Option) *counted {
	t.Helper()
	k := &counted{api: &apiLog{inner: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}}
	t.Cleanup(k.api.inner.CloseIdleConnections)
	awsCfg := b.sm.AWSConfig()
	awsCfg.HTTPClient = k.api
	cfg := rotatingmysql.NewConfig(b.arn)
	opts = append([]rotatingmysql.Option{
		rotatingmysql.WithAWSConfig(awsCfg),
		rotatingmysql.WithMySQLConfig(func(mc *mysql.Config) error { mc.DialFunc = logDial; return nil }),
	}, opts...)
	if err := cfg.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k.c = c
	return k
}

// connect runs one recorded Connect and closes the connection it gets.
func (k *counted) connect(ctx context.Context) *connectRecord {
	rec := &connectRecord{start: time.Now()}
	conn, err := k.c.Connect(context.WithValue(ctx, recordKey{}, rec))
	rec.end = time.Now()
	rec.err = err
	if err == nil {
		conn.Close()
	}
	k.mu.Lock()
	k.recs = append(k.recs, rec)
	k.mu.Unlock()
	return rec
}

// tally sums the records of Connects that started at or after from.
type tally struct {
	connects, errors, dials, failed int
	firstErr                        error
	firstFailure                    *dialRecord    // the earliest failed login
	firstFailed                     *connectRecord // the Connect that made it
}

func (k *counted) tally(from time.Time) tally {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s tally
	for _, rec := range k.recs {
		if rec.start.Before(from) {
			continue
		}
		s.connects++
		if rec.err != nil {
			s.errors++
			if s.firstErr == nil {
				s.firstErr = rec.err
			}
		}
		for _, d := range rec.dials {
			s.dials++
			if d.failed(rec.end) {
				s.failed++
				if s.firstFailure == nil || d.closedAt.Load() < s.firstFailure.closedAt.Load() {
					s.firstFailure, s.firstFailed = d, rec
				}
			}
		}
	}
	return s
}

func (k *counted) warm(t *testing.T) {
	t.Helper()
	if rec := k.connect(context.Background()); rec.err != nil {
		t.Fatalf("warm-up: %v", rec.err)
	}
}

// apiCalls returns the emulator's GetSecretValue counts: total, AWSCURRENT,
// AWSPENDING.
func apiCalls(b *bed) (total, current, pending int) {
	return b.sm.Calls("GetSecretValue"),
		b.sm.GetSecretValueCalls(rotatingmysqltest.StageCurrent),
		b.sm.GetSecretValueCalls(rotatingmysqltest.StagePending)
}

var dialerCounts = []int{1, 64, 256}

// TestCountRotationUnderLoad runs one managed single-user rotation while
// 1, 64 or 256 dialers open new connections back to back, and counts what
// the rotation cost the process: GetSecretValue calls (target: one, the
// AWSPENDING read that finds the new password) and failed logins (target: no
// more than the Connects already in flight when the first 1045 came back,
// plus one; no Connect that began after the driver had met the 1045 tried
// the old password).
func TestCountRotationUnderLoad(t *testing.T) {
	t.Parallel()
	for _, n := range dialerCounts {
		t.Run(fmt.Sprintf("dialers=%d", n), func(t *testing.T) {
			b := newBed(t, "count-load-Password-1")
			k := newCounted(t, b)
			k.warm(t)
			ctx := context.Background()

			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
						k.connect(cctx)
						cancel()
					}
				}()
			}
			// Let every dialer get going, then rotate.
			waitFor(t, "dialers under way", func() bool { return k.tally(time.Time{}).connects >= 2*n })
			calls0, cur0, pend0 := apiCalls(b)
			denied0 := b.deniedLogins()
			rot := b.rot
			err := rot.CreateSecret(ctx)
			if err == nil {
				err = rot.SetSecret(ctx) // the database takes the new password here
			}
			setEnd := time.Now()
			if err == nil {
				err = rot.TestSecret(ctx)
			}
			// Keep the window open long enough for every dialer to meet it.
			waitFor(t, "connections after the password change", func() bool {
				return k.countStartedAfter(setEnd) >= 2*n
			})
			if err == nil {
				err = rot.FinishSecret(ctx)
			}
			finished := time.Now()
			waitFor(t, "connections after finishSecret", func() bool { return k.countStartedAfter(finished) >= 2*n })
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}

			// Connects begun before the rotation count too: some were in
			// flight when the password changed.
			s := k.tally(time.Time{})
			if s.errors > 0 {
				t.Fatalf("%d of %d Connects failed; first: %v", s.errors, s.connects, s.firstErr)
			}
			calls, cur, pend := apiCalls(b)
			calls, cur, pend = calls-calls0, cur-cur0, pend-pend0
			// The rotator's setSecret first tries AWSPENDING, as the AWS
			// template does: one failed login that is not the driver's.
			denied := int(b.deniedLogins() - denied0 - 1)
			if denied != s.failed {
				t.Errorf("server counted %d failed logins by the driver, the dial log %d: the measurement is off", denied, s.failed)
			}
			if s.failed == 0 {
				t.Fatal("no login failed: the rotation did not meet a stale cache")
			}
			// The driver met its first 1045 at t1 (the failed login's
			// connection closed) and marked the password refused before the
			// Connect that met it went on to dial again (t2). A Connect was
			// committed to the old password when it began before t2 and was
			// still running at t1.
			t1 := time.Unix(0, s.firstFailure.closedAt.Load())
			t2 := k.secondDial(s.firstFailed)
			inFlight, late, atChange := k.inFlight(t1, t2, setEnd)
			t.Logf("count: dialers=%d api_calls=%d (AWSCURRENT %d, AWSPENDING %d) failed_logins=%d in_flight_at_first_1045=%d in_flight_at_password_change=%d connects=%d dials=%d",
				n, calls, cur, pend, s.failed, inFlight, atChange, s.connects, s.dials)
			if calls != 1 || pend != 1 {
				t.Errorf("GetSecretValue calls %d (AWSCURRENT %d, AWSPENDING %d), want 1: AWSPENDING, which holds the new password", calls, cur, pend)
			}
			if late > 0 {
				t.Errorf("%d failed logins by Connects that began after the driver had met the 1045", late)
			}
			if s.failed > inFlight+1 {
				t.Errorf("failed logins %d, want at most the %d Connects in flight at the first 1045 plus one", s.failed, inFlight)
			}
		})
	}
}

// countStartedAfter returns the number of Connects that began after t and
// have returned.
func (k *counted) countStartedAfter(t time.Time) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, rec := range k.recs {
		if rec.start.After(t) {
			n++
		}
	}
	return n
}

// secondDial returns when rec began its second dial (zero if it made one).
func (k *counted) secondDial(rec *connectRecord) time.Time {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.dials) < 2 {
		return time.Time{}
	}
	return rec.dials[1].start
}

// inFlight counts the Connects committed to the old password (begun before
// t2, still running at t1), the failed logins of Connects begun after t2,
// and the Connects running when the password had just changed (setSecret
// returned at changeEnd).
func (k *counted) inFlight(t1, t2, changeEnd time.Time) (inFlight, late, atChange int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, rec := range k.recs {
		if rec.start.Before(t2) && rec.end.After(t1) {
			inFlight++
		}
		if rec.start.Before(changeEnd) && rec.end.After(changeEnd) {
			atChange++
		}
		if !t2.IsZero() && rec.start.After(t2) {
			for _, d := range rec.dials {
				if d.failed(rec.end) {
					late++
				}
			}
		}
	}
	return inFlight, late, atChange
}

// TestCountNoDialWithRefusedPassword holds the refresh open (the emulator
// answers after a delay) once one Connect has met 1045, then starts 1, 64
// or 256 Connects: none may try the refused password, and all of them
// share the one refresh.
func TestCountNoDialWithRefusedPassword(t *testing.T) {
	t.Parallel()
	for _, n := range dialerCounts {
		t.Run(fmt.Sprintf("dialers=%d", n), func(t *testing.T) {
			b := newBed(t, "count-hold-Password-1")
			k := newCounted(t, b)
			k.warm(t)
			ctx := context.Background()
			if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx)); err != nil {
				t.Fatal(err)
			}
			calls0, cur0, pend0 := apiCalls(b)
			denied0 := b.deniedLogins()
			from := time.Now()
			b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 500 * time.Millisecond})
			first := make(chan *connectRecord, 1)
			go func() { first <- k.connect(ctx) }()
			// The refresh reaches the emulator only after the Connect has
			// marked the password refused.
			waitFor(t, "the refresh to reach the emulator", func() bool { return b.sm.Calls("GetSecretValue") > calls0 })
			joined := time.Now()
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k.connect(ctx)
				}()
			}
			wg.Wait()
			rec := <-first
			b.sm.ClearFaults()
			if rec.err != nil {
				t.Fatalf("first Connect: %v", rec.err)
			}
			s := k.tally(from)
			if s.errors > 0 {
				t.Fatalf("%d of %d Connects failed; first: %v", s.errors, s.connects, s.firstErr)
			}
			calls, cur, pend := apiCalls(b)
			calls, cur, pend = calls-calls0, cur-cur0, pend-pend0
			denied := int(b.deniedLogins() - denied0)
			later := k.tally(joined)
			t.Logf("count: held refresh, dialers=%d api_calls=%d (AWSCURRENT %d, AWSPENDING %d) failed_logins=%d dials_by_later_connects=%d",
				n, calls, cur, pend, s.failed, later.dials)
			if s.failed != 1 || denied != 1 {
				t.Errorf("failed logins %d (server: %d), want 1: the first Connect's", s.failed, denied)
			}
			if calls != 1 || pend != 1 {
				t.Errorf("GetSecretValue calls %d (AWSCURRENT %d, AWSPENDING %d), want 1: AWSPENDING", calls, cur, pend)
			}
			if later.connects != n || later.dials != n || later.failed != 0 {
				t.Errorf("%d later Connects made %d dials, %d failed; want %d dials, none failed", later.connects, later.dials, later.failed, n)
			}
		})
	}
}

// TestCountRecovery is the cost of one Connect that meets 1045 with a stale
// cache: no backoff sleep (the policy's first interval is an hour: a sleep
// would end the Connect at its deadline), at most two dials beyond the
// failed one, and the fewest calls: during a rotation one (AWSPENDING holds
// the new password); after it, one more round trip (AWSPENDING is gone,
// then AWSCURRENT).
func TestCountRecovery(t *testing.T) {
	// Serial: a second request, if the refresh made one in parallel, must
	// overlap the first within the 100 ms delay to be seen as such, which
	// the CPU load of parallel tests could pull apart.
	for _, tc := range []struct {
		name     string
		promoted bool
		calls    int64 // GetSecretValue calls, one per round trip
	}{{"AWSPENDING available", false, 1}, {"AWSCURRENT promoted", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, "count-recover-Password-1")
			k := newCounted(t, b, rotatingmysql.WithRetryPolicy(retry.Policy{InitialInterval: time.Hour, MaxInterval: time.Hour, Timeout: 15 * time.Second}))
			k.warm(t)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var err error
			if tc.promoted {
				err = b.rot.Rotate(ctx)
			} else {
				err = errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx))
			}
			if err != nil {
				t.Fatal(err)
			}
			calls0, _, _ := apiCalls(b)
			req0, rounds0 := k.api.requests.Load(), k.api.rounds.Load()
			k.api.most.Store(0)
			// A delay long enough that two parallel requests overlap on a
			// busy machine.
			b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 100 * time.Millisecond})
			from := time.Now()
			rec := k.connect(ctx)
			b.sm.ClearFaults()
			if rec.err != nil {
				t.Fatalf("Connect: %v (a backoff sleep ends it at the deadline)", rec.err)
			}
			s := k.tally(from)
			calls, _, _ := apiCalls(b)
			calls -= calls0
			requests, rounds := k.api.requests.Load()-req0, k.api.rounds.Load()-rounds0
			t.Logf("count: recovery %s: dials=%d failed_logins=%d api_calls=%d round_trips=%d most_in_flight=%d",
				tc.name, s.dials, s.failed, calls, rounds, k.api.most.Load())
			if s.failed != 1 {
				t.Errorf("failed logins %d, want 1", s.failed)
			}
			if s.dials-1 > 2 {
				t.Errorf("%d dials beyond the failed one, want at most 2", s.dials-1)
			}
			if int64(calls) != tc.calls || int64(calls) != requests {
				t.Errorf("GetSecretValue calls %d (client requests %d), want %d", calls, requests, tc.calls)
			}
			if rounds != tc.calls {
				t.Errorf("%d API round trips, want %d (one call at a time)", rounds, tc.calls)
			}
		})
	}
}

// TestCountLoginAcceptedBeforeChange: a login the server accepted just
// before the password changed, but that returns after another Connect met
// 1045, must not undo what that 1045 taught: the next Connect uses
// AWSPENDING without trying the old password again.
func TestCountLoginAcceptedBeforeChange(t *testing.T) {
	t.Parallel()
	b := newBed(t, "count-stale-Password-1")
	k := newCounted(t, b)
	k.warm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h := &hold{verified: make(chan struct{}), release: make(chan struct{})}
	slow := make(chan *connectRecord, 1)
	go func() { slow <- k.connect(context.WithValue(ctx, holdKey{}, h)) }()
	select {
	case <-h.verified: // the server accepted the old password
	case <-ctx.Done():
		t.Fatal("the held login never got the server's OK")
	}
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx)); err != nil {
		close(h.release)
		t.Fatal(err)
	}
	met := k.connect(ctx) // meets 1045, recovers with AWSPENDING
	close(h.release)
	if rec := <-slow; rec.err != nil {
		t.Fatalf("held Connect: %v", rec.err)
	}
	if met.err != nil || len(met.dials) != 2 {
		t.Fatalf("Connect after the change: %v with %d dials, want success with 2 (1045, then AWSPENDING)", met.err, len(met.dials))
	}
	next := k.connect(ctx)
	if next.err != nil {
		t.Fatal(next.err)
	}
	s := k.tally(next.start)
	t.Logf("count: login accepted before the change returned late: next Connect dials=%d failed=%d", s.dials, s.failed)
	if s.dials != 1 || s.failed != 0 {
		t.Errorf("next Connect made %d dials, %d failed: the late success brought the old password back", s.dials, s.failed)
	}
	pending, err := b.sm.Store().GetSecretValue(b.arn, "", rotatingmysqltest.StagePending)
	if err != nil {
		t.Fatal(err)
	}
	if st := k.c.Stats(); st.CurrentVersionID != pending.VersionID {
		t.Errorf("Stats().CurrentVersionID %q, want the AWSPENDING version %q", st.CurrentVersionID, pending.VersionID)
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var _ aws.HTTPClient = (*apiLog)(nil)
