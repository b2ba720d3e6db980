package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Test AWS keys: distinctive, so that a leak shows.
const (
	iamKeyID     = "AKIAIAMTESTKEY000001"
	iamSecretKey = "iam-Secret-Access-Key-Test-0001/abcdef"
	iamRegion    = "eu-west-3"
	iamUser      = "iam_app"
)

// iamBed is an IAM test's world: the real MariaDB with an account of its
// own, and the test kit's IAM-checking front that maps iamUser to it.
type iamBed struct {
	t     *testing.T
	srv   *testdb.Server
	front *rotatingmysqltest.IAMFront
	db    string
	creds *switchableCreds
}

// switchableCreds is an AWS credentials provider whose keys can change (a
// rotated role) or fail (an expired SSO session), counting its calls.
type switchableCreds struct {
	cur   atomic.Pointer[aws.Credentials]
	err   atomic.Pointer[error]
	calls atomic.Int64
}

func (s *switchableCreds) Retrieve(context.Context) (aws.Credentials, error) {
	s.calls.Add(1)
	if e := s.err.Load(); e != nil {
		return aws.Credentials{}, *e
	}
	return *s.cur.Load(), nil
}

func (s *switchableCreds) set(c aws.Credentials) { s.cur.Store(&c) }

func (s *switchableCreds) fail(err error) {
	if err == nil {
		s.err.Store(nil)
		return
	}
	s.err.Store(&err)
}

func newIAMBed(t *testing.T) *iamBed {
	t.Helper()
	srv := testdb.Require(t)
	const pw = "iam-Backend-Pw-1"
	user, db := srv.TempUser(t, pw)
	front, err := rotatingmysqltest.NewIAMFront(srv.Addr, iamRegion)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	keys := aws.Credentials{AccessKeyID: iamKeyID, SecretAccessKey: iamSecretKey, Source: "test"}
	front.AddCredentials(keys)
	front.AddUser(iamUser, user, pw)
	b := &iamBed{t: t, srv: srv, front: front, db: db, creds: &switchableCreds{}}
	b.creds.set(keys)
	return b
}

// awsConfig is the program's aws.Config: the switchable credentials, the
// front's region.
func (b *iamBed) awsConfig() aws.Config {
	return aws.Config{Region: iamRegion, Credentials: b.creds}
}

// target is USER@HOST:PORT/DB of the front.
func (b *iamBed) target() string {
	return fmt.Sprintf("%s@%s/%s", iamUser, b.front.Addr(), b.db)
}

// open opens a pool on the front through the Go API.
func (b *iamBed) open(opts ...rotatingmysql.Option) *sql.DB {
	b.t.Helper()
	cfg := rotatingmysql.NewIAMConfig(iamUser, b.front.Host(), b.front.Port(), b.db)
	_, db := openConfig(b.t, cfg, append([]rotatingmysql.Option{
		rotatingmysql.WithAWSConfig(b.awsConfig()),
		rotatingmysql.WithTLSConfig(b.front.ClientTLSConfig()),
	}, opts...)...)
	return db
}

// registerTLS registers the front's TLS configuration under a unique name
// for tls=NAME in a DSN.
func (b *iamBed) registerTLS() string {
	b.t.Helper()
	name := testdb.UniqueName("iamfront")
	if err := mysql.RegisterTLSConfig(name, b.front.ClientTLSConfig()); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return name
}

