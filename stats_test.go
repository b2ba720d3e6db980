package rotatingmysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Credentials of the AWS client in the scripted rotation: distinctive, so
// that the log test can prove they never reach a log line.
const (
	scriptAccessKey    = "AKIDSCRIPT7Q2W"
	scriptSecretKey    = "sak-script-7Hq2Wm9Zx4"
	scriptSessionToken = "tok-script-Vb8Nc3Lp1Ka6"
)

// openConnectorDB returns the bed's connector itself (for Stats,
// RotationStatus and HealthCheck) and a pool on it that keeps no idle
// connection, so that each Ping dials.
func openConnectorDB(t *testing.T, b *bed, opts ...rotatingmysql.Option) (*rotatingmysql.Connector, *sql.DB) {
	t.Helper()
	awsCfg := b.sm.AWSConfig()
	awsCfg.Credentials = credentials.NewStaticCredentialsProvider(scriptAccessKey, scriptSecretKey, scriptSessionToken)
	c, db := openConfig(t, rotatingmysql.NewConfig(b.arn), append([]rotatingmysql.Option{rotatingmysql.WithAWSConfig(awsCfg)}, opts...)...)
	db.SetMaxIdleConns(0)
	return c, db
}

// stagePassword returns the password of the version with stage in the
// bed's secret.
func stagePassword(t *testing.T, b *bed, stage string) (versionID, password string) {
	t.Helper()
	v, err := b.sm.Store().GetSecretValue(b.arn, "", stage)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Password string }
	if err := json.Unmarshal([]byte(v.SecretString), &doc); err != nil {
		t.Fatal(err)
	}
	return v.VersionID, doc.Password
}

// scripted is what runRotationScript did.
type scripted struct {
	c           *rotatingmysql.Connector
	v1, v2      string   // the first version and the rotated one
	passwords   []string // every password the account had
	burst       int      // connections opened at once in phase 1
	deniedByUs  int64    // logins the server refused, less the rotator's own
	lastPingErr error    // what the application saw in phase 6
}

// Phases of runRotationScript, passed to its check function.
const (
	phaseColdBurst = iota + 1
	phaseCacheHits
	phaseWindow
	phaseOnPending
	phaseFinished
	phaseGaveUp
)

