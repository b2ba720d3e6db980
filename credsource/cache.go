package credsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatingmysql/rotatingmysql/internal/refreshrules"
)

// Defaults of CacheOptions.
const (
	// DefaultTTL is how long a fetched version is served before the cache
	// asks the source again (in the background: the version is served
	// meanwhile). Rotation does not wait for it: a login failure forces a
	// refresh at once.
	DefaultTTL = 15 * time.Minute
	// DefaultMinRefreshInterval bounds forced refreshes: one fetch per stage
	// per interval, however many connections ask for it.
	DefaultMinRefreshInterval = time.Second
	// DefaultFetchTimeout is the least time a fetch is given, SDK retries
	// included: the bound of a fetch that nobody waits for with a later
	// deadline of its own (a background refresh, a caller without a
	// deadline).
	DefaultFetchTimeout = 10 * time.Second
)

// revalidateTries bounds the fetches of one background refresh: after that
// many failures in a row the cached version is served for another TTL
// before the next background refresh begins.
const revalidateTries = refreshrules.RevalidateTries

// ErrSourceTimeout is what a fetch ends with when the source did not answer
// within the cache's own bound (CacheOptions.FetchTimeout, or the latest
// deadline among the callers waiting for it). It is not
// context.DeadlineExceeded: only the caller's own context ending makes an
// error wrap that.
var ErrSourceTimeout = errors.New("rotatingmysql: the credential source did not answer in time")

// sourceTimeout is ErrSourceTimeout with how long the source was given.
type sourceTimeout struct{ after time.Duration }

func (e *sourceTimeout) Error() string {
	return fmt.Sprintf("rotatingmysql: the credential source did not answer within %v", e.after)
}

func (e *sourceTimeout) Unwrap() error { return ErrSourceTimeout }

// errClosed answers callers of a closed cache, and ends its fetches.
var errClosed = errors.New("rotatingmysql: credential cache closed")

// errFlightDeadline is the cause that ends a fetch at its deadline.
var errFlightDeadline = errors.New("fetch deadline")

// CacheOptions tune a Cache. Zero values take the defaults above.
type CacheOptions struct {
	// TTL is how long a fetched version is served before a background
	// refresh (drawn per fetch from [0.8*TTL, TTL]).
	TTL time.Duration
	// MinRefreshInterval bounds forced refreshes per stage, and is the
	// first step of the backoff after failed fetches.
	MinRefreshInterval time.Duration
	// FetchTimeout is the least time a fetch is given; callers waiting
	// with later deadlines extend it (see Cache).
	FetchTimeout time.Duration
	// Logger receives fetches and not-found answers (Debug), and failed
	// fetches, served stale or not (Warn for the first failure in a row,
	// Debug for the next ones). Nil discards them.
	Logger *slog.Logger
	// Now is the clock the cache's decisions read (tests drive it); nil
	// means time.Now. Waits and fetch deadlines still use real timers.
	Now func() time.Time
}