// setEnv points the SDK's default chain at the bed's keys and region, with
// no shared config file.
func (b *iamBed) setEnv() {
	b.t.Setenv("AWS_ACCESS_KEY_ID", iamKeyID)
	b.t.Setenv("AWS_SECRET_ACCESS_KEY", iamSecretKey)
	b.t.Setenv("AWS_SESSION_TOKEN", "")
	b.t.Setenv("AWS_REGION", iamRegion)
	b.t.Setenv("AWS_PROFILE", "")
	b.t.Setenv("AWS_CONFIG_FILE", "/nonexistent/rotatingmysql-test")
	b.t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/rotatingmysql-test")
	b.t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// TestIAMConnectWithDSN: sql.Open with USER@HOST:PORT/DB?source=iam&tls=NAME
// and the SDK's default chain logs in through the front, which checked the
// token, and queries the real server.
func TestIAMConnectWithDSN(t *testing.T) {
	b := newIAMBed(t)
	b.setEnv()
	db, err := sql.Open("rotatingmysql", b.target()+"?source=iam&tls="+b.registerTLS()+"&parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var user, dbname string
	var now time.Time
	if err := db.QueryRow("SELECT CURRENT_USER(), DATABASE(), NOW()").Scan(&user, &dbname, &now); err != nil {
		t.Fatal(err)
	}
	if dbname != b.db || !strings.HasPrefix(user, "u") {
		t.Errorf("logged in as %s to %s, want the mapped user on %s", user, dbname, b.db)
	}
	// The query path is the real server's: its errors arrive as they are.
	_, err = db.Exec("SELECT * FROM no_such_table")
	if n := mysqlErrNumber(err); n != 1146 {
		t.Errorf("query error %v, want the server's 1146", err)
	}
	if s := b.front.Stats(); s.Accepted != 1 || s.Refused != 0 || s.ByAccessKey[iamKeyID] != 1 {
		t.Errorf("front stats %+v, want 1 login accepted with %s", s, iamKeyID)
	}
}

// TestIAMPoolOutlivesTokens: a pool kept busy (every query a new
// connection) across several token lifetimes, shortened to 2 s at the front
// (X-Amz-Date has whole seconds, so a token may be up to 1 s older than it
// looks) and 300 ms of reuse at the driver, sees 0 errors; every login
// carried a token the front checked and found valid, and there were many
// different ones.
func TestIAMPoolOutlivesTokens(t *testing.T) {
	t.Parallel()
	b := newIAMBed(t)
	b.front.SetTokenLifetime(2 * time.Second)
	db := b.open(rotatingmysql.WithTTL(300 * time.Millisecond))
	db.SetMaxIdleConns(0)
	l := startLoad(db, 4)
	// Several lifetimes: wait for tokens, not for time, so that a slow
	// machine only makes the test longer.
	deadline := time.Now().Add(30 * time.Second)
	for b.front.Stats().DistinctTokens < 6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	l.stop(t)
	s := b.front.Stats()
	if s.DistinctTokens < 6 {
		t.Errorf("front saw %d distinct tokens, want at least 6 (several lifetimes)", s.DistinctTokens)
	}
	if s.Accepted < int(l.queries.Load()) {
		t.Errorf("front accepted %d logins for %d queries: some connection did not log in through it", s.Accepted, l.queries.Load())
	}
	t.Logf("front: %d accepted, %d refused (last: %s), %d tokens", s.Accepted, s.Refused, s.LastRefusal, s.DistinctTokens)
}

// TestIAMClockAhead: the front's clock jumps past the token's life; the
// next login is refused as expired, and the driver signs a new token and
// logs in, without an error reaching the application.
func TestIAMClockAhead(t *testing.T) {
	t.Parallel()
	b := newIAMBed(t)
	db := b.open()
	db.SetMaxIdleConns(0)
	ping(t, db)
	// Tokens are signed with the real clock, in whole seconds: let the
	// held one age, then run the front's clock ahead so that it has expired
	// (age >= lifetime + 1.5 s) while a token signed now has not
	// (age <= lifetime - 1.5 s, plus the login's own time).
	time.Sleep(4 * time.Second)
	const lifetime = 15 * time.Minute
	b.front.SetClock(func() time.Time { return time.Now().Add(lifetime - 2500*time.Millisecond) })
	ping(t, db)
	s := b.front.Stats()
	if s.Refused == 0 || !strings.Contains(s.LastRefusal, "expired") {
		t.Fatalf("front refused %d logins (last: %q), want the held token refused as expired", s.Refused, s.LastRefusal)
	}
	if s.Accepted != 2 || s.DistinctTokens != 2 {
		t.Errorf("front stats %+v, want 2 logins with 2 tokens (the driver signed a new one)", s)
	}
}

// TestIAMCredentialsRotated: the AWS credentials change mid-run (a role's
// new session) and the old key is revoked; the next token is signed with
// the new key, and the pool under load sees 0 errors.
func TestIAMCredentialsRotated(t *testing.T) {
	t.Parallel()
	b := newIAMBed(t)
	db := b.open(rotatingmysql.WithTTL(200 * time.Millisecond))
	db.SetMaxIdleConns(0)
	l := startLoad(db, 4)
	defer l.cancel()
	waitFor(t, "20 logins", func() bool { return b.front.Stats().Accepted >= 20 })
	const newKey = "AKIAIAMTESTKEY000002"
	rotated := aws.Credentials{AccessKeyID: newKey, SecretAccessKey: "iam-Secret-Access-Key-Test-0002/ghij", SessionToken: "iam-Session-Token-Test-0002"}
	b.front.AddCredentials(rotated)
	b.creds.set(rotated)
	b.front.RemoveCredentials(iamKeyID)
	waitFor(t, "20 logins with the new key", func() bool { return b.front.Stats().ByAccessKey[newKey] >= 20 })
	l.stop(t)
	t.Logf("front: %+v", b.front.Stats())
}

// TestIAMRefusedClearly: a token for the wrong region, a user the server
// does not know, a revoked key: the error is the server's 1045 (errors.As
// finds it) with a hint naming the IAM causes, and the front's reason.
func TestIAMRefusedClearly(t *testing.T) {
	t.Parallel()
	quick := rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second})
	for _, tc := range []struct {
		name   string
		setup  func(b *iamBed) []rotatingmysql.Option
		reason string
	}{
		{"wrong region", func(b *iamBed) []rotatingmysql.Option {
			return []rotatingmysql.Option{func(c *rotatingmysql.Config) error { c.Region = "us-east-2"; return nil }}
		}, "signed for region us-east-2, this database is in " + iamRegion},
		{"unknown user", func(b *iamBed) []rotatingmysql.Option {
			return []rotatingmysql.Option{func(c *rotatingmysql.Config) error { c.SecretID = "nobody@" + b.front.Addr(); return nil }}
		}, `user "nobody" is not identified by IAM`},
		{"revoked key", func(b *iamBed) []rotatingmysql.Option {
			b.front.RemoveCredentials(iamKeyID)
			return nil
		}, "unknown or revoked"},
		{"wrong secret key", func(b *iamBed) []rotatingmysql.Option {
			b.creds.set(aws.Credentials{AccessKeyID: iamKeyID, SecretAccessKey: "iam-Wrong-Secret-Key"})
			return nil
		}, "signature does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newIAMBed(t)
			opts := append([]rotatingmysql.Option{quick}, tc.setup(b)...)
			err := b.open(opts...).Ping()
			if n := mysqlErrNumber(err); n != erAccessDenied {
				t.Fatalf("error %v, want 1045", err)
			}
			var ce *rotatingmysql.ConnectError
			if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "rds-db:connect") {
				t.Errorf("error %v, want a ConnectError with the IAM hint", err)
			}
			for _, want := range []string{tc.reason, "IAM authentication token", "region"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if s := findSecret(fmt.Sprintf("%v %+v %#v", err, err, err), []string{iamSecretKey, "iam-Wrong-Secret-Key", "X-Amz-Signature"}); s != "" {
				t.Errorf("error shows %q: %v", s, err)
			}
			// A token signed again within the same second is the same
			// token, which the driver does not send again: a refusal that
			// is not expiry costs one failed login, not a burst.
			if s := b.front.Stats(); s.Refused < 1 || s.Accepted != 0 {
				t.Errorf("front stats %+v, want refusals only", s)
			}
		})
	}
}

