package ledger

import (
	"testing"
	"time"
)

// TestExpiredVersionNotDialed: a version with an expiry (an IAM token,
// bounded by its signing credentials) is dialed, proven and fresh, until
// its expiry; from then on it is neither preferred nor dialed, and the
// newer version the source labels takes over with a trial.
func TestExpiredVersionNotDialed(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := New[string](Options{Tokens: true, Accounts: NewAccounts()})
	old, next := Key{1}, Key{2}
	l.Observe(Current, old, "iam@db:3306", "old", now)
	l.Expires(old, now.Add(10*time.Second))
	d := l.Decide(now)
	if d.Kind != Dial || d.Ticket.Payload() != "old" {
		t.Fatalf("first decision %+v, want a dial of the old token", d)
	}
	l.Report(d.Ticket, Accepted, now)
	// Proven and fresh: dialed in parallel, up to its expiry.
	at := now.Add(9*time.Second + 999*time.Millisecond)
	l.Report(dialOf(t, l, at, "old"), Accepted, at)
	// At its expiry, with nothing newer: nothing to dial.
	at = now.Add(10 * time.Second)
	if d := l.Decide(at); d.Kind == Dial {
		t.Fatalf("at its expiry the old token is dialed: %+v", d)
	}
	// The source's newer token takes over.
	l.Observe(Current, next, "iam@db:3306", "next", at)
	l.Expires(next, at.Add(10*time.Second))
	if d := l.Decide(at); d.Kind != Dial || d.Ticket.Payload() != "next" {
		t.Fatalf("after the expiry with a newer token: %+v, want a dial of the newer token", d)
	}
}

// dialOf returns a ticket for the version with payload want at now, or
// fails.
func dialOf(t *testing.T, l *Ledger[string], now time.Time, want string) Ticket[string] {
	t.Helper()
	d := l.Decide(now)
	if d.Kind != Dial || d.Ticket.Payload() != want {
		t.Fatalf("at %v: decision %+v, want a dial of %s", now, d, want)
	}
	return d.Ticket
}
