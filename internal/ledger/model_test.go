package ledger

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The model tests drive Ledgers through generated histories of a simulated
// world: a server with one password per account (which may require TLS,
// lock an account, or block it after too many failed logins in a row), a
// secret whose labels move in every order (managed single- and multi-user
// rotations, stuck rotations, rollbacks, secret first then ALTER USER and
// the reverse, a user created later, an account broken for other reasons),
// a source that fails, answers not found, or answers from a cache of its
// own (the agent), and a clock that jumps.
//
// Several pools share the world as the connector's do: two plain pools on
// one ledger (pools on two databases of one account), an isolated plain
// pool with a ledger of its own, and a TLS pool (another group of login
// settings); all share one account table. Connects are interleaved step by
// step: the generator picks whose step runs next (a new Connect, a waiting
// Connect waking, a dial's answer), a caller may give up at any step, and a
// dial may hang until its bound cuts it. Each Connect is stepped with the
// same Ledger.Next, Attempt.After and Classify as connector.go, doing the
// I/O against the simulated world.
//
// After every step the invariants are checked, in the README's words:
//
//   - a version that has never logged in through a ledger is dialed by it
//     only as a claim; at most one trial or probe per account is in flight
//     across the process, unless the earlier one's lease has ended;
//   - once the server has refused a version under some login settings, that
//     version is dialed again under those settings only as a single probe,
//     each probe at least one hold after the last refusal (the hold
//     doubling up to its cap within a ledger);
//   - no version of an account is dialed while another version of it logs
//     in (accepted less than a hold ago, not refused since, known to the
//     pool);
//   - a dial cut short (the caller gave up, the login bound) changes no
//     verdict;
//   - no Connect waits with nothing due: a claim it waits on is within its
//     lease;
//   - the source is asked at most once per MinInterval by each ledger;
//   - when the history settles with a version that works and a source that
//     answers, Connects succeed again within the longest hold plus the
//     poll interval; at once when the version that last logged in still
//     works (a failed fetch never loses a good version).
//
// Each property logs "histories=N seed=S"; rerun a failure with
// go test -run TestModel... -rapid.seed=S (rapid prints the shortest history
// it found). scripts/mutants checks that each rule's removal is caught.

var modelOpts = Options{Hold: time.Minute, MaxHold: 8 * time.Minute, MinInterval: time.Second,
	Lease: 3 * time.Second, Freshness: time.Second}

const (
	modelMaxLogins    = 5
	modelRetryTimeout = 10 * time.Second // retryTimeout: bounds waits
	modelLoginTimeout = 30 * time.Second // loginTimeout: bounds a login without a caller deadline
)

// mver is a version in the model: an account and a password.
type mver struct {
	name     string
	acct     Account
	password string
	key      Key
}

// mstate is what the model expects of a version in one ledger. The probe
// rule, as the README states it: after the server refuses a version, it is
// dialed again only as single probes, the first a hold after the refusal,
// each later one a doubled hold after the last probe's refusal; a login the
// ledger counts, or a refusal of another version of the account that
// logged in after it (the password changed), ends the streak.
type mstate struct {
	accepted  bool          // the ledger has been told of an accepted login
	streak    time.Time     // when the streak's first refusal was recorded; zero when none
	refAt     time.Time     // when the streak's latest refusal (first or probe) was recorded
	nextProbe time.Time     // the earliest a probe may begin
	step      time.Duration // the current hold

	countedAt    time.Time // begin of the last acceptance the ledger counted
	countedEpoch int       // the account's password epoch at that acceptance
}

// mledger is a ledger and the pools on it.
type mledger struct {
	name      string
	l         *Ledger[*mver]
	tls       bool
	st        map[*mver]*mstate
	lastRound time.Time // the last fetch of AWSPENDING or of both: a round
	roundCur  bool      // the last round fetched AWSCURRENT
	calls     int       // calls to the source the ledger asked for
	polls     int       // of which polls while nothing was dialable
	rounds    []*mver   // what each round's AWSPENDING answered
}

func (ml *mledger) state(v *mver) *mstate {
	if ml.st[v] == nil {
		ml.st[v] = &mstate{}
	}
	return ml.st[v]
}

type maccount struct {
	password   string // "" while the user does not exist
	broken     bool   // logins fail for another reason (database dropped)
	requireTLS bool   // plain logins are refused (REQUIRE SSL)
	locked     bool   // ACCOUNT LOCK
	failures   int    // consecutive failed logins
	blocked    bool   // max_password_errors reached
	epoch      int    // counts password changes
}

type mconn struct {
	id       int
	ml       *mledger
	start    time.Time
	deadline time.Time // the caller's; zero when none
	att      *Attempt
	waiting  bool
	done     bool
	ok       bool
	gaveUp   bool // the caller gave up
}

type mdial struct {
	c      *mconn
	v      *mver
	t      Ticket[*mver]
	bound  time.Time // the caller's deadline, or the login bound
	hung   bool      // the server never answers
	pwThen string    // the server's password when the dial began
	epoch  int       // the account's password epoch when the dial began
	okThen time.Time // the version's latest counted login when the dial began
}

// labels is what the source says.
type labels struct {
	cur, pen   *mver
	down, gone bool
}

type world struct {
	t   *rapid.T
	now time.Time
	acc *Accounts

	ledgers  []*mledger
	accounts map[Account]*maccount
	versions []*mver
	src      labels

	agentTTL time.Duration // > 0: fetches that do not bypass are answered from a cache
	agent    labels
	agentAt  time.Time

	maxErrors int  // the server's max_password_errors; 0: none
	noHang    bool // every dial is answered

	conns    []*mconn
	dials    []*mdial
	autoWake bool // wake waiting Connects on every outcome, as Changed does
	fetches  int
	nextID   int

	// proof mirrors the README's "logs in on the account": the version
	// whose accepted login began last, unless refused since.
	proof map[Account]mproof
	// grefused is, per login settings and version, when a refusal was
	// last recorded (the hold applies to every ledger of the settings).
	grefused map[gkey]time.Time
	// lockedAt is when the server first answered a lock error for an
	// account, since it last checked a password.
	lockedAt map[Account]time.Time
	// failedLogins counts the logins the server refused, per account.
	failedLogins map[Account]int
	trace        []string // what happened, printed on failure

	// overLease counts the claims taken while an earlier claim's dial on
	// the account was still in flight, past its lease.
	overLease int
}

