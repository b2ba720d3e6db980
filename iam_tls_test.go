package rotatingmysql

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// TestCheckIAMSource: a program-given source that signs IAM tokens, alone
// or in a chain, is held to source=iam's TLS rule; it gets the clear-text
// password only when the rule holds, and a TTL shorter than a token's life.
// Other sources are left alone.
func TestCheckIAMSource(t *testing.T) {
	iam := &credsource.IAM{User: "u", Host: "db.example.com", Port: 3306}
	verified := &tls.Config{ServerName: "db.example.com"}
	for _, tc := range []struct {
		name    string
		src     credsource.Source
		opts    []Option
		wantErr string // "" for none
		iam     bool
	}{
		{"iam without TLS", iam, nil, "no TLS", true},
		{"iam in a chain without TLS", credsource.NewChain(&credsource.Env{Name: "X"}, iam), nil, "no TLS", true},
		{"iam with skip-verify", iam, []Option{WithTLSConfig(&tls.Config{InsecureSkipVerify: true})}, "skips certificate verification", true},
		{"iam with tls=preferred", iam, []Option{WithMySQLConfig(func(m *mysql.Config) error {
			m.TLSConfig, m.AllowFallbackToPlaintext = "preferred", true
			return nil
		})}, "falls back to plain TCP", true},
		{"iam with verified TLS", iam, []Option{WithTLSConfig(verified)}, "", true},
		{"iam insecure allowed", iam, []Option{WithAllowInsecureIAM(true)}, "", true},
		{"env source", &credsource.Env{Name: "X"}, nil, "", false},
		{"ttl too long", iam, []Option{WithTLSConfig(verified), WithTTL(credsource.IAMTokenLifetime + time.Minute)}, "ttl=", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig("ignored")
			if err := c.Apply(append([]Option{WithSource(tc.src)}, tc.opts...)...); err != nil {
				t.Fatal(err)
			}
			err := c.checkIAMSource()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "WithTLSConfig") && tc.wantErr != "ttl=" {
					t.Fatalf("error %v, want one saying %q and how to give TLS", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "allowCleartextPasswords") {
					t.Errorf("error %q suggests allowCleartextPasswords", err)
				}
				if c.MySQL.AllowCleartextPasswords {
					t.Error("clear-text passwords enabled although the rule failed")
				}
				return
			}
			if c.MySQL.AllowCleartextPasswords != tc.iam {
				t.Errorf("AllowCleartextPasswords = %v, want %v", c.MySQL.AllowCleartextPasswords, tc.iam)
			}
			if tc.iam && c.TTL != credsource.DefaultIAMTokenTTL {
				t.Errorf("TTL %v, want %v", c.TTL, credsource.DefaultIAMTokenTTL)
			}
		})
	}
}

// TestCleartextErrorNoAdvice: a real server that asks for the password in
// clear text (the test kit's IAM front, over TLS, as RDS does) and a client
// that does not allow it: go-sql-driver's error advises
// allowCleartextPasswords=1; explainDialError's text does not, says what to
// use instead, and errors.Is still finds mysql.ErrCleartextPassword.
func TestCleartextErrorNoAdvice(t *testing.T) {
	srv := testdb.Require(t)
	front, err := rotatingmysqltest.NewIAMFront(srv.Addr, "eu-west-3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	front.AddCredentials(aws.Credentials{AccessKeyID: "AKIDCLEARTEXT", SecretAccessKey: "cleartext-test-secret-key"})
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = "iam_user", "not-a-token", "tcp", front.Addr()
	mc.TLS = front.ClientTLSConfig()
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	_, dialErr := conn.Connect(context.Background())
	if !errors.Is(dialErr, mysql.ErrCleartextPassword) {
		t.Fatalf("dial error %v, want mysql.ErrCleartextPassword", dialErr)
	}
	err = explainDialError(dialErr)
	if !errors.Is(err, mysql.ErrCleartextPassword) {
		t.Errorf("explained error %v lost mysql.ErrCleartextPassword", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "allowCleartextPasswords=1") || !strings.HasPrefix(msg, "rotatingmysql: ") {
		t.Errorf("explained error %q: want ours, without the driver's advice", msg)
	}
	for _, want := range []string{"source=iam", "TLS", "do not set allowCleartextPasswords"} {
		if !strings.Contains(msg, want) {
			t.Errorf("explained error %q lacks %q", msg, want)
		}
	}
	me := &mysql.MySQLError{Number: 1045}
	if explainDialError(me) != error(me) || explainDialError(nil) != nil {
		t.Error("explainDialError changed an error that is not the clear-text one")
	}
}
