package testdb_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

// TestMain runs the tests against a private MariaDB, then fails the run if
// any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(testdbMain{m}) }

// testdbMain adapts testdb.Run to goleak.VerifyTestMain.
type testdbMain struct{ m *testing.M }

func (r testdbMain) Run() int { return testdb.Run(r.m) }

// MariaDB error numbers the tests expect.
const (
	erAccessDenied  = 1045 // ER_ACCESS_DENIED_ERROR
	erUserIsBlocked = 4150 // ER_USER_IS_BLOCKED (max_password_errors)
)

// hardPassword has every character class that breaks naive DSN building or
// string escaping.
const hardPassword = `p@ss/w:rd?#&=%'"\ ü€`

// login opens one connection with cfg and closes it, bypassing the pool so
// that each call is exactly one login attempt.
func login(ctx context.Context, cfg *mysql.Config) error {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	conn, err := connector.Connect(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

func openDB(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func wantErrNumber(t *testing.T, err error, want uint16) {
	t.Helper()
	if got := errNumber(err); got != want {
		t.Fatalf("got error %v (number %d), want MySQL error %d", err, got, want)
	}
}

func accessDenied(t *testing.T, srv *testdb.Server) int64 {
	t.Helper()
	n, err := srv.AccessDeniedErrors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStartStop(t *testing.T) {
	t.Parallel() // a server of its own
	if testdb.Require(t).External() {
		t.Skip("external server: this test starts a private one")
	}
	began := time.Now()
	srv, err := testdb.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started MariaDB %s on %s in %v", srv.Version, srv.Addr, time.Since(began).Round(time.Millisecond))
	if err := srv.Root().PingContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Dir); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	if _, err := os.Stat(srv.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dir %s still there after Stop: %v", srv.Dir, err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestCreateUserLogin(t *testing.T) {
	t.Parallel()
	srv := testdb.Require(t)
	for _, tc := range []struct{ name, password string }{
		{"punctuation and non-ASCII", hardPassword},
		{"backslashes and quotes", `\\'\'"\"` + "`\\"},
		{"DSN syntax", "root:pw@tcp(127.0.0.1:3306)/db?x=y"},
		{"spaces and newline", " a b \n\t c "},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			user, db := srv.TempUser(t, tc.password)
			conn := openDB(t, srv.UserConfig(user, tc.password, db))
			var current, database string
			if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER(), DATABASE()").Scan(&current, &database); err != nil {
				t.Fatalf("login with the created password: %v", err)
			}
			if want := user + "@%"; current != want || database != db {
				t.Errorf("CURRENT_USER(), DATABASE() = %q, %q; want %q, %q", current, database, want, db)
			}
			if _, err := conn.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
				t.Errorf("user cannot use its database: %v", err)
			}
			err := login(ctx, srv.UserConfig(user, tc.password+"x", db))
			wantErrNumber(t, err, erAccessDenied)
		})
	}
}

func TestUnknownUser(t *testing.T) {
	t.Parallel()
	srv := testdb.Require(t)
	err := login(t.Context(), srv.UserConfig(testdb.UniqueName("nobody"), "x", ""))
	wantErrNumber(t, err, erAccessDenied)
}

// TestFailedLogins: the per-account count of refused logins sees each
// account's own failures only, an unknown user's too, and no successful
// login.
func TestFailedLogins(t *testing.T) {
	t.Parallel()
	srv := testdb.Require(t)
	if srv.External() {
		t.Skip("FailedLogins reads a private server's error log; this is an external server")
	}
	ctx := t.Context()
	a, dbA := srv.TempUser(t, hardPassword)
	b, dbB := srv.TempUser(t, hardPassword)
	unknown := testdb.UniqueName("nobody")
	for _, cfg := range []*mysql.Config{
		srv.UserConfig(a, "wrong-1", dbA), srv.UserConfig(a, "wrong-2", dbA),
		srv.UserConfig(b, "wrong-3", dbB), srv.UserConfig(unknown, "x", ""),
	} {
		wantErrNumber(t, login(ctx, cfg), erAccessDenied)
	}
	if err := login(ctx, srv.UserConfig(a, hardPassword, dbA)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		users []string
		want  int64
	}{{[]string{a}, 2}, {[]string{b}, 1}, {[]string{unknown}, 1}, {[]string{a, b}, 3}, {[]string{testdb.UniqueName("u")}, 0}} {
		n, err := srv.FailedLogins(tc.users...)
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.want {
			t.Errorf("FailedLogins(%q) = %d, want %d", tc.users, n, tc.want)
		}
	}
}

// TestSetPassword is not parallel: it counts the server's access-denied
// errors exactly.
func TestSetPassword(t *testing.T) {
	srv := testdb.Require(t)
	ctx := t.Context()
	const oldPassword, newPassword = hardPassword, hardPassword + "-2"
	user, db := srv.TempUser(t, oldPassword)

	// A session opened with the old password survives the change.
	pool := openDB(t, srv.UserConfig(user, oldPassword, db))
	open, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	before := accessDenied(t, srv)
	if err := srv.SetPassword(ctx, user, newPassword); err != nil {
		t.Fatal(err)
	}
	wantErrNumber(t, login(ctx, srv.UserConfig(user, oldPassword, db)), erAccessDenied)
	if err := login(ctx, srv.UserConfig(user, newPassword, db)); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if after := accessDenied(t, srv); after-before != 1 {
		t.Errorf("Access_denied_errors went from %d to %d; want one more", before, after)
	}

	var one int
	if err := open.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("session opened before ALTER USER: %v", err)
	}

	if err := srv.DropUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	if err := open.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("session of a dropped user: %v", err)
	}
	wantErrNumber(t, login(ctx, srv.UserConfig(user, newPassword, db)), erAccessDenied)
}