type mproof struct {
	v     *mver
	start time.Time
	tls   bool // the login settings it logged in with
	ok    bool
}

type gkey struct {
	tls bool
	v   *mver
}

// logf records an event of the history.
func (w *world) logf(format string, args ...any) {
	w.trace = append(w.trace, w.now.Format("15:04:05.000000000")+" "+fmt.Sprintf(format, args...))
}

// fail prints the history's last events and fails.
func (w *world) fail(format string, args ...any) {
	for _, l := range w.trace[max(0, len(w.trace)-400):] {
		w.t.Log(l)
	}
	for _, ml := range w.ledgers {
		w.t.Log(ml.name, w.verdicts(ml.l))
	}
	w.t.Fatalf(format, args...)
}

func newWorld(t *rapid.T) *world {
	w := &world{
		t:            t,
		now:          time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		acc:          NewAccounts(),
		accounts:     map[Account]*maccount{},
		proof:        map[Account]mproof{},
		grefused:     map[gkey]time.Time{},
		failedLogins: map[Account]int{},
		lockedAt:     map[Account]time.Time{},
	}
	for _, spec := range []struct {
		name string
		tls  bool
	}{{"shared", false}, {"isolated", false}, {"tls", true}} {
		opts := modelOpts
		opts.Accounts = w.acc
		opts.Group = strconv.FormatBool(spec.tls)
		w.ledgers = append(w.ledgers, &mledger{name: spec.name, l: New[*mver](opts), tls: spec.tls, st: map[*mver]*mstate{}})
	}
	v := w.newVersion("u1")
	w.account(v.acct).password = v.password
	w.src.cur = v
	return w
}

func (w *world) newVersion(user string) *mver {
	n := len(w.versions) + 1
	v := &mver{name: "v" + strconv.Itoa(n), acct: Account(user + "@db:3306"), password: "pw" + strconv.Itoa(n)}
	v.key = sha256.Sum256([]byte(string(v.acct) + "\x00" + v.password))
	w.versions = append(w.versions, v)
	return v
}

func (w *world) account(a Account) *maccount {
	if w.accounts[a] == nil {
		w.accounts[a] = &maccount{}
	}
	return w.accounts[a]
}

// setPassword is ALTER USER (or CREATE USER): a new password epoch, and the
// server forgets the failed logins.
func (w *world) setPassword(a Account, pw string) {
	w.logf("ALTER USER %s: %s", a, pw)
	ac := w.account(a)
	if ac.password == pw {
		return
	}
	ac.password = pw
	ac.epoch++
	ac.failures, ac.blocked = 0, false
}

// fetch is what the connector's refresh does for a ledger: stage ("" for
// both), observed; through the agent's cache unless bypass. A fetch the
// ledger asked for is a round (AWSPENDING, or both) at most once per
// MinInterval, and AWSCURRENT at most once per round.
func (w *world) fetch(ml *mledger, ledgerAsked bool, stage Stage, bypass bool) {
	if ledgerAsked {
		if stage == Current {
			if ml.roundCur {
				w.fail("%s: AWSCURRENT fetched twice in the round that began at %v", ml.name, ml.lastRound)
			}
			ml.roundCur = true
			w.fetches++
			ml.calls++
		} else {
			if !ml.lastRound.IsZero() && w.now.Sub(ml.lastRound) < modelOpts.MinInterval {
				w.fail("%s: fetch round at %v, %v after the previous one: more than one per MinInterval", ml.name, w.now, w.now.Sub(ml.lastRound))
			}
			ml.lastRound, ml.roundCur = w.now, stage == ""
			w.fetches++
			ml.calls++
			if stage == "" {
				w.fetches++
				ml.calls++
			}
		}
		defer ml.l.Fetched(stage, w.now)
	}
	seen := w.src
	if w.agentTTL > 0 {
		if bypass || w.agentAt.IsZero() || w.now.Sub(w.agentAt) >= w.agentTTL {
			if !w.src.down {
				w.agent, w.agentAt = w.src, w.now
			}
		} else {
			seen = w.agent
		}
	}
	w.logf("%s fetched %q: cur=%v pen=%v down=%v gone=%v", ml.name, stage, seen.cur.name, penName(seen.pen), seen.down, seen.gone)
	if seen.down {
		if ledgerAsked {
			// The source failed: the connector ends the round.
			defer ml.l.Fetched("", w.now)
		}
		return
	}
	if !seen.gone && stage != Pending {
		ml.l.Observe(Current, seen.cur.key, seen.cur.acct, seen.cur, w.now)
	}
	if stage == Current {
		return
	}
	if ledgerAsked {
		ml.rounds = append(ml.rounds, seen.pen)
	}
	if seen.pen != nil {
		ml.l.Observe(Pending, seen.pen.key, seen.pen.acct, seen.pen, w.now)
	} else {
		ml.l.NotFound(Pending)
	}
}

// retryDeadline is when a Connect stops waiting: retryTimeout, or the
// caller's deadline if earlier.
func (c *mconn) retryDeadline(start time.Time) time.Time {
	d := start.Add(modelRetryTimeout)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	return d
}

// step runs a Connect's procedure until it dials, waits or ends.
func (w *world) step(c *mconn) {
	c.waiting = false
	l := c.ml.l
	for range 20 {
		if w.now.After(c.att.Deadline) {
			c.done = true
			return
		}
		w.now = w.now.Add(time.Nanosecond) // no two dials begin at the same instant
		next := l.Next(c.att, w.now)
		switch next.Step {
		case StepFetch:
			w.logf("c%d %s fetch %q bypass=%v", c.id, c.ml.name, next.Stage, next.Bypass)
			if next.Poll {
				c.ml.polls += 2
			}
			w.fetch(c.ml, true, next.Stage, next.Bypass)
		case StepDial:
			w.beginDial(c, next.Ticket)
			return
		case StepWait:
			if !next.Until.After(w.now) && !w.liveClaim() {
				w.fail("connect %d (%s) waits at %v with nothing due (until %v) and no claim within its lease",
					c.id, c.ml.name, w.now, next.Until)
			}
			w.logf("c%d %s wait until %v", c.id, c.ml.name, next.Until.Format("15:04:05.000000000"))
			c.waiting = true
			return
		default: // StepGiveUp, StepFail: the Connect returns an error
			d := l.Decide(w.now)
			w.logf("c%d %s gives up: step %d cause %d (deadline %v; decision %d until %v fetchAt %v claimed %v)", c.id, c.ml.name, next.Step, next.Cause,
				c.att.Deadline.Format("15:04:05.000000000"), d.Kind, d.Until.Format("15:04:05.000000000"), d.Fetch.At.Format("15:04:05.000000000"), d.Claimed)
			if d.Kind == Dial {
				l.Report(d.Ticket, Abandoned, w.now)
			}
			c.done = true
			return
		}
	}
	w.fail("connect %d: 20 steps without dialing or waiting", c.id)
}

