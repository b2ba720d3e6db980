package testdb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// A private server serves TLS with a certificate for 127.0.0.1 signed by a
// CA made for it, both written into its directory at the first start (and
// kept across restarts). Clients that trust the CA ([Server.TLSConfig])
// verify the server; accounts made with [Server.TempTLSUser] may log in over
// TLS only.
const (
	caFile   = "tls-ca.pem"
	certFile = "tls-server-cert.pem"
	keyFile  = "tls-server-key.pem"
)

// certLifetime is how long the generated certificates are valid; a test
// binary runs for minutes.
const certLifetime = 48 * time.Hour

// tlsArgs writes the CA and the server's certificate and key into s.Dir
// unless they are there, and returns mariadbd's flags to serve them.
func (s *Server) tlsArgs() ([]string, error) {
	ca, cert, key := filepath.Join(s.Dir, caFile), filepath.Join(s.Dir, certFile), filepath.Join(s.Dir, keyFile)
	if _, err := os.Stat(key); errors.Is(err, os.ErrNotExist) {
		if err := writeCerts(ca, cert, key); err != nil {
			return nil, fmt.Errorf("testdb: TLS certificates: %w", err)
		}
	}
	return []string{"--ssl-ca=" + ca, "--ssl-cert=" + cert, "--ssl-key=" + key}, nil
}

// writeCerts makes an ECDSA CA and a server certificate for 127.0.0.1, ::1
// and localhost signed by it, and writes them as PEM files.
func writeCerts(caPath, certPath, keyPath string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "rotatingmysql testdb CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, caCert, err := sign(caTmpl, nil, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(certLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}
	srvDER, _, err := sign(srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{caPath, "CERTIFICATE", caDER}, {certPath, "CERTIFICATE", srvDER}, {keyPath, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// sign makes tmpl into a certificate signed by parent (itself when nil)
// with signer.
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

// TLSConfig returns a client TLS configuration that trusts the private
// server's CA (and so verifies the server's certificate for 127.0.0.1). It
// returns an error for an external server, whose CA the package does not
// know.
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.External() {
		return nil, fmt.Errorf("testdb: TLS: %w", ErrExternal)
	}
	pemCA, err := os.ReadFile(filepath.Join(s.Dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("testdb: TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("testdb: TLS: no certificate in " + caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// RequireTLS returns [Server.TLSConfig]. It skips the test, saying why,
// for an external server (unless CI is true: then it fails it), and fails
// it on any other error.
func (s *Server) RequireTLS(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := s.TLSConfig()
	switch {
	case err == nil:
		return cfg
	case errors.Is(err, ErrExternal) && !InCI():
		t.Skipf("%v: TLS tests need the private server", err)
	default:
		t.Fatal(err)
	}
	return nil
}

// RegisterTLS registers [Server.RequireTLS]'s configuration with
// mysql.RegisterTLSConfig under a unique name, for tls=NAME in a DSN, and
// deregisters it when the test ends.
func (s *Server) RegisterTLS(t testing.TB) string {
	t.Helper()
	cfg := s.RequireTLS(t)
	name := UniqueName("testdbtls")
	if err := mysql.RegisterTLSConfig(name, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return name
}

// TempTLSUser is [Server.TempUser] for an account created REQUIRE SSL: it
// logs in over TLS only (without TLS the server answers 1045).
func (s *Server) TempTLSUser(t testing.TB, password string) (user, db string) {
	t.Helper()
	s.RequireTLS(t)
	user, db = s.TempUser(t, password)
	if err := s.AlterUser(t.Context(), user, "REQUIRE SSL"); err != nil {
		t.Fatal(err)
	}
	return user, db
}

// AlterUser runs ALTER USER 'user'@'%' CLAUSE, for clauses the tests write
// themselves: "ACCOUNT LOCK", "ACCOUNT UNLOCK", "REQUIRE SSL".
func (s *Server) AlterUser(ctx context.Context, user, clause string) error {
	return s.withRoot(ctx, func(conn *sql.Conn, q quoter) error {
		acct, err := q.account(user)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" "+clause); err != nil {
			return fmt.Errorf("testdb: alter user %q %s: %w", user, clause, err)
		}
		return nil
	})
}