// TestMaxPasswordErrors records how MariaDB's max_password_errors behaves:
// after that many failed logins in a row (a success resets the count) the
// account is blocked: every new login, with the right password too, gets
// 4150 and does not count in Access_denied_errors, while open sessions go on.
// FLUSH PRIVILEGES unblocks it.
func TestMaxPasswordErrors(t *testing.T) {
	srv := testdb.Require(t)
	ctx := t.Context()
	srv.TempGlobal(t, "max_password_errors", 3)
	user, db := srv.TempUser(t, "right")
	good, bad := srv.UserConfig(user, "right", db), srv.UserConfig(user, "wrong", db)

	// A success resets the count.
	for range 2 {
		wantErrNumber(t, login(ctx, bad), erAccessDenied)
	}
	if err := login(ctx, good); err != nil {
		t.Fatalf("login after 2 failures: %v", err)
	}
	session := openDB(t, good)
	session.SetMaxOpenConns(1)
	if err := session.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		wantErrNumber(t, login(ctx, bad), erAccessDenied)
	}
	before := accessDenied(t, srv)
	wantErrNumber(t, login(ctx, good), erUserIsBlocked)
	wantErrNumber(t, login(ctx, bad), erUserIsBlocked)
	// MariaDB 10.11 does not count refusals of a blocked account.
	if after := accessDenied(t, srv); after != before {
		t.Errorf("blocked logins raised Access_denied_errors by %d, want 0", after-before)
	}
	// Blocking refuses new logins only.
	if err := session.PingContext(ctx); err != nil {
		t.Errorf("session opened before the block: %v", err)
	}
	if err := srv.FlushPrivileges(ctx); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, good); err != nil {
		t.Fatalf("login after FLUSH PRIVILEGES: %v", err)
	}
}

func TestTempGlobal(t *testing.T) {
	srv := testdb.Require(t)
	for _, tc := range []struct {
		name  string
		value any
		want  string
	}{
		{"max_password_errors", 7, "7"},
		{"sql_mode", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"},
		{"log_warnings", nil, "2"},
		{"autocommit", false, "0"},
		{"long_query_time", 2, "2"},
	} {
		before, err := srv.Global(t.Context(), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name, func(t *testing.T) {
			srv.TempGlobal(t, tc.name, tc.value)
			if got, err := srv.Global(t.Context(), tc.name); err != nil || got != tc.want {
				t.Errorf("after TempGlobal(%v): %q, %v; want %q", tc.value, got, err, tc.want)
			}
		})
		if after, err := srv.Global(t.Context(), tc.name); err != nil || after != before {
			t.Errorf("%s after the test: %q, %v; want it restored to %q", tc.name, after, err, before)
		}
	}
}

func TestConcurrentConnections(t *testing.T) {
	srv := testdb.Require(t)
	const n = 300
	limit, err := srv.Global(t.Context(), "max_connections")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := strconv.Atoi(limit); m < n+20 {
		t.Skipf("max_connections is %s, too low for %d connections", limit, n)
	}
	user, db := srv.TempUser(t, hardPassword)
	pool := openDB(t, srv.UserConfig(user, hardPassword, db))
	pool.SetMaxOpenConns(n)
	ctx := t.Context()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	hold := make(chan struct{})
	for range n {
		spawn(&wg, func() {
			conn, err := pool.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			errs <- conn.PingContext(ctx)
			<-hold // keep all n open at once
		})
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d connections open in %v", pool.Stats().OpenConnections, time.Since(began).Round(time.Millisecond))
	close(hold)
	wg.Wait()
}

func TestRestart(t *testing.T) {
	srv := testdb.Require(t)
	if srv.External() {
		t.Skip("external server: cannot restart it")
	}
	ctx := t.Context()
	user, db := srv.TempUser(t, hardPassword)
	pool := openDB(t, srv.UserConfig(user, hardPassword, db))
	if _, err := pool.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.ExecContext(ctx, "INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	open, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	addr := srv.Addr

	began := time.Now()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(began).Round(time.Millisecond))
	if srv.Addr != addr {
		t.Errorf("Addr changed from %s to %s", addr, srv.Addr)
	}

	if err := open.PingContext(ctx); err == nil {
		t.Error("a connection from before the restart still works")
	}
	if err := srv.Root().PingContext(ctx); err != nil {
		t.Errorf("root pool after restart: %v", err)
	}
	var id int
	if err := pool.QueryRowContext(ctx, "SELECT id FROM t").Scan(&id); err != nil || id != 42 {
		t.Errorf("data after restart: id %d, err %v", id, err)
	}
}

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		name := testdb.UniqueName("u")
		if seen[name] {
			t.Fatalf("UniqueName returned %q twice", name)
		}
		seen[name] = true
	}
	if long := testdb.UniqueName(string(make([]byte, 100))); len(long) > 64 {
		t.Errorf("UniqueName(100-byte prefix) is %d bytes, longer than 64", len(long))
	}
}

// spawn runs f in a goroutine counted by wg (sync.WaitGroup.Go needs Go 1.25;
// the module supports Go 1.24).
func spawn(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
}