// liveClaim reports whether a trial or probe in flight is within its lease.
func (w *world) liveClaim() bool {
	for _, d := range w.dials {
		if d.t.Claim && w.now.Sub(d.t.Start()) < modelOpts.Lease {
			return true
		}
	}
	return false
}

func (w *world) beginDial(c *mconn, t Ticket[*mver]) {
	v, ml := t.Payload(), c.ml
	if v.key != t.Key() {
		w.fail("ticket key mismatch")
	}
	st := ml.state(v)
	// A version that never logged in through this ledger: only as a claim,
	// unless it logged in under the same login settings less than the
	// freshness window ago (another ledger's proof).
	if p := w.proof[v.acct]; !st.accepted && !t.Claim && !(p.ok && p.v == v && p.tls == ml.tls && w.now.Sub(p.start) <= modelOpts.Freshness) {
		w.fail("%s: %s has never logged in, yet is dialed without a claim", ml.name, v.name)
	}
	// One trial or probe per account in flight, across the process, but
	// after a lease.
	if t.Claim {
		over := false
		for _, d := range w.dials {
			if d.t.Claim && d.v.acct == v.acct {
				if w.now.Sub(d.t.Start()) < modelOpts.Lease {
					w.fail("%s: a claim on %s at %v while %s's (%s) began %v ago, within its lease",
						ml.name, v.acct, w.now, d.v.name, d.c.ml.name, w.now.Sub(d.t.Start()))
				}
				over = true
			}
		}
		if over {
			w.overLease++
		}
	}
	// Refused: single probes, spaced by the doubling hold.
	if !st.streak.IsZero() {
		probes := 0 // dials in flight that began after the streak began, within their lease
		for _, d := range w.dials {
			if d.v == v && d.c.ml == ml && d.t.Start().After(st.streak) && w.now.Sub(d.t.Start()) < modelOpts.Lease {
				probes++
			}
		}
		if !t.Claim || probes > 0 {
			w.fail("%s: %s was refused at %v; dial at %v is not a single probe (claim %v, %d probes in flight)",
				ml.name, v.name, st.streak, w.now, t.Claim, probes)
		}
		if w.now.Before(st.nextProbe) {
			w.fail("%s: %s probed at %v, %v after its last refusal: the hold is %v", ml.name, v.name, w.now, w.now.Sub(st.refAt), st.step)
		}
	}
	// Refused under the same login settings by another ledger: held too.
	if at, ok := w.grefused[gkey{ml.tls, v}]; ok && w.now.Sub(at) < modelOpts.Hold {
		w.fail("%s: %s was refused under the same login settings at %v; dialed at %v, within the hold",
			ml.name, v.name, at, w.now)
	}
	// A lock error holds the whole account: no dial of it for a hold, but
	// the one probe after it.
	if at := w.lockedAt[v.acct]; !at.IsZero() && w.now.Sub(at) < modelOpts.Hold {
		w.fail("%s: %s dialed at %v, %v after the server answered that %s is locked (hold %v)",
			ml.name, v.name, w.now, w.now.Sub(at), v.acct, modelOpts.Hold)
	}
	// No version of an account while another logs in on it.
	if p := w.proof[v.acct]; p.ok && p.v != v && w.now.Sub(p.start) <= modelOpts.Hold {
		if o := ml.l.versions[p.v.key]; o != nil && ml.l.labelled(o) && !(o.refused && o.refAt.After(p.start)) {
			w.fail("%s: %s dialed at %v while %s logs in on %s (accepted at %v)", ml.name, v.name, w.now, p.v.name, v.acct, p.start)
		}
	}
	ac := w.account(v.acct)
	bound := w.now.Add(modelLoginTimeout)
	if !c.deadline.IsZero() {
		bound = c.deadline
	}
	hung := !w.noHang && rapid.IntRange(0, 9).Draw(w.t, "hung") == 0
	w.logf("c%d %s dials %s claim=%v hung=%v (server %s)", c.id, ml.name, v.name, t.Claim, hung, ac.password)
	w.dials = append(w.dials, &mdial{c: c, v: v, t: t, bound: bound, hung: hung, pwThen: ac.password, epoch: ac.epoch, okThen: st.countedAt})
}