// runRotationScript plays a rotation one connection at a time, so that
// every count is known, and calls check after each phase:
//
//  1. cold start: 8 connections at once while the first fetch is slowed
//     down: one fetch, shared by all;
//  2. 3 connections served from the cache;
//  3. createSecret, setSecret, testSecret, then 1 connection: it meets 1045,
//     reads AWSPENDING (one call), and logs in with AWSPENDING;
//  4. 2 connections in the window, on AWSPENDING without a fetch;
//  5. finishSecret, then 1 connection;
//  6. the account's password changed behind the secret's back and the API
//     failing: 1 connection meets 1045, the refresh of AWSPENDING fails and
//     is served stale, AWSCURRENT is served from the cache (the failure's
//     backoff holds every stage), the older AWSCURRENT gets one trial (its
//     refusal predates the change), and the Connect gives up.
//
// opts are added to the connector's; the retry timeout is 1 s.
func runRotationScript(t *testing.T, b *bed, check func(phase int, c *rotatingmysql.Connector), opts ...rotatingmysql.Option) *scripted {
	t.Helper()
	ctx := context.Background()
	opts = append([]rotatingmysql.Option{rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second})}, opts...)
	c, db := openConnectorDB(t, b, opts...)
	s := &scripted{c: c, burst: 8, passwords: []string{b.password}}
	s.v1, _ = stagePassword(t, b, rotatingmysqltest.StageCurrent)
	denied0 := b.deniedLogins()
	if check == nil {
		check = func(int, *rotatingmysql.Connector) {}
	}

	// 1. The delay keeps the first fetch under way while the others ask
	// (well short of the retry timeout, which bounds the first fetch too:
	// the rest is for the fetch and the login on a busy machine).
	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: 250 * time.Millisecond, Times: 1})
	var wg sync.WaitGroup
	errs := make(chan error, s.burst)
	start := make(chan struct{})
	for range s.burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conn, err := db.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			conn.Close()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("cold start: %v", err)
	}
	check(phaseColdBurst, c)

	// 2.
	for range 3 {
		ping(t, db)
	}
	check(phaseCacheHits, c)

	// 3. Forced refreshes of a stage start at most once per
	// MinRefreshInterval: wait it out so that the refresh below fetches.
	time.Sleep(credsource.DefaultMinRefreshInterval)
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	var pw string
	s.v2, pw = stagePassword(t, b, rotatingmysqltest.StagePending)
	s.passwords = append(s.passwords, pw)
	ping(t, db)
	check(phaseWindow, c)

	// 4.
	ping(t, db)
	ping(t, db)
	check(phaseOnPending, c)

	// 5.
	if err := b.rot.FinishSecret(ctx); err != nil {
		t.Fatal(err)
	}
	ping(t, db)
	check(phaseFinished, c)

	// 6.
	time.Sleep(credsource.DefaultMinRefreshInterval)
	broken := "broken-Password-6x"
	s.passwords = append(s.passwords, broken)
	if err := b.srv.SetPassword(ctx, b.user, broken); err != nil {
		t.Fatal(err)
	}
	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "InternalServiceError"})
	defer b.sm.ClearFaults()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.lastPingErr = db.PingContext(pctx)
	if s.lastPingErr == nil {
		t.Fatal("phase 6: Ping succeeded with a password the secret does not hold")
	}
	// A fetch outlives a waiter whose deadline passed; let it record (the
	// phase's one stale answer: AWSPENDING's).
	for deadline := time.Now().Add(5 * time.Second); c.Stats().StaleServed < 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// The rotation's setSecret first tries AWSPENDING, as the AWS template
	// does: one refused login that is not the driver's.
	s.deniedByUs = b.deniedLogins() - denied0 - 1
	check(phaseGaveUp, c)
	return s
}

