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

// TestPollTimeFixedBetweenPolls: while nothing is dialable, the next poll
// falls due at a time fixed by the last one (the interval doubles with the
// time stuck), not one that moves later as the clock runs: a waiting
// Connect wakes once for it.
func TestPollTimeFixedBetweenPolls(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	l := New[string](Options{Hold: time.Minute, MinInterval: time.Second, Accounts: NewAccounts()})
	l.Observe(Current, Key{1}, "app@db:3306", "v1", now)
	d := l.Decide(now)
	if d.Kind != Dial {
		t.Fatalf("first decision %+v, want a dial", d)
	}
	l.Report(d.Ticket, Refused, now)
	l.Fetched("", now)
	stuck := now.Add(time.Millisecond)
	if d := l.Decide(stuck); d.Kind != Wait {
		t.Fatalf("with the only version refused: %+v, want a wait", d)
	}
	for _, at := range []time.Duration{time.Second, 2 * time.Second} {
		l.Fetched("", stuck.Add(at)) // the polls
	}
	var due []time.Time
	for _, at := range []time.Duration{2100 * time.Millisecond, 3 * time.Second, 3900 * time.Millisecond} {
		f, ok := l.FetchDue(stuck.Add(at))
		if !ok || !f.Poll {
			t.Fatalf("at %v stuck: %+v %v, want a poll due", at, f, ok)
		}
		due = append(due, f.At)
	}
	if !due[0].Equal(due[1]) || !due[1].Equal(due[2]) {
		t.Errorf("the next poll moves as time passes: %v", due)
	}
	if want := stuck.Add(4 * time.Second); !due[0].Equal(want) {
		t.Errorf("next poll at %v, want %v (the interval doubled)", due[0].Sub(stuck), want.Sub(stuck))
	}
}

// TestRoundAsksCurrentAfterPending: after a refusal the round asks for
// AWSPENDING; when the source answers it is absent (the rotation already
// finished) or labels a version refused too, AWSCURRENT is due at once in
// the same round, not at the next poll; when AWSPENDING offers a new
// version, nothing more is fetched.
func TestRoundAsksCurrentAfterPending(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending func(l *Ledger[string], now time.Time)
		want    Stage // "" : no fetch due
	}{
		{"absent", func(l *Ledger[string], now time.Time) { l.NotFound(Pending) }, Current},
		{"the refused version", func(l *Ledger[string], now time.Time) { l.Observe(Pending, Key{1}, "app@db:3306", "v1", now) }, Current},
		{"a new version", func(l *Ledger[string], now time.Time) { l.Observe(Pending, Key{2}, "app@db:3306", "v2", now) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
			l := New[string](Options{Accounts: NewAccounts()})
			l.Observe(Current, Key{1}, "app@db:3306", "v1", now)
			l.Fetched("", now)
			d := l.Decide(now.Add(time.Millisecond))
			l.Report(d.Ticket, Refused, now.Add(2*time.Millisecond))
			at := now.Add(2 * time.Second)
			f, ok := l.FetchDue(at)
			if !ok || f.Stage != Pending || f.At.After(at) {
				t.Fatalf("after the refusal: %+v %v, want AWSPENDING due", f, ok)
			}
			tc.pending(l, at)
			l.Fetched(Pending, at)
			at = at.Add(time.Millisecond)
			f, ok = l.FetchDue(at)
			switch {
			case tc.want == "" && ok && !f.Poll:
				t.Errorf("AWSPENDING offers a new version, yet %+v is due", f)
			case tc.want != "" && (!ok || f.Stage != tc.want || f.Poll || f.At.After(at)):
				t.Errorf("fetch due %+v %v, want %s at once in the same round", f, ok, tc.want)
			}
		})
	}
}
