package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
)

// Driver labels, as the report prints them.
const (
	driverRotating = "rotatingmysql"
	driverPlain    = "mysql"
)

// queryTimeout bounds one worker query, dial included. It is above the
// rotatingmysql retry policy's 10 s, so a slow recovery shows as latency.
const queryTimeout = 15 * time.Second

// maxErrorKinds bounds the distinct error texts kept per driver.
const maxErrorKinds = 20

// sample is one query's outcome.
type sample struct {
	at     time.Duration // completion, since the drill started
	lat    time.Duration
	step   int32
	failed bool
}

// recorder collects the queries of one driver's workers.
type recorder struct {
	driver string

	queries, errors atomic.Int64 // for the live progress

	mu       sync.Mutex
	samples  []sample
	errKinds map[string]int
	dropped  int // errors whose kind was not kept
}

func newRecorder(driver string) *recorder {
	return &recorder{driver: driver, errKinds: make(map[string]int)}
}

func (r *recorder) add(s sample, err error) {
	r.queries.Add(1)
	if s.failed {
		r.errors.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if err != nil {
		k := errorKind(err)
		if _, ok := r.errKinds[k]; ok || len(r.errKinds) < maxErrorKinds {
			r.errKinds[k]++
		} else {
			r.dropped++
		}
	}
}

// snapshot returns a copy of what was recorded.
func (r *recorder) snapshot() ([]sample, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds := make(map[string]int, len(r.errKinds)+1)
	for k, v := range r.errKinds {
		kinds[k] = v
	}
	if r.dropped > 0 {
		kinds["(other errors)"] = r.dropped
	}
	return append([]sample(nil), r.samples...), kinds
}

// errorKind names an error for the report: the server's error number and
// message, or the error text. Neither driver puts a password in an error.
func errorKind(err error) string {
	var me *mysql.MySQLError
	var ce *rotatingmysql.ConnectError
	switch {
	case errors.As(err, &ce):
		return ce.Error()
	case errors.As(err, &me):
		return fmt.Sprintf("Error %d: %s", me.Number, me.Message)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %v", queryTimeout)
	case errors.Is(err, driver.ErrBadConn):
		return "bad connection"
	}
	return err.Error()
}

// workerGroup is one driver's workers: some on a pool that keeps its
// connections, the others on a pool that keeps none, so that every query
// of theirs dials a new connection, as a freshly started or scaled-out
// instance does throughout a rotation.
type workerGroup struct {
	rec      *recorder
	pooled   *sql.DB
	fresh    *sql.DB
	nPooled  int
	nFresh   int
	interval time.Duration
}

// newWorkerGroup opens the two pools on connector for n workers: half of
// them (rounded up) on fresh connections.
func newWorkerGroup(rec *recorder, connector driver.Connector, n int, interval time.Duration) *workerGroup {
	g := &workerGroup{rec: rec, nFresh: (n + 1) / 2, interval: interval}
	g.nPooled = n - g.nFresh
	g.pooled = sql.OpenDB(connector)
	g.pooled.SetMaxOpenConns(max(g.nPooled, 1))
	g.pooled.SetMaxIdleConns(max(g.nPooled, 1))
	g.fresh = sql.OpenDB(connector)
	g.fresh.SetMaxIdleConns(0)
	return g
}

// run starts the workers; they stop when ctx ends. wg counts them.
func (g *workerGroup) run(ctx context.Context, wg *sync.WaitGroup, tl *timeline) {
	for i := 0; i < g.nPooled+g.nFresh; i++ {
		db := g.pooled
		if i < g.nFresh {
			db = g.fresh
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.work(ctx, db, tl)
		}()
	}
}

func (g *workerGroup) work(ctx context.Context, db *sql.DB, tl *timeline) {
	for ctx.Err() == nil {
		began := time.Now()
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		var one int
		err := db.QueryRowContext(qctx, "SELECT 1").Scan(&one)
		cancel()
		if err != nil && over(ctx) {
			return // the drill is over; an interrupted query is not an error
		}
		g.rec.add(sample{at: tl.since(), lat: time.Since(began), step: tl.current(), failed: err != nil}, err)
		if sleep(ctx, g.interval) != nil {
			return
		}
	}
}

// over reports whether ctx has ended or its deadline has passed: a dial
// can fail with "i/o timeout" at the deadline a moment before the
// context's own timer marks it done.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// Close closes both pools.
func (g *workerGroup) Close() error {
	return errors.Join(g.pooled.Close(), g.fresh.Close())
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