// Cache serves a Source's versions from memory. It is safe for concurrent
// use:
//
//   - Stale-while-revalidate. Cached and Get return the good version they
//     hold at once, also after its TTL: the first lookup after the TTL
//     starts one background refresh of that stage, which replaces the
//     version when it succeeds. Each fetch draws its TTL uniformly from
//     [0.8*TTL, TTL], so processes started together do not refresh
//     together. A failed background fetch is retried with jittered
//     exponential backoff (from MinRefreshInterval, and not before the
//     failure backoff below), at most 4 fetches in a row; then the version
//     is served for another TTL before the next try. Only a cache with
//     nothing good to serve makes Get wait for the source.
//   - Refresh returns a version whose fetch began at or after a given time:
//     a caller whose login failed at time t asks for news since t, and joins
//     a fetch that is already under way rather than starting another.
//   - At most one fetch per stage runs at a time, whoever started it
//     (callers, background refresh); forced refreshes of a stage start at
//     most once per MinRefreshInterval; after failed fetches, not before 1,
//     2, then 4 intervals after the last failure ended. A failure of the
//     source (throttled, unavailable; not a malformed version) holds the
//     forced refreshes of every stage: a throttled service throttles them
//     all (internal/refreshrules).
//   - A failed fetch never erases a good version: for any error but
//     ErrNotFound the last good version is served (stale) and the error is
//     kept for Stats; a not-found answer is returned to Refresh callers (it
//     is an answer: AWSPENDING outside a rotation) and the version is kept
//     for Cached, Get and Peek.
//   - With no good version to serve, a failed or not-found answer is
//     repeated from memory only until MinRefreshInterval after it: a caller
//     arriving later waits for the next fetch if its context allows, else
//     gets that answer at once. An outage at start-up is not remembered.
//     A malformed secret (SecretError) is remembered for the TTL.
//
// Deadlines. A fetch is shared by the callers waiting for it and runs on a
// context of its own, so that a waiter giving up does not end it for the
// others. It runs until the source answers, the cache is closed, or its
// deadline: FetchTimeout after it began, or the latest bound among the
// callers that joined it within that time, whichever is later (a caller's
// bound is its context's deadline; without one, FetchTimeout from when it
// began waiting). So a fetch outlives FetchTimeout only for a caller that
// asked to wait longer, and a stream of callers cannot keep a lost request
// alive. Each caller returns at its own bound: when its context ends, with
// its context's error; without a deadline, after FetchTimeout, with an
// error wrapping ErrSourceTimeout. A fetch ended by its deadline fails with
// an error wrapping ErrSourceTimeout, never context.DeadlineExceeded; a
// caller that joined it too late to extend it treats that as any failure.
//
// Close ends the fetches and background refreshes and waits for them.
type Cache struct {
	src   Source
	opts  CacheOptions
	log   *slog.Logger
	now   func() time.Time
	rules refreshrules.Rules // the timing rules, shared with the fleet drill's simulation
	// source is the source's failure record, shared by the stages (nil:
	// each stage backs off on its own failures only). Guarded by mu.
	source *refreshrules.Source

	ctx    context.Context // ends at Close; background refreshes wait on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetches and background refreshes under way

	mu       sync.Mutex
	closed   bool
	entries  map[Stage]*entry
	bySource map[string]uint64 // versions fetched, by Secret.Source

	hits, misses, coalesced, stale, fetchErrs, waited, revalidations atomic.Uint64
}

var _ io.Closer = (*Cache)(nil)

type entry struct {
	refreshrules.Entry // started, ended, forced, expires, failures: the timing rules' record

	val          *Secret // last good version; nil when none yet
	err          error   // outcome of the last fetch, nil when it succeeded
	fetches      uint64
	lastError    time.Time
	fl           *flight // the fetch under way; nil when none
	revalidating bool    // a background refresh is under way
}

// flight is one fetch of a stage, shared by every caller that waits for
// it. Its fields other than done are guarded by Cache.mu; err and deadline
// are final once done is closed.
type flight struct {
	done     chan struct{} // closed when the fetch has ended and its outcome is recorded
	err      error         // the fetch's outcome
	cancel   context.CancelCauseFunc
	began    time.Time // real time
	deadline time.Time // real time; only moves later
	timer    *time.Timer
	waiters  int  // callers that waited for it (Coalesced)
	cut      bool // its deadline passed and it was cancelled
}

// answer is what the entry says to a caller: the good version, unless the
// last fetch answered not found or failed with nothing to serve.
func (e *entry) answer() (*Secret, error) {
	if e.err != nil && (e.val == nil || errors.Is(e.err, ErrNotFound)) {
		return nil, e.err
	}
	return e.val, nil
}

