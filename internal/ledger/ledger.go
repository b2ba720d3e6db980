// Package ledger decides which credential version a new connection dials.
//
// The Ledger is a pure state machine in the manner of go.etcd.io/raft: no
// network, no goroutines, no clock of its own (every call takes the time),
// one mutex. Its callers (the connector) feed it evidence and act on what it
// answers:
//
//   - Observe / NotFound: what the credential source said a stage holds.
//   - Decide: which version to dial now, or wait until when.
//   - Report: the outcome of the dial Decide asked for (accepted, refused
//     with 1045, or failed for another reason).
//   - FetchDue: whether the source should be asked again, and since when.
//   - Next (attempt.go): one Connect's next step, from all of the above:
//     fetch, dial, wait or give up. The connector only does the I/O.
//
// The evidence rules (docs/how-it-decides.md):
//
//  1. A server has one password per account (user@host:port) at a time. A
//     login accepted at t means the password was that version's at t.
//  2. Only the server's answer is evidence. A dial cut short by the
//     caller's context or by the login bound (Abandoned) marks nothing.
//     Evidence is per ledger, and a ledger is per set of login settings
//     (TLS, auth plugins): a refusal under one pool's settings says nothing
//     of another's.
//  3. A version refused (1045) is held back: not dialed again until a single
//     probe once its hold expires. The hold doubles after each failed probe
//     (Hold, 2*Hold, 4*Hold ... up to MaxHold).
//  4. A version that has not logged in on its account yet (first use, newly
//     fetched, a cleared refusal, a probe) is dialed by one Connect at a time
//     per account across the process (a trial; Accounts), until one login
//     tells the outcome or the trial's lease (Lease) ends; a proven version
//     is dialed in parallel while its proof is fresh (a login accepted
//     less than Freshness ago), else one dial goes first.
//  5. While a version logs in on an account, no other version of that
//     account is dialed (the server has one password): no probe, no trial.
//     A login accepted on the account, in any ledger, after this ledger's
//     preferred version last logged in ends that preference.
//  6. When a version that had logged in is refused, the server's password
//     changed after that login: every refusal on the account recorded before
//     that login is stale and is cleared (the refused versions get a trial).
//  7. The version that last logged in is preferred while it keeps working;
//     a failure (another server error, the network) ends the preference. A
//     version the source newly labels AWSCURRENT on another account gets a
//     trial meanwhile (multi-user rotation, a move to a new user).
//  8. A lock error (the server blocked or locked the account) holds every
//     version of the account, one probe per hold.
//  9. Labels are what the source said last; a failed fetch never erases a
//     version.
//
// A login that began before a refusal of the same version was recorded
// proves nothing (the server may have checked it before the change), and a
// refusal that began before the version's refusal was recorded is an echo of
// the same change (a dial that was already in flight): neither moves the
// hold.
package ledger

import (
	"sync"
	"time"
)

// Stage is a staging label (AWSCURRENT, AWSPENDING).
type Stage string

// The labels the ledger orders versions by.
const (
	Current Stage = "AWSCURRENT"
	Pending Stage = "AWSPENDING"
)

// Key identifies one version by what it logs in with (a hash of user,
// password, host, port, database).
type Key [32]byte

// Account is the server account a version logs in to, "user@host:port":
// servers count failed logins per account.
type Account string

// Outcome is what a dial came to.
type Outcome int

const (
	// Accepted: the server accepted the login.
	Accepted Outcome = iota
	// Refused: the server answered 1045.
	Refused
	// Failed: the server answered another error (unknown database, no
	// privilege), or the network failed.
	Failed
	// Abandoned: the ticket was not used, or its dial was cut short by the
	// caller's context or the login bound before the server answered: it
	// releases a claim and says nothing of the version.
	Abandoned
	// Locked: the server answered that the account is locked or blocked.
	Locked
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Refused:
		return "refused"
	case Failed:
		return "failed"
	case Locked:
		return "locked"
	default:
		return "abandoned"
	}
}

// Defaults of Options.
const (
	DefaultHold        = time.Minute
	DefaultMaxHold     = 15 * time.Minute
	DefaultMinInterval = time.Second
	DefaultMaxVersions = 16
	DefaultLease       = 3 * time.Second
	DefaultFreshness   = time.Second
)

