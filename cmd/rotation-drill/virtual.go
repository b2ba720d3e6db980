package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
	"github.com/rotatingmysql/rotatingmysql/internal/refreshrules"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// The virtual-time fleet drill (-processes N -virtual): N processes in
// simulated time, one event queue, no goroutine per process and no real
// sleeping. What decides is the library's own code: each process has a
// real ledger.Ledger and ledger.Accounts, runs the connector's connect loop
// (Decide on the fast path; Next, After and Report in the recovery, as
// connector.recover does), and a cache that applies the real cache's rules
// (internal/refreshrules, which credsource.Cache applies too) in the
// cache's own order (load, join, revalidate). What is modelled: the
// network's latency, the database (one password per account, failed
// logins counted, login latency), Secrets Manager (the emulator's quota
// bucket, request latency, ThrottlingException, outages) and the AWS SDK's
// standard retryer as the library's client has it (3 attempts, jittered
// exponential backoff of 1 s for throttling, the retry token bucket of 500
// tokens, 5 per throttled retry). Not modelled: a fetch cut at the cache's
// FetchTimeout (the models always answer well within 10 s), the query
// timeout (15 s, above the retry bound), DescribeSecret, and the agents'
// own failures (their reads go through the quota but are not retried).

// SDK retryer constants (aws-sdk-go-v2 aws/retry, v1.48: standard mode).
const (
	sdkMaxAttempts      = retryMaxAttempts
	sdkRetryTokens      = 500 // DefaultRetryRateTokens
	sdkThrottleCost     = 5   // DefaultThrottlingRetryCost
	sdkRetryCost        = 14  // a retry of another error
	sdkNoRetryIncrement = 1   // a first attempt that succeeds
	sdkMaxBackoff       = 20 * time.Second
	sdkBaseDelay        = 50 * time.Millisecond // other retryable errors
)

// retryMaxAttempts is the SDK's DefaultMaxAttempts.
const retryMaxAttempts = 3

// The connector's settings the simulation mirrors (rotatingmysql's
// defaults): the cache's, the ledger's and the retry policy's.
const (
	vFetchTimeout = credsource.DefaultFetchTimeout
	vMinRefresh   = credsource.DefaultMinRefreshInterval
	vAgentTTL     = rotatingmysqltest.DefaultAgentTTL
	vStepGap      = 20 * time.Millisecond // between the rotation's quick steps
	vAccount      = ledger.Account("app@db:3306")
)

// vclock is the simulation's clock and event queue: a binary heap of
// events ordered by time, then by the order they were scheduled.
type vclock struct {
	epoch time.Time
	now   time.Time
	seq   uint64
	q     []vevent
	ran   uint64
}

type vevent struct {
	at  time.Time
	seq uint64
	fn  func()
}

func (c *vclock) less(i, j int) bool {
	if !c.q[i].at.Equal(c.q[j].at) {
		return c.q[i].at.Before(c.q[j].at)
	}
	return c.q[i].seq < c.q[j].seq
}

// at schedules fn at t (not before now).
func (c *vclock) at(t time.Time, fn func()) {
	if t.Before(c.now) {
		t = c.now
	}
	c.seq++
	c.q = append(c.q, vevent{at: t, seq: c.seq, fn: fn})
	for i := len(c.q) - 1; i > 0; {
		p := (i - 1) / 2
		if !c.less(i, p) {
			break
		}
		c.q[i], c.q[p] = c.q[p], c.q[i]
		i = p
	}
}

func (c *vclock) after(d time.Duration, fn func()) { c.at(c.now.Add(d), fn) }

// pop removes the earliest event.
func (c *vclock) pop() vevent {
	top := c.q[0]
	n := len(c.q) - 1
	c.q[0] = c.q[n]
	c.q[n] = vevent{}
	c.q = c.q[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && c.less(l, m) {
			m = l
		}
		if r < n && c.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		c.q[i], c.q[m] = c.q[m], c.q[i]
		i = m
	}
	return top
}

// run runs events until the queue is empty or the next is after end.
func (c *vclock) run(end time.Time) {
	for len(c.q) > 0 && !c.q[0].at.After(end) {
		e := c.pop()
		c.now = e.at
		c.ran++
		e.fn()
	}
	c.now = end
}

func (c *vclock) since() time.Duration { return c.now.Sub(c.epoch) }