// NewCache returns a cache in front of src. Close it when done with it.
func NewCache(src Source, opts CacheOptions) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	c := &Cache{src: src, opts: opts, log: log, now: now, entries: make(map[Stage]*entry, 2), bySource: make(map[string]uint64, 2),
		rules: refreshrules.Rules{TTL: opts.TTL, MinRefreshInterval: opts.MinRefreshInterval,
			FailureJitter: refreshrules.DefaultFailureJitter, MaxFailureStep: 2},
		source: &refreshrules.Source{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Source returns the source the cache stands in front of.
func (c *Cache) Source() Source { return c.src }

// Close ends the cache's fetches and background refreshes and waits for
// them to return; callers waiting for a fetch get an error. Afterwards the
// cache serves the versions it holds and fetches nothing: Get and Refresh
// without a version to serve return an error. Close does not close the
// source. It always returns nil; calling it again does nothing.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, e := range c.entries {
		if e.fl != nil {
			e.fl.cancel(errClosed)
		}
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Cached returns the good version with the given stage, without fetching
// and without waiting; ok is false when there is none. When the version's
// TTL has run out it is returned all the same, and a background refresh
// of the stage begins unless one is under way.
func (c *Cache) Cached(stage Stage) (s *Secret, ok bool) {
	now := c.now()
	c.mu.Lock()
	if e := c.entries[stage]; e != nil && e.val != nil && e.val.usableAt(now) {
		s = e.val
		if !now.Before(e.Expires) {
			c.revalidateLocked(e, stage)
		}
	}
	c.mu.Unlock()
	if s != nil {
		c.hits.Add(1)
	}
	return s, s != nil
}

// Get returns the version with the given stage: the good version the cache
// holds, at once (see Cached), or, when it holds none, the answer of a
// fetch.
func (c *Cache) Get(ctx context.Context, stage Stage) (*Secret, error) {
	if s, ok := c.Cached(stage); ok {
		return s, nil
	}
	c.misses.Add(1)
	return c.load(ctx, stage, time.Time{}, false, false)
}

// Refresh returns the version with the given stage from a fetch that began
// at or after since (or, to bound the rate of fetches, less than
// MinRefreshInterval ago). The fetch asks the source to bypass its own
// cache.
func (c *Cache) Refresh(ctx context.Context, stage Stage, since time.Time) (*Secret, error) {
	return c.load(ctx, stage, since, true, true)
}

// RefreshThrough is Refresh without asking the source to bypass a cache of
// its own (the agent's): behind a shared agent, the first process to ask
// makes the agent fetch and the agent answers the others from its cache.
// Use Refresh when what it answered is known to be stale.
func (c *Cache) RefreshThrough(ctx context.Context, stage Stage, since time.Time) (*Secret, error) {
	return c.load(ctx, stage, since, true, false)
}

// Peek returns the version last fetched for stage, however old, without
// fetching; nil when there is none.
func (c *Cache) Peek(stage Stage) *Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[stage]; e != nil {
		return e.val
	}
	return nil
}

// fresh reports whether e answers a forced refresh asking for news since
// (refreshrules.Rules.Fresh). Called with c.mu held.
func (c *Cache) fresh(e *entry, since, now time.Time) bool {
	return c.rules.Fresh(&e.Entry, c.source, e.val != nil, since, now)
}

// failureBackoff is when, after e's failed fetches in a row, the source may
// be asked again; zero without failures. Called with c.mu held.
func (c *Cache) failureBackoff(e *entry) time.Time { return c.rules.FailureBackoff(&e.Entry, c.source) }

// retryAt is, for an entry with no good version, until when its last
// answer stands (refreshrules.Rules.RetryAt). Called with c.mu held.
func (c *Cache) retryAt(e *entry, force bool) time.Time {
	var se *SecretError
	return c.rules.RetryAt(&e.Entry, c.source, errors.As(e.err, &se), force)
}

// sleepUntil waits until t by the cache's clock, or until ctx ends or the
// cache is closed.
func (c *Cache) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(c.now())
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-c.ctx.Done():
		return errClosed
	case <-timer.C:
		return nil
	}
}

func (c *Cache) load(ctx context.Context, stage Stage, since time.Time, force, bypass bool) (*Secret, error) {
	// This caller's bound: its deadline, or FetchTimeout from now.
	bound, hasDeadline := ctx.Deadline()
	if !hasDeadline {
		bound = time.Now().Add(c.opts.FetchTimeout)
	}
	joined := false // a fetch has finished for this caller: its answer is final
	counted := false
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errClosed
		}
		e := c.entries[stage]
		if e == nil {
			e = &entry{}
			c.entries[stage] = e
		}
		now := c.now()
		switch {
		case !e.Started.IsZero() && e.val == nil && e.err != nil:
			// Nothing good to serve: the last answer stands only briefly.
			retry := c.retryAt(e, force)
			if joined || (force && c.rules.AnswersForced(&e.Entry, since, now)) {
				s, err := e.answer()
				c.mu.Unlock()
				return s, err
			}
			if now.Before(retry) {
				err := e.err
				c.mu.Unlock()
				var se *SecretError
				if dl, ok := ctx.Deadline(); ok && dl.Before(retry) || errors.As(err, &se) {
					return nil, err
				}
				if werr := c.sleepUntil(ctx, retry); werr != nil {
					return nil, fmt.Errorf("%w (last fetch: %w)", werr, err)
				}
				continue
			}
		case !force && e.val != nil && (joined || e.val.usableAt(now)):
			// Stale-while-revalidate: a good version is served at once
			// (one past its Expires only as the answer of a fetch that
			// failed).
			s := e.val
			if !now.Before(e.Expires) {
				c.revalidateLocked(e, stage)
			}
			c.mu.Unlock()
			return s, nil
		case force && c.fresh(e, since, now):
			s, err := e.answer()
			c.mu.Unlock()
			return s, err
		}
		f := c.join(ctx, e, stage, force, bypass, bound)
		f.waiters++
		c.mu.Unlock()
		if !counted {
			counted = true
			c.waited.Add(1)
		}
		if err := c.wait(ctx, f, bound, hasDeadline); err != nil {
			return nil, err
		}
		// Loop: the fetch we joined may have begun before since; the next
		// round either finds it fresh or starts one that is. A fetch cut
		// short of this caller's bound (joined too late to extend it) is
		// not its answer: the rules for a failure apply.
		joined = !force && !(f.cut && bound.After(f.deadline))
	}
}

