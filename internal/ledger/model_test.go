package ledger

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The model tests drive the Ledger through generated histories of a
// simulated world: a server with one password per account, a secret whose
// labels move in every order (managed single- and multi-user rotations,
// stuck rotations, rollbacks, secret first then ALTER USER and the
// reverse, a user created later, an account broken for other reasons), a
// source that fails or answers not found, concurrent Connects whose dials
// finish in any order, and a clock that jumps. The simulated connector
// steps each Connect with the same Ledger.Next and Attempt.After as
// connector.go, doing the I/O against the simulated world: fetch, dial and
// Report, or wait.
//
// After every step the invariants are checked, in the README's words:
//
//   - a version that has never logged in is dialed by one Connect at a
//     time (a pool that starts with a wrong secret costs one failed login);
//   - once the server has refused a version since its password last
//     changed, that version is dialed again only as a single probe, each
//     probe at least one hold after the last refusal, the hold doubling up
//     to its cap (failed logins per account stay within: dials in flight at
//     a password change + one per new version + one probe per hold period);
//   - the source is asked at most once per MinInterval by the ledger;
//   - when the history settles with a version that works and a source that
//     answers, Connects succeed again within the longest hold plus the
//     poll interval; at once when the version that last logged in still
//     works (a failed fetch never loses a good version).
//
// Each property logs "histories=N seed=S"; rerun a failure with
// go test -run TestModel... -rapid.seed=S (rapid prints the shortest history
// it found).

var modelOpts = Options{Hold: time.Minute, MaxHold: 8 * time.Minute, MinInterval: time.Second}

const (
	modelMaxLogins = 5
	modelTimeout   = 10 * time.Second
)

// mver is a version in the model: an account and a password.
type mver struct {
	name     string
	acct     Account
	password string
	key      Key

	accepted bool // the ledger has been told of an accepted login

	// The probe rule, as the README states it: after the server refuses a
	// version, it is dialed again only as single probes, the first a hold
	// after the refusal, each later one a doubled hold after the last
	// probe's refusal; a login the ledger counts, or a refusal of another
	// version of the account that logged in after it (the password
	// changed), ends the streak.
	streak    time.Time     // when the streak's first refusal was recorded; zero when none
	refAt     time.Time     // when the streak's latest refusal (first or probe) was recorded
	nextProbe time.Time     // the earliest a probe may begin
	step      time.Duration // the current hold

	countedAt    time.Time // begin of the last acceptance the ledger counted
	countedEpoch int       // the account's password epoch at that acceptance
}

type maccount struct {
	password string // "" while the user does not exist
	broken   bool   // logins fail for another reason (database dropped)
	since    time.Time
	epoch    int // counts password changes
}

type mconn struct {
	id       int
	deadline time.Time
	att      *Attempt
	waiting  bool
	done     bool
	ok       bool
}

type mdial struct {
	c      *mconn
	v      *mver
	t      Ticket[*mver]
	pwThen string    // the server's password when the dial began
	epoch  int       // the account's password epoch when the dial began
	okThen time.Time // the version's latest counted login when the dial began
}

type world struct {
	t   *rapid.T
	l   *Ledger[*mver]
	now time.Time

	accounts map[Account]*maccount
	versions []*mver
	cur, pen *mver
	down     bool // the source fails
	gone     bool // the source answers not found for AWSCURRENT

	conns     []*mconn
	dials     []*mdial
	autoWake  bool // wake waiting Connects on every outcome, as Changed does
	lastFetch time.Time
	fetches   int
	nextID    int
}

func newWorld(t *rapid.T) *world {
	w := &world{
		t:        t,
		l:        New[*mver](modelOpts),
		now:      time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		accounts: map[Account]*maccount{},
	}
	v := w.newVersion("u1")
	w.accounts["u1@db:3306"] = &maccount{password: v.password, since: w.now}
	w.cur = v
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
		w.accounts[a] = &maccount{since: w.now}
	}
	return w.accounts[a]
}