// vsecret is one fetch's answer: a version of the secret (its pointer is
// the fetch, as the connector compares *credsource.Secret).
type vsecret struct{ version int }

// Error kinds of the models.
var (
	errVNotFound  = fmt.Errorf("rotatingmysql: simulated: %w", credsource.ErrNotFound)
	errVThrottled = errors.New("rotatingmysql: simulated: ThrottlingException: Rate exceeded")
	errVDown      = errors.New("rotatingmysql: simulated: ServiceUnavailable")
	errVCtx       = errors.New("rotatingmysql: simulated: the caller's deadline passed")
)

// vsecond is one simulated second of the fleet.
type vsecond struct {
	requests, throttled, served int
	appErrors, queries          int
	failedLogins                int
}

// vsim is the whole simulation.
type vsim struct {
	o     *options
	clk   vclock
	rng   *rand.Rand
	rules refreshrules.Rules

	quota    float64
	interval time.Duration
	spread   time.Duration // the deploy's
	apiLat   time.Duration
	loginLat time.Duration
	queryLat time.Duration
	agentLat time.Duration

	// Secrets Manager: the store's labels and the quota bucket.
	current, pending int
	tokens           float64
	tokensAt         time.Time
	outageFrom       time.Time
	outageTo         time.Time

	// The database: the account's one password.
	password int

	procs  []*vproc
	agents []*vagent

	seconds    []vsecond
	latencies  vhist // successful queries, the dial included
	buckets    []int // successful queries per 100 ms
	errBuckets []int
	marks      []Mark
	rotations  []vrotation
	rotStart   time.Time // createSecret of the first rotation

	// Totals.
	requests, throttled, served int
	rotRequests, rotServed      int
	appErrors, gaveUp           int
	fetchErrors                 int
	authRefused                 int
	pendingUsed                 uint64 // switches to a version labelled AWSPENDING
	queries                     int
}

type vrotation struct {
	version int
	setAt   time.Time
}

func (s *vsim) sec() *vsecond {
	i := int(s.clk.since() / time.Second)
	for len(s.seconds) <= i {
		s.seconds = append(s.seconds, vsecond{})
	}
	return &s.seconds[i]
}

// jitter draws a latency of median d: uniform over [0.5d, 1.5d], or with
// -latency-sigma σ > 0 log-normal (a heavy tail, as on a loaded machine:
// σ = 1 puts the 99th percentile at 10 times the median), cut at 10 times
// the median (a login or request does not hang for ever).
func (s *vsim) jitter(d time.Duration) time.Duration {
	if s.o.latencySigma > 0 {
		return time.Duration(float64(d) * min(10, math.Exp(s.o.latencySigma*s.rng.NormFloat64())))
	}
	return time.Duration(float64(d) * (0.5 + s.rng.Float64()))
}

func (s *vsim) mark(step string, rotation int) {
	s.marks = append(s.marks, Mark{Step: step, Rotation: rotation, AtMS: ms(s.clk.since())})
}

// vkey is a version's ledger key.
func vkey(version int) ledger.Key {
	var k ledger.Key
	for i := range 8 {
		k[i] = byte(version >> (8 * i))
	}
	return k
}

// serve is Secrets Manager answering one GetSecretValue request now: the
// quota bucket (rotatingmysqltest.Quota: a burst of one second of the rate,
// refilled at the rate), then the store.
func (s *vsim) serve(stage credsource.Stage) (int, error) {
	sec := s.sec()
	sec.requests++
	s.requests++
	rot := !s.rotStart.IsZero() && !s.clk.now.Before(s.rotStart)
	if rot {
		s.rotRequests++
	}
	if !s.outageFrom.IsZero() && !s.clk.now.Before(s.outageFrom) && s.clk.now.Before(s.outageTo) {
		return 0, errVDown
	}
	if s.quota > 0 {
		burst := max(float64(int(s.quota+0.999999)), 1)
		if d := s.clk.now.Sub(s.tokensAt); d > 0 {
			s.tokens = min(burst, s.tokens+d.Seconds()*s.quota)
			s.tokensAt = s.clk.now
		}
		if s.tokens < 1 {
			sec.throttled++
			s.throttled++
			return 0, errVThrottled
		}
		s.tokens--
	}
	sec.served++
	s.served++
	if rot {
		s.rotServed++
	}
	v := s.current
	if stage == credsource.Pending {
		v = s.pending
	}
	if v == 0 {
		return 0, errVNotFound
	}
	return v, nil
}

