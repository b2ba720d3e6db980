package ledger

import (
	"sync"
	"time"
)

// Accounts is the evidence a process keeps per server account, across
// every ledger that dials it (pools with other databases, other login
// settings, isolated caches, other AWS configurations): servers count
// failed logins per account, so the budget is the account's.
//
//   - Claims: at most one login with a password not proven on the account
//     (a trial or a probe) is in flight per account; a claim is a lease
//     that ends after Options.Lease, so a hung login does not hold the
//     others past it.
//   - Proof: the password that last logged in on the account, and when.
//     While it works no other password of the account is dialed.
//   - Refusals: a password refused under some login settings (a Group) is
//     held back for every ledger of that group until its hold ends, so
//     pools that do not share a ledger (isolated caches, other AWS
//     configurations) do not each spend a failed login on it.
//   - Locks: a lock error (the server blocked or locked the account) holds
//     every version of the account, with one probe per hold.
//
// Like Ledger it is pure: no clock, no goroutines, one mutex. A Ledger
// calls it with its own mutex held (the order is always ledger, then
// accounts).
type Accounts struct {
	mu  sync.Mutex
	seq uint64
	m   map[Account]*acctState
}

type acctState struct {
	owner uint64    // the claim's owner (a ticket id); 0 when none
	until time.Time // when the claim's lease ends

	proof      Key       // the version that last logged in
	proofAt    time.Time // when that login began
	proofGroup string    // under which login settings
	proofOK    bool      // no refusal of proof since

	refused map[refusal]refHold
	changed time.Time // the password changed after this time: older refusals are stale

	locked    bool      // a lock error was met and no login has got through since
	lockUntil time.Time // the next probe may start then
	lockHold  time.Duration
	lockErr   error // the server's lock error
}

// refusal names a password refused under a group of login settings.
type refusal struct {
	key   Key
	group string
}

// refHold is a refusal's record: when it was recorded and until when it
// holds.
type refHold struct{ at, until time.Time }

// NewAccounts returns an empty account table.
func NewAccounts() *Accounts {
	return &Accounts{m: make(map[Account]*acctState, 2)}
}

func (a *Accounts) state(acct Account) *acctState {
	s := a.m[acct]
	if s == nil {
		s = &acctState{refused: make(map[refusal]refHold, 1)}
		a.m[acct] = s
	}
	return s
}

// claim takes the account's claim at now for lease, unless another's lease
// runs; it returns the owner id, or the end of the running lease.
func (a *Accounts) claim(acct Account, now time.Time, lease time.Duration) (id uint64, busyUntil time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(acct)
	if s.owner != 0 && now.Before(s.until) {
		return 0, s.until, false
	}
	a.seq++
	s.owner, s.until = a.seq, now.Add(lease)
	return a.seq, time.Time{}, true
}

// release ends the claim id, if it still holds the account.
func (a *Accounts) release(acct Account, id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.m[acct]; s != nil && s.owner == id {
		s.owner = 0
	}
}

// lockOf reports the account's lock: held is true while no probe may
// start (until then), probe is true when the hold has ended and the next
// dial of the account must be a single probe.
func (a *Accounts) lockOf(acct Account, now time.Time) (until time.Time, err error, held, probe bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.m[acct]
	if s == nil || !s.locked {
		return time.Time{}, nil, false, false
	}
	if now.Before(s.lockUntil) {
		return s.lockUntil, s.lockErr, true, false
	}
	return time.Time{}, s.lockErr, false, true
}

// lock records a lock error met by a dial at now: every version of the
// account is held for hold, doubled after each lock met by a probe, up to
// maxHold.
func (a *Accounts) lock(acct Account, err error, now time.Time, hold, maxHold time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(acct)
	switch {
	case !s.locked:
		s.lockHold = hold
	case !now.Before(s.lockUntil):
		// A probe met the lock again.
		s.lockHold = min(2*s.lockHold, maxHold)
	default:
		// A dial in flight when the lock was recorded: the same lock.
		s.lockErr = err
		return
	}
	s.locked, s.lockErr, s.lockUntil = true, err, now.Add(s.lockHold)
}

// answered records that the server checked a login of key that began at
// start: accepted proves key (and ends a lock); a refusal ends the proof
// of key if the login began after it, and ends a lock too (the server got
// as far as the password). It returns when the login of the proof that a
// refusal ended began (zero when it ended none).
func (a *Accounts) answered(acct Account, key Key, group string, start time.Time, accepted bool) (disproved time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(acct)
	s.locked, s.lockErr = false, nil
	if accepted {
		// The latest login to begin is the best evidence of the password.
		if s.proofAt.IsZero() || start.After(s.proofAt) {
			s.proof, s.proofAt, s.proofGroup, s.proofOK = key, start, group, true
		}
		return time.Time{}
	}
	if s.proofOK && s.proof == key && start.After(s.proofAt) {
		s.proofOK = false
		if s.proofAt.After(s.changed) {
			s.changed = s.proofAt
		}
		return s.proofAt
	}
	return time.Time{}
}

// passwordChanged records that the account's password changed after at
// (a version that logged in at at was refused later): every refusal on
// the account recorded before at is stale, in every ledger.
func (a *Accounts) passwordChanged(acct Account, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.state(acct); at.After(s.changed) {
		s.changed = at
	}
}

// changedAt returns the latest time after which the account's password is
// known to have changed.
func (a *Accounts) changedAt(acct Account) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.m[acct]; s != nil {
		return s.changed
	}
	return time.Time{}
}

// proofOf returns the version that last logged in on the account and
// when, while no refusal of it has come since.
func (a *Accounts) proofOf(acct Account) (key Key, at time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.m[acct]
	if s == nil || !s.proofOK {
		return Key{}, time.Time{}, false
	}
	return s.proof, s.proofAt, true
}

// refuse records that key was refused under group at at, held until until.
func (a *Accounts) refuse(acct Account, key Key, group string, at, until time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(acct)
	r := refusal{key, group}
	h := s.refused[r]
	if at.After(h.at) {
		h.at = at
	}
	if until.After(h.until) {
		h.until = until
	}
	s.refused[r] = h
}

// refusedAt returns when key was last refused under group, and until when
// that refusal holds it back; zero when there is no record.
func (a *Accounts) refusedAt(acct Account, key Key, group string) (at, until time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.m[acct]; s != nil {
		if h := s.refused[refusal{key, group}]; !h.at.Before(s.changed) {
			return h.at, h.until
		}
	}
	return time.Time{}, time.Time{}
}

// clearRefusals forgets the refusals of key on the account under group
// (key logged in).
func (a *Accounts) clearRefusals(acct Account, key Key, group string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.m[acct]; s != nil {
		delete(s.refused, refusal{key, group})
	}
}

// provenFresh reports whether key logged in on the account under group
// less than freshness before now, and has not been refused since: another
// ledger's fresh proof lets this one dial key in parallel, without a trial.
func (a *Accounts) provenFresh(acct Account, key Key, group string, now time.Time, freshness time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.m[acct]
	return s != nil && s.proofOK && s.proof == key && s.proofGroup == group && now.Sub(s.proofAt) <= freshness
}