func TestStatsScriptedRotation(t *testing.T) {
	// Serial: the script's exact counts assume its 1 s retry timeout,
	// which the CPU load of parallel tests can exhaust at the cold start.
	b := newBed(t, "stats-Initial-pw1")
	// want holds the counters expected after each phase; hits are checked
	// separately because phase 1 splits 8 lookups between misses and hits
	// as the goroutines happen to run.
	var burstHits uint64
	var s *scripted
	type counts struct {
		current, pending, errors, stale, refused, recovered, pendingUsed, gaveUp uint64
		hitsAfterBurst                                                           uint64
		stage                                                                    credsource.Stage
		v2                                                                       bool
	}
	expect := map[int]counts{
		phaseCacheHits: {current: 1, hitsAfterBurst: 3, stage: credsource.Current},
		phaseWindow:    {current: 1, pending: 1, refused: 1, recovered: 1, pendingUsed: 1, hitsAfterBurst: 4, stage: credsource.Pending, v2: true},
		phaseOnPending: {current: 1, pending: 1, refused: 1, recovered: 1, pendingUsed: 1, hitsAfterBurst: 6, stage: credsource.Pending, v2: true},
		phaseFinished:  {current: 1, pending: 1, refused: 1, recovered: 1, pendingUsed: 1, hitsAfterBurst: 7, stage: credsource.Pending, v2: true},
		// Phase 6: AWSPENDING's refusal shows the password changed after
		// it logged in, which clears AWSCURRENT's older refusal. The round
		// asks for AWSPENDING (failed: the same version served stale),
		// then AWSCURRENT, which that failure's backoff answers from the
		// cache without a fetch: labelled AWSCURRENT again, it gets one
		// trial (a rollback would have made it right), refused too.
		phaseGaveUp: {current: 1, pending: 2, errors: 1, stale: 1, refused: 3, recovered: 1, pendingUsed: 1, gaveUp: 1,
			hitsAfterBurst: 8, stage: credsource.Pending, v2: true},
	}
	var v1 string
	v1, _ = stagePassword(t, b, rotatingmysqltest.StageCurrent)
	check := func(phase int, c *rotatingmysql.Connector) {
		t.Helper()
		st := c.Stats()
		t.Logf("phase %d: %+v", phase, st)
		if phase == phaseColdBurst {
			// All 8 connections asked at once; the first fetch took half
			// a second, so every miss joined it.
			if got := st.Fetches[credsource.Current]; got != 1 {
				t.Errorf("phase 1: %d fetches of AWSCURRENT for %d connections, want 1", got, 8)
			}
			if st.CacheHits+st.CacheMisses != 8 || st.Coalesced != st.CacheMisses || st.Coalesced < 2 {
				t.Errorf("phase 1: hits %d, misses %d, coalesced %d: want 8 lookups, every miss coalesced, at least 2",
					st.CacheHits, st.CacheMisses, st.Coalesced)
			}
			burstHits = st.CacheHits
			if st.CurrentVersionID != v1 || st.CurrentStage != credsource.Current || st.AuthRefused != 0 {
				t.Errorf("phase 1: version %q (%s), refused %d; want %q (AWSCURRENT), 0", st.CurrentVersionID, st.CurrentStage, st.AuthRefused, v1)
			}
			if st.LastRefresh.IsZero() || st.LastError != nil {
				t.Errorf("phase 1: last refresh %v, last error %v", st.LastRefresh, st.LastError)
			}
			return
		}
		w := expect[phase]
		got := counts{
			current: st.Fetches[credsource.Current], pending: st.Fetches[credsource.Pending],
			errors: st.FetchErrors, stale: st.StaleServed, refused: st.AuthRefused,
			recovered: st.Recovered, pendingUsed: st.PendingUsed, gaveUp: st.GaveUp,
			hitsAfterBurst: st.CacheHits - burstHits, stage: st.CurrentStage, v2: st.CurrentVersionID != v1,
		}
		if got != w {
			t.Errorf("phase %d: got  %+v\n\t\t\t   want %+v", phase, got, w)
		}
		if st.CacheMisses+burstHits != 8 {
			t.Errorf("phase %d: %d misses after the burst's, want none (the TTL has not passed)", phase, st.CacheMisses+burstHits-8)
		}
		// Only successful fetches count by source: phase 6's failed. A
		// rotation costs one: AWSPENDING.
		wantBySource := uint64(2)
		if phase < phaseWindow {
			wantBySource = 1
		}
		if st.FetchesBySource["secretsmanager"] != wantBySource || len(st.FetchesBySource) != 1 {
			t.Errorf("phase %d: fetches by source %v, want secretsmanager:%d", phase, st.FetchesBySource, wantBySource)
		}
		if phase == phaseGaveUp {
			var ae smithy.APIError
			if !errors.As(st.LastError, &ae) || ae.ErrorCode() != "InternalServiceError" {
				t.Errorf("phase 6: last error %v, want the API's InternalServiceError", st.LastError)
			}
		} else if st.LastError != nil {
			t.Errorf("phase %d: last error %v, want nil", phase, st.LastError)
		}
	}
	s = runRotationScript(t, b, check)
	if s.c.Stats().CurrentVersionID != s.v2 {
		t.Errorf("current version %q, want the rotated %q", s.c.Stats().CurrentVersionID, s.v2)
	}
	// The driver's refused logins, as the server counted them.
	if got := s.c.Stats().AuthRefused; int64(got) != s.deniedByUs {
		t.Errorf("AuthRefused %d, server counted %d refused logins by the driver", got, s.deniedByUs)
	}
	var ce *rotatingmysql.ConnectError
	if !errors.As(s.lastPingErr, &ce) {
		t.Errorf("phase 6: %v, want a ConnectError", s.lastPingErr)
	}
}