// vagent is one emulated Secrets Manager Agent: its cache per stage for
// the agent's TTL, refreshNow bypassing it (rotatingmysqltest.Agent).
type vagent struct {
	cached  map[credsource.Stage]int
	fetched map[credsource.Stage]time.Time
}

// vproc is one simulated process: its ledger and account table, its
// cache, its SDK client's retry tokens and its two workers.
type vproc struct {
	s       *vsim
	led     *ledger.Ledger[int]
	entries [2]*ventry // AWSCURRENT, AWSPENDING
	agent   *vagent
	tokens  int // the SDK retryer's token bucket
	lastSec *vsecret
	source  *refreshrules.Source // the cache's failure record of the source, with -shared-backoff

	waiting []*vconnect // connects in a StepWait

	switched    []time.Time // per rotation: when the process first logged in with its version
	authRefused int
	gaveUp      int
	appErrors   int
	rotRequests int           // GetSecretValue requests its client sent in the rotation, retries included
	maxWait     time.Duration // the longest Connect
}

// ventry is the cache's entry of one stage (credsource.Cache's entry).
type ventry struct {
	refreshrules.Entry
	val          *vsecret
	err          error
	fl           *vflight
	revalidating bool
}

// vflight is one fetch of a stage, shared by its waiters.
type vflight struct {
	began    time.Time
	deadline time.Time
	err      error
	waiters  []*vwaiter
}

type vwaiter struct {
	done bool
	k    func()
}

func stageIndex(st credsource.Stage) int {
	if st == credsource.Pending {
		return 1
	}
	return 0
}

func (p *vproc) entry(st credsource.Stage) *ventry {
	i := stageIndex(st)
	if p.entries[i] == nil {
		p.entries[i] = &ventry{}
	}
	return p.entries[i]
}

// answer is what the entry says (credsource entry.answer).
func (e *ventry) answer() (*vsecret, error) {
	if e.err != nil && (e.val == nil || errors.Is(e.err, credsource.ErrNotFound)) {
		return nil, e.err
	}
	return e.val, nil
}

// cached is credsource.Cache.Cached.
func (p *vproc) cached(st credsource.Stage) (*vsecret, bool) {
	e := p.entries[stageIndex(st)]
	if e == nil || e.val == nil {
		return nil, false
	}
	if !p.s.clk.now.Before(e.Expires) {
		p.revalidate(e, st)
	}
	return e.val, true
}

// load is credsource.Cache.load: the same cases in the same order, the
// waits turned into events. k gets the answer.
func (p *vproc) load(st credsource.Stage, since time.Time, force, bypass bool, bound time.Time, k func(*vsecret, error)) {
	s := p.s
	joined := false
	var step func()
	step = func() {
		e := p.entry(st)
		now := s.clk.now
		switch {
		case !e.Started.IsZero() && e.val == nil && e.err != nil:
			retry := s.rules.RetryAt(&e.Entry, p.source, false, force)
			if joined || (force && s.rules.AnswersForced(&e.Entry, since, now)) {
				k(e.answer())
				return
			}
			if now.Before(retry) {
				if bound.Before(retry) {
					k(nil, e.err)
					return
				}
				s.clk.at(retry, step)
				return
			}
		case !force && e.val != nil: // stale-while-revalidate (a Secrets Manager secret is always usable)
			if !now.Before(e.Expires) {
				p.revalidate(e, st)
			}
			k(e.val, nil)
			return
		case force && s.rules.Fresh(&e.Entry, p.source, e.val != nil, since, now):
			k(e.answer())
			return
		}
		f := p.join(e, st, force, bypass, bound)
		w := &vwaiter{}
		w.k = func() {
			joined = !force
			step()
		}
		f.waiters = append(f.waiters, w)
		if bound.Before(now.Add(vFetchTimeout)) {
			s.clk.at(bound, func() {
				if !w.done {
					w.done = true
					k(nil, errVCtx)
				}
			})
		}
	}
	step()
}

// join is credsource.Cache.join: the fetch under way, or a new one.
func (p *vproc) join(e *ventry, st credsource.Stage, force, bypass bool, bound time.Time) *vflight {
	s := p.s
	now := s.clk.now
	if f := e.fl; f != nil {
		if bound.After(f.deadline) && now.Sub(f.began) < vFetchTimeout {
			f.deadline = bound
		}
		return f
	}
	f := &vflight{began: now, deadline: now.Add(vFetchTimeout)}
	if bound.After(f.deadline) {
		f.deadline = bound
	}
	e.fl = f
	start := now
	p.fetchSource(st, bypass, func(sec *vsecret, err error) {
		p.fetched(e, f, force, start, sec, err)
	})
	return f
}

