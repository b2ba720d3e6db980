package credsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of CacheOptions.
const (
	// DefaultTTL is how long a fetched version is served before the cache
	// asks the source again. Rotation does not wait for it: a login failure
	// forces a refresh at once.
	DefaultTTL = 15 * time.Minute
	// DefaultMinRefreshInterval bounds forced refreshes: one fetch per stage
	// per interval, however many connections ask for it.
	DefaultMinRefreshInterval = time.Second
	// DefaultFetchTimeout bounds one fetch, SDK retries included.
	DefaultFetchTimeout = 10 * time.Second
)

// CacheOptions tune a Cache. Zero values take the defaults above.
type CacheOptions struct {
	TTL                time.Duration
	MinRefreshInterval time.Duration
	FetchTimeout       time.Duration
	// Logger receives fetches and not-found answers (Debug), and failed
	// fetches, served stale or not (Warn). Nil discards them.
	Logger *slog.Logger
	// Now is the clock the cache's decisions read (tests drive it); nil
	// means time.Now. Waits still use real timers.
	Now func() time.Time
}

// Cache serves a Source's versions from memory. It is safe for concurrent
// use:
//
//   - Get returns the version with a stage, fetching it when its TTL has
//     run out. Each fetch draws its TTL uniformly from [0.8*TTL, TTL], so
//     processes started together do not refresh together. When the cache
//     holds a good version, Get waits for that fetch at most 1 s (and half
//     of what remains of its context), then uses the version it holds: a
//     slow source does not fail connections.
//   - Refresh returns a version whose fetch began at or after a given time:
//     a caller whose login failed at time t asks for news since t, and joins
//     a fetch that is already under way rather than starting another.
//   - At most one fetch per stage runs at a time (singleflight), and forced
//     refreshes of a stage start at most once per MinRefreshInterval; after
//     failed fetches, not before 1, 2, then 4 intervals after the last
//     failure ended.
//   - A failed fetch never erases a good version: for any error but
//     ErrNotFound the last good version is served (stale) and the error is
//     kept for Stats; a not-found answer is returned to the caller (it is an
//     answer: AWSPENDING outside a rotation) and the version is kept for
//     Cached and Peek.
//   - With no good version to serve, a failed or not-found answer is
//     repeated from memory only until MinRefreshInterval after it: a caller
//     arriving later waits for the next fetch if its context allows, else
//     gets that answer at once. An outage at start-up is not remembered.
//     A malformed secret (SecretError) is remembered for the TTL.
//
// A fetch runs on its own context (bounded by FetchTimeout) so that a
// waiter giving up does not cancel it for the others; each waiter still
// returns as soon as its own context ends.
type Cache struct {
	src    Source
	opts   CacheOptions
	log    *slog.Logger
	now    func() time.Time
	flight singleflight.Group

	mu       sync.Mutex
	entries  map[Stage]*entry
	bySource map[string]uint64 // versions fetched, by Secret.Source

	hits, misses, coalesced, stale, fetchErrs atomic.Uint64
}

type entry struct {
	val       *Secret   // last good version; nil when none yet
	err       error     // outcome of the last fetch, nil when it succeeded
	started   time.Time // when the last finished fetch began; zero before any
	expires   time.Time // started plus this fetch's jittered TTL
	forcedAt  time.Time // when the last finished forced fetch (Refresh) began
	ended     time.Time // when the last fetch ended
	failures  int       // consecutive failed fetches (not-found answers are not failures)
	fetches   uint64
	lastError time.Time
}

// answer is what the entry says to a caller: the good version, unless the
// last fetch answered not found or failed with nothing to serve.
func (e *entry) answer() (*Secret, error) {
	if e.err != nil && (e.val == nil || errors.Is(e.err, ErrNotFound)) {
		return nil, e.err
	}
	return e.val, nil
}

// NewCache returns a cache in front of src.
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
	return &Cache{src: src, opts: opts, log: log, now: now, entries: make(map[Stage]*entry, 2), bySource: make(map[string]uint64, 2)}
}

// Source returns the source the cache stands in front of.
func (c *Cache) Source() Source { return c.src }

// Cached returns the good version with the given stage while its TTL lasts,
// without fetching and without waiting; ok is false when a fetch is needed.
func (c *Cache) Cached(stage Stage) (s *Secret, ok bool) {
	now := c.now()
	c.mu.Lock()
	if e := c.entries[stage]; e != nil && e.val != nil && now.Before(e.expires) {
		s = e.val
	}
	c.mu.Unlock()
	if s != nil {
		c.hits.Add(1)
	}
	return s, s != nil
}

// Get returns the version with the given stage, from memory while its TTL
// lasts.
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

// fresh reports whether e answers the request: for Get (force false),
// while the TTL lasts; for a forced refresh, when its fetch began at or
// after since, or a forced fetch began less than MinRefreshInterval ago.
// Only forced fetches count against the interval: a TTL fetch that happened
// to run just before a rotation finished must not hold back the refresh
// that a 1045 calls for (that cost a second of backoff per connection in
// BenchmarkRecovery/case=promoted). Called with c.mu held.
func (c *Cache) fresh(e *entry, since, now time.Time, force bool) bool {
	if e == nil || e.started.IsZero() {
		return false
	}
	if !force {
		return e.val != nil && now.Before(e.expires)
	}
	if !e.started.Before(since) {
		return true
	}
	if !e.forcedAt.IsZero() && now.Sub(e.forcedAt) < c.opts.MinRefreshInterval {
		return true
	}
	// After failed fetches, forced refreshes back off (1, 2, then 4 x
	// MinRefreshInterval after the failure ended): a throttled or failing
	// service is not asked again at once by every connection's recovery,
	// its client having already retried.
	return e.failures > 0 && e.val != nil && now.Sub(e.ended) < c.opts.MinRefreshInterval<<min(e.failures-1, 2)
}