// setPassword is ALTER USER (or CREATE USER): a new password epoch.
func (w *world) setPassword(a Account, pw string) {
	ac := w.account(a)
	if ac.password == pw {
		return
	}
	ac.password, ac.since = pw, w.now
	ac.epoch++
}

// fetch is what the connector's refresh does: both stages, observed.
func (w *world) fetch(ledgerAsked bool) {
	if ledgerAsked {
		if !w.lastFetch.IsZero() && w.now.Sub(w.lastFetch) < modelOpts.MinInterval {
			w.t.Fatalf("fetch at %v, %v after the previous one: more than one per MinInterval", w.now, w.now.Sub(w.lastFetch))
		}
		w.lastFetch = w.now
		w.fetches++
		defer w.l.Fetched(w.now)
	}
	if w.down {
		return
	}
	if !w.gone {
		w.l.Observe(Current, w.cur.key, w.cur.acct, w.cur, w.now)
	}
	if w.pen != nil {
		w.l.Observe(Pending, w.pen.key, w.pen.acct, w.pen, w.now)
	} else {
		w.l.NotFound(Pending)
	}
}

// step runs a Connect's procedure until it dials, waits or ends.
func (w *world) step(c *mconn) {
	c.waiting = false
	for range 20 {
		if w.now.After(c.deadline) {
			c.done = true
			return
		}
		w.now = w.now.Add(time.Nanosecond) // no two dials begin at the same instant
		next := w.l.Next(c.att, w.now)
		switch next.Step {
		case StepFetch:
			w.fetch(true)
		case StepDial:
			w.beginDial(c, next.Ticket)
			return
		case StepWait:
			c.waiting = true
			return
		default: // StepGiveUp, StepFail: the Connect returns an error
			c.done = true
			return
		}
	}
	w.t.Fatalf("connect %d: 20 steps without dialing or waiting", c.id)
}

func (w *world) beginDial(c *mconn, t Ticket[*mver]) {
	v := t.Payload()
	if v.key != t.Key() {
		w.t.Fatalf("ticket key mismatch")
	}
	inFlight := 0
	for _, d := range w.dials {
		if d.v == v {
			inFlight++
		}
	}
	// A version that never logged in: one dial at a time.
	if !v.accepted && inFlight > 0 {
		w.t.Fatalf("%s has never logged in, yet a second dial starts (%d in flight)", v.name, inFlight)
	}
	// Refused: single probes, spaced by the doubling hold.
	if !v.streak.IsZero() {
		probes := 0 // dials in flight that began after the streak began
		for _, d := range w.dials {
			if d.v == v && d.t.Start().After(v.streak) {
				probes++
			}
		}
		if !t.Claim || probes > 0 {
			w.t.Fatalf("%s was refused at %v; dial at %v is not a single probe (claim %v, %d probes in flight)",
				v.name, v.streak, w.now, t.Claim, probes)
		}
		if w.now.Before(v.nextProbe) {
			w.t.Fatalf("%s probed at %v, %v after its last refusal: the hold is %v", v.name, w.now, w.now.Sub(v.refAt), v.step)
		}
	}
	ac := w.account(v.acct)
	w.dials = append(w.dials, &mdial{c: c, v: v, t: t, pwThen: ac.password, epoch: ac.epoch, okThen: v.countedAt})
}

