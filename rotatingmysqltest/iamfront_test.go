package rotatingmysqltest

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

const (
	frontKeyID  = "AKIAFRONTTEST0000001"
	frontSecret = "front-Secret-Key-0001"
	frontRegion = "ap-south-2"
)

// newTestFront starts a front on the private MariaDB that maps "iam_user"
// to a fresh account, and returns it with that account's database.
func newTestFront(t *testing.T) (*IAMFront, string) {
	t.Helper()
	srv := testdb.Require(t)
	user, db := srv.TempUser(t, "front-Backend-Pw")
	f, err := NewIAMFront(srv.Addr, frontRegion)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.AddCredentials(aws.Credentials{AccessKeyID: frontKeyID, SecretAccessKey: frontSecret})
	f.AddUser("iam_user", user, "front-Backend-Pw")
	return f, db
}

// token signs a token with BuildAuthToken, as a client does.
func token(t *testing.T, endpoint, region, user, keyID, secret string) string {
	t.Helper()
	tok, err := auth.BuildAuthToken(context.Background(), endpoint, region, user, credentials.NewStaticCredentialsProvider(keyID, secret, ""))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// frontLogin logs in to the front with go-sql-driver/mysql (over TLS unless
// plain) and runs SELECT DATABASE().
func frontLogin(f *IAMFront, user, password, db string, plain bool) (string, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Net, cfg.Addr = "tcp", f.Addr()
	cfg.AllowCleartextPasswords = true
	cfg.Timeout = 5 * time.Second
	if !plain {
		cfg.TLS = f.ClientTLSConfig()
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return "", err
	}
	pool := sql.OpenDB(c)
	defer pool.Close()
	var got string
	err = pool.QueryRow("SELECT DATABASE()").Scan(&got)
	return got, err
}

func TestIAMFrontChecksTokens(t *testing.T) {
	f, db := newTestFront(t)
	good := token(t, f.Addr(), frontRegion, "iam_user", frontKeyID, frontSecret)
	if got, err := frontLogin(f, "iam_user", good, db, false); err != nil || got != db {
		t.Fatalf("valid token: %q %v", got, err)
	}
	_, port, _ := net.SplitHostPort(f.Addr())
	otherPort := strconv.Itoa(must(strconv.Atoi(port)) + 1)
	for _, tc := range []struct {
		name, user, tok, reason string
		plain                   bool
	}{
		{"not a token", "iam_user", "hunter2", "not an IAM authentication token", false},
		{"other user's token", "iam_user", token(t, f.Addr(), frontRegion, "someone", frontKeyID, frontSecret), `token is for DBUser "someone"`, false},
		{"user without IAM", "someone", token(t, f.Addr(), frontRegion, "someone", frontKeyID, frontSecret), `user "someone" is not identified by IAM`, false},
		{"other region", "iam_user", token(t, f.Addr(), "us-east-1", "iam_user", frontKeyID, frontSecret), "signed for region us-east-1", false},
		{"other endpoint", "iam_user", token(t, "127.0.0.1:"+otherPort, frontRegion, "iam_user", frontKeyID, frontSecret), "names endpoint 127.0.0.1:" + otherPort, false},
		{"unknown key", "iam_user", token(t, f.Addr(), frontRegion, "iam_user", "AKIAUNKNOWN", frontSecret), "unknown or revoked", false},
		{"wrong secret", "iam_user", token(t, f.Addr(), frontRegion, "iam_user", frontKeyID, "wrong"), "signature does not match", false},
		{"altered token", "iam_user", strings.Replace(good, "X-Amz-Expires=900", "X-Amz-Expires=899", 1), "signature does not match", false},
		{"extra parameter", "iam_user", good + "&Extra=1", "signature does not match", false},
		{"without TLS", "iam_user", good, "requires TLS", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.Stats().Refused
			_, err := frontLogin(f, tc.user, tc.tok, db, tc.plain)
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1045 || string(me.SQLState[:]) != "28000" {
				t.Fatalf("error %v, want 1045 (28000)", err)
			}
			s := f.Stats()
			if s.Refused != before+1 || !strings.Contains(s.LastRefusal, tc.reason) || !strings.Contains(me.Message, tc.reason) {
				t.Errorf("refusal %q (message %q), want it to say %q", s.LastRefusal, me.Message, tc.reason)
			}
			if strings.Contains(me.Message, "X-Amz-Signature") || strings.Contains(me.Message, frontSecret) {
				t.Errorf("refusal shows the token or the key: %s", me.Message)
			}
		})
	}
	if s := f.Stats(); s.Accepted != 1 || s.DistinctTokens != 1 {
		t.Errorf("stats %+v, want 1 login accepted", s)
	}
}