// verdicts is what a ledger and the account table concluded, for the check
// that a dial cut short changes none.
func (w *world) verdicts(l *Ledger[*mver]) string {
	s := fmt.Sprintf("good=%p last=%p lastRefusal=%v;", l.good, l.last, l.lastRefusal)
	for _, v := range w.versions {
		if x := l.versions[v.key]; x != nil {
			s += fmt.Sprintf("%s:%v,%v,%v,%v,%v,%v,%v;", v.name, x.proven, x.refused, x.refAt, x.hold, x.holdUntil, x.failed, x.accepted)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(w.acc.m)) {
		st := w.acc.m[a]
		s += fmt.Sprintf("%s:%x,%v,%v,%v,%v,%v;", a, st.proof[:4], st.proofAt, st.proofOK, st.locked, st.lockUntil, len(st.refused))
	}
	return s
}

// cut ends dial i before the server answers: the caller gave up, or the
// bound passed.
func (w *world) cut(i int) {
	d := w.dials[i]
	w.dials = append(w.dials[:i], w.dials[i+1:]...)
	w.now = w.now.Add(time.Nanosecond)
	l := d.c.ml.l
	before := w.verdicts(l)
	o := Classify(false, 0, true)
	w.logf("c%d %s dial of %s cut short", d.c.id, d.c.ml.name, d.v.name)
	l.Report(d.t, o, w.now)
	if after := w.verdicts(l); after != before {
		w.fail("a dial of %s cut short (%v) changed the verdicts:\n before %s\n after  %s", d.v.name, o, before, after)
	}
	if d.c.att.After(d.v.key, d.t.Claim, o) {
		w.fail("the Connect goes on after its dial was cut short")
	}
	d.c.done, d.c.gaveUp = true, true
	w.wakeAll()
}

// finish ends dial i with the server's answer: it checks the password when
// the dial began or now (the order of a login and a concurrent ALTER USER
// is not known).
func (w *world) finish(i int, atBegin bool) {
	d := w.dials[i]
	w.dials = append(w.dials[:i], w.dials[i+1:]...)
	w.now = w.now.Add(time.Nanosecond)
	v, ml, ac := d.v, d.c.ml, w.account(d.v.acct)
	st := ml.state(v)
	pw, checkedNow := ac.password, true
	if atBegin && d.epoch != ac.epoch {
		pw, checkedNow = d.pwThen, false // checked in the epoch before
	}
	var number uint16
	switch {
	case ac.locked:
		number = 4151
	case ac.blocked:
		number = 4150
	case ac.broken:
		number = 1049
	case pw == "" || pw != v.password || ac.requireTLS && !ml.tls:
		number = 1045
		if pw != v.password {
			w.failedLogins[v.acct]++
			if ac.failures++; w.maxErrors > 0 && ac.failures >= w.maxErrors {
				ac.blocked = true
			}
		}
	default:
		ac.failures = 0
	}
	o := Classify(number == 0, number, false)
	w.logf("c%d %s dial of %s: %v (%d)", d.c.id, ml.name, v.name, o, number)
	switch {
	case number == 4150 || number == 4151:
		if w.lockedAt[v.acct].IsZero() {
			w.lockedAt[v.acct] = w.now
		}
	case number == 0 || number == 1045:
		delete(w.lockedAt, v.acct) // the server got as far as the password
	}
	if o == Locked {
		ml.l.ReportLocked(d.t, fmt.Errorf("error %d", number), w.now)
	} else {
		ml.l.Report(d.t, o, w.now)
	}
	defer w.wakeAll()
	switch o {
	case Accepted:
		st.accepted = true
		if p := w.proof[v.acct]; p.start.IsZero() || d.t.Start().After(p.start) {
			if st.streak.IsZero() || d.t.Start().After(st.refAt) {
				w.proof[v.acct] = mproof{v: v, start: d.t.Start(), tls: ml.tls, ok: true}
			}
		}
		if st.streak.IsZero() || d.t.Start().After(st.refAt) {
			// Counted: a login that began after the refusal was recorded.
			st.streak = time.Time{}
			delete(w.grefused, gkey{ml.tls, v})
			if d.t.Start().After(st.countedAt) {
				st.countedAt, st.countedEpoch = d.t.Start(), ac.epoch
				if !checkedNow {
					st.countedEpoch = d.epoch
				}
			}
		}
		d.c.done, d.c.ok = true, true
	case Refused:
		var changed time.Time // the password changed after this
		if p := w.proof[v.acct]; p.ok && p.v == v && d.t.Start().After(p.start) {
			p.ok = false
			w.proof[v.acct] = p
			changed = p.start
		}
		switch {
		case st.streak.IsZero():
			st.streak, st.refAt, st.step = w.now, w.now, modelOpts.Hold
			st.nextProbe = w.now.Add(st.step)
		case d.t.Start().After(st.streak):
			// A failed probe: the hold doubles.
			st.step = min(2*st.step, modelOpts.MaxHold)
			st.refAt, st.nextProbe = w.now, w.now.Add(st.step)
		}
		if g := (gkey{ml.tls, v}); st.refAt.After(w.grefused[g]) {
			w.grefused[g] = st.refAt
		}
		// v logged in with a login that began before this dial and is
		// refused now: the password changed after that login began, which
		// ends the account's streaks recorded before it. The login: the
		// latest counted when this dial began, or a later one that began
		// before it.
		ok := d.okThen
		if st.countedAt.Before(d.t.Start()) && st.countedAt.After(ok) {
			ok = st.countedAt
		}
		if ok.After(changed) {
			changed = ok
		}
		// The password changed after that login: the account's refusals
		// recorded before it are stale, in every ledger.
		if !changed.IsZero() {
			for _, o := range w.versions {
				if o.acct != v.acct {
					continue
				}
				for _, ol := range w.ledgers {
					if os := ol.st[o]; os != nil && !os.streak.IsZero() && os.refAt.Before(changed) {
						os.streak = time.Time{}
					}
					if g := (gkey{ol.tls, o}); w.grefused[g].Before(changed) {
						delete(w.grefused, g)
					}
				}
			}
		}
		d.c.att.After(v.key, d.t.Claim, o)
		w.step(d.c)
	default: // Failed, Locked
		if d.c.att.After(v.key, d.t.Claim, o) {
			w.step(d.c)
		} else {
			d.c.done = true
		}
	}
}

// startConnect begins a Connect on ledger ml, with the caller's deadline
// after d (0: none).
func (w *world) startConnect(ml *mledger, d time.Duration) *mconn {
	w.nextID++
	c := &mconn{id: w.nextID, ml: ml, start: w.now}
	w.logf("c%d %s connect deadline=%v", c.id, ml.name, d)
	if d > 0 {
		c.deadline = w.now.Add(d)
	}
	c.att = &Attempt{Deadline: c.retryDeadline(w.now), MaxLogins: modelMaxLogins}
	w.conns = append(w.conns, c)
	if !ml.l.Known() {
		w.fetch(ml, false, "", false)
	} else if !w.src.down && !w.src.gone {
		// The cache's AWSCURRENT, as Connect's fast path observes it.
		seen := w.src
		if w.agentTTL > 0 && !w.agentAt.IsZero() {
			seen = w.agent
		}
		ml.l.Observe(Current, seen.cur.key, seen.cur.acct, seen.cur, w.now)
	}
	w.step(c)
	return c
}

func (w *world) waiting() []*mconn {
	var out []*mconn
	for _, c := range w.conns {
		if c.waiting && !c.done {
			out = append(out, c)
		}
	}
	return out
}

// tick moves the clock: dials past their bound are cut, Connects past
// their deadline end.
func (w *world) tick(d time.Duration) {
	w.now = w.now.Add(d)
	for i := len(w.dials) - 1; i >= 0; i-- {
		if w.now.After(w.dials[i].bound) {
			w.cut(i)
		}
	}
	for _, c := range w.waiting() {
		if w.now.After(c.att.Deadline) {
			c.done, c.waiting = true, false
		}
	}
	w.wakeAll()
}

// wakeAll steps every waiting Connect, when the world wakes them as the
// connector does (on news and on their timers).
func (w *world) wakeAll() {
	if !w.autoWake {
		return
	}
	for _, c := range w.waiting() {
		w.step(c)
	}
}

// works returns a version the source offers that the server accepts now
// from ledger ml.
func (w *world) works(ml *mledger) *mver {
	if w.src.down {
		return nil
	}
	for _, v := range []*mver{w.src.cur, w.src.pen} {
		// The connector observes AWSCURRENT on every Connect; AWSPENDING
		// only when a refusal or a poll calls for a fetch, so a pending
		// version counts once the ledger has it labelled so.
		if v == nil || (v == w.src.cur && w.src.gone) {
			continue
		}
		if p, ok := ml.l.Labelled(Pending); v == w.src.pen && (!ok || p != v) {
			continue
		}
		if ac := w.account(v.acct); !ac.broken && !ac.locked && !ac.blocked && ac.password == v.password && (!ac.requireTLS || ml.tls) {
			return v
		}
	}
	return nil
}

// settle ends every dial in flight and every wait, then checks liveness
// for each ledger: with a working version on offer, a Connect succeeds
// within the longest hold plus a poll; at once when the version that last
// logged in still has the server's password.
func (w *world) settle() {
	for len(w.dials) > 0 {
		if w.dials[0].hung {
			w.cut(0)
		} else {
			w.finish(0, false)
		}
	}
	for _, c := range w.conns {
		c.done, c.waiting = true, false
	}
	w.agentTTL = 0 // the agent's cache would only delay what is checked
	for _, ml := range w.ledgers {
		w.settleLedger(ml)
	}
}

func (w *world) settleLedger(ml *mledger) {
	good := w.works(ml)
	if good == nil {
		return
	}
	// At once when the evidence allows: the working version is not held
	// back by the rules (never refused, or its refusal ended by a login or
	// by a proof that the password changed since), and nothing else logs
	// in on the account.
	immediate := ml.state(good).streak.IsZero() && w.grefused[gkey{ml.tls, good}].IsZero()
	if p, _, ok := ml.l.LastAccepted(); ok && !immediate {
		ac, ps := w.account(p.acct), ml.state(p)
		immediate = !ac.broken && ac.password == p.password && !ps.countedAt.IsZero() && ps.countedEpoch == ac.epoch
	}
	if st := w.acc.m[good.acct]; st != nil && st.locked {
		immediate = false // a lock the server lifted holds until its probe
	}
	start := w.now
	bound := modelOpts.MaxHold + modelOpts.Hold + 2*modelOpts.MinInterval + modelOpts.Lease
	for attempt := 0; ; attempt++ {
		c := w.startConnect(ml, 0)
		for !c.done && len(w.dials) > 0 {
			w.finish(len(w.dials)-1, false)
		}
		if c.ok {
			return
		}
		// The Connect that learns the preferred version broke (another
		// failure than 1045) returns that error: the next one must do.
		if immediate && attempt > 0 {
			w.fail("%s: %s works and nothing holds it back, yet Connect %d failed at %v", ml.name, good.name, attempt+1, w.now)
		}
		if w.now.Sub(start) > bound {
			w.fail("%s: %s works and the source answers, yet no Connect succeeded for %v (bound %v)", ml.name, good.name, w.now.Sub(start), bound)
		}
		// Wait as a caller would: for the next hold to end or fetch to
		// fall due, at least a second.
		next := w.now.Add(modelOpts.MinInterval)
		if c.waiting {
			d := ml.l.Decide(w.now)
			if !d.Until.IsZero() && d.Until.After(next) {
				next = d.Until
			}
			c.done, c.waiting = true, false
		}
		w.tick(next.Sub(w.now))
	}
}

// drawDeadline draws a caller's deadline: none (the pool's opener,
// db.Ping()), or one from 100 ms to 30 s.
func drawDeadline(t *rapid.T) time.Duration {
	if rapid.Bool().Draw(t, "noDeadline") {
		return 0
	}
	return time.Duration(rapid.Int64Range(int64(100*time.Millisecond), int64(30*time.Second)).Draw(t, "deadline"))
}

// actions returns the generated events of a history.
func (w *world) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"connect": func(t *rapid.T) {
			w.startConnect(rapid.SampledFrom(w.ledgers).Draw(t, "ledger"), drawDeadline(t))
		},
		"finishDial": func(t *rapid.T) {
			if len(w.dials) == 0 {
				t.Skip("no dial in flight")
			}
			i := rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial")
			if w.dials[i].hung {
				t.Skip("the server does not answer that dial")
			}
			w.finish(i, rapid.Bool().Draw(t, "checkedAtBegin"))
		},
		"giveUp": func(t *rapid.T) {
			if len(w.dials) == 0 {
				t.Skip("no dial in flight")
			}
			w.cut(rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial"))
		},
		"wake": func(t *rapid.T) {
			ws := w.waiting()
			if len(ws) == 0 {
				t.Skip("no Connect waiting")
			}
			w.step(ws[rapid.IntRange(0, len(ws)-1).Draw(t, "conn")])
		},
		"tick": func(t *rapid.T) {
			w.tick(time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(5*time.Second)).Draw(t, "d")))
		},
		"clockJump": func(t *rapid.T) {
			w.tick(time.Duration(rapid.Int64Range(int64(time.Minute), int64(20*time.Minute)).Draw(t, "d")))
		},
		// Managed rotation steps, in any order and interleaving.
		"createSecret": func(t *rapid.T) {
			user := string(w.src.cur.acct[:2])
			if rapid.Bool().Draw(t, "multiUser") {
				// The clone: the other user of the pair.
				user = map[bool]string{true: "u2", false: "u1"}[user == "u1"]
			}
			w.src.pen = w.newVersion(user)
		},
		"setSecret": func(t *rapid.T) {
			if w.src.pen == nil {
				t.Skip("no AWSPENDING")
			}
			w.setPassword(w.src.pen.acct, w.src.pen.password)
		},
		"finishSecret": func(t *rapid.T) {
			if w.src.pen == nil {
				t.Skip("no AWSPENDING")
			}
			w.src.cur, w.src.pen = w.src.pen, nil
		},
		"rollback": func(t *rapid.T) {
			w.src.pen = nil
			w.setPassword(w.src.cur.acct, w.src.cur.password)
		},
		// Secret first, ALTER USER later (or never): and the reverse.
		"putSecretCurrent": func(t *rapid.T) {
			user := string(w.src.cur.acct[:2])
			if rapid.Bool().Draw(t, "newUser") {
				user = "u" + strconv.Itoa(rapid.IntRange(1, 3).Draw(t, "user"))
			}
			w.src.cur = w.newVersion(user)
		},
		"alterUser": func(t *rapid.T) {
			v := rapid.SampledFrom(w.versions).Draw(t, "to")
			w.setPassword(v.acct, v.password)
		},
		"alterUserUnknown": func(t *rapid.T) {
			a := rapid.SampledFrom([]Account{"u1@db:3306", "u2@db:3306"}).Draw(t, "acct")
			w.setPassword(a, fmt.Sprintf("unknown%d", w.now.UnixNano()))
		},
		"breakAccount": func(t *rapid.T) {
			a := rapid.SampledFrom([]Account{"u1@db:3306", "u2@db:3306", "u3@db:3306"}).Draw(t, "acct")
			w.account(a).broken = rapid.Bool().Draw(t, "broken")
		},
		"lockAccount": func(t *rapid.T) {
			a := rapid.SampledFrom([]Account{"u1@db:3306", "u2@db:3306"}).Draw(t, "acct")
			w.account(a).locked = rapid.Bool().Draw(t, "locked")
		},
		"requireTLS": func(t *rapid.T) {
			a := rapid.SampledFrom([]Account{"u1@db:3306", "u2@db:3306"}).Draw(t, "acct")
			w.account(a).requireTLS = rapid.Bool().Draw(t, "require")
		},
		"agentCache": func(t *rapid.T) {
			w.agentTTL = time.Duration(rapid.IntRange(0, 300).Draw(t, "agentTTLs")) * time.Second
		},
		"sourceDown": func(t *rapid.T) { w.src.down = rapid.Bool().Draw(t, "down") },
		"sourceGone": func(t *rapid.T) { w.src.gone = rapid.Bool().Draw(t, "gone") },
		"ttlRefresh": func(t *rapid.T) { w.fetch(rapid.SampledFrom(w.ledgers).Draw(t, "ledger"), false, "", false) },
	}
}

