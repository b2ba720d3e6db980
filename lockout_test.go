package rotatingmysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// These tests set the global max_password_errors of the binary's shared
// server (testdb.TempGlobal restores it): none of them may run in parallel.

// MariaDB error numbers the tests expect.
const (
	erAccessDenied = 1045
	erUserBlocked  = 4150 // max_password_errors reached
)

// putWrong gives the bed's secret an AWSCURRENT and an AWSPENDING whose
// passwords the server does not accept.
func (b *bed) putWrong(current, pending string) {
	b.t.Helper()
	store := b.sm.Store()
	if _, err := store.PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, current, b.db), nil); err != nil {
		b.t.Fatal(err)
	}
	if _, err := store.PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, pending, b.db), []string{"AWSPENDING"}); err != nil {
		b.t.Fatal(err)
	}
}

// currentPassword returns the password AWSCURRENT holds now.
func (b *bed) currentPassword() string {
	b.t.Helper()
	v, err := b.sm.Store().GetSecretValue(b.arn, "", "AWSCURRENT")
	if err != nil {
		b.t.Fatal(err)
	}
	var doc struct{ Password string }
	if err := json.Unmarshal([]byte(v.SecretString), &doc); err != nil {
		b.t.Fatal(err)
	}
	return doc.Password
}

// directLogin logs in as the bed's user with plain go-sql-driver/mysql and
// returns the server's answer.
func (b *bed) directLogin(password string) error {
	b.t.Helper()
	c, err := mysql.NewConnector(b.srv.UserConfig(b.user, password, b.db))
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.Connect(ctx)
	if err == nil {
		conn.Close()
	}
	return err
}

// mysqlErrNumber returns the MySQL error number in err's chain, 0 if none.
func mysqlErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// dialCounter counts the connections, hence the logins, a connector opens
// to the database.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) option() rotatingmysql.Option {
	return rotatingmysql.WithMySQLConfig(func(mc *mysql.Config) error {
		mc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d.n.Add(1)
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		}
		return nil
	})
}

// TestLockoutRotationUnderLoad: with max_password_errors = W + 2, a full
// single-user rotation while W goroutines dial does not block the
// application's user, and the application sees no error. Only the dials in
// flight when the password changes may fail (at most W), plus the one
// failed login of the rotation's own setSecret step.
func TestLockoutRotationUnderLoad(t *testing.T) {
	// Serial: sets the server-wide max_password_errors, which would block
	// the accounts of parallel tests.
	for _, w := range []int{16, 32} {
		t.Run(fmt.Sprintf("W=%d", w), func(t *testing.T) {
			b := newBed(t, fmt.Sprintf("lockout-Initial-Pw-%d", w))
			b.srv.TempGlobal(t, "max_password_errors", w+2)
			dials := &dialCounter{}
			db := b.open(dials.option())
			db.SetMaxIdleConns(0)
			ping(t, db)
			denied0 := b.deniedLogins()

			// Flat out, unlike the other loads: the bound is about the W
			// dials in flight when the password changes, and only dials
			// back to back keep W in flight.
			l := runLoad(db, w, 0, 15*time.Second, nil)
			time.Sleep(300 * time.Millisecond)
			b.rot.Pause = 500 * time.Millisecond
			err := b.rot.Rotate(context.Background())
			time.Sleep(500 * time.Millisecond)
			l.stop(t) // 0 application errors: a 4150 would be one
			if err != nil {
				t.Fatal(err)
			}
			denied := b.deniedLogins() - denied0
			t.Logf("W=%d: %d dials, %d failed logins on the server (the rotator's included)", w, dials.n.Load(), denied)
			if err := b.directLogin(b.currentPassword()); err != nil {
				t.Fatalf("after the rotation the user cannot log in (error %d): %v", mysqlErrNumber(err), err)
			}
			if max := int64(w + 1); denied > max {
				t.Errorf("%d failed logins, want at most %d (the dials in flight and the rotator's)", denied, max)
			}
		})
	}
}

