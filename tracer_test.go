package rotatingmysql_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// recordingTracer keeps every event it is given, in order, and checks
// that each TraceFetchEnd gets the context its TraceFetchStart returned.
type recordingTracer struct {
	mu     sync.Mutex
	events []any // since the last take
	all    []any // every event, for the check that none holds a password
	badCtx int   // TraceFetchEnd calls without their start's context
}

type fetchCtxKey struct{}

func (r *recordingTracer) add(e any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.all = append(r.all, e)
}

func (r *recordingTracer) TraceFetchStart(ctx context.Context, d rotatingmysql.FetchStartData) context.Context {
	r.add(d)
	return context.WithValue(ctx, fetchCtxKey{}, d.Stage)
}

func (r *recordingTracer) TraceFetchEnd(ctx context.Context, d rotatingmysql.FetchEndData) {
	if !d.Background && ctx.Value(fetchCtxKey{}) != d.Stage {
		r.mu.Lock()
		r.badCtx++
		r.mu.Unlock()
	}
	r.add(d)
}

func (r *recordingTracer) TraceLogin(_ context.Context, d rotatingmysql.LoginData) { r.add(d) }
func (r *recordingTracer) TraceSwitch(_ context.Context, d rotatingmysql.SwitchData) {
	r.add(d)
}
func (r *recordingTracer) TraceGiveUp(_ context.Context, d rotatingmysql.GiveUpData) { r.add(d) }

// take returns the events recorded since the last take.
func (r *recordingTracer) take() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// TestTracerScriptedRotation runs a rotation step by step against the real
// MariaDB and checks the events the tracer gets at each step: the first
// fetch and login, the 1045 absorbed with one fetch of AWSPENDING and
// the switch to AWSPENDING, and a give-up when the password is wrong
// everywhere; none of them carries a password.
func TestTracerScriptedRotation(t *testing.T) {
	t.Parallel()
	b := newBed(t, "trace-Initial-pw1")
	tr := &recordingTracer{}
	_, db := openConnectorDB(t, b, rotatingmysql.WithTracer(tr))
	ctx := context.Background()
	passwords := []string{b.password}

	// 1. The first Connect: one fetch of AWSCURRENT, one accepted login,
	// the initial switch.
	ping(t, db)
	ev := tr.take()
	fetchStarts, fetchEnds, logins, switches, _ := sortEvents(ev)
	if len(fetchStarts) != 1 || fetchStarts[0].Stage != credsource.Current || len(fetchEnds) != 1 || fetchEnds[0].Err != nil || fetchEnds[0].VersionID == "" {
		t.Fatalf("first Connect: fetch events %+v, want one fetch of AWSCURRENT", ev)
	}
	if len(logins) != 1 || logins[0].Outcome != rotatingmysql.LoginAccepted || logins[0].Stage != credsource.Current || logins[0].Username != b.user {
		t.Fatalf("first Connect: logins %+v, want one accepted with AWSCURRENT by %s", logins, b.user)
	}
	if len(switches) != 1 || !switches[0].Initial || switches[0].Stage != credsource.Current {
		t.Fatalf("first Connect: switches %+v, want the initial one to AWSCURRENT", switches)
	}
	v1 := logins[0].VersionID

	// 2. The database has the new password, AWSCURRENT the old one: the
	// next Connect is refused, fetches AWSPENDING, logs in with
	// AWSPENDING and switches to it.
	time.Sleep(credsource.DefaultMinRefreshInterval)
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	v2, pw2 := stagePassword(t, b, rotatingmysqltest.StagePending)
	passwords = append(passwords, pw2)
	tr.take() // the rotation's own steps make no Connect; clear anything stray
	ping(t, db)
	ev = tr.take()
	fetchStarts, fetchEnds, logins, switches, giveUps := sortEvents(ev)
	if len(logins) != 2 {
		t.Fatalf("Connect in the window: logins %+v, want a refusal then an acceptance", logins)
	}
	if l := logins[0]; l.Outcome != rotatingmysql.LoginRefused || l.Number != 1045 || l.VersionID != v1 || l.HoldUntil.IsZero() {
		t.Errorf("first login in the window: %+v, want refused (1045) with %s, held", l, v1)
	}
	if l := logins[1]; l.Outcome != rotatingmysql.LoginAccepted || l.Stage != credsource.Pending || l.VersionID != v2 || !l.HoldUntil.IsZero() {
		t.Errorf("second login in the window: %+v, want accepted with AWSPENDING %s", l, v2)
	}
	stages := map[credsource.Stage]int{}
	for _, f := range fetchEnds {
		if f.Background {
			continue
		}
		stages[f.Stage]++
		if f.Err != nil || f.NotFound || (f.Stage == credsource.Pending && f.VersionID != v2) {
			t.Errorf("fetch in the window: %+v, want %s for AWSPENDING", f, v2)
		}
	}
	if len(fetchStarts) != 1 || stages[credsource.Current] != 0 || stages[credsource.Pending] != 1 {
		t.Errorf("Connect in the window: fetches %+v / %+v, want one, of AWSPENDING (it holds the new password)", fetchStarts, fetchEnds)
	}
	if len(switches) != 1 || switches[0].Initial || switches[0].Stage != credsource.Pending || switches[0].VersionID != v2 {
		t.Errorf("Connect in the window: switches %+v, want one to AWSPENDING %s", switches, v2)
	}
	if len(giveUps) != 0 {
		t.Errorf("Connect in the window gave up: %+v", giveUps)
	}

	// 3. The password is changed behind the secret's back: the Connect
	// is refused, finds nothing else, and gives up.
	b.rot.FinishSecret(ctx)
	time.Sleep(credsource.DefaultMinRefreshInterval)
	broken := "broken-Trace-pw3"
	passwords = append(passwords, broken)
	if err := b.srv.SetPassword(ctx, b.user, broken); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := db.PingContext(pctx)
	var ce *rotatingmysql.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("Ping with a wrong password everywhere: %v, want a ConnectError", err)
	}
	ev = tr.take()
	_, _, logins, _, giveUps = sortEvents(ev)
	if len(giveUps) != 1 || giveUps[0].Refusals < 1 || !errors.As(giveUps[0].Err, &ce) || giveUps[0].Reason == "" {
		t.Fatalf("give-up events %+v, want one with the refusals and the ConnectError", giveUps)
	}
	refused := 0
	for _, l := range logins {
		if l.Outcome == rotatingmysql.LoginRefused {
			refused++
		}
	}
	if refused == 0 || giveUps[0].Refusals != refused {
		t.Errorf("give-up: %d refused logins traced, give-up says %d", refused, giveUps[0].Refusals)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.badCtx != 0 {
		t.Errorf("%d TraceFetchEnd calls did not get their TraceFetchStart's context", tr.badCtx)
	}
	// No event, printed in full, holds a password.
	for _, e := range tr.all {
		s := fmt.Sprintf("%+v %#v", e, e)
		for _, pw := range passwords {
			if strings.Contains(s, pw) {
				t.Errorf("event %T holds a password: %s", e, s)
			}
		}
	}
}

