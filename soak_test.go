package rotatingmysql_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
)

// EnvSoakRotations sets how many rotations TestSoak runs; make soak sets
// 20 (about two minutes). Unset, TestSoak runs a short version of 3.
const EnvSoakRotations = "ROTATINGMYSQL_SOAK_ROTATIONS"

// TestSoak runs single-user rotations back to back while 16 goroutines
// query and every query dials: the application sees no error, API calls and
// failed logins stay within their per-rotation bounds, and the goroutine
// count and heap do not grow with the number of rotations.
func TestSoak(t *testing.T) {
	// Serial: counts the process's goroutines and heap, which parallel
	// tests would change.
	// The short version: windows of 500 ms (100 new connections each),
	// and past the TTL (1 s) on each new password.
	rotations, pause, settle := 3, 500*time.Millisecond, 1200*time.Millisecond
	if s := os.Getenv(EnvSoakRotations); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", EnvSoakRotations, s)
		}
		// About 6 s per rotation: the window between setSecret and
		// finishSecret, then time on the new AWSCURRENT past the TTL.
		rotations, pause, settle = n, 2*time.Second, 3500*time.Millisecond
	}
	const workers = 16
	b := newBed(t, "soak-Initial-Pw")
	c, db := b.openWithConnector(rotatingmysql.WithTTL(time.Second))
	db.SetMaxIdleConns(0)
	ping(t, db)
	g0 := runtime.NumGoroutine()
	calls0, denied0 := b.apiCalls(), b.deniedLogins()

	sink := &errorSink{}
	l := dialLoad(db, workers, 15*time.Second, sink)
	stopped := false
	defer func() {
		if !stopped {
			l.finish()
		}
	}()
	b.rot.Pause = pause
	began := time.Now()
	var heapWarm uint64
	var gWarm, gMax int
	for i := range rotations {
		if err := b.rot.Rotate(context.Background()); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		time.Sleep(settle)
		g, heap := runtime.NumGoroutine(), heapAlloc()
		if i == 0 {
			gWarm, heapWarm = g, heap
		}
		gMax = max(gMax, g)
		if n := len(sink.all()); n > 0 {
			t.Fatalf("rotation %d: %d application errors; first: %v", i+1, n, sink.all()[0])
		}
		if testing.Verbose() {
			t.Logf("rotation %2d done at %5.1fs: %d goroutines, heap %.1f MiB", i+1, time.Since(began).Seconds(), g, float64(heap)/(1<<20))
		}
	}
	heapEnd := heapAlloc()
	queries := l.finish()
	stopped = true
	took := time.Since(began)

	st := c.Stats()
	calls, denied := b.apiCalls()-calls0, b.deniedLogins()-denied0
	t.Logf("%d rotations in %v under %d dialing goroutines: %d queries, 0 errors; %d API calls, %d failed logins (the rotator's included), %d recovered, %d switches to AWSPENDING; goroutines %d at start, %d after the first rotation, %d at most; heap %.1f MiB after the first rotation, %.1f MiB at the end",
		rotations, took.Round(time.Second), workers, queries, calls, denied, st.Recovered, st.PendingUsed,
		g0, gWarm, gMax, float64(heapWarm)/(1<<20), float64(heapEnd)/(1<<20))
	if queries == 0 {
		t.Fatal("the load ran no query")
	}
	// Per rotation: the refresh of AWSCURRENT and AWSPENDING after the
	// 1045, the fetch of the new AWSCURRENT, and one fetch per TTL.
	if max := rotations*4 + int(took/time.Second) + 2; calls > max {
		t.Errorf("%d API calls, want at most %d", calls, max)
	}
	// Per rotation: the dials in flight when the password changes and the
	// rotator's own failed login.
	if max := int64(rotations * (workers + 1)); denied > max {
		t.Errorf("%d failed logins, want at most %d", denied, max)
	}
	// Each worker holds at most one connection (with the mysql driver's
	// watcher goroutine) and one recovery (with a fetch goroutine): the
	// count varies with what the workers are doing, not with the rotations.
	if max := gWarm + 2*workers; gMax > max {
		t.Errorf("goroutines grew to %d, want at most %d (%d after the first rotation)", gMax, max, gWarm)
	}
	if max := heapWarm + heapWarm/2 + 4<<20; heapEnd > max {
		t.Errorf("heap grew from %d to %d bytes, want at most %d", heapWarm, heapEnd, max)
	}
	// Once the load stops, the goroutines it needed end; a few may remain
	// for keep-alive connections to the emulator (two goroutines each),
	// which end when it closes (TestMain then checks for leaks).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > g0+6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > g0+6 {
		t.Errorf("%d goroutines after the load stopped, want at most %d", g, g0+6)
	}
}

// heapAlloc returns the bytes of live heap objects after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