func TestIAMFrontClock(t *testing.T) {
	f, db := newTestFront(t)
	tok := token(t, f.Addr(), frontRegion, "iam_user", frontKeyID, frontSecret)
	var offset atomic.Int64
	f.SetClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	for _, tc := range []struct {
		offset time.Duration
		reason string // "" when accepted
	}{
		{0, ""},
		{14 * time.Minute, ""},
		{16 * time.Minute, "token expired"},
		{-6 * time.Minute, "in the future"},
		{-4 * time.Minute, ""},
	} {
		offset.Store(int64(tc.offset))
		_, err := frontLogin(f, "iam_user", tok, db, false)
		if tc.reason == "" {
			if err != nil {
				t.Errorf("clock %v: %v", tc.offset, err)
			}
			continue
		}
		if err == nil || !strings.Contains(f.Stats().LastRefusal, tc.reason) {
			t.Errorf("clock %v: error %v, refusal %q, want %q", tc.offset, err, f.Stats().LastRefusal, tc.reason)
		}
	}
	// A shorter lifetime than X-Amz-Expires.
	offset.Store(int64(3 * time.Second))
	f.SetTokenLifetime(2 * time.Second)
	if _, err := frontLogin(f, "iam_user", tok, db, false); err == nil || !strings.Contains(f.Stats().LastRefusal, "valid 2s") {
		t.Errorf("lifetime 2s, 3s later: %v (%s)", err, f.Stats().LastRefusal)
	}
}

// TestIAMFrontRelaysAndCloses: the relayed session is the server's (session
// variables, prepared statements, errors), and Close ends open sessions.
func TestIAMFrontRelaysAndCloses(t *testing.T) {
	f, db := newTestFront(t)
	cfg := mysql.NewConfig()
	cfg.User, cfg.DBName, cfg.Net, cfg.Addr = "iam_user", db, "tcp", f.Addr()
	cfg.Passwd = token(t, f.Addr(), frontRegion, "iam_user", frontKeyID, frontSecret)
	cfg.AllowCleartextPasswords, cfg.TLS, cfg.MultiStatements = true, f.ClientTLSConfig(), true
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(c)
	defer pool.Close()
	pool.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := pool.ExecContext(ctx, "SET @x = 41; CREATE TABLE t (v MEDIUMTEXT); INSERT INTO t VALUES (REPEAT('a', 100000))"); err != nil {
		t.Fatal(err)
	}
	var x, n int
	if err := pool.QueryRowContext(ctx, "SELECT @x + ?, (SELECT LENGTH(v) FROM t)", 1).Scan(&x, &n); err != nil || x != 42 || n != 100000 {
		t.Fatalf("relayed session: %d %d %v", x, n, err)
	}
	if _, err := pool.ExecContext(ctx, "SELECT nope FROM t"); err == nil {
		t.Fatal("bad query succeeded")
	} else if me := new(mysql.MySQLError); !errors.As(err, &me) || me.Number != 1054 {
		t.Fatalf("error %v, want the server's 1054", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.PingContext(ctx); err == nil {
		t.Error("the session survived Close")
	}
}

// TestIAMFrontRefusesExpiredCredentials: a fresh token signed with session
// credentials is accepted while they are valid and refused, with a reason
// naming the expiry, once the front's clock passes their Expires.
func TestIAMFrontRefusesExpiredCredentials(t *testing.T) {
	f, db := newTestFront(t)
	const key, secret = "ASIAFRONTSESSION0001", "front-Session-Secret-0001"
	base := time.Now()
	f.AddCredentials(aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, CanExpire: true, Expires: base.Add(2 * time.Minute)})
	tok := token(t, f.Addr(), frontRegion, "iam_user", key, secret)
	if _, err := frontLogin(f, "iam_user", tok, db, false); err != nil {
		t.Fatalf("token of valid credentials refused: %v", err)
	}
	f.SetClock(func() time.Time { return time.Now().Add(3 * time.Minute) })
	_, err := frontLogin(f, "iam_user", tok, db, false)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("token of expired credentials: %v, want 1045", err)
	}
	if s := f.Stats(); !strings.Contains(s.LastRefusal, "expired at") {
		t.Errorf("refusal %q does not say the credentials expired", s.LastRefusal)
	}
}
