// Package refreshrules holds the timing rules of credsource.Cache, pure: no
// goroutines, no clock of its own (every call takes the time), the random
// source injected. The cache applies them with real time; the fleet drill's
// virtual-time simulation (cmd/rotation-drill -virtual) applies the same
// rules to a hundred thousand simulated processes.
//
// The rules, per stage of a secret (an Entry):
//
//   - A fetch's TTL is drawn uniformly from [0.8*TTL, TTL]: processes
//     started together do not refresh together.
//   - A forced refresh (after a failed login) is answered by the entry when
//     its last fetch began at or after the time asked for, or a forced fetch
//     began less than MinRefreshInterval ago, or, while a good version is
//     held, the failure backoff runs: after failed fetches in a row the
//     source is asked again 1, 2, then 4 x MinRefreshInterval after the last
//     failure ended, each step drawn from [(1-Jitter), 1] times itself (at
//     least half an interval), once per failure (so every
//     connection of the process sees the same end). With a Source, a
//     failure of any stage holds every stage (a throttled service
//     throttles them all).
//   - With no good version, a failed or not-found answer stands for
//     MinRefreshInterval (forced refreshes: the failure backoff), a
//     malformed secret for the TTL.
//   - A background refresh (stale-while-revalidate) makes at most
//     RevalidateTries fetches, not before the failure backoff, with
//     jittered exponential backoff between them.
package refreshrules

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RevalidateTries bounds the fetches of one background refresh: after that
// many failures in a row the cached version is served for another TTL.
const RevalidateTries = 4

// DefaultFailureJitter is the spread of the failure backoff the cache uses:
// none, the steps are exact (1, 2, 4 x MinRefreshInterval), which bounds
// both how many fetches a fault of a few seconds costs and how long a
// recovery waits after it. A FailureJitter of 1 (full jitter) spreads a
// fleet's retries at the end of an outage: rotation-drill -virtual, 33,000
// processes, a 3 s outage during a rotation at the real quota: 734
// processes past the connection's 10 s bound instead of 4,309 (with the
// SDK's own throttling waits; docs/fleet.md), at the price of more fetches
// per fault and a slower recovery of a small fleet.
const DefaultFailureJitter = 0

// Rules are the cache's timing settings and its random source.
type Rules struct {
	// TTL is how long a fetched version is served before a background
	// refresh (drawn per fetch from [0.8*TTL, TTL]).
	TTL time.Duration
	// MinRefreshInterval bounds forced refreshes per stage and is the first
	// step of the failure backoff.
	MinRefreshInterval time.Duration
	// FailureJitter spreads each step of the failure backoff over
	// [(1-FailureJitter), 1] times itself, at least half of
	// MinRefreshInterval; 0 keeps the steps exact, 1 spreads them over
	// [0, 1] times (full jitter).
	FailureJitter float64
	// MaxFailureStep is the largest step of the failure backoff, in
	// doublings of MinRefreshInterval: 2 gives 1, 2, 4 x MinRefreshInterval.
	MaxFailureStep int
	// Rand is the random source; nil means math/rand/v2's.
	Rand *rand.Rand
}

// Source is what the rules keep of the source as a whole: its failures in
// a row, of any stage, and the latest end of a stage's failure backoff. A
// throttled or unavailable service fails every stage alike, so the failure
// backoff of one stage holds the forced refreshes of the others too (a nil
// *Source keeps each stage's own).
type Source struct {
	Failures   int
	RetryAfter time.Time // the latest end of a stage's failure backoff
}

// Entry is what the rules keep of one stage of a secret.
type Entry struct {
	Started  time.Time // when the last finished fetch began; zero before any
	Ended    time.Time // when the last fetch ended
	ForcedAt time.Time // when the last finished forced fetch began
	Expires  time.Time // when the version is due for a background refresh
	Failures int       // failed fetches in a row (not-found answers are not failures)
	// RetryAfter is the end of the failure backoff, drawn when the last
	// failure was recorded; meaningful while Failures > 0.
	RetryAfter time.Time
}

// Outcome is how a fetch ended.
type Outcome int

const (
	// OK: the source answered a version.
	OK Outcome = iota
	// NotFound: the source answered that the stage holds no version.
	NotFound
	// Failed: the source failed (throttled, down, timed out, malformed).
	Failed
)

func (r *Rules) float64() float64 {
	if r.Rand != nil {
		return r.Rand.Float64()
	}
	return rand.Float64()
}

func (r *Rules) int64n(n int64) int64 {
	if r.Rand != nil {
		return r.Rand.Int64N(n)
	}
	return rand.Int64N(n)
}

// DrawTTL draws a fetch's TTL from [0.8*TTL, TTL]: a fleet started together
// spreads its refreshes over a fifth of the TTL instead of asking all at
// once.
func (r *Rules) DrawTTL() time.Duration {
	return r.TTL - time.Duration(r.int64n(int64(r.TTL/5+1)))
}