// Options tune a Ledger. Zero values take the defaults.
type Options struct {
	// Hold is how long a refused version is held back before its first
	// probe. Default 1 minute.
	Hold time.Duration
	// MaxHold caps the doubling of the hold after failed probes (the
	// connector passes the TTL). Default 15 minutes.
	MaxHold time.Duration
	// MinInterval is the least time between two fetches the ledger asks
	// for. Default 1 s.
	MinInterval time.Duration
	// MaxVersions bounds the versions remembered; only versions with no
	// label and no preference are forgotten. Default 16.
	MaxVersions int
	// Lease is how long a trial or probe holds its account's claim: after
	// it another Connect may take its own, so a hung login holds no one
	// past it. Default 3 s.
	Lease time.Duration
	// Freshness is how long an accepted login keeps its version proven for
	// parallel dials: after it (a pool idle for a while) one dial goes
	// first and the others wait for its outcome. Default 1 s.
	Freshness time.Duration
	// Accounts is the process's account table, shared by its ledgers; nil
	// gives the ledger one of its own.
	Accounts *Accounts
	// Group names the login settings of the ledger's dials (TLS, auth
	// plugins): a refusal is evidence for the ledgers of the same group.
	Group string
	// Tokens: many versions of one account are valid at once (IAM tokens).
	Tokens bool
}

