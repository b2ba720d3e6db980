package rotatingmysql_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// TestStaleWhileRevalidateSecretsManagerBlackHoled: with a 1 s TTL, the
// Secrets Manager stops answering (requests are held, never answered) for
// 3 TTLs while 4 goroutines Ping a pool that dials every connection,
// loadRate Pings a second in all (not flat out: a new login each). The
// cached AWSCURRENT serves every Ping: no error, and no connection waited
// for a fetch (counted by the cache); one background refresh asks the
// emulator once, its request held; the others do not pile up behind it.
// The slowest Ping is logged.
func TestStaleWhileRevalidateSecretsManagerBlackHoled(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	b := newBed(t, "swr-Blackhole-Pw")
	c, db := b.openWithConnector(rotatingmysql.WithTTL(ttl))
	db.SetMaxIdleConns(0)
	ping(t, db)
	st0 := rotatingmysql.CacheStatsOf(c)
	calls0 := b.apiCalls()

	b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Delay: time.Hour})
	defer b.sm.ClearFaults()
	var (
		pings   atomic.Int64
		errs    []error
		mu      sync.Mutex
		slowest time.Duration
		wg      sync.WaitGroup
	)
	end := time.Now().Add(3 * ttl)
	pace := time.NewTicker(time.Second / loadRate)
	defer pace.Stop()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				<-pace.C
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				err := db.PingContext(ctx)
				took := time.Since(start)
				cancel()
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				pings.Add(1)
			}
		}()
	}
	wg.Wait()

	st := rotatingmysql.CacheStatsOf(c)
	calls := b.apiCalls() - calls0
	t.Logf("Secrets Manager black-holed for %v with a %v TTL: %d pings, %d errors, slowest %v; waited for a fetch %d, background refreshes %d, API requests %d",
		3*ttl, ttl, pings.Load(), len(errs), slowest, st.Waited-st0.Waited, st.Revalidated-st0.Revalidated, calls)
	for i, err := range errs {
		if i == 3 {
			break
		}
		t.Errorf("ping error: %v", err)
	}
	if pings.Load() == 0 {
		t.Fatal("no ping ran")
	}
	if n := st.Waited - st0.Waited; n != 0 {
		t.Errorf("%d lookups waited for the black-holed source, want 0 (stale-while-revalidate)", n)
	}
	if n := st.Revalidated - st0.Revalidated; n != 1 {
		t.Errorf("%d background refreshes began, want 1 (its fetch is still held)", n)
	}
	if calls != 1 {
		t.Errorf("%d API requests, want 1: the background refresh's, held; no second request while it is in flight", calls)
	}
}