// fetched is credsource.Cache.fetch's record of the outcome.
func (p *vproc) fetched(e *ventry, f *vflight, force bool, start time.Time, sec *vsecret, err error) {
	s := p.s
	o := refreshrules.OK
	switch {
	case errors.Is(err, credsource.ErrNotFound):
		o = refreshrules.NotFound
	case err != nil:
		o = refreshrules.Failed
		s.fetchErrors++
	}
	s.rules.Fetched(&e.Entry, p.source, o, true, force, e.val != nil, start, s.clk.now, time.Time{})
	e.err = err
	if err == nil {
		e.val = sec
	}
	e.fl = nil
	f.err = err
	for _, w := range f.waiters {
		if !w.done {
			w.done = true
			s.clk.at(s.clk.now, w.k)
		}
	}
}

// revalidate is credsource.Cache.revalidate: the background refresh.
func (p *vproc) revalidate(e *ventry, st credsource.Stage) {
	if e.revalidating {
		return
	}
	e.revalidating = true
	s := p.s
	var b backoff.BackOff
	try := 0
	var next func()
	next = func() {
		if try >= refreshrules.RevalidateTries {
			e.revalidating = false
			e.Expires = s.clk.now.Add(s.rules.DrawTTL())
			return
		}
		if try == 1 {
			b = s.seeded(s.rules.NewRevalidateBackOff())
		}
		wait := s.rules.RevalidateWait(&e.Entry, p.source, try, b, s.clk.now)
		s.clk.after(max(wait, 0), func() {
			if s.clk.now.Before(e.Expires) {
				e.revalidating = false
				return
			}
			f := p.join(e, st, false, false, s.clk.now.Add(vFetchTimeout))
			f.waiters = append(f.waiters, &vwaiter{k: func() {
				if f.err == nil || errors.Is(f.err, credsource.ErrNotFound) {
					e.revalidating = false
					return
				}
				try++
				next()
			}})
		})
	}
	next()
}

// fetchSource asks the source: the agent, or Secrets Manager through the
// SDK's retryer.
func (p *vproc) fetchSource(st credsource.Stage, bypass bool, k func(*vsecret, error)) {
	s := p.s
	if a := p.agent; a != nil {
		s.clk.after(s.jitter(s.agentLat)/2, func() {
			answer := func(v int, err error) {
				s.clk.after(s.jitter(s.agentLat)/2, func() {
					if err != nil {
						k(nil, err)
						return
					}
					k(&vsecret{version: v}, nil)
				})
			}
			if v, ok := a.cached[st]; ok && !bypass && s.clk.now.Sub(a.fetched[st]) < vAgentTTL {
				answer(v, nil)
				return
			}
			s.clk.after(s.jitter(s.apiLat)/2, func() {
				v, err := s.serve(st)
				if err == nil {
					a.cached[st], a.fetched[st] = v, s.clk.now
				}
				s.clk.after(s.jitter(s.apiLat)/2, func() { answer(v, err) })
			})
		})
		return
	}
	attempt := 1
	var try func()
	try = func() {
		s.clk.after(s.jitter(s.apiLat)/2, func() {
			if !s.rotStart.IsZero() && !s.clk.now.Before(s.rotStart) {
				p.rotRequests++
			}
			v, err := s.serve(st)
			s.clk.after(s.jitter(s.apiLat)/2, func() {
				switch {
				case err == nil || errors.Is(err, errVNotFound):
					if attempt == 1 {
						p.tokens = min(sdkRetryTokens, p.tokens+sdkNoRetryIncrement)
					} else {
						// A successful retry refunds its cost.
						p.tokens = min(sdkRetryTokens, p.tokens+p.retryCost(errVThrottled))
					}
					if err != nil {
						k(nil, err)
						return
					}
					k(&vsecret{version: v}, nil)
					return
				}
				throttled := errors.Is(err, errVThrottled)
				cost := p.retryCost(err)
				if attempt >= sdkMaxAttempts || throttled && !s.o.sdkThrottleRetries || p.tokens < cost {
					k(nil, err)
					return
				}
				p.tokens -= cost
				base := sdkBaseDelay
				if throttled {
					base = s.o.sdkThrottleBackoff
				}
				delay := min(base<<(attempt-1), sdkMaxBackoff)
				attempt++
				s.clk.after(time.Duration(s.rng.Float64()*float64(delay)), try)
			})
		})
	}
	try()
}