// sortEvents splits events by type.
func sortEvents(ev []any) (fs []rotatingmysql.FetchStartData, fe []rotatingmysql.FetchEndData, l []rotatingmysql.LoginData, s []rotatingmysql.SwitchData, g []rotatingmysql.GiveUpData) {
	for _, e := range ev {
		switch e := e.(type) {
		case rotatingmysql.FetchStartData:
			fs = append(fs, e)
		case rotatingmysql.FetchEndData:
			fe = append(fe, e)
		case rotatingmysql.LoginData:
			l = append(l, e)
		case rotatingmysql.SwitchData:
			s = append(s, e)
		case rotatingmysql.GiveUpData:
			g = append(g, e)
		}
	}
	return
}

// TestTracerNopDefault checks that a connector without a tracer and one
// with NopTracer embedded in a partial tracer both work: the partial
// tracer gets the events it implements.
func TestTracerNopDefault(t *testing.T) {
	b := newBed(t, "trace-Nop-pw1")
	_, db := openConnectorDB(t, b)
	ping(t, db)
	lt := &loginsOnly{}
	_, db2 := openConnectorDB(t, b, rotatingmysql.WithTracer(lt))
	ping(t, db2)
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.n != 1 {
		t.Fatalf("partial tracer saw %d logins, want 1", lt.n)
	}
}

type loginsOnly struct {
	rotatingmysql.NopTracer
	mu sync.Mutex
	n  int
}

func (l *loginsOnly) TraceLogin(context.Context, rotatingmysql.LoginData) {
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
}

// TestTracerAccountLocked checks the event of a login the server answers
// with its lock error: outcome locked, the server's number, and a hold.
func TestTracerAccountLocked(t *testing.T) {
	t.Parallel()
	b := newBed(t, "trace-Lock-pw1")
	ctx := context.Background()
	if _, err := b.srv.Root().ExecContext(ctx, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", b.user)); err != nil {
		t.Fatal(err)
	}
	tr := &recordingTracer{}
	_, db := openConnectorDB(t, b, rotatingmysql.WithTracer(tr))
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("Ping of a locked account succeeded")
	}
	_, _, logins, switches, _ := sortEvents(tr.take())
	if len(logins) != 1 {
		t.Fatalf("logins %+v, want one", logins)
	}
	if l := logins[0]; l.Outcome != rotatingmysql.LoginLocked || l.Number != 4151 || l.HoldUntil.IsZero() || l.Stage != credsource.Current {
		t.Errorf("login of a locked account: %+v, want locked (4151) with AWSCURRENT, held", l)
	}
	if len(switches) != 0 {
		t.Errorf("switches %+v, want none", switches)
	}
}