// retryAt is, for an entry with no good version, until when its last
// answer stands: a malformed secret (SecretError) for the TTL, as a good
// one would (asking again at once would fetch the same document); an
// outage or a not-found answer for MinRefreshInterval, and for forced
// refreshes after failures in a row 1, 2, then 4 intervals (a Get with
// nothing to serve, such as the first connection's, waits no longer than
// one interval). Called with c.mu held.
func (c *Cache) retryAt(e *entry, force bool) time.Time {
	var se *SecretError
	if errors.As(e.err, &se) {
		return e.expires
	}
	if force && e.failures > 0 {
		return e.ended.Add(c.opts.MinRefreshInterval << min(e.failures-1, 2))
	}
	return e.ended.Add(c.opts.MinRefreshInterval)
}

// ttlRefreshWait bounds how long a caller holding an expired but good
// version waits for its refresh (at most half of what remains of its
// context) before using that version anyway: nothing says the password
// changed (a 1045 forces a refresh, which does wait), so a slow source must
// not fail connections.
const ttlRefreshWait = time.Second

func refreshWait(ctx context.Context) time.Duration {
	d := ttlRefreshWait
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// sleepUntil waits until t by the cache's clock, or until ctx ends.
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
	case <-timer.C:
		return nil
	}
}

func (c *Cache) load(ctx context.Context, stage Stage, since time.Time, force, bypass bool) (*Secret, error) {
	joined := false // a fetch has finished for this caller: its answer is final
	for {
		c.mu.Lock()
		e := c.entries[stage]
		now := c.now()
		if e != nil && !e.started.IsZero() && e.val == nil && e.err != nil {
			// Nothing good to serve: the last answer stands only briefly.
			retry := c.retryAt(e, force)
			if joined || (force && (!e.started.Before(since) || now.Sub(e.forcedAt) < c.opts.MinRefreshInterval)) {
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
		} else if c.fresh(e, since, now, force) || (joined && e.val != nil) {
			s, err := e.answer()
			c.mu.Unlock()
			return s, err
		}
		var stale *Secret // a TTL refresh's good version in hand
		if !force && e != nil {
			stale = e.val
		}
		c.mu.Unlock()

		ch := c.flight.DoChan(string(stage), func() (any, error) {
			c.fetch(context.WithoutCancel(ctx), stage, since, force, bypass)
			return nil, nil
		})
		var slow <-chan time.Time
		if stale != nil {
			t := time.NewTimer(refreshWait(ctx))
			defer t.Stop()
			slow = t.C
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-slow:
			c.log.LogAttrs(ctx, slog.LevelDebug, "rotatingmysql: secret refresh is slow, using the cached version meanwhile",
				slog.String("secret", stale.ID), slog.String("stage", string(stage)), slog.String("version_id", stale.VersionID))
			return stale, nil
		case r := <-ch:
			if r.Shared {
				c.coalesced.Add(1)
			}
		}
		// Loop: the fetch we joined may have begun before since; the next
		// round either finds it fresh or starts one that is. A TTL fetch
		// that failed with a good version in hand answers with that version.
		joined = !force
	}
}

// fetch asks the source and records the outcome. It runs once per flight.
func (c *Cache) fetch(ctx context.Context, stage Stage, since time.Time, force, bypass bool) {
	start := c.now()
	c.mu.Lock()
	e := c.entries[stage]
	if e == nil {
		e = &entry{}
		c.entries[stage] = e
	}
	if c.fresh(e, since, start, force) {
		// A flight that finished just before this one began already answers.
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	val, err := c.src.Fetch(ctx, Request{Stage: stage, Refresh: bypass})
	cancel()
	end := c.now()
	took := end.Sub(start)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.started = start
	// A TTL drawn from [0.8*TTL, TTL]: a fleet started together spreads its
	// refreshes over a fifth of the TTL instead of asking all at once.
	e.expires = start.Add(c.opts.TTL - rand.N(c.opts.TTL/5+1))
	e.ended = end
	if err == nil || errors.Is(err, ErrNotFound) {
		e.failures = 0
	} else {
		e.failures++
	}
	if force {
		e.forcedAt = start
	}
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
		if e.val != nil {
			c.stale.Add(1)
			c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: serving cached secret, fetch failed",
				slog.String("secret", e.val.ID), slog.String("source", e.val.Source), slog.String("stage", string(stage)),
				slog.String("version_id", e.val.VersionID), slog.Duration("latency", took), slog.Any("error", err))
		} else {
			c.log.LogAttrs(ctx, slog.LevelWarn, "rotatingmysql: secret fetch failed",
				slog.String("stage", string(stage)), slog.Duration("latency", took), slog.Any("error", err))
		}
	}
}

// CacheStats counts what a Cache has done since it was made.
type CacheStats struct {
	Hits        uint64            // Get calls served from memory
	Misses      uint64            // Get calls that needed a fetch (TTL expired or first use)
	Coalesced   uint64            // waits that shared another caller's fetch
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
		FetchErrors: c.fetchErrs.Load(), StaleServed: c.stale.Load(),
		Fetches: make(map[Stage]uint64, 2),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.BySource = maps.Clone(c.bySource)
	var lastErrAt time.Time
	for st, e := range c.entries {
		s.Fetches[st] = e.fetches
		if e.started.After(s.LastFetch) {
			s.LastFetch = e.started
		}
		if e.err != nil && !errors.Is(e.err, ErrNotFound) && e.lastError.After(lastErrAt) {
			lastErrAt, s.LastError = e.lastError, e.err
		}
	}
	return s
}