func (o Options) withDefaults() Options {
	if o.Hold <= 0 {
		o.Hold = DefaultHold
	}
	if o.MaxHold < o.Hold {
		o.MaxHold = max(DefaultMaxHold, o.Hold)
	}
	if o.MinInterval <= 0 {
		o.MinInterval = DefaultMinInterval
	}
	if o.MaxVersions < 4 {
		o.MaxVersions = DefaultMaxVersions
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Freshness <= 0 {
		o.Freshness = DefaultFreshness
	}
	if o.Accounts == nil {
		o.Accounts = NewAccounts()
	}
	return o
}

// Ledger records the evidence about the versions of one secret and decides
// which to dial. T is the caller's payload for a version (its dialer and
// metadata), handed back in decisions. It is safe for concurrent use.
type Ledger[T any] struct {
	opts Options
	acc  *Accounts

	mu       sync.Mutex
	versions map[Key]*version[T]
	labels   map[Stage]*version[T]
	good     *version[T] // the version that last logged in, while it works
	last     *version[T] // the version that last logged in, for reports
	seq      uint64

	lastRefusal time.Time // the latest begin time of a refused dial
	lastFetch   time.Time // the latest fetch round the ledger asked for began at or after this
	roundDone   time.Time // the round of lastFetch is complete (AWSCURRENT fetched, or AWSPENDING logged in) when this is not before it
	stuckSince  time.Time // since when nothing has been dialable; zero when something is
	waiting     bool      // a Wait decision is outstanding: close changed on news
	changed     chan struct{}
}

// version is what the ledger knows of one version.
type version[T any] struct {
	key     Key
	acct    Account
	seq     uint64 // order of first sight; higher is newer
	payload T

	accepted  time.Time // when the latest counted accepted login began; zero if none
	proven    bool      // accepted, and not refused or demoted since
	refused   bool
	refAt     time.Time // when the refusal was recorded
	hold      time.Duration
	holdUntil time.Time
	failed    bool      // the last outcome was a failure other than 1045
	failedAt  time.Time // when it was reported
	// superseded: labelled AWSCURRENT when the version labelled AWSPENDING
	// logged in on its account (the rotation's new password), and not
	// labelled AWSCURRENT by the source since. Not dialed until the source
	// says so again (its label is stale: the ledger fetched AWSPENDING
	// only).
	superseded bool
	// expires, when set, is when the version stops being valid (an IAM
	// token, bounded by its signing credentials): not dialed from then on.
	expires time.Time
}

// New returns an empty ledger.
func New[T any](opts Options) *Ledger[T] {
	opts = opts.withDefaults()
	return &Ledger[T]{
		opts:     opts,
		acc:      opts.Accounts,
		versions: make(map[Key]*version[T], 4),
		labels:   make(map[Stage]*version[T], 2),
		changed:  make(chan struct{}),
	}
}

// Kind is what a Decision asks the caller to do.
type Kind int

const (
	// Dial: dial Ticket's version and Report the outcome.
	Dial Kind = iota
	// Wait: nothing may be dialed now. Wait until Until (zero: no time
	// of its own), until Changed is closed, or until the caller's deadline,
	// then Decide again.
	Wait
	// Empty: no version is known yet; fetch one.
	Empty
)

// Ticket is one dial the ledger allowed; hand it back to Report.
type Ticket[T any] struct {
	v     *version[T]
	start time.Time
	okAt  time.Time // the version's latest counted login when the dial began
	// Claim is true when this dial is the one trial or probe of its
	// account: its outcome is awaited by others, until its lease ends.
	Claim bool
	id    uint64 // the claim's owner id in the account table
}

// Payload returns the payload of the version to dial.
func (t Ticket[T]) Payload() T { return t.v.payload }

// Key returns the key of the version to dial.
func (t Ticket[T]) Key() Key { return t.v.key }

// Recovers reports whether a dial of the fast path (Decide, then the dial)
// that came to o goes on to the recovery: after a refusal, and after
// another failure of a trial or probe (another version may serve).
func (t Ticket[T]) Recovers(o Outcome) bool { return o == Refused || o == Failed && t.Claim }

// Start returns when the dial began (the time passed to Decide).
func (t Ticket[T]) Start() time.Time { return t.start }

// Decision is the ledger's answer to Decide.
type Decision[T any] struct {
	Kind   Kind
	Ticket Ticket[T] // with Dial
	// Until, with Wait, is when a hold ends (a probe becomes due); zero
	// when no hold is pending.
	Until time.Time
	// Claimed, with Wait, reports that a trial or probe is in flight: its
	// outcome will close Changed.
	Claimed bool
	// Changed, with Wait, is closed when the ledger learns anything new.
	Changed <-chan struct{}
	// Fetch, with Wait, is the next fetch and when it falls due (a zero
	// At: none), as of the same moment as the rest of the decision.
	Fetch Fetch
	// Locked, with Wait, is the server's lock error when a lock of the
	// account holds what could be dialed.
	Locked error
}

// Observe records that the source labels stage with the version key (on
// account acct). A key seen for the first time is a new version, which has
// not logged in yet; payload is kept for it (a known key keeps the payload
// it has, so tickets may read it without a lock).
func (l *Ledger[T]) Observe(stage Stage, key Key, acct Account, payload T, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.versions[key]
	if v == nil {
		l.seq++
		v = &version[T]{key: key, acct: acct, seq: l.seq, hold: l.opts.Hold, payload: payload}
		l.versions[key] = v
		l.notify()
	}
	if l.labels[stage] != v {
		l.labels[stage] = v
		l.notify()
	}
	if stage == Current && v.superseded {
		v.superseded = false
		l.notify()
	}
	l.evict()
}

// NotFound records that the source answered that stage holds no version
// (AWSPENDING outside a rotation). AWSCURRENT keeps its version: a
// not-found answer never erases a version that may work.
func (l *Ledger[T]) NotFound(stage Stage) {
	if stage == Current {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.labels[stage] != nil {
		delete(l.labels, stage)
		l.notify()
	}
}

// Expires records that the version key stops being valid at t (an IAM
// token): from t on it is not dialed, and it is no longer preferred.
func (l *Ledger[T]) Expires(key Key, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.versions[key]; v != nil {
		v.expires = t
	}
}

// expired reports whether v is past its expiry at now. l.mu is held.
func (v *version[T]) expired(now time.Time) bool {
	return !v.expires.IsZero() && !now.Before(v.expires)
}

// Fetched records that the caller fetched stage from the source with a
// fetch that began at or after since (the fetch the ledger asked for with
// FetchDue), and gave the ledger its answer (Observe, NotFound). Stage ""
// is both stages, or a round that ended without an answer (the source
// failed): the next round is MinInterval away.
func (l *Ledger[T]) Fetched(stage Stage, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since.After(l.lastFetch) {
		l.lastFetch = since // a round begins (AWSPENDING: it stays open)
	}
	if stage != Pending && since.After(l.roundDone) {
		l.roundDone = since
	}
}

// evict forgets the oldest versions beyond MaxVersions that no label, no
// preference and no dial in flight refers to. l.mu is held.
func (l *Ledger[T]) evict() {
	for len(l.versions) > l.opts.MaxVersions {
		var oldest *version[T]
		for _, v := range l.versions {
			if v == l.good || v == l.last || l.labelled(v) {
				continue
			}
			if oldest == nil || v.seq < oldest.seq {
				oldest = v
			}
		}
		if oldest == nil {
			return
		}
		delete(l.versions, oldest.key)
	}
}

func (l *Ledger[T]) labelled(v *version[T]) bool {
	for _, lv := range l.labels {
		if lv == v {
			return true
		}
	}
	return false
}

// notify wakes the callers waiting on a Wait decision. l.mu is held.
func (l *Ledger[T]) notify() {
	if l.waiting {
		close(l.changed)
		l.changed = make(chan struct{})
		l.waiting = false
	}
}

// Decide answers which version to dial at now: the version that last
// logged in while it works (after a trial of a newly labelled AWSCURRENT on
// another account), else AWSCURRENT, else AWSPENDING, each subject to its
// hold, its account's lock, and one trial or probe at a time per account.
func (l *Ledger[T]) Decide(now time.Time) Decision[T] {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.versions) == 0 {
		return Decision[T]{Kind: Empty}
	}
	var w waitFor
	cur := l.labels[Current]
	if g := l.good; g != nil && g.expired(now) {
		// An IAM token past its bound: RDS refuses it, however well it
		// worked. The source's newer version takes over.
		g.proven = false
		l.good = nil
	}
	if g := l.good; g != nil && l.outdated(g) {
		// Another password logged in on the account after g last did, or
		// another ledger of the same login settings had g refused since
		// (another pool's evidence): g's preference ends, and the source
		// is asked what it labels now.
		g.proven = false
		l.good = nil
		l.news(now)
		if !l.provenHere(g.acct) {
			// Ask the source first: what it labels now decides the next
			// dial.
			return l.wait(now, waitFor{})
		}
	}
	if g := l.good; g != nil {
		// A new AWSCURRENT on another account than the proven version gets
		// its trial first (a move to a new user); on the same account the
		// proven version is the server's password, so it is not dialed.
		if cur != nil && cur != g && (cur.acct != g.acct || l.opts.Tokens) && !cur.proven && !l.recentlyFailed(cur, now) && (l.opts.Tokens || !l.otherWorks(cur, now)) {
			if t, ok := l.try(cur, now, &w); ok {
				return Decision[T]{Kind: Dial, Ticket: t}
			}
		}
		if t, ok := l.try(g, now, &w); ok {
			return Decision[T]{Kind: Dial, Ticket: t}
		}
		if w.locked == nil {
			return l.wait(now, w)
		}
		// g's account is locked: a version on another account may serve.
	}
	// Versions whose last dial failed for another reason (a host down, a
	// database dropped) come after the others, the longest failed first:
	// nothing pins a dead one.
	cands := [...]*version[T]{cur, l.labels[Pending]}
	if a, b := cands[0], cands[1]; a != nil && b != nil && a.failed && b.failed && b.failedAt.Before(a.failedAt) {
		cands[0], cands[1] = b, a
	}
	for _, failed := range [...]bool{false, true} {
		for _, v := range cands {
			if v == nil || v.failed != failed || v.superseded || v.expired(now) || l.otherWorks(v, now) {
				continue
			}
			if t, ok := l.try(v, now, &w); ok {
				return Decision[T]{Kind: Dial, Ticket: t}
			}
		}
	}
	if l.stuckSince.IsZero() && !w.claimed {
		l.stuckSince = now
	}
	return l.wait(now, w)
}

// waitFor collects why nothing may be dialed now.
type waitFor struct {
	until   time.Time // the earliest hold, lock or lease end
	claimed bool      // a trial or probe is in flight
	locked  error
}

func (w *waitFor) at(t time.Time) {
	if w.until.IsZero() || t.Before(w.until) {
		w.until = t
	}
}

// wait returns a Wait decision. l.mu is held.
func (l *Ledger[T]) wait(now time.Time, w waitFor) Decision[T] {
	l.waiting = true
	d := Decision[T]{Kind: Wait, Until: w.until, Claimed: w.claimed, Changed: l.changed, Locked: w.locked}
	d.Fetch, _ = l.fetchDue(now)
	return d
}

// recentlyFailed reports whether v's last dial failed (another server
// error, the network) less than a hold ago. l.mu is held.
func (l *Ledger[T]) recentlyFailed(v *version[T], now time.Time) bool {
	return v.failed && now.Sub(v.failedAt) < l.opts.Hold
}

// outdated reports whether a login of another version of g's account was
// accepted after g's latest one began (the account's password is not g's
// any more). l.mu is held.
func (l *Ledger[T]) outdated(g *version[T]) bool {
	if at, _ := l.acc.refusedAt(g.acct, g.key, l.opts.Group); at.After(g.accepted) {
		return true
	}
	k, at, ok := l.acc.proofOf(g.acct)
	return ok && k != g.key && at.After(g.accepted)
}

// provenHere reports whether the version that last logged in on acct is
// one this ledger knows and the source labels. l.mu is held.
func (l *Ledger[T]) provenHere(acct Account) bool {
	k, _, ok := l.acc.proofOf(acct)
	if !ok {
		return false
	}
	v := l.versions[k]
	return v != nil && l.labelled(v)
}

// news records that another ledger's evidence calls for a fetch (as a
// refusal of this ledger's would). l.mu is held.
func (l *Ledger[T]) news(at time.Time) {
	if at.After(l.lastRefusal) {
		l.lastRefusal = at
	}
}

// otherWorks reports whether another version of v's account, which this
// ledger can dial, logged in on the account less than a hold ago and has
// not been refused since: then v is not dialed (the server has one
// password per account). l.mu is held.
func (l *Ledger[T]) otherWorks(v *version[T], now time.Time) bool {
	k, at, ok := l.acc.proofOf(v.acct)
	if !ok || k == v.key || now.Sub(at) > l.opts.Hold {
		return false
	}
	o := l.versions[k]
	return o != nil && l.labelled(o) && !(o.refused && o.refAt.After(at))
}

// try returns a ticket for v if v may be dialed at now: in parallel when
// proven and fresh on an unlocked account, else as its account's one trial
// or probe in flight; otherwise it notes in w what holds v. l.mu is held.
func (l *Ledger[T]) try(v *version[T], now time.Time, w *waitFor) (Ticket[T], bool) {
	lockUntil, lockErr, held, probe := l.acc.lockOf(v.acct, now)
	switch {
	case held:
		w.at(lockUntil)
		w.locked = lockErr
		return Ticket[T]{}, false
	case v.refused && v.refAt.Before(l.acc.changedAt(v.acct)):
		// The password changed after the refusal (another ledger saw a
		// version that had logged in refused): the refusal is stale.
		v.refused, v.hold = false, l.opts.Hold
	case v.refused && now.Before(v.holdUntil):
		w.at(v.holdUntil)
		return Ticket[T]{}, false
	}
	if at, until := l.acc.refusedAt(v.acct, v.key, l.opts.Group); now.Before(until) {
		// Refused under the same login settings in another ledger: held
		// back here too, and the source may label something new.
		l.news(at)
		w.at(until)
		return Ticket[T]{}, false
	}
	switch {
	case !v.refused && !probe && (v.proven && now.Sub(v.accepted) <= l.opts.Freshness ||
		l.acc.provenFresh(v.acct, v.key, l.opts.Group, now, l.opts.Freshness)):
		// Proven and fresh, here or by another ledger of the same login
		// settings: dialed in parallel.
		l.stuckSince = time.Time{}
		return Ticket[T]{v: v, start: now, okAt: v.accepted}, true
	}
	id, busyUntil, ok := l.acc.claim(v.acct, now, l.opts.Lease)
	if !ok {
		w.claimed = true
		w.at(busyUntil)
		return Ticket[T]{}, false
	}
	l.stuckSince = time.Time{}
	return Ticket[T]{v: v, start: now, okAt: v.accepted, Claim: true, id: id}, true
}

// Report records the outcome of a dial that Decide allowed, at now. It
// returns true when an accepted login made its version the preferred one (a
// switch, such as to AWSPENDING during a rotation).
func (l *Ledger[T]) Report(t Ticket[T], o Outcome, now time.Time) (switched bool) {
	return l.report(t, o, nil, now)
}

// ReportLocked records that the server answered a dial that Decide allowed
// with a lock error (detail): the account is held.
func (l *Ledger[T]) ReportLocked(t Ticket[T], detail error, now time.Time) {
	l.report(t, Locked, detail, now)
}

func (l *Ledger[T]) report(t Ticket[T], o Outcome, detail error, now time.Time) (switched bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := t.v
	if t.Claim {
		l.acc.release(v.acct, t.id)
	}
	defer l.notify()
	switch o {
	case Abandoned:
		return false
	case Locked:
		l.acc.lock(v.acct, detail, now, l.opts.Hold, l.opts.MaxHold)
		return false
	}
	if v.failed = o == Failed; v.failed {
		v.failedAt = now
	}
	switch o {
	case Accepted:
		if v.refused && !t.start.After(v.refAt) {
			// Began before the refusal was recorded: the server may have
			// checked it before its password changed.
			return
		}
		l.acc.answered(v.acct, v.key, l.opts.Group, t.start, true)
		l.acc.clearRefusals(v.acct, v.key, l.opts.Group)
		v.refused, v.proven = false, true
		v.hold = l.opts.Hold
		if t.start.After(v.accepted) {
			v.accepted = t.start
		}
		switched = l.good != v
		l.good, l.last = v, v
		l.stuckSince = time.Time{}
		if l.labels[Pending] == v {
			// The round's AWSPENDING served: it needs no AWSCURRENT, and a
			// later refusal of v begins a new round. The version labelled
			// AWSCURRENT on the account is the old password until the
			// source labels it again.
			l.roundDone = l.lastFetch
			if cur := l.labels[Current]; cur != nil && cur != v && cur.acct == v.acct {
				cur.superseded = true
			}
		}
		// The account's password is v's now: other versions of the account
		// proven before this login are not any more.
		for _, w := range l.versions {
			if w != v && w.acct == v.acct && w.proven && w.accepted.Before(t.start) {
				w.proven = false
			}
		}
	case Refused:
		// A refusal of the account's proven version (in any ledger) after
		// its login: the password changed after that login.
		disproved := l.acc.answered(v.acct, v.key, l.opts.Group, t.start, false)
		probe := t.Claim && v.refused
		switch {
		case probe:
			v.hold = min(2*v.hold, l.opts.MaxHold)
			v.refAt, v.holdUntil = now, now.Add(v.hold)
		case !v.refused:
			v.hold = l.opts.Hold
			v.refused = true
			v.refAt, v.holdUntil = now, now.Add(v.hold)
		default:
			// A dial in flight when the refusal was recorded: the same
			// change, not a new one; the hold stands.
		}
		v.proven = false
		l.acc.refuse(v.acct, v.key, l.opts.Group, v.refAt, v.holdUntil)
		if l.good == v {
			l.good = nil
		}
		if t.start.After(l.lastRefusal) {
			l.lastRefusal = t.start
		}
		// v had logged in with a login that began before this dial: the
		// password changed after that login began (whichever the server
		// checked first), so refusals of the account recorded before it
		// are stale. The latest such login clears the most.
		ok := t.okAt // the latest login known when this dial began
		if v.accepted.Before(t.start) && v.accepted.After(ok) {
			ok = v.accepted
		}
		if disproved.After(ok) {
			ok = disproved
		}
		if !ok.IsZero() {
			for _, w := range l.versions {
				if w != v && w.acct == v.acct && w.refused && w.refAt.Before(ok) {
					w.refused = false
					w.hold = l.opts.Hold
				}
			}
			l.acc.passwordChanged(v.acct, ok)
		}
	case Failed:
		if l.good == v {
			l.good = nil
		}
	}
	return switched
}

// Version returns the payload of the version key, if known.
func (l *Ledger[T]) Version(key Key) (payload T, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.versions[key]; v != nil {
		return v.payload, true
	}
	return payload, false
}

// Refused reports whether the version key is held back after a refusal.
func (l *Ledger[T]) Refused(key Key) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.versions[key]
	return v != nil && v.refused
}