func (p *vproc) retryCost(err error) int {
	if errors.Is(err, errVThrottled) {
		return sdkThrottleCost
	}
	return sdkRetryCost
}

// observe is Connector.observe: the ledger learns what the source labels
// stage.
func (p *vproc) observe(st credsource.Stage, sec *vsecret) {
	p.led.Observe(ledger.Stage(st), vkey(sec.version), vAccount, sec.version, p.s.clk.now)
	if st == credsource.Current {
		p.lastSec = sec
	}
}

// wake resumes the connects whose wait the ledger's news ended (Changed
// closed).
func (p *vproc) wake() {
	if len(p.waiting) == 0 {
		return
	}
	kept := p.waiting[:0]
	for _, c := range p.waiting {
		select {
		case <-c.changed:
			c.waitGen++
			p.s.clk.at(p.s.clk.now, c.loop)
		default:
			kept = append(kept, c)
		}
	}
	clear(p.waiting[len(kept):])
	p.waiting = kept
}

// vconnect is one Connect of a process: Connector.Connect and recover,
// their waits turned into events.
type vconnect struct {
	p        *vproc
	began    time.Time
	deadline time.Time
	at       *ledger.Attempt
	bo       backoff.BackOff
	done     func(ok bool)
	changed  <-chan struct{}
	waitGen  int
}

// connect is Connector.Connect: the fast path, else the recovery.
func (p *vproc) connect(done func(ok bool)) {
	s := p.s
	c := &vconnect{p: p, began: s.clk.now, done: done}
	if sec, ok := p.cached(credsource.Current); ok {
		if sec != p.lastSec {
			p.observe(credsource.Current, sec)
			p.wake()
		}
		if d := p.led.Decide(s.clk.now); d.Kind == ledger.Dial {
			c.dial(d.Ticket, func(o ledger.Outcome) {
				if d.Ticket.Recovers(o) {
					c.recover(d.Ticket, o)
					return
				}
				c.finish(o == ledger.Accepted)
			})
			return
		}
	}
	c.recover(ledger.Ticket[int]{}, ledger.Abandoned)
}

func (c *vconnect) finish(ok bool) {
	p := c.p
	if w := p.s.clk.now.Sub(c.began); w > p.maxWait {
		p.maxWait = w
	}
	c.done(ok)
}

func (c *vconnect) giveUp() {
	c.p.gaveUp++
	c.p.s.gaveUp++
	c.finish(false)
}

// dial is Connector.dial: the login, its outcome reported to the ledger.
func (c *vconnect) dial(t ledger.Ticket[int], k func(ledger.Outcome)) {
	p, s := c.p, c.p.s
	v := t.Payload()
	lat := s.jitter(s.loginLat)
	s.clk.after(lat/2, func() {
		ok := v == s.password // the server checks the password
		s.clk.after(lat/2, func() {
			o := ledger.Accepted
			if !ok {
				o = ledger.Refused
				p.authRefused++
				s.authRefused++
				s.sec().failedLogins++
			}
			if p.led.Report(t, o, s.clk.now) && p.led.LabelOf(t.Key()) == ledger.Pending {
				s.pendingUsed++ // a switch to AWSPENDING, as the connector counts Stats().PendingUsed
			}
			if ok {
				for r, rot := range s.rotations {
					if v == rot.version && p.switched[r].IsZero() {
						p.switched[r] = s.clk.now
					}
				}
			}
			p.wake()
			k(o)
		})
	})
}

// recover is Connector.recover.
func (c *vconnect) recover(failed ledger.Ticket[int], o ledger.Outcome) {
	p, s := c.p, c.p.s
	c.deadline = s.clk.now.Add(retry.DefaultTimeout)
	c.at = &ledger.Attempt{Deadline: c.deadline, MaxLogins: retry.DefaultMaxLogins}
	c.bo = s.seeded(retry.DefaultPolicy().NewBackOff())
	if failed != (ledger.Ticket[int]{}) {
		c.at.Started()
		c.at.After(failed.Key(), failed.Claim, o)
		c.loop()
		return
	}
	first := func(sec *vsecret, err error) {
		if err == nil {
			p.observe(credsource.Current, sec)
			p.wake()
		} else if !p.led.Known() || !s.clk.now.Before(c.deadline) {
			c.giveUp()
			return
		}
		c.loop()
	}
	// Connector.first: Cache.Get.
	if sec, ok := p.cached(credsource.Current); ok {
		first(sec, nil)
		return
	}
	p.load(credsource.Current, time.Time{}, false, false, c.deadline, first)
}