var historyCount atomic.Int64

// seedModel fixes rapid's seed (from the clock, unless -rapid.seed is set)
// and the number of histories, and logs both.
func seedModel(t *testing.T, checks int) func() {
	seed := flag.Lookup("rapid.seed")
	if seed.Value.String() == "0" {
		_ = seed.Value.Set(strconv.FormatUint(uint64(time.Now().UnixNano()), 10))
	}
	if c := flag.Lookup("rapid.checks"); c.Value.String() == "100" {
		_ = c.Value.Set(strconv.Itoa(checks))
	}
	if s := flag.Lookup("rapid.steps"); s.Value.String() == "30" {
		_ = s.Value.Set("100") // histories of about 100 events
	}
	// The seed and the shrunk history are printed on failure; no fail
	// files in the source tree.
	_ = flag.Lookup("rapid.nofailfile").Value.Set("true")
	historyCount.Store(0)
	return func() {
		t.Logf("histories=%d seed=%s", historyCount.Load(), seed.Value.String())
	}
}

// TestModelHistories: generated histories of every kind, checked against
// the invariants above after every step and settled at the end.
func TestModelHistories(t *testing.T) {
	defer seedModel(t, 2000)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		acts := w.actions()
		for name, act := range acts {
			// Every event takes a microsecond: the order of events is the
			// order of their times, as on a real clock.
			acts[name] = func(t *rapid.T) { w.now = w.now.Add(time.Microsecond); act(t) }
		}
		acts[""] = func(t *rapid.T) {}
		t.Repeat(acts)
		// Locks and TLS requirements are lifted before the end: liveness
		// is checked for what can log in.
		for _, ac := range w.accounts {
			ac.locked = false
		}
		w.settle()
	})
}