// Known reports whether any version is known.
func (l *Ledger[T]) Known() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.versions) > 0
}

// Fetch is a fetch the ledger calls for.
type Fetch struct {
	// Stage is the stage to fetch: AWSPENDING, AWSCURRENT, or "" for
	// both (a poll).
	Stage Stage
	// Since: the fetch must begin at or after this (a cache's answer from
	// before it does not do).
	Since time.Time
	// At is when the fetch may start (not before MinInterval after the
	// last round of the same kind).
	At time.Time
	// Poll is true when the fetch is a poll while nothing is dialable:
	// what a cache in front of the source answered has not served, and is
	// to be bypassed.
	Poll bool
}

// FetchDue reports whether the source should be asked again, which stage,
// and from when; ok is false when nothing calls for a fetch.
//
// A fetch is called for by a refusal of a dial that began after the last
// fetch round: a rotation may have begun. A round asks for AWSPENDING
// first: during a managed rotation (setSecret has run, finishSecret has
// not) it holds the new password, so one call finds it. AWSCURRENT follows
// at once when AWSPENDING offers nothing to try (absent, or refused: a
// rotation already finished, a secret changed by hand, a stale
// AWSPENDING). Rounds are MinInterval apart. While nothing is dialable,
// polls of both stages follow at intervals that double with the time stuck
// (half of it when the poll falls due, from MinInterval up to Hold), so
// that a secret fixed in the source is found without a fetch per Connect.
func (l *Ledger[T]) FetchDue(now time.Time) (f Fetch, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetchDue(now)
}

