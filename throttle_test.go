package rotatingmysql_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// throttledPerSecond bounds one process's GetSecretValue requests in any
// second while every request is throttled: at most one fetch per stage
// (AWSCURRENT, AWSPENDING) runs at a time, forced refreshes back off 1, 2,
// then 4 s after a failure, and each fetch is at most the SDK's 3 attempts;
// a fetch's attempts can straddle two seconds, hence 2 x 2 x 3.
const throttledPerSecond = 12

// TestThrottledRotationBoundsRequestRate rotates the password while the
// emulator's quota throttles almost every GetSecretValue, under a load
// whose every query dials a new connection (hundreds of logins a second,
// each refused until the new password is known): the cache's backoff and
// the SDK's retries keep the process's request rate under a small bound,
// counted per second by the emulator. When the quota frees, the process
// learns the new password and its queries succeed again.
func TestThrottledRotationBoundsRequestRate(t *testing.T) {
	t.Parallel()
	b := newBed(t, "throttle-Initial-Pw-1")
	c, db := b.openWithConnector()
	db.SetMaxIdleConns(0)
	ping(t, db)

	// One request every 10 s, the bucket empty: throttled from now on.
	b.sm.SetQuota("GetSecretValue", rotatingmysqltest.Quota{Rate: 0.1, Burst: 1})
	drainQuota(t, b)
	b.sm.ResetCalls()

	ctx := context.Background()
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	sink := &errorSink{}
	l := dialLoad(db, 8, 15*time.Second, sink)
	// Four seconds of throttling, counted by the emulator's seconds.
	throttledFrom := b.sm.RateOrigin()
	waitSeconds(b, throttledFrom, 4)
	rates := b.sm.RequestRates("GetSecretValue")
	refused := c.Stats().AuthRefused

	// The quota frees: the process recovers.
	b.sm.SetQuota("GetSecretValue", rotatingmysqltest.Quota{})
	freed := time.Now()
	recovered := false
	for i := 0; i < 40 && !recovered; i++ { // at most 20 s
		time.Sleep(500 * time.Millisecond)
		recovered = c.Stats().CurrentVersionID == pendingVersion(t, b)
	}
	settled := time.Now()
	time.Sleep(time.Second)
	queries := l.finish()

	total, throttled := 0, 0
	for i, r := range rates[:min(4, len(rates))] {
		total += r.Requests()
		throttled += r.Throttled
		t.Logf("second %d of throttling: %d requests, %d throttled", i, r.Requests(), r.Throttled)
		if r.Requests() > throttledPerSecond {
			t.Errorf("second %d of throttling: %d GetSecretValue requests, want at most %d", i, r.Requests(), throttledPerSecond)
		}
	}
	if throttled == 0 {
		t.Fatal("no request was throttled: the test proves nothing")
	}
	// Each of the 8 workers may have dialed the old password once before
	// the first refusal was recorded; after that it is not dialed again.
	if refused == 0 || refused > 8 {
		t.Errorf("%d logins refused while throttled, want 1 to 8", refused)
	}
	if !recovered {
		t.Fatalf("the connector did not move to the new password within 20 s of the quota freeing (stats %+v)", c.Stats())
	}
	if errs := sink.after(settled); len(errs) > 0 {
		t.Errorf("%d errors after recovering, first: %v", len(errs), errs[0])
	}
	// The queries waited in the connector's recovery (up to the retry
	// policy's 10 s) rather than failing; those past it fail: count them.
	t.Logf("throttled: %d requests in 4 s (%d throttled), %d logins refused, %d application errors; recovered %.1f s after the quota freed; %d queries in all",
		total, throttled, refused, len(sink.all()), settled.Sub(freed).Seconds(), queries)
}

// drainQuota spends the bucket's token, so that the next request is
// throttled.
func drainQuota(t *testing.T, b *bed) {
	t.Helper()
	for i := 0; i < 10 && b.sm.Throttled("GetSecretValue") == 0; i++ {
		_, db := b.openWithConnector()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		db.PingContext(ctx)
		cancel()
		db.Close()
	}
}

// waitSeconds waits until n whole seconds of the emulator's count have
// passed since origin.
func waitSeconds(b *bed, origin time.Time, n int) {
	time.Sleep(time.Until(origin.Add(time.Duration(n)*time.Second + 50*time.Millisecond)))
}

func pendingVersion(t *testing.T, b *bed) string {
	t.Helper()
	v, err := b.sm.Store().GetSecretValue(b.arn, "", rotatingmysqltest.StagePending)
	if err != nil {
		t.Fatal(err)
	}
	return v.VersionID
}