// loop is recover's loop: one step of ledger.Next.
func (c *vconnect) loop() {
	p, s := c.p, c.p.s
	now := s.clk.now
	next := p.led.Next(c.at, now)
	p.wake()
	switch next.Step {
	case ledger.StepFetch:
		if !now.Before(c.deadline) {
			c.giveUp()
			return
		}
		c.refresh(next.Stage, next.Since, next.Bypass, func() {
			if !s.clk.now.Before(c.deadline) {
				c.giveUp()
				return
			}
			c.loop()
		})
	case ledger.StepDial:
		c.dial(next.Ticket, func(o ledger.Outcome) {
			if o == ledger.Accepted {
				c.finish(true)
				return
			}
			if !c.at.After(next.Ticket.Key(), next.Ticket.Claim, o) {
				c.finish(false)
				return
			}
			c.loop()
		})
	case ledger.StepFail:
		c.finish(false)
	case ledger.StepGiveUp:
		c.giveUp()
	case ledger.StepWait:
		if !now.Before(c.deadline) {
			c.giveUp()
			return
		}
		wake := now.Add(c.bo.NextBackOff())
		if !next.Until.IsZero() && next.Until.Before(wake) {
			wake = next.Until
		}
		if c.deadline.Before(wake) {
			wake = c.deadline
		}
		c.waitGen++
		gen := c.waitGen
		c.changed = next.Changed
		p.waiting = append(p.waiting, c)
		s.clk.at(wake, func() {
			if c.waitGen != gen {
				return // woken by news
			}
			c.waitGen++
			for i, w := range p.waiting {
				if w == c {
					p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
					break
				}
			}
			if !s.clk.now.Before(c.deadline) {
				c.giveUp()
				return
			}
			c.loop()
		})
	}
}

// refresh is Connector.refresh: fetch stage ("" both, in parallel) through
// the cache, give the ledger the answers, then Fetched.
func (c *vconnect) refresh(stage ledger.Stage, since time.Time, bypass bool, k func()) {
	p, s := c.p, c.p.s
	started := s.clk.now
	var cur, pend *vsecret
	var cerr, perr error
	left := 1
	if stage == "" {
		left = 2
	}
	after := func() {
		left--
		if left > 0 {
			return
		}
		if !s.clk.now.Before(c.deadline) {
			k() // the caller's context ended: nothing recorded
			return
		}
		// As Connector.refresh, condition for condition.
		if stage != ledger.Pending && cerr == nil {
			p.observe(credsource.Current, cur)
		}
		if stage != ledger.Current {
			switch {
			case perr == nil:
				p.observe(credsource.Pending, pend)
			case errors.Is(perr, credsource.ErrNotFound):
				p.led.NotFound(ledger.Pending)
			case stage == ledger.Pending:
				stage = "" // the source failed: the round ends here
			}
		}
		p.led.Fetched(stage, started)
		p.wake()
		k()
	}
	if stage != ledger.Current {
		p.load(credsource.Pending, since, true, bypass, c.deadline, func(sec *vsecret, err error) {
			pend, perr = sec, err
			after()
		})
	}
	if stage != ledger.Pending {
		p.load(credsource.Current, since, true, bypass, c.deadline, func(sec *vsecret, err error) {
			cur, cerr = sec, err
			after()
		})
	}
}