// warmUp logs every ledger in with the first version and returns it.
func (w *world) warmUp() *mver {
	for _, ml := range w.ledgers {
		c := w.startConnect(ml, 0)
		for !c.done && len(w.dials) > 0 {
			w.finish(0, false)
		}
		if !c.ok {
			w.fail("warm-up Connect on %s failed", ml.name)
		}
	}
	return w.src.cur
}

// TestModelManagedRotation: single- and multi-user managed rotations (and
// single-user ones rolled back after setSecret) under up to 16 concurrent
// Connects on every ledger, the rotation's steps milliseconds to seconds
// apart (stuck for up to tens of seconds between setSecret and
// finishSecret), with or without the agent's cache in front of the source,
// dials finishing in any order, some hanging until their bound, callers
// giving up, waiting Connects woken as the connector's are (on news and
// their timers): no Connect fails but those whose caller gave up; the
// failed logins are the dials of the old password in flight when each
// ledger met its first refusal (none in a multi-user rotation), plus one
// probe per hold period if the rotation outlasts a hold; the source is
// called at most twice per ledger, and once when the ledger's first fetch
// finds AWSPENDING (plus one per hold period, for the probes).
func TestModelManagedRotation(t *testing.T) {
	defer seedModel(t, 1000)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.autoWake = true
		multi := rapid.Bool().Draw(t, "multiUser")
		stuck := rapid.Bool().Draw(t, "stuck")
		rollback := !multi && rapid.Bool().Draw(t, "rollback")
		// A rollback is told from a rotation by the order of logins: a
		// login in flight for seconds (hung) leaves that order unknown.
		w.noHang = rollback
		if rapid.Bool().Draw(t, "agent") {
			w.agentTTL = 300 * time.Second
		}
		// The source down (throttled, failing) from setSecret on, for up
		// to 3 s: Connects wait for it within their deadline.
		outage := time.Duration(0)
		if rapid.Bool().Draw(t, "outage") {
			outage = time.Duration(rapid.Int64Range(int64(100*time.Millisecond), int64(3*time.Second)).Draw(t, "outageFor"))
		}
		var upAt time.Time
		old := w.warmUp()
		if !multi && !rollback && rapid.Bool().Draw(t, "rotatedBefore") {
			// The previous rotation was learned through AWSPENDING (its
			// round fetched AWSPENDING only) and no TTL refresh has run
			// since: this rotation's refusal begins a new round.
			old = w.newVersion("u1")
			w.src.pen = old
			w.agentAt = time.Time{} // the agent's cache has expired
			w.setPassword(old.acct, old.password)
			w.tick(2 * modelOpts.MinInterval)
			w.warmUp()
			w.src.cur, w.src.pen = old, nil
			w.agentAt = time.Time{} // rotations are further apart than the agent's TTL
			w.tick(2 * modelOpts.MinInterval)
		}
		fetches0, start := w.fetches, w.now
		for _, ml := range w.ledgers {
			ml.calls, ml.polls, ml.rounds = 0, 0, nil
		}
		var pen *mver
		steps := []func(){
			func() {
				user := "u1"
				if multi {
					user = "u2"
				}
				pen = w.newVersion(user)
				w.src.pen = pen
			},
			func() {
				w.setPassword(pen.acct, pen.password)
				if outage > 0 {
					w.src.down, upAt = true, w.now.Add(outage)
				}
			},
			func() { w.src.cur, w.src.pen = pen, nil },
		}
		if rollback {
			// Rolled back after setSecret, once the process logged in with
			// AWSPENDING: the old password restored on the server,
			// AWSPENDING removed.
			steps[2] = func() { w.src.pen = nil; w.setPassword(old.acct, old.password) }
		}
		refused, budget, probes := 0, 0, 0
		firstRefusal := map[*mledger]bool{}
		next := 0
		for next < len(steps) || len(w.dials) > 0 || len(w.waiting()) > 0 || w.src.down {
			w.now = w.now.Add(time.Microsecond) // events in order of time
			switch rapid.IntRange(0, 5).Draw(t, "event") {
			case 0:
				if next == 2 && rollback && !w.ledgers[0].state(pen).accepted {
					break // rolled back once the process is on AWSPENDING
				}
				if next < len(steps) {
					steps[next]()
					next++
				}
			case 1:
				if len(w.dials)+len(w.waiting()) < 16 && next < len(steps) {
					w.startConnect(rapid.SampledFrom(w.ledgers).Draw(t, "ledger"), drawDeadline(t))
				}
			case 2, 3:
				i := -1
				for j, d := range w.dials {
					if !d.hung {
						i = j
					}
				}
				if i < 0 {
					break
				}
				i = rapid.IntRange(0, i).Draw(t, "dial")
				d := w.dials[i]
				if d.hung {
					break
				}
				if w.account(d.v.acct).password != d.v.password && !rollback {
					if d.v != old {
						w.fail("a dial of %s was refused: only the old password may be", d.v.name)
					}
					if !firstRefusal[d.c.ml] {
						firstRefusal[d.c.ml] = true
						for _, o := range w.dials {
							if o.v == old && o.c.ml == d.c.ml {
								budget++
							}
						}
						// Each ledger pays its first refusal's dials in
						// flight, and one probe per hold period after it.
						probes += int(w.now.Sub(start)/modelOpts.Hold) + 1
					}
					refused++
				}
				w.finish(i, false)
			case 4:
				if len(w.dials) > 0 && !rapid.Bool().Draw(t, "giveUp") {
					break // a dial takes milliseconds: time moves between them
				}
				if len(w.dials) > 0 {
					w.cut(rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial"))
					break
				}
				fallthrough
			case 5:
				if rollback && len(w.dials) > 0 {
					break // a rollback is told by the order of logins that take milliseconds
				}
				d := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(300*time.Millisecond)).Draw(t, "tick"))
				if stuck && next == 2 {
					d *= 10
				}
				if w.src.down && !w.now.Add(d).Before(upAt) {
					w.src.down = false
				}
				w.tick(d)
			}
		}
		for _, c := range w.conns {
			// A caller with a deadline shorter than retryTimeout may give
			// up (during an outage of the source); the others may not.
			patient := c.deadline.IsZero() || c.deadline.Sub(c.start) >= modelRetryTimeout
			// After a rollback (the old password restored by hand: AWS's
			// rotation never does it), the order of logins in flight may
			// not tell that the old password came back, across ledgers
			// sharing the account: a Connect may wait for a probe, one
			// hold (docs/how-it-decides.md). TestModelHistories' settle
			// checks that bound.
			if rollback {
				patient = false
			}
			if !c.ok && !c.gaveUp && patient {
				w.fail("Connect %d (%s) failed during a managed rotation", c.id, c.ml.name)
			}
		}
		probes += int(w.now.Sub(start) / modelOpts.Hold)
		if multi && refused > 0 {
			w.fail("multi-user rotation: %d refused logins, want 0", refused)
		}
		if refused > budget+probes {
			w.fail("%d refused logins; %d dials of the old password were in flight at the ledgers' first refusals, %d probes allowed", refused, budget, probes)
		}
		// One call per ledger when its first round finds AWSPENDING (the
		// new password), two when the rotation had finished (AWSPENDING
		// gone, then AWSCURRENT); plus a round per probe. Behind the
		// agent's cache a first round may answer what the agent held, an
		// outage fails rounds, and after a rollback Connects poll while
		// they wait for a probe: none of those is counted.
		if outage == 0 && w.agentTTL == 0 && !rollback {
			holds := int(w.now.Sub(start) / modelOpts.Hold)
			for _, ml := range w.ledgers {
				// Polls while nothing is dialable (a proof of the old
				// password still fresh, a trial cut short) are bounded
				// by MinInterval, not counted here.
				want := 2 * (1 + holds)
				if len(ml.rounds) > 0 && ml.rounds[0] == pen {
					want = 1 + 2*holds
				}
				if ml.calls-ml.polls > want {
					w.fail("%s: %d calls to the source for one rotation (%d in polls; what each round's AWSPENDING answered: %v), want at most %d besides polls", ml.name, ml.calls, ml.polls, names(ml.rounds), want)
				}
			}
			if f := w.fetches - fetches0; f > 2*len(w.ledgers)*(1+holds) {
				w.fail("%d calls to the source for one rotation, want at most 2 per ledger", f)
			}
		}
	})
}

