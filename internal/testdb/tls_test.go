package testdb_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

// TestTLSUser: an account created REQUIRE SSL logs in over TLS with the
// server's CA trusted (by *tls.Config and by a registered name), is refused
// with 1045 without TLS, and a client that does not trust the CA fails the
// handshake.
func TestTLSUser(t *testing.T) {
	srv := testdb.Require(t)
	const pw = "tls-User-Pw"
	user, db := srv.TempTLSUser(t, pw)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	cfg := srv.UserConfig(user, pw, db)
	cfg.TLS = srv.RequireTLS(t)
	conn := openDB(t, cfg)
	var name, cipher string
	if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("logged in without TLS")
	}
	t.Logf("TLS cipher %s", cipher)

	byName := srv.UserConfig(user, pw, db)
	byName.TLSConfig = srv.RegisterTLS(t)
	dsn := byName.FormatDSN()
	parsed, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, parsed); err != nil {
		t.Fatalf("tls=%s: %v", byName.TLSConfig, err)
	}

	wantErrNumber(t, login(ctx, srv.UserConfig(user, pw, db)), erAccessDenied)

	untrusted := srv.UserConfig(user, pw, db)
	untrusted.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	err = login(ctx, untrusted)
	var unknownCA x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknownCA) {
		t.Fatalf("a client that does not trust the CA: %v, want a certificate error", err)
	}
}

// TestAlterUserLock: ACCOUNT LOCK makes logins fail with 4151, ACCOUNT
// UNLOCK ends it.
func TestAlterUserLock(t *testing.T) {
	srv := testdb.Require(t)
	const pw = "lock-User-Pw"
	user, db := srv.TempUser(t, pw)
	ctx := t.Context()
	if err := srv.AlterUser(ctx, user, "ACCOUNT LOCK"); err != nil {
		t.Fatal(err)
	}
	wantErrNumber(t, login(ctx, srv.UserConfig(user, pw, db)), 4151)
	if err := srv.AlterUser(ctx, user, "ACCOUNT UNLOCK"); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, srv.UserConfig(user, pw, db)); err != nil {
		t.Fatal(err)
	}
}
