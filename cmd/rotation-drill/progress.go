package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
)

// progressPrinter prints one line a second while the drill runs, and a line
// at each step.
type progressPrinter struct {
	mu      sync.Mutex
	w       io.Writer
	done    chan struct{}
	stopped chan struct{}
}

func startProgress(w io.Writer, o *options, t *target, tl *timeline, conn *rotatingmysql.Connector, rec, plainRec *recorder) *progressPrinter {
	p := &progressPrinter{w: w, done: make(chan struct{}), stopped: make(chan struct{})}
	what := strategyText(o.strategy)
	if o.aws {
		what = "the secret's own rotation function"
	}
	p.printf("rotation-drill: %s\n  %d rotatingmysql workers, %d mysql workers (password read once); %d rotation(s), %s, from %v on\n",
		t.describe, o.workers, o.plainWorkers, o.rotations, what, o.duration/4)
	tl.onMark = func(m mark) {
		p.printf("%s", markLine(m))
	}
	go func() {
		defer close(p.stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastQ, lastPlainQ, lastE, lastPlainE int64
		last := time.Now()
		for {
			select {
			case <-p.done:
				return
			case now := <-tick.C:
				secs := now.Sub(last).Seconds()
				last = now
				q, pq := rec.queries.Load(), plainRec.queries.Load()
				e, pe := rec.errors.Load(), plainRec.errors.Load()
				absorbed, calls := conn.Stats().AuthRefused, t.apiCalls(conn)
				figures := []liveFigures{{
					driver: driverRotating, queriesPerSec: float64(q-lastQ) / secs, errorsPerSec: float64(e-lastE) / secs,
					errors: e, absorbed: &absorbed, calls: &calls,
				}}
				if o.plainWorkers > 0 {
					figures = append(figures, liveFigures{
						driver: driverPlain, queriesPerSec: float64(pq-lastPlainQ) / secs, errorsPerSec: float64(pe-lastPlainE) / secs,
						errors: pe,
					})
				}
				lastQ, lastPlainQ, lastE, lastPlainE = q, pq, e, pe
				p.printf("%s", liveLine(tl.since().Seconds(), tl.name(tl.current()), figures...))
			}
		}
	}()
	return p
}

func (p *progressPrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// stop stops the printer; a nil printer is a no-op.
func (p *progressPrinter) stop() {
	if p == nil {
		return
	}
	close(p.done)
	<-p.stopped
}