// TestModelIdleBurst: a rotation completes while the pools are idle (no new
// connection for longer than the freshness window), with or without a TTL
// refresh in between, then a burst of Connects arrives on every ledger at
// once: the proof of the old password has aged, so one dial goes first;
// at most one failed login per login-settings group, and every Connect
// succeeds.
func TestModelIdleBurst(t *testing.T) {
	defer seedModel(t, 1000)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.autoWake = true
		old := w.warmUp()
		w.now = w.now.Add(time.Duration(rapid.Int64Range(int64(2*time.Second), int64(10*time.Minute)).Draw(t, "idle")))
		pen := w.newVersion("u1")
		w.setPassword(pen.acct, pen.password)
		w.src.cur = pen
		if rapid.Bool().Draw(t, "ttlRefresh") {
			for _, ml := range w.ledgers {
				w.fetch(ml, false, "", false)
			}
		}
		n := rapid.IntRange(2, 64).Draw(t, "burst")
		for range n {
			w.startConnect(rapid.SampledFrom(w.ledgers).Draw(t, "ledger"), 0)
		}
		for len(w.dials) > 0 || len(w.waiting()) > 0 {
			w.now = w.now.Add(time.Microsecond)
			if len(w.dials) == 0 {
				w.tick(time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Second)).Draw(t, "tick")))
				continue
			}
			i := rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial")
			if w.dials[i].hung {
				w.cut(i)
			} else {
				w.finish(i, false)
			}
		}
		for _, c := range w.conns {
			if !c.ok && !c.gaveUp {
				w.fail("Connect %d (%s) failed in the burst", c.id, c.ml.name)
			}
		}
		if f := w.failedLogins[old.acct]; f > 2 { // two groups: plain and TLS
			w.fail("%d failed logins in a burst of %d after an idle rotation, want at most one per login-settings group", f, n)
		}
	})
}