// finish ends dial i: the server checks the password when the dial began
// or now (the order of a login and a concurrent ALTER USER is not known).
func (w *world) finish(i int, atBegin bool) {
	d := w.dials[i]
	w.dials = append(w.dials[:i], w.dials[i+1:]...)
	w.now = w.now.Add(time.Nanosecond)
	v, ac := d.v, w.account(d.v.acct)
	pw, checkedNow := ac.password, true
	if atBegin && d.epoch != ac.epoch {
		pw, checkedNow = d.pwThen, false // checked in the epoch before
	}
	var o Outcome
	switch {
	case ac.broken:
		o = Failed
	case pw != "" && pw == v.password:
		o = Accepted
	default:
		o = Refused
	}
	w.l.Report(d.t, o, w.now)
	defer w.wakeAll()
	switch o {
	case Accepted:
		v.accepted = true
		if v.streak.IsZero() || d.t.Start().After(v.refAt) {
			// Counted: a login that began after the refusal was recorded.
			v.streak = time.Time{}
			if d.t.Start().After(v.countedAt) {
				v.countedAt, v.countedEpoch = d.t.Start(), ac.epoch
				if !checkedNow {
					v.countedEpoch = d.epoch
				}
			}
		}
		d.c.done, d.c.ok = true, true
	case Refused:
		switch {
		case v.streak.IsZero():
			v.streak, v.refAt, v.step = w.now, w.now, modelOpts.Hold
			v.nextProbe = w.now.Add(v.step)
		case d.t.Start().After(v.streak):
			// A failed probe: the hold doubles.
			v.step = min(2*v.step, modelOpts.MaxHold)
			v.refAt, v.nextProbe = w.now, w.now.Add(v.step)
		}
		// v logged in with a login that began before this dial and is
		// refused now: the password changed after that login began, which
		// ends the account's streaks recorded before it. The login: the
		// latest counted when this dial began, or a later one that began
		// before it.
		ok := d.okThen
		if v.countedAt.Before(d.t.Start()) && v.countedAt.After(ok) {
			ok = v.countedAt
		}
		if !ok.IsZero() {
			for _, o := range w.versions {
				if o != v && o.acct == v.acct && !o.streak.IsZero() && o.refAt.Before(ok) {
					o.streak = time.Time{}
				}
			}
		}
		d.c.att.After(v.key, d.t.Claim, o)
		w.step(d.c)
	case Failed:
		if d.c.att.After(v.key, d.t.Claim, o) {
			w.step(d.c)
		} else {
			d.c.done = true
		}
	}
}

