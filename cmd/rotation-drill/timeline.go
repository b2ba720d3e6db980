package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// Step names of the drill's timeline. The emulated rotation reports the four
// steps of AWS's template plus the pause (window) between testSecret and
// finishSecret; the real rotation (-aws) can only see what DescribeSecret
// shows: the request, AWSPENDING appearing, AWSCURRENT moving.
const (
	stepBefore       = "before"
	stepCreateSecret = "createSecret"
	stepSetSecret    = "setSecret"
	stepTestSecret   = "testSecret"
	stepWindow       = "window"
	stepFinishSecret = "finishSecret"
	stepRequested    = "rotateSecret"
	stepPending      = "pending"
	stepAfter        = "after"
)

// brokenSteps are the steps in which the database accepts only the new
// password while AWSCURRENT still holds the old one (single-user rotation).
var brokenSteps = map[string]bool{stepSetSecret: true, stepTestSecret: true, stepWindow: true, stepFinishSecret: true, stepPending: true}

// counters are the cumulative figures a mark snapshots, so that the report
// can attribute them to steps.
type counters struct {
	AuthRefused uint64
	APICalls    int
}

// mark is the start of a step.
type mark struct {
	Step     string
	Rotation int // 1-based; 0 before the first rotation
	At       time.Duration
	counters counters
}

// timeline tracks the current step. Workers read it on every query, so the
// current step is an atomic index into names.
type timeline struct {
	start    time.Time
	snapshot func() counters
	onMark   func(mark)

	cur   atomic.Int32
	mu    sync.Mutex
	names []string
	marks []mark
	// stopped is when the drill began stopping its workers (0: not yet).
	stopped time.Duration
}

func newTimeline(snapshot func() counters) *timeline {
	t := &timeline{start: time.Now(), snapshot: snapshot, onMark: func(mark) {}}
	t.mark(stepBefore, 0)
	return t
}

// since returns the time elapsed since the drill started.
func (t *timeline) since() time.Duration { return time.Since(t.start) }

// mark starts step (of rotation, 1-based) now.
func (t *timeline) mark(step string, rotation int) {
	m := mark{Step: step, Rotation: rotation, At: t.since(), counters: t.snapshot()}
	t.mu.Lock()
	idx := -1
	for i, n := range t.names {
		if n == step {
			idx = i
		}
	}
	if idx < 0 {
		t.names = append(t.names, step)
		idx = len(t.names) - 1
	}
	t.marks = append(t.marks, m)
	t.cur.Store(int32(idx))
	t.mu.Unlock()
	t.onMark(m)
}

// shutdown records that the drill begins stopping its workers now: what
// comes after is the drill's own shutdown, which the picture leaves out.
func (t *timeline) shutdown() {
	at := t.since()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped == 0 {
		t.stopped = at
	}
}

// shutdownAt returns when the drill began stopping its workers, or 0.
func (t *timeline) shutdownAt() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// current returns the index of the current step.
func (t *timeline) current() int32 { return t.cur.Load() }

// name returns the name of the step with index i.
func (t *timeline) name(i int32) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.names[i]
}

// snapshotMarks returns the marks so far and the step names by index.
func (t *timeline) snapshotMarks() ([]mark, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]mark(nil), t.marks...), append([]string(nil), t.names...)
}