// step draws the failure backoff after failures in a row.
func (r *Rules) step(failures int) time.Duration {
	step := r.MinRefreshInterval << min(failures-1, max(r.MaxFailureStep, 0))
	if j := r.FailureJitter; j > 0 {
		// Spread over [1-j, 1] times the step: never later than the exact
		// step (how long a recovery may wait after a failure is bounded as
		// without jitter), never below half an interval (a failing source
		// is not asked again at once).
		step = max(time.Duration(float64(step)*(1-j*r.float64())), r.MinRefreshInterval/2)
	}
	return step
}

// Fetched records in e a fetch that began at start and ended at end with
// outcome o; forced says it was a forced refresh, hadValue that the entry
// held a good version before it; refreshBy is when the version fetched must
// be refreshed at the latest (zero: no bound of its own). src, when not
// nil, is the source's record: sourceFailure says the failure was the
// service's (throttled, unavailable), not the version's (malformed).
func (r *Rules) Fetched(e *Entry, src *Source, o Outcome, sourceFailure, forced, hadValue bool, start, end, refreshBy time.Time) {
	e.Started, e.Ended = start, end
	if o == Failed {
		e.Failures++
		e.RetryAfter = end.Add(r.step(e.Failures))
	} else {
		e.Failures = 0
	}
	if src != nil {
		// The stage's own step holds every stage: the steps grow with the
		// failures of one stage, not with those of the stages together
		// (which would double the wait after a fault for a fetch of each).
		switch {
		case o == Failed && sourceFailure:
			src.Failures++
			if e.RetryAfter.After(src.RetryAfter) {
				src.RetryAfter = e.RetryAfter
			}
		case o != Failed:
			src.Failures = 0
		}
	}
	if forced {
		e.ForcedAt = start
	}
	// A failed fetch with a good version in hand leaves the version due for
	// a refresh: the background refresh goes on trying.
	if o != Failed || !hadValue {
		e.Expires = start.Add(r.DrawTTL())
	}
	if o == OK && !refreshBy.IsZero() && refreshBy.Before(e.Expires) {
		e.Expires = refreshBy
	}
}

// FailureBackoff is when, after e's failed fetches in a row, or the
// source's (src, when not nil), the source may be asked again for e's
// stage; zero without failures.
func (r *Rules) FailureBackoff(e *Entry, src *Source) time.Time {
	var t time.Time
	if e.Failures > 0 {
		t = e.RetryAfter
	}
	if src != nil && src.Failures > 0 && src.RetryAfter.After(t) {
		t = src.RetryAfter
	}
	return t
}

// Fresh reports whether e answers a forced refresh asking for a fetch begun
// at or after since: when its fetch began at or after since, or a forced
// fetch began less than MinRefreshInterval ago, or, with a good version in
// hand (hasValue), the failure backoff runs. Only forced fetches count
// against the interval: a TTL fetch that happened to run just before a
// rotation finished must not hold back the refresh that a 1045 calls for.
func (r *Rules) Fresh(e *Entry, src *Source, hasValue bool, since, now time.Time) bool {
	if e.Started.IsZero() {
		return false
	}
	if !e.Started.Before(since) {
		return true
	}
	if !e.ForcedAt.IsZero() && now.Sub(e.ForcedAt) < r.MinRefreshInterval {
		return true
	}
	// After failed fetches, forced refreshes back off: a throttled or
	// failing service is not asked again at once by every connection's
	// recovery, its client having already retried.
	return hasValue && now.Before(r.FailureBackoff(e, src))
}

// RetryAt is, for an entry with no good version, until when its last answer
// stands: a malformed secret (secretErr) for the TTL, as a good one would
// (asking again at once would fetch the same document); an outage or a
// not-found answer for MinRefreshInterval, and for forced refreshes after
// failures in a row the failure backoff (a Get with nothing to serve, such
// as the first connection's, waits no longer than one interval).
func (r *Rules) RetryAt(e *Entry, src *Source, secretErr, force bool) time.Time {
	if secretErr {
		return e.Expires
	}
	at := e.Ended.Add(r.MinRefreshInterval)
	if b := r.FailureBackoff(e, src); force && b.After(at) {
		return b
	}
	return at
}

// AnswersForced reports whether, with no good version, the entry's last
// answer is the answer to a forced refresh asking for a fetch begun at or
// after since (that fetch began then, or a forced one began less than
// MinRefreshInterval ago).
func (r *Rules) AnswersForced(e *Entry, since, now time.Time) bool {
	return !e.Started.Before(since) || now.Sub(e.ForcedAt) < r.MinRefreshInterval
}

// NewRevalidateBackOff returns the backoff between the fetches of one
// background refresh: exponential from MinRefreshInterval, doubling, up to
// the TTL, with cenkalti/backoff's ±50% jitter.
func (r *Rules) NewRevalidateBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.MinRefreshInterval),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(max(r.MinRefreshInterval, r.TTL)),
		backoff.WithMaxElapsedTime(0),
	)
}

// RevalidateWait is how long try (0 first) of a background refresh waits
// before its fetch: not before the failure backoff, and after a failed try
// not before b's next step either.
func (r *Rules) RevalidateWait(e *Entry, src *Source, try int, b backoff.BackOff, now time.Time) time.Duration {
	wait := r.FailureBackoff(e, src).Sub(now)
	if try > 0 {
		wait = max(wait, b.NextBackOff())
	}
	return wait
}