// wait waits for f, or until the caller's bound: its context's end, or,
// without a deadline, bound (FetchTimeout after it began waiting).
func (c *Cache) wait(ctx context.Context, f *flight, bound time.Time, hasDeadline bool) error {
	var expired <-chan time.Time
	if !hasDeadline {
		t := time.NewTimer(time.Until(bound))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-f.done:
		if hasDeadline && errors.Is(f.err, ErrSourceTimeout) && !bound.After(f.deadline) {
			// The fetch ran until this caller's own deadline, which has
			// passed: the caller's context is ending at this moment, and
			// its error says whose deadline it was.
			t := time.NewTimer(time.Until(bound) + 100*time.Millisecond)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-t.C:
			}
		}
		if errors.Is(f.err, errClosed) {
			return errClosed
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-expired:
		return &sourceTimeout{after: c.opts.FetchTimeout}
	}
}

// join returns the fetch of stage under way, its deadline moved to bound
// if that is later, or starts one. ctx gives the fetch its values (not its
// cancellation). Called with c.mu held, the cache not closed.
func (c *Cache) join(ctx context.Context, e *entry, stage Stage, force, bypass bool, bound time.Time) *flight {
	if f := e.fl; f != nil {
		// Only a caller joining within FetchTimeout extends the fetch: a
		// stream of callers must not keep a lost request alive for ever.
		if !f.cut && bound.After(f.deadline) && time.Since(f.began) < c.opts.FetchTimeout {
			f.deadline = bound
		}
		return f
	}
	began := time.Now()
	f := &flight{done: make(chan struct{}), began: began, deadline: began.Add(c.opts.FetchTimeout)}
	if bound.After(f.deadline) {
		f.deadline = bound
	}
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.timer = time.AfterFunc(f.deadline.Sub(began), func() { c.expire(f) })
	e.fl = f
	c.wg.Add(1)
	go c.fetch(fctx, f, e, stage, force, bypass)
	return f
}

// expire ends f when its deadline has passed; a deadline moved later since
// the timer was set sets a new timer.
func (c *Cache) expire(f *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-f.done:
		return
	default:
	}
	if d := time.Until(f.deadline); d > 0 {
		f.timer = time.AfterFunc(d, func() { c.expire(f) })
		return
	}
	f.cut = true
	f.cancel(errFlightDeadline)
}

// revalidateLocked starts the background refresh of stage unless one is
// under way or the cache is closed. Called with c.mu held.
func (c *Cache) revalidateLocked(e *entry, stage Stage) {
	if e.revalidating || c.closed {
		return
	}
	e.revalidating = true
	c.revalidations.Add(1)
	c.wg.Add(1)
	go c.revalidate(e, stage)
}