// worker runs one worker of p: fresh (a new connection per query) or
// pooled (one connection kept, dialed again only after a failure).
func (p *vproc) worker(fresh bool) {
	s := p.s
	conn := false
	var query func()
	var began time.Time
	record := func(ok bool) {
		if ok {
			s.latencies.add(s.clk.now.Sub(began))
		}
		b := int(s.clk.since() / bucket)
		for len(s.buckets) <= b {
			s.buckets = append(s.buckets, 0)
			s.errBuckets = append(s.errBuckets, 0)
		}
		sec := s.sec()
		if ok {
			s.buckets[b]++
			sec.queries++
			s.queries++
		} else {
			s.errBuckets[b]++
			sec.appErrors++
			s.appErrors++
			p.appErrors++
		}
		s.clk.after(s.interval, query)
	}
	query = func() {
		began = s.clk.now
		if conn {
			s.clk.after(s.jitter(s.queryLat), func() { record(true) })
			return
		}
		p.connect(func(ok bool) {
			if !ok {
				record(false)
				return
			}
			conn = !fresh
			s.clk.after(s.jitter(s.queryLat), func() { record(true) })
		})
	}
	query()
}

// virtualInterval is the pause between two queries of a virtual worker:
// the real fleet drill's for up to 1000 processes, else 1 s (each process
// opens a new connection about once a second).
func virtualInterval(o *options) time.Duration {
	if o.intervalSet {
		return o.interval
	}
	return min(fleetInterval(o), time.Second)
}

// runVirtual runs the fleet drill in virtual time.
func runVirtual(ctx context.Context, o *options, progress io.Writer) (*Report, error) {
	wall := time.Now()
	s := &vsim{
		o:        o,
		rng:      rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		quota:    o.quota,
		interval: virtualInterval(o),
		apiLat:   o.apiLatency,
		loginLat: o.loginLatency,
		queryLat: o.queryLatency,
		agentLat: time.Millisecond,
		current:  1,
		password: 1,
	}
	if s.quota <= 0 {
		s.quota = rotatingmysqltest.GetSecretValueQuota
	}
	ttl := o.ttl
	if ttl <= 0 {
		ttl = credsource.DefaultTTL
	}
	s.rules = refreshrules.Rules{TTL: ttl, MinRefreshInterval: vMinRefresh, FailureJitter: o.failureJitter, MaxFailureStep: o.failureSteps, Rand: s.rng}
	s.clk.epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.clk.now = s.clk.epoch
	s.tokensAt = s.clk.now
	s.tokens = max(float64(int(s.quota+0.999999)), 1)
	if o.outageFor > 0 {
		s.outageFrom = s.clk.epoch.Add(o.outageAt)
		s.outageTo = s.outageFrom.Add(o.outageFor)
	}
	for range o.agents {
		s.agents = append(s.agents, &vagent{cached: map[credsource.Stage]int{}, fetched: map[credsource.Stage]time.Time{}})
	}
	s.mark(stepBefore, 0)
	// The deploy: every process starts within -start-spread, by default
	// within one interval (a random phase each, as processes started at
	// once drift apart).
	spread := o.startSpread
	if !o.startSpreadSet {
		spread = s.interval
	}
	s.spread = spread
	s.procs = make([]*vproc, o.processes)
	for i := range o.processes {
		p := &vproc{s: s, tokens: sdkRetryTokens}
		if o.sharedBackoff {
			p.source = &refreshrules.Source{}
		}
		p.led = ledger.New[int](ledger.Options{Hold: rotatingmysql.DefaultRefusedHold, MaxHold: max(ttl, rotatingmysql.DefaultRefusedHold),
			Accounts: ledger.NewAccounts()})
		if len(s.agents) > 0 {
			p.agent = s.agents[i%len(s.agents)]
		}
		s.procs[i] = p
		start := time.Duration(0)
		if spread > 0 {
			start = time.Duration(s.rng.Int64N(int64(spread)))
		}
		nFresh := (o.processWorkers + 1) / 2
		for w := range o.processWorkers {
			fresh := w < nFresh
			s.clk.after(start, func() { p.worker(fresh) })
		}
	}

	// The timeline: a quarter of the duration after the deploy (spread
	// over -start-spread), the rotations, then the rest.
	quarter := o.duration / 4
	rotAt := spread + quarter
	t := rotAt
	for i := 1; i <= o.rotations; i++ {
		at := func(d time.Duration, fn func()) { s.clk.at(s.clk.epoch.Add(d), fn) }
		version := i + 1
		at(t, func() {
			s.mark(stepCreateSecret, i)
			if i == 1 {
				s.rotStart = s.clk.now
			}
			s.pending = version
		})
		t += vStepGap
		at(t, func() {
			s.mark(stepSetSecret, i)
			s.rotations = append(s.rotations, vrotation{version: version, setAt: s.clk.now})
			for _, p := range s.procs {
				p.switched = append(p.switched, time.Time{})
			}
			s.password = version
		})
		t += vStepGap
		at(t, func() { s.mark(stepTestSecret, i) })
		t += vStepGap
		at(t, func() { s.mark(stepWindow, i) })
		t += o.window
		at(t, func() {
			s.mark(stepFinishSecret, i)
			s.current, s.pending = version, 0
		})
		t += vStepGap
	}
	if o.rotations > 0 {
		at := t
		s.clk.at(s.clk.epoch.Add(at), func() { s.mark(stepAfter, o.rotations) })
	}
	end := max(spread+o.duration, t+quarter)

	if !o.quiet {
		fmt.Fprintf(progress, "rotation-drill: %d virtual processes (%d workers each, every %v, no cache shared), %s; quota %s GetSecretValue/s\n",
			o.processes, o.processWorkers, s.interval, virtualBehind(o), quotaText(s.quota))
	}
	// Run a simulated second at a time, printing its line.
	for sec := time.Second; ; sec += time.Second {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		stop := min(sec, end)
		nMarks := len(s.marks)
		s.clk.run(s.clk.epoch.Add(stop))
		if !o.quiet {
			for _, m := range s.marks[nMarks:] {
				fmt.Fprintf(progress, "%6.2fs  %s (rotation %d)\n", m.AtMS/1000, m.Step, m.Rotation)
			}
			if i := int((stop - time.Nanosecond) / time.Second); i < len(s.seconds) {
				v := s.seconds[i]
				fmt.Fprintf(progress, "%6.2fs  %6d %s/s (%d throttled)  %5d %s/s  %5d %s/s  on the new password: %s  [%.1fs of wall time]\n",
					stop.Seconds(), v.requests, wordAPICalls, v.throttled, v.appErrors, wordAppErrors, v.failedLogins, wordAbsorbed,
					s.switchedText(), time.Since(wall).Seconds())
			}
		}
		if stop >= end {
			break
		}
	}
	return s.report(end, time.Since(wall)), nil
}