// TestIAMCredentialsProviderFails: no credentials (an expired SSO session):
// the error wraps credsource.ErrIAMCredentials and the provider's error,
// and names the endpoint.
func TestIAMCredentialsProviderFails(t *testing.T) {
	t.Parallel()
	b := newIAMBed(t)
	b.creds.fail(errors.New("the SSO session has expired or is invalid"))
	err := b.open().Ping()
	if !errors.Is(err, credsource.ErrIAMCredentials) || !strings.Contains(err.Error(), "SSO session has expired") || !strings.Contains(err.Error(), iamUser+"@"+b.front.Addr()) {
		t.Fatalf("error %v, want ErrIAMCredentials with the provider's cause and the endpoint", err)
	}
	if s := b.front.Stats(); s.Accepted+s.Refused != 0 {
		t.Errorf("front saw %d logins, want none", s.Accepted+s.Refused)
	}
	b.creds.fail(nil)
	ping(t, b.open())
}

// TestIAMRequiresTLS: without TLS, or with TLS that does not verify the
// server, sql.Open refuses with an error saying why and how to fix it;
// allowInsecureIAM=true lifts the check (here over TLS without verification,
// against the front).
func TestIAMRequiresTLS(t *testing.T) {
	b := newIAMBed(t)
	b.setEnv()
	for _, tc := range []struct{ params, want string }{
		{"", "no TLS"},
		{"&tls=false", "no TLS"},
		{"&tls=preferred", "tls=preferred falls back to plain TCP"},
		{"&tls=skip-verify", "does not verify the server's certificate"},
		{"&tls=true&allowFallbackToPlaintext=true", "allowFallbackToPlaintext=true"},
	} {
		_, err := sql.Open("rotatingmysql", b.target()+"?source=iam"+tc.params)
		if err == nil || !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
			t.Fatalf("%s: sql.Open error %v, want ErrInvalidDSN", tc.params, err)
		}
		for _, want := range []string{tc.want, "WithTLSConfig", "mysql.RegisterTLSConfig", "global-bundle.pem", "allowInsecureIAM"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", tc.params, err, want)
			}
		}
	}
	db, err := sql.Open("rotatingmysql", b.target()+"?source=iam&tls=skip-verify&allowInsecureIAM=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ping(t, db)
}