// revalidate is a background refresh of stage: fetches until one succeeds
// or answers not found, with jittered exponential backoff between failures,
// at most revalidateTries of them; after that many failures the version
// held is served for another TTL.
func (c *Cache) revalidate(e *entry, stage Stage) {
	defer c.wg.Done()
	b := c.rules.NewRevalidateBackOff()
	gaveUp := true
	for try := range revalidateTries {
		c.mu.Lock()
		// Not before the failure backoff that forced refreshes keep either:
		// a failing service is not asked again at once.
		wait := c.rules.RevalidateWait(&e.Entry, c.source, try, b, c.now())
		c.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		c.mu.Lock()
		if c.closed || c.now().Before(e.Expires) {
			// Closed, or another fetch (a forced refresh) has answered.
			c.mu.Unlock()
			gaveUp = false
			break
		}
		f := c.join(c.ctx, e, stage, false, false, time.Now().Add(c.opts.FetchTimeout))
		c.mu.Unlock()
		<-f.done // bounded by its deadline, and ended by Close
		if f.err == nil || errors.Is(f.err, ErrNotFound) || errors.Is(f.err, errClosed) {
			gaveUp = false
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.revalidating = false
	if gaveUp && !c.closed {
		e.Expires = c.now().Add(c.rules.DrawTTL())
		c.log.LogAttrs(context.Background(), slog.LevelDebug, "rotatingmysql: background secret refresh gave up, serving the cached version for another TTL",
			slog.String("stage", string(stage)), slog.Int("tries", revalidateTries), slog.Any("error", e.err))
	}
}

// fetch asks the source, records the outcome and ends f. It runs once per
// flight, in its own goroutine.
func (c *Cache) fetch(ctx context.Context, f *flight, e *entry, stage Stage, force, bypass bool) {
	defer c.wg.Done()
	defer f.cancel(nil)
	start := c.now()
	val, err := c.src.Fetch(ctx, Request{Stage: stage, Refresh: bypass})
	end := c.now()
	took := end.Sub(start)

	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		f.timer.Stop()
		f.err = err
		e.fl = nil
		if f.waiters > 1 {
			c.coalesced.Add(uint64(f.waiters))
		}
		close(f.done)
	}()
	if err != nil && ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errClosed) {
			// Not an outcome: nothing is recorded.
			err = errClosed
			return
		}
		if f.cut {
			err = &sourceTimeout{after: f.deadline.Sub(f.began).Round(time.Millisecond)}
		}
	}
	o := refreshrules.OK
	switch {
	case errors.Is(err, ErrNotFound):
		o = refreshrules.NotFound
	case err != nil:
		o = refreshrules.Failed
	}
	var refreshBy time.Time
	if err == nil {
		refreshBy = val.RefreshBy
	}
	var se *SecretError
	c.rules.Fetched(&e.Entry, c.source, o, !errors.As(err, &se), force, e.val != nil, start, end, refreshBy)
	e.fetches++
	e.err = err
	switch {
	case err == nil:
		e.val = val
		name := val.Source
		if name == "" {
			name = "unnamed"
		}
		c.bySource[name]++
		c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret fetched",
			slog.String("secret", val.ID), slog.String("source", val.Source), slog.String("stage", string(stage)),
			slog.String("version_id", val.VersionID), slog.Duration("latency", took),
			slog.Bool("forced", force))
	case errors.Is(err, ErrNotFound):
		// An answer, not a fault; the good version (if any) is kept.
		e.lastError = start
		c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret version not found",
			slog.String("stage", string(stage)), slog.Duration("latency", took), slog.Any("error", err))
	default:
		c.fetchErrs.Add(1)
		e.lastError = start
		// Warn once per failure streak: a background refresh retrying an
		// outage, or recoveries backing off, do not repeat it.
		level := slog.LevelWarn
		if e.Failures > 1 {
			level = slog.LevelDebug
		}
		if e.val != nil {
			c.stale.Add(1)
			c.log.LogAttrs(ctx, level, "rotatingmysql: serving cached secret, fetch failed",
				slog.String("secret", e.val.ID), slog.String("source", e.val.Source), slog.String("stage", string(stage)),
				slog.String("version_id", e.val.VersionID), slog.Duration("latency", took), slog.Any("error", err),
				slog.Int("failures", e.Failures))
		} else {
			c.log.LogAttrs(ctx, level, "rotatingmysql: secret fetch failed",
				slog.String("stage", string(stage)), slog.Duration("latency", took), slog.Any("error", err),
				slog.Int("failures", e.Failures))
		}
	}
}

// CacheStats counts what a Cache has done since it was made.
type CacheStats struct {
	Hits        uint64            // lookups (Cached, Get) served from memory, stale or not
	Misses      uint64            // Get calls with nothing good to serve (first use, outage at start-up)
	Coalesced   uint64            // waits that shared another caller's fetch
	Waited      uint64            // Get, Refresh and RefreshThrough calls that waited for a fetch
	Revalidated uint64            // background refreshes started (stale-while-revalidate), each up to 4 fetches
	Fetches     map[Stage]uint64  // fetches made, by stage
	BySource    map[string]uint64 // versions fetched, by the source that returned them (Secret.Source)
	FetchErrors uint64            // fetches that failed (not counting not-found answers)
	StaleServed uint64            // failed fetches answered with the last good version
	LastFetch   time.Time         // when the latest fetch of any stage began
	LastError   error             // the latest fetch error of any stage, nil after a success
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() CacheStats {
	s := CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Coalesced: c.coalesced.Load(),
		Waited: c.waited.Load(), Revalidated: c.revalidations.Load(),
		FetchErrors: c.fetchErrs.Load(), StaleServed: c.stale.Load(),
		Fetches: make(map[Stage]uint64, 2),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.BySource = maps.Clone(c.bySource)
	var lastErrAt time.Time
	for st, e := range c.entries {
		s.Fetches[st] = e.fetches
		if e.Started.After(s.LastFetch) {
			s.LastFetch = e.Started
		}
		if e.err != nil && !errors.Is(e.err, ErrNotFound) && e.lastError.After(lastErrAt) {
			lastErrAt, s.LastError = e.lastError, e.err
		}
	}
	return s
}