func virtualBehind(o *options) string {
	if o.agents > 0 {
		return fmt.Sprintf("behind %d simulated agents", o.agents)
	}
	return "each with its own Secrets Manager client"
}

func (s *vsim) switchedText() string {
	r := len(s.rotations) - 1
	if r < 0 {
		return "-"
	}
	n := 0
	for _, p := range s.procs {
		if !p.switched[r].IsZero() {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(s.procs))
}

// vhist is a histogram of latencies in buckets of 1% width (log scale),
// for percentiles of millions of queries in little memory.
type vhist struct {
	counts []int
	n      int
}

const vhistBase = 1.01

func (h *vhist) add(d time.Duration) {
	i := 0
	if us := float64(d.Microseconds()); us > 1 {
		i = int(math.Log(us) / math.Log(vhistBase))
	}
	for len(h.counts) <= i {
		h.counts = append(h.counts, 0)
	}
	h.counts[i]++
	h.n++
}

// quantile returns the q-quantile in milliseconds.
func (h *vhist) quantile(q float64) float64 {
	want := int(math.Ceil(q * float64(h.n)))
	seen := 0
	for i, c := range h.counts {
		if seen += c; seen >= max(want, 1) {
			return math.Pow(vhistBase, float64(i)+0.5) / 1000
		}
	}
	return 0
}

// seeded returns b (a backoff.ExponentialBackOff, as the retry policy and
// the cache's revalidation make) with its jitter drawn from the
// simulation's random source, so that a seed gives one run: the same
// intervals, randomized as cenkalti/backoff does.
func (s *vsim) seeded(b backoff.BackOff) backoff.BackOff {
	eb, ok := b.(*backoff.ExponentialBackOff)
	if !ok {
		return b
	}
	v := &vbackoff{eb: eb, factor: eb.RandomizationFactor, rng: s.rng}
	eb.RandomizationFactor = 0
	return v
}

type vbackoff struct {
	eb     *backoff.ExponentialBackOff
	factor float64
	rng    *rand.Rand
}

func (v *vbackoff) NextBackOff() time.Duration {
	d := v.eb.NextBackOff()
	if d == backoff.Stop || v.factor == 0 {
		return d
	}
	delta := v.factor * float64(d)
	return time.Duration(float64(d) - delta + v.rng.Float64()*(2*delta+1))
}

func (v *vbackoff) Reset() { v.eb.Reset() }
