package rotatingmysql_test

import (
	"context"
	"database/sql"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestOpenCloseLeavesNothing opens 100 databases the way an application
// does, sql.Open("rotatingmysql", ARN) with the AWS environment pointing at
// the emulator (half of them sharing one cache, half with their own), uses
// each, closes them all, and checks that nothing is left
// behind: the goroutine count is back where it was, goleak finds no
// goroutine that was not there before (no exception for the SDK's HTTP
// connections), and the emulator holds no connection.
func TestOpenCloseLeavesNothing(t *testing.T) {
	// Serial: counts the process's goroutines (runtime.NumGoroutine and
	// goleak), which parallel tests change; and it opens the databases
	// through the AWS environment (t.Setenv), as an application does.
	const n = 100
	b := newBed(t, "close-Initial-Pw-1")
	for k, v := range b.sm.Env() {
		t.Setenv(k, v)
	}
	before := goleak.IgnoreCurrent()
	g0 := runtime.NumGoroutine()

	dbs := make([]*sql.DB, 0, n)
	defer func() { // only on failure: the test closes them itself
		for _, db := range dbs {
			db.Close()
		}
	}()
	for i := range n {
		// Half share one source and cache (one client); half have their
		// own (sharedCache=false): 51 clients to close in all.
		dsn := b.arn
		if i%2 == 1 {
			dsn += "?sharedCache=false"
		}
		db, err := sql.Open("rotatingmysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping database %d: %v", len(dbs), err)
		}
	}
	if got := b.sm.OpenConnections(); got < n/4 {
		t.Fatalf("the emulator holds %d connections while the databases are open, want at least %d (about one per client): the test would prove less", got, n/4)
	}
	t.Logf("%d databases open: %d goroutines (from %d), %d connections to the emulator, %d GetSecretValue calls",
		n, runtime.NumGoroutine(), g0, b.sm.OpenConnections(), b.apiCalls())
	for _, db := range dbs {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	dbs = nil

	// Connections and their goroutines end a moment after the close (the
	// HTTP server reads the EOF): poll, at most 5 s.
	g, conns := runtime.NumGoroutine(), b.sm.OpenConnections()
	for i := 0; i < 500 && (g > g0 || conns > 0); i++ {
		time.Sleep(10 * time.Millisecond)
		g, conns = runtime.NumGoroutine(), b.sm.OpenConnections()
	}
	if conns != 0 {
		t.Errorf("%d connections to the emulator left open after closing %d databases, want 0", conns, n)
	}
	if g > g0 {
		t.Errorf("%d goroutines after closing %d databases, %d before", g, n, g0)
	}
	goleak.VerifyNone(t, before)
}