// fetchDue is FetchDue with l.mu held.
func (l *Ledger[T]) fetchDue(now time.Time) (f Fetch, ok bool) {
	switch p := l.labels[Pending]; {
	case l.roundDone.Before(l.lastFetch) && (p == nil || p.refused):
		// The round's AWSPENDING offered nothing to try: its AWSCURRENT.
		f = Fetch{Stage: Current, Since: l.lastFetch, At: l.lastFetch}
	case l.lastRefusal.After(l.lastFetch):
		f = Fetch{Stage: Pending, Since: l.lastRefusal, At: l.lastFetch.Add(l.opts.MinInterval)}
	case !l.stuckSince.IsZero():
		// The interval is the time stuck when the last fetch began (so
		// half the time stuck when the poll falls due): fixed between two
		// polls, so that a waiting Connect wakes once for it.
		p := min(max(l.lastFetch.Sub(l.stuckSince), l.opts.MinInterval), l.opts.Hold)
		f.At = l.lastFetch.Add(p)
		f.Since = f.At.Add(-p / 2)
		f.Poll = true
	default:
		return Fetch{}, false
	}
	if f.At.Before(f.Since) {
		f.At = f.Since
	}
	return f, true
}

// LastAccepted returns the payload of the version that last logged in
// (whether or not it still works), and the label the source gives it now;
// ok is false before any login.
func (l *Ledger[T]) LastAccepted() (payload T, label Stage, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.last
	if v == nil {
		return payload, "", false
	}
	for _, st := range [...]Stage{Current, Pending} {
		if l.labels[st] == v {
			return v.payload, st, true
		}
	}
	return v.payload, "", true
}

// Labelled returns the payload of the version the source labels stage.
func (l *Ledger[T]) Labelled(stage Stage) (payload T, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.labels[stage]; v != nil {
		return v.payload, true
	}
	return payload, false
}

// LabelOf returns the label the source gives the version key now, "" when
// none.
func (l *Ledger[T]) LabelOf(key Key) Stage {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range [...]Stage{Current, Pending} {
		if v := l.labels[st]; v != nil && v.key == key {
			return st
		}
	}
	return ""
}

// HoldUntil returns until when the version key is held back: by a refusal
// of it, or by a lock of its account, whichever ends later; zero when
// neither holds it at now.
func (l *Ledger[T]) HoldUntil(key Key, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.versions[key]
	if v == nil {
		return time.Time{}
	}
	var until time.Time
	if v.refused && now.Before(v.holdUntil) {
		until = v.holdUntil
	}
	if u, _, held, _ := l.acc.lockOf(v.acct, now); held && u.After(until) {
		until = u
	}
	return until
}