// TestModelLockout: a wrong secret everywhere (the server's password is
// one the source never offers), the server blocking the account after 3
// failed logins in a row, Connects on every plain ledger (the shared one,
// with pools on two databases, and an isolated one) with any deadlines,
// cancellations and hangs, for less than a hold: one failed login, and the
// account is never blocked.
func TestModelLockout(t *testing.T) {
	defer seedModel(t, 1000)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.maxErrors = 3
		acct := w.src.cur.acct
		w.setPassword(acct, "unknown")
		plain := w.ledgers[:2]
		start := w.now
		all := w.actions()
		acts := map[string]func(*rapid.T){
			"connect": func(t *rapid.T) {
				w.startConnect(rapid.SampledFrom(plain).Draw(t, "ledger"), drawDeadline(t))
			},
			"finishDial": all["finishDial"],
			"giveUp":     all["giveUp"],
			"wake":       all["wake"],
			"tick": func(t *rapid.T) {
				d := time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(5*time.Second)).Draw(t, "d"))
				if w.now.Add(d).Sub(start) >= modelOpts.Hold {
					t.Skip("the history stays within a hold")
				}
				w.tick(d)
			},
		}
		t.Repeat(acts)
		// One failed login, and one more for each trial taken over a
		// lease that ended while a slow login was still unanswered.
		if f, budget := w.failedLogins[acct], 1+w.overLease; f > budget || w.account(acct).blocked && budget < w.maxErrors {
			w.fail("%d failed logins within a hold (blocked %v): want at most %d (one per account per login settings, %d trials over a lease)",
				f, w.account(acct).blocked, budget, w.overLease)
		}
	})
}

func names(vs []*mver) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = penName(v)
	}
	return out
}

func penName(v *mver) string {
	if v == nil {
		return "-"
	}
	return v.name
}

// TestModelDatabaseDropped: a move to a new user (a multi-user rotation's
// other user, or a migration): the new version is labelled AWSPENDING and
// works, then the old user's database is dropped (every login of the old
// user fails with another error than 1045). The first Connect may return
// that error; the next one logs in with the new user.
func TestModelDatabaseDropped(t *testing.T) {
	defer seedModel(t, 500)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.noHang = true
		old := w.warmUp()
		pen := w.newVersion("u2")
		w.setPassword(pen.acct, pen.password)
		w.src.pen = pen
		ml := rapid.SampledFrom(w.ledgers).Draw(t, "ledger")
		w.now = w.now.Add(time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Minute)).Draw(t, "before")))
		w.fetch(ml, false, "", false) // a TTL refresh sees AWSPENDING
		w.account(old.acct).broken = true
		for attempt := 0; attempt < 2; attempt++ {
			c := w.startConnect(ml, 0)
			for !c.done && len(w.dials) > 0 {
				w.finish(0, false)
			}
			if c.ok {
				return
			}
		}
		w.fail("%s: %s's database is dropped and %s works, yet two Connects failed", ml.name, old.name, pen.name)
	})
}

// TestModelPasswordBack: the password changed by hand and the secret with
// it, then both put back (a change undone), one Connect at a time: once the
// server refuses the version that had logged in, the older refusal of the
// version now back is stale, and the next Connects log in with it.
func TestModelPasswordBack(t *testing.T) {
	defer seedModel(t, 500)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.noHang = true
		old := w.warmUp()
		ml := rapid.SampledFrom(w.ledgers).Draw(t, "ledger")
		connect := func(what string) {
			c := w.startConnect(ml, 0)
			for !c.done && (len(w.dials) > 0 || c.waiting) {
				if len(w.dials) == 0 {
					w.tick(time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(2*time.Second)).Draw(t, "wait")))
					continue
				}
				w.finish(0, false)
			}
			if !c.ok {
				w.fail("%s: Connect %d failed %s", ml.name, c.id, what)
			}
		}
		next := w.newVersion("u1")
		w.now = w.now.Add(2 * time.Second)
		w.setPassword(next.acct, next.password) // ALTER USER first
		w.now = w.now.Add(time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(500*time.Millisecond)).Draw(t, "gap")))
		w.src.cur = next // then the secret
		connect("after the change")
		w.now = w.now.Add(time.Duration(rapid.Int64Range(int64(2*time.Second), int64(30*time.Second)).Draw(t, "kept")))
		w.setPassword(old.acct, old.password) // undone
		w.src.cur = old
		connect("after the change was undone")
	})
}