// TestLockoutWrongEverywhere: with max_password_errors = 6, a secret wrong
// in every stage does not block the user within one Connect (at most
// MaxLogins = 5 logins), nor in the Connects that follow (refused versions
// are not dialed again).
func TestLockoutWrongEverywhere(t *testing.T) {
	// Serial: sets the server-wide max_password_errors, which would block
	// the accounts of parallel tests.
	b := newBed(t, "lockout-Real-Pw")
	b.srv.TempGlobal(t, "max_password_errors", 6)
	b.putWrong("lockout-Wrong-Current", "lockout-Wrong-Pending")
	dials := &dialCounter{}
	db := b.open(dials.option(), rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second}))
	denied0 := b.deniedLogins()

	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if n := mysqlErrNumber(err); n != erAccessDenied {
			t.Fatalf("Connect %d: error %d %v, want 1045", i+1, n, err)
		}
		var ce *rotatingmysql.ConnectError
		if !errors.As(err, &ce) {
			t.Fatalf("Connect %d: %v is not a ConnectError", i+1, err)
		}
		if i == 0 && dials.n.Load() > retry.DefaultMaxLogins {
			t.Fatalf("one Connect made %d logins, want at most %d", dials.n.Load(), retry.DefaultMaxLogins)
		}
	}
	denied := b.deniedLogins() - denied0
	t.Logf("3 Connects: %d logins, %d failed on the server", dials.n.Load(), denied)
	if denied > 5 {
		t.Errorf("%d failed logins, want at most 5 (max_password_errors is 6)", denied)
	}
	if err := b.directLogin(b.password); err != nil {
		t.Fatalf("the user is blocked (error %d): %v", mysqlErrNumber(err), err)
	}
}

// TestLockoutBlockedIsNotRetried: a blocked account (MariaDB 4150) is
// reported at once with the server's error, whether the first login meets it
// or a login of the recovery from 1045 does.
func TestLockoutBlockedIsNotRetried(t *testing.T) {
	// Serial: sets the server-wide max_password_errors, which would block
	// the accounts of parallel tests.
	t.Run("first login", func(t *testing.T) {
		b := newBed(t, "blocked-Real-Pw-1")
		b.srv.TempGlobal(t, "max_password_errors", 3)
		for range 3 {
			if n := mysqlErrNumber(b.directLogin("blocked-Wrong")); n != erAccessDenied {
				t.Fatalf("wrong password: error %d, want 1045", n)
			}
		}
		if n := mysqlErrNumber(b.directLogin(b.password)); n != erUserBlocked {
			t.Fatalf("after 3 failures: error %d, want 4150", n)
		}
		dials := &dialCounter{}
		db := b.open(dials.option())
		start := time.Now()
		err := db.Ping()
		took := time.Since(start)
		if n := mysqlErrNumber(err); n != erUserBlocked || !retry.IsAccountLocked(err) {
			t.Fatalf("error %d %v, want the server's 4150", n, err)
		}
		if _, ok := err.(*mysql.MySQLError); !ok {
			t.Errorf("error %T, want the mysql driver's *mysql.MySQLError as is", err)
		}
		if n := dials.n.Load(); n != 1 {
			t.Errorf("%d logins, want 1", n)
		}
		if n := b.apiCalls(); n != 1 {
			t.Errorf("%d API calls, want 1", n)
		}
		if took > time.Second {
			t.Errorf("4150 reported after %v, want at once", took)
		}
	})
	t.Run("during recovery", func(t *testing.T) {
		b := newBed(t, "blocked-Real-Pw-2")
		// The first failed login blocks the user; the recovery's next login,
		// with the right AWSPENDING, meets 4150.
		b.srv.TempGlobal(t, "max_password_errors", 1)
		if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, "blocked-Wrong-Current", b.db), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.sm.Store().PutSecretValue(b.arn, rotatingmysqltest.SecretJSON(b.host, b.port, b.user, b.password, b.db), []string{"AWSPENDING"}); err != nil {
			t.Fatal(err)
		}
		dials := &dialCounter{}
		db := b.open(dials.option())
		start := time.Now()
		err := db.Ping()
		took := time.Since(start)
		if n := mysqlErrNumber(err); n != erUserBlocked {
			t.Fatalf("error %d %v, want the server's 4150", n, err)
		}
		if n := dials.n.Load(); n != 2 {
			t.Errorf("%d logins, want 2 (AWSCURRENT refused, AWSPENDING blocked)", n)
		}
		if took > time.Second {
			t.Errorf("4150 reported after %v, want at once", took)
		}
		t.Logf("4150 after %v, %d API calls: %v", took.Round(time.Millisecond), b.apiCalls(), err)
	})
}
