package ledger

import "time"

// Attempt is one Connect's state across its steps: what the ledger needs,
// besides its own evidence, to decide the Connect's next step. The caller
// sets Deadline and MaxLogins; Next and After keep the rest.
type Attempt struct {
	// Deadline is when the Connect must have returned; zero means none.
	Deadline time.Time
	// MaxLogins caps the logins of the Connect, the first included.
	MaxLogins int

	logins    int
	refreshed bool // a refresh was made: the next one bypasses the source's cache
	avoid     *Key // a trial of this version failed for another reason than 1045
}

// Logins returns how many logins the Connect has made.
func (a *Attempt) Logins() int { return a.logins }

// Step is what Next asks the caller to do.
type Step int

const (
	// StepFetch: fetch Stage (AWSPENDING, AWSCURRENT, or "" for both in
	// parallel) with a fetch that began at or after Since (Bypass: past
	// the source's own cache), give the ledger what it says (Observe,
	// NotFound, then Fetched), then Next again.
	StepFetch Step = iota
	// StepDial: dial Ticket, Report the outcome, pass it to After.
	StepDial
	// StepWait: wait until Until (zero: no time of its own), until Changed
	// is closed, or until the caller's deadline, then Next again.
	StepWait
	// StepGiveUp: nothing will log in before the deadline; Cause says why.
	StepGiveUp
	// StepFail: return the failure of the trial that After was given (no
	// other version to try).
	StepFail
)

// GiveUpCause says why a Connect gives up.
type GiveUpCause int

const (
	// NothingDue: every version is held back and nothing (a probe, a
	// fetch, a trial in flight) falls due before the deadline.
	NothingDue GiveUpCause = iota
	// LoginCap: the Connect made MaxLogins logins.
	LoginCap
	// NoVersion: no version is known (nothing was ever fetched).
	NoVersion
	// AccountLocked: the server locked or blocked the account, and its
	// hold lasts past the deadline (Next.Locked is the server's error).
	AccountLocked
)

// Next is the ledger's answer to Attempt.Next.
type Next[T any] struct {
	Step    Step
	Stage   Stage     // StepFetch: the stage to fetch, "" for both
	Poll    bool      // StepFetch: a poll while nothing is dialable
	Since   time.Time // StepFetch
	Bypass  bool      // StepFetch
	Ticket  Ticket[T] // StepDial
	Until   time.Time // StepWait
	Changed <-chan struct{}
	Cause   GiveUpCause // StepGiveUp
	Locked  error       // StepGiveUp with AccountLocked; StepWait held by a lock
}

// Next decides the Connect's next step at now: a fetch when one is due, a
// dial when the ledger allows one, else a wait for what falls due first,
// or giving up when nothing does before the deadline. This is the whole of
// the connector's recovery loop but the I/O: the model test runs the same.
func (l *Ledger[T]) Next(a *Attempt, now time.Time) Next[T] {
	if f, due := l.FetchDue(now); due && !f.At.After(now) {
		return fetchStep[T](a, f)
	}
	d := l.Decide(now)
	if d.Kind == Wait && !d.Fetch.At.IsZero() && !d.Fetch.At.After(now) {
		// The decision itself made a fetch due (the first Wait with
		// nothing in flight starts the polls).
		return fetchStep[T](a, d.Fetch)
	}
	if a.avoid != nil && (d.Kind != Dial || d.Ticket.Key() == *a.avoid) {
		if d.Kind == Dial {
			l.Report(d.Ticket, Abandoned, now)
		}
		return Next[T]{Step: StepFail}
	}
	switch d.Kind {
	case Dial:
		if a.logins >= a.MaxLogins {
			l.Report(d.Ticket, Abandoned, now)
			return Next[T]{Step: StepGiveUp, Cause: LoginCap}
		}
		a.logins++
		a.avoid = nil
		return Next[T]{Step: StepDial, Ticket: d.Ticket}
	case Empty:
		return Next[T]{Step: StepGiveUp, Cause: NoVersion}
	}
	// d.Fetch comes with the decision, under the same lock: a Wait with
	// nothing in flight is what starts the ledger's polls of the source,
	// and another connection's step between the two must not hide it.
	soonest := d.Fetch.At
	if !d.Until.IsZero() && (soonest.IsZero() || d.Until.Before(soonest)) {
		soonest = d.Until
	}
	if !d.Claimed && (soonest.IsZero() || !a.Deadline.IsZero() && soonest.After(a.Deadline)) {
		// Nothing will change before the deadline but news from other
		// connections: give up now rather than hold the caller (the
		// holds are the lockout budget).
		if d.Locked != nil {
			return Next[T]{Step: StepGiveUp, Cause: AccountLocked, Locked: d.Locked}
		}
		return Next[T]{Step: StepGiveUp, Cause: NothingDue}
	}
	return Next[T]{Step: StepWait, Until: soonest, Changed: d.Changed, Locked: d.Locked}
}

// After takes the outcome of the dial of the version key (already
// reported to the ledger) and says whether the Connect goes on: after a
// refusal, and after another failure of a trial or probe (the version that
// works may still serve; Next answers StepFail if none does). An accepted
// login, another failure of a proven version, a lock error and a dial cut
// short (Abandoned) end the Connect.
func (a *Attempt) After(key Key, claim bool, o Outcome) (goOn bool) {
	switch o {
	case Refused:
		return true
	case Failed:
		if claim {
			a.avoid = &key
			return true
		}
	}
	return false
}

// fetchStep returns a fetch step. The first round of a Connect after a
// refusal (AWSPENDING, then AWSCURRENT if needed) goes through the
// source's own cache (a shared agent fetches once for all its processes);
// a second round, and a poll while nothing is dialable, are needed only
// when what that cache answered offered nothing that works, and bypass it.
func fetchStep[T any](a *Attempt, f Fetch) Next[T] {
	bypass := a.refreshed || f.Poll
	if f.Stage != Pending {
		a.refreshed = true // the round is complete
	}
	return Next[T]{Step: StepFetch, Stage: f.Stage, Since: f.Since, Bypass: bypass, Poll: f.Poll}
}

// Started records a dial made before the Connect's first Next (the fast
// path).
func (a *Attempt) Started() { a.logins++ }

// Lock error numbers: the server locked or blocked the account (MariaDB
// 4150 max_password_errors, 4151 ACCOUNT LOCK; MySQL 3118 ACCOUNT LOCK,
// 3955 FAILED_LOGIN_ATTEMPTS; 1129 host blocked by max_connect_errors).
var lockNumbers = [...]uint16{4150, 4151, 3118, 3955, 1129}

// IsLockNumber reports whether a server error number means the account (or
// host) is locked or blocked.
func IsLockNumber(n uint16) bool {
	for _, l := range lockNumbers {
		if n == l {
			return true
		}
	}
	return false
}

// Classify says what a dial's end tells of the version it dialed, from
// the evidence alone: ok is true when the login succeeded; number is the
// error number the server answered (0 when it answered none: the network
// failed or the dial was cut short); cut is true when the caller's context
// or the login bound ended the dial. Only the server's answer is evidence:
// a dial cut short before the server answered is Abandoned.
func Classify(ok bool, number uint16, cut bool) Outcome {
	switch {
	case ok:
		return Accepted
	case number == 1045:
		return Refused
	case IsLockNumber(number):
		return Locked
	case number != 0:
		return Failed
	case cut:
		return Abandoned
	}
	return Failed
}