func (w *world) startConnect() *mconn {
	w.nextID++
	c := &mconn{id: w.nextID, deadline: w.now.Add(modelTimeout)}
	c.att = &Attempt{Deadline: c.deadline, MaxLogins: modelMaxLogins}
	w.conns = append(w.conns, c)
	if !w.l.Known() {
		w.fetch(false)
	} else if !w.down && !w.gone {
		// The cache's AWSCURRENT, as Connect's fast path observes it.
		w.l.Observe(Current, w.cur.key, w.cur.acct, w.cur, w.now)
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

func (w *world) tick(d time.Duration) {
	w.now = w.now.Add(d)
	for _, c := range w.waiting() {
		if w.now.After(c.deadline) {
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

// works returns a version the source offers that the server accepts now.
func (w *world) works() *mver {
	if w.down {
		return nil
	}
	for _, v := range []*mver{w.cur, w.pen} {
		// The connector observes AWSCURRENT on every Connect; AWSPENDING
		// only when a refusal or a poll calls for a fetch, so a pending
		// version counts once the ledger knows it.
		if v == nil || (v == w.cur && w.gone) {
			continue
		}
		if _, known := w.l.Version(v.key); v == w.pen && !known {
			continue
		}
		if ac := w.account(v.acct); !ac.broken && ac.password == v.password {
			return v
		}
	}
	return nil
}

// settle ends every dial in flight and every wait, then checks liveness:
// with a working version on offer, a Connect succeeds within the longest
// hold plus a poll; at once when the version that last logged in still
// has the server's password.
func (w *world) settle() {
	for len(w.dials) > 0 {
		w.finish(0, false)
	}
	for _, c := range w.conns {
		c.done, c.waiting = true, false
	}
	good := w.works()
	if good == nil {
		return
	}
	// At once when the evidence allows: the working version is not held
	// back by the rules (never refused, or its refusal ended by a login or
	// by a proof that the password changed since).
	immediate := good.streak.IsZero()
	if p, _, ok := w.l.LastAccepted(); ok && !immediate {
		ac := w.account(p.acct)
		immediate = !ac.broken && ac.password == p.password && !p.countedAt.IsZero() && p.countedEpoch == ac.epoch && !w.down
	}
	start := w.now
	bound := modelOpts.MaxHold + modelOpts.Hold + 2*modelOpts.MinInterval
	for attempt := 0; ; attempt++ {
		c := w.startConnect()
		for !c.done && len(w.dials) > 0 {
			w.finish(len(w.dials)-1, false)
		}
		if c.ok {
			return
		}
		// The Connect that learns the preferred version broke (another
		// failure than 1045) returns that error: the next one must do.
		if immediate && attempt > 0 {
			w.t.Fatalf("%s works and nothing holds it back, yet Connect %d failed at %v", good.name, attempt+1, w.now)
		}
		if immediate {
			continue
		}
		if w.now.Sub(start) > bound {
			w.t.Fatalf("%s works and the source answers, yet no Connect succeeded for %v (bound %v)", good.name, w.now.Sub(start), bound)
		}
		// Wait as a caller would: for the next hold to end or fetch to
		// fall due, at least a second.
		next := w.now.Add(modelOpts.MinInterval)
		if c.waiting {
			d := w.l.Decide(w.now)
			if !d.Until.IsZero() && d.Until.After(next) {
				next = d.Until
			}
			c.done, c.waiting = true, false
		}
		w.tick(next.Sub(w.now))
	}
}

// actions returns the generated events of a history.
func (w *world) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"connect": func(t *rapid.T) { w.startConnect() },
		"finishDial": func(t *rapid.T) {
			if len(w.dials) == 0 {
				t.Skip("no dial in flight")
			}
			w.finish(rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial"), rapid.Bool().Draw(t, "checkedAtBegin"))
		},
		"wake": func(t *rapid.T) {
			ws := w.waiting()
			if len(ws) == 0 {
				t.Skip("no Connect waiting")
			}
			w.step(ws[rapid.IntRange(0, len(ws)-1).Draw(t, "conn")])
		},
		"tick": func(t *rapid.T) {
			w.tick(time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(3*time.Second)).Draw(t, "d")))
		},
		"clockJump": func(t *rapid.T) {
			w.tick(time.Duration(rapid.Int64Range(int64(time.Minute), int64(20*time.Minute)).Draw(t, "d")))
		},
		// Managed rotation steps, in any order and interleaving.
		"createSecret": func(t *rapid.T) {
			user := string(w.cur.acct[:2])
			if rapid.Bool().Draw(t, "multiUser") {
				// The clone: the other user of the pair.
				user = map[bool]string{true: "u2", false: "u1"}[user == "u1"]
			}
			w.pen = w.newVersion(user)
		},
		"setSecret": func(t *rapid.T) {
			if w.pen == nil {
				t.Skip("no AWSPENDING")
			}
			w.setPassword(w.pen.acct, w.pen.password)
		},
		"finishSecret": func(t *rapid.T) {
			if w.pen == nil {
				t.Skip("no AWSPENDING")
			}
			w.cur, w.pen = w.pen, nil
		},
		"rollback": func(t *rapid.T) {
			w.pen = nil
			w.setPassword(w.cur.acct, w.cur.password)
		},
		// Secret first, ALTER USER later (or never): and the reverse.
		"putSecretCurrent": func(t *rapid.T) {
			user := string(w.cur.acct[:2])
			if rapid.Bool().Draw(t, "newUser") {
				user = "u" + strconv.Itoa(rapid.IntRange(1, 3).Draw(t, "user"))
			}
			w.cur = w.newVersion(user)
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
		"sourceDown": func(t *rapid.T) { w.down = rapid.Bool().Draw(t, "down") },
		"sourceGone": func(t *rapid.T) { w.gone = rapid.Bool().Draw(t, "gone") },
		"ttlRefresh": func(t *rapid.T) { w.fetch(false) },
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
		w.settle()
	})
}

// TestModelManagedRotation: single- and multi-user managed rotations (and
// single-user ones rolled back after setSecret) under
// up to 16 concurrent Connects, the rotation's steps milliseconds to
// seconds apart (stuck for up to tens of seconds between setSecret and
// finishSecret), dials finishing in any order, waiting Connects woken as
// the connector's are (on news): no Connect fails; the failed logins are
// the dials of the old password in flight when the first refusal is
// recorded (none in a multi-user rotation), plus one probe per hold period
// if the rotation outlasts a hold; the source is asked at most twice per
// stage.
func TestModelManagedRotation(t *testing.T) {
	defer seedModel(t, 2000)()
	rapid.Check(t, func(t *rapid.T) {
		historyCount.Add(1)
		w := newWorld(t)
		w.autoWake = true
		multi := rapid.Bool().Draw(t, "multiUser")
		stuck := rapid.Bool().Draw(t, "stuck")
		rollback := !multi && rapid.Bool().Draw(t, "rollback")
		// The source down (throttled, failing) from setSecret on, for up
		// to 3 s: Connects wait for it within their deadline.
		outage := time.Duration(0)
		if rapid.Bool().Draw(t, "outage") {
			outage = time.Duration(rapid.Int64Range(int64(100*time.Millisecond), int64(3*time.Second)).Draw(t, "outageFor"))
		}
		var upAt time.Time
		c := w.startConnect()
		w.finish(0, false)
		if !c.ok {
			t.Fatalf("warm-up Connect failed")
		}
		old := w.cur
		fetches0, start := w.fetches, w.now
		steps := []func(){
			func() {
				user := "u1"
				if multi {
					user = "u2"
				}
				w.pen = w.newVersion(user)
			},
			func() {
				w.setPassword(w.pen.acct, w.pen.password)
				if outage > 0 {
					w.down, upAt = true, w.now.Add(outage)
				}
			},
			func() { w.cur, w.pen = w.pen, nil },
		}
		if rollback {
			// Rolled back after setSecret, once the process logged in with
			// AWSPENDING: the old password restored on the server,
			// AWSPENDING removed.
			steps[2] = func() { w.pen = nil; w.setPassword(old.acct, old.password) }
		}
		refused, budget := 0, -1
		next := 0
		for next < len(steps) || len(w.dials) > 0 || len(w.waiting()) > 0 || w.down {
			w.now = w.now.Add(time.Microsecond) // events in order of time
			switch rapid.IntRange(0, 4).Draw(t, "event") {
			case 0:
				if next == 2 && rollback && !w.pen.accepted {
					break // rolled back once the process is on AWSPENDING
				}
				if next < len(steps) {
					steps[next]()
					next++
				}
			case 1:
				if len(w.dials)+len(w.waiting()) < 16 && next < len(steps) {
					w.startConnect()
				}
			case 2, 3:
				if len(w.dials) == 0 {
					break
				}
				i := rapid.IntRange(0, len(w.dials)-1).Draw(t, "dial")
				d := w.dials[i]
				if w.account(d.v.acct).password != d.v.password && !rollback {
					if d.v != old {
						t.Fatalf("a dial of %s was refused: only the old password may be", d.v.name)
					}
					if budget < 0 {
						budget = 0
						for _, o := range w.dials {
							if o.v == old {
								budget++
							}
						}
					}
					refused++
				}
				w.finish(i, false)
			case 4:
				if len(w.dials) > 0 {
					break // a dial takes milliseconds: time moves between them
				}
				d := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(300*time.Millisecond)).Draw(t, "tick"))
				if stuck && next == 2 {
					d *= 10
				}
				if w.down && !w.now.Add(d).Before(upAt) {
					w.down = false
				}
				w.tick(d)
			}
		}
		for _, c := range w.conns {
			if !c.ok {
				t.Fatalf("Connect %d failed during a managed rotation", c.id)
			}
		}
		probes := int(w.now.Sub(start) / modelOpts.Hold)
		if multi && refused > 0 {
			t.Fatalf("multi-user rotation: %d refused logins, want 0", refused)
		}
		if refused > max(budget, 0)+probes {
			t.Fatalf("%d refused logins; %d dials of the old password were in flight at the first refusal, %d probes allowed", refused, budget, probes)
		}
		if f := w.fetches - fetches0; f > 2 && outage == 0 {
			t.Fatalf("%d forced fetches (of both stages) for one rotation, want at most 2", f)
		}
	})
}
