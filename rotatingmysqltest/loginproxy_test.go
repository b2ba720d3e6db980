package rotatingmysqltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

// newTestProxy starts a proxy in front of the private MariaDB and returns it
// with a fresh account and its database.
func newTestProxy(t *testing.T, password string) (p *LoginProxy, user, db string) {
	t.Helper()
	srv := testdb.Require(t)
	user, db = srv.TempUser(t, password)
	p, err := NewLoginProxy(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, user, db
}

// proxyLogin logs in through p with plain go-sql-driver/mysql within
// timeout and runs a query.
func proxyLogin(p *LoginProxy, user, password, db string, timeout time.Duration) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Net, cfg.Addr = "tcp", p.Addr()
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

func wantTally(t *testing.T, got, want LoginTally) {
	t.Helper()
	counts := func(l LoginTally) [5]int { return [5]int{l.Sent, l.Accepted, l.Refused, l.Abandoned, l.Cut} }
	if counts(got) != counts(want) {
		t.Errorf("tally %+v, want %+v", got, want)
	}
	if n := got.Codes[1045]; n != want.Refused {
		t.Errorf("%d refusals with 1045, want %d (%v)", n, want.Refused, got.Codes)
	}
}

// TestLoginProxyCounts: logins through the proxy reach the server, and the
// proxy counts them per user with the server's answer.
func TestLoginProxyCounts(t *testing.T) {
	const pw = "proxy-Count-Pw"
	p, user, db := newTestProxy(t, pw)
	for range 3 {
		if err := proxyLogin(p, user, pw, db, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		err := proxyLogin(p, user, "proxy-Wrong", db, 5*time.Second)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1045 {
			t.Fatalf("wrong password: %v, want 1045", err)
		}
	}
	wantTally(t, p.Tally(user, time.Time{}), LoginTally{Sent: 5, Accepted: 3, Refused: 2})
	if n := p.Tally("nobody", time.Time{}).Sent; n != 0 {
		t.Errorf("%d logins of another user", n)
	}
	if n := p.Connections(); n != 5 {
		t.Errorf("%d connections, want 5", n)
	}
}

// TestLoginProxyHang: a hung connection gets no greeting (the client's
// deadline ends it) and reaches no server; the next connection logs in.
func TestLoginProxyHang(t *testing.T) {
	const pw = "proxy-Hang-Pw"
	p, user, db := newTestProxy(t, pw)
	p.HangNext(1)
	done := make(chan error, 1)
	go func() { done <- proxyLogin(p, user, pw, db, time.Minute) }()
	waitUntil(t, "the connection hangs", func() bool { return p.Hung() == 1 })
	if err := proxyLogin(p, user, pw, db, 5*time.Second); err != nil {
		t.Fatalf("the connection after the hung one: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the hung login returned %v", err)
	default:
	}
	p.ReleaseHung()
	if err := <-done; err == nil {
		t.Fatal("the hung login succeeded")
	}
	waitUntil(t, "no connection hangs", func() bool { return p.Hung() == 0 })
	wantTally(t, p.Tally(user, time.Time{}), LoginTally{Sent: 1, Accepted: 1})

	// A client that gives up while it hangs frees it too.
	p.HangNext(1)
	err := proxyLogin(p, user, pw, db, 200*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung login with a deadline: %v, want DeadlineExceeded", err)
	}
	waitUntil(t, "no connection hangs", func() bool { return p.Hung() == 0 })
}

// TestLoginProxyGreetingDelay: with a greeting delay, a login with a
// longer deadline succeeds, and one with a shorter deadline never reaches
// the server.
func TestLoginProxyGreetingDelay(t *testing.T) {
	const pw = "proxy-Delay-Pw"
	const delay = 500 * time.Millisecond
	p, user, db := newTestProxy(t, pw)
	p.SetGreetingDelay(delay)
	start := time.Now()
	if err := proxyLogin(p, user, pw, db, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("login took %v, want at least the delay %v", took, delay)
	}
	if err := proxyLogin(p, user, pw, db, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short deadline: %v, want DeadlineExceeded", err)
	}
	p.SetGreetingDelay(0)
	if err := proxyLogin(p, user, pw, db, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wantTally(t, p.Tally(user, time.Time{}), LoginTally{Sent: 2, Accepted: 2})
}

// TestLoginProxyDelayLogins: a held login whose client gives up never
// reaches the server (abandoned); the hold applies to the next n logins of
// that user only.
func TestLoginProxyDelayLogins(t *testing.T) {
	const pw = "proxy-Hold-Pw"
	p, user, db := newTestProxy(t, pw)
	p.DelayLogins(user, 1, 5*time.Second)
	if err := proxyLogin(p, user, pw, db, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held login with a 150ms deadline: %v, want DeadlineExceeded", err)
	}
	waitUntil(t, "the held login is abandoned", func() bool { return p.Tally(user, time.Time{}).Abandoned == 1 })
	if err := proxyLogin(p, user, pw, db, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	wantTally(t, p.Tally(user, time.Time{}), LoginTally{Sent: 1, Accepted: 1, Abandoned: 1})
}

// waitUntil polls cond every 10 ms for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
