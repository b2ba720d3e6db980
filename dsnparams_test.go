package rotatingmysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

// TestPassedNames: the rule for names rotatingmysql does not read itself.
// go-sql-driver/mysql's parameters and session variables pass; the
// credential and address names in any case, near misses of rotatingmysql's
// names and names no session variable has are refused, with a suggestion
// where there is one.
func TestPassedNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // substring of the error; "" passes
	}{
		{"parseTime", ""},
		{"tls", ""},
		{"connectionAttributes", ""},
		{"sql_mode", ""},
		{"SQL_MODE", ""},
		{"time_zone", ""},
		{"wait_timeout", ""},
		{"net_read_timeout", ""},
		{"old_passwords", ""},
		{"hostname", ""},
		{"ports", `did you mean "port"`},
		{"hots", `did you mean "host"`},
		{"ttls", `did you mean "ttl"`},
		{"db_name", `did you mean "dbname"`},
		{"regoin", `did you mean "region"`},
		{"agentendpoint", `did you mean "agentEndpoint"? (parameter names are case-sensitive)`},
		{"retry_timeout", `did you mean "retryTimeout"`},
		{"maxloginattempt", `did you mean "maxLoginAttempts"`},
		{"isolatedCache", `did you mean "isolateCache"`},
		{"usernamekey", `did you mean "usernameKey"`},
		{"allowInsecureIam", `did you mean "allowInsecureIAM"`},
		{"Tls", `did you mean go-sql-driver/mysql's "tls"`},
		{"READTIMEOUT", `did you mean go-sql-driver/mysql's "readTimeout"`},
		{"PassWord", "credentials come from the secret"},
		{"pAsSwD", "credentials come from the secret"},
		{"Net", "the address comes from the secret"},
		{"Strict", "removed strict mode"},
		{"password ", "not a parameter"},
		{"@@session.sql_mode", "not a parameter"},
		{"1abc", "not a parameter"},
		{"a-b", "not a parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPassedName(tc.name)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("checkPassedName(%q) = %v, want it passed", tc.name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("checkPassedName(%q) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"ttl", "ttl", 0}, {"", "abc", 3}, {"abc", "", 3},
		{"hots", "host", 1}, {"tl", "ttl", 1}, {"ttls", "ttl", 1}, {"sort", "port", 1},
		{"maxloginattempt", "maxloginattempts", 1}, {"login_timeout", "logintimeout", 1},
		{"readtimeout", "retrytimeout", 3}, {"kitten", "sitting", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestServerSessionVariablesPass: every system variable of the real server,
// written the way a DSN would (lower case), goes through to the server,
// except the ones that are rotatingmysql's own parameters: the near-miss
// rule refuses no real variable.
func TestServerSessionVariablesPass(t *testing.T) {
	srv := testdb.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := srv.Root().QueryContext(ctx, "SELECT VARIABLE_NAME FROM information_schema.SESSION_VARIABLES")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		n++
		name = strings.ToLower(name)
		if _, own := ownParams[name]; own {
			continue
		}
		if err := checkPassedName(name); err != nil {
			t.Errorf("system variable %q refused: %v", name, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("the server listed %d variables, want hundreds", n)
	}
}

// TestMySQLParamNames: the names checkPassedName takes for
// go-sql-driver/mysql's are go-sql-driver/mysql's (a value it would send as a
// session variable is not in its Params), and none is also one of
// rotatingmysql's.
func TestMySQLParamNames(t *testing.T) {
	for _, name := range mysqlParams {
		mc, err := mysql.ParseDSN("/?" + name + "=x")
		if err == nil && mc.Params[name] != "" {
			t.Errorf("%q is not a go-sql-driver/mysql parameter: it would be a session variable", name)
		}
		if _, own := ownParams[name]; own {
			t.Errorf("%q is both rotatingmysql's and go-sql-driver/mysql's", name)
		}
	}
	for name := range refusedParams {
		if name != strings.ToLower(name) {
			t.Errorf("refusedParams key %q must be lower case", name)
		}
	}
}

// TestEmptyDSNConnector: the connector of the empty DSN fails every Connect
// with ErrEmptyDSN, holds no shared parts, and closes for free.
func TestEmptyDSNConnector(t *testing.T) {
	registry.mu.Lock()
	before := len(registry.parts)
	registry.mu.Unlock()

	c, err := theDriver.OpenConnector("")
	if err != nil {
		t.Fatalf("OpenConnector(\"\"): %v", err)
	}
	if c.Driver() != theDriver {
		t.Errorf("Driver() = %v", c.Driver())
	}
	for range 2 {
		conn, err := c.Connect(context.Background())
		if conn != nil || !errors.Is(err, ErrEmptyDSN) || !errors.Is(err, ErrInvalidDSN) {
			t.Fatalf("Connect = %v, %v; want ErrEmptyDSN", conn, err)
		}
	}
	if !strings.HasPrefix(ErrEmptyDSN.Error(), "rotatingmysql: ") {
		t.Errorf("ErrEmptyDSN = %q", ErrEmptyDSN)
	}
	cl, ok := c.(io.Closer)
	if !ok {
		t.Fatalf("%T is no io.Closer", c)
	}
	for range 2 {
		if err := cl.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if conn, err := theDriver.Open(""); conn != nil || !errors.Is(err, ErrEmptyDSN) {
		t.Errorf("Driver.Open(\"\") = %v, %v; want ErrEmptyDSN", conn, err)
	}
	registry.mu.Lock()
	after := len(registry.parts)
	registry.mu.Unlock()
	if after != before {
		t.Errorf("shared parts %d before, %d after", before, after)
	}
	// A DSN of parameters only is still refused at once.
	if _, err := theDriver.OpenConnector("?region=eu-west-1"); !errors.Is(err, ErrInvalidDSN) {
		t.Errorf("OpenConnector(?region=...) = %v, want ErrInvalidDSN", err)
	}
}

// staticSource is a custom source for the option tests; it is never asked.
type staticSource struct{ name string }

func (s *staticSource) Fetch(context.Context, credsource.Request) (*credsource.Secret, error) {
	return nil, errors.New("not used")
}

// TestIsolateCacheSpellings: every spelling of the setting, new and
// deprecated, has the same meaning: two connectors made from it share their
// source and cache exactly when the setting says share. The zero Config
// shares.
func TestIsolateCacheSpellings(t *testing.T) {
	src := &staticSource{name: "isolate"}
	for _, tc := range []struct {
		name    string
		dsn     string
		opt     Option
		set     func(*Config)
		isolate bool
	}{
		{name: "default", isolate: false},
		{name: "field IsolateCache", set: func(c *Config) { c.IsolateCache = true }, isolate: true},
		{name: "deprecated field Isolate", set: func(c *Config) { c.Isolate = true }, isolate: true},
		{name: "WithIsolateCache(true)", opt: WithIsolateCache(true), isolate: true},
		{name: "WithIsolateCache(false)", opt: WithIsolateCache(false), isolate: false},
		{name: "deprecated WithSharedCache(false)", opt: WithSharedCache(false), isolate: true},
		{name: "deprecated WithSharedCache(true)", opt: WithSharedCache(true), isolate: false},
		{name: "WithIsolateCache(false) after the deprecated field", set: func(c *Config) { c.Isolate = true }, opt: WithIsolateCache(false), isolate: false},
		{name: "DSN isolateCache=true", dsn: "?isolateCache=true", isolate: true},
		{name: "DSN isolateCache=false", dsn: "?isolateCache=false", isolate: false},
		{name: "deprecated DSN sharedCache=false", dsn: "?sharedCache=false", isolate: true},
		{name: "deprecated DSN sharedCache=true", dsn: "?sharedCache=true", isolate: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseDSN("isolate-test" + tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			if tc.set != nil {
				tc.set(cfg)
			}
			opts := []Option{WithCredentialSource(src)}
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			if err := cfg.Apply(opts...); err != nil {
				t.Fatal(err)
			}
			c1, err := NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if shared := c1.sh == c2.sh; shared == tc.isolate {
				t.Errorf("two connectors share their cache: %v, want %v", shared, !tc.isolate)
			}
			if cfg.isolated() != tc.isolate {
				t.Errorf("isolated() = %v, want %v", cfg.isolated(), tc.isolate)
			}
		})
	}
	if (&Config{}).isolated() {
		t.Error("the zero Config isolates; it must share")
	}
}

// TestCredentialSourceOption: WithCredentialSource and its deprecated name
// WithSource both set Config.CredentialSource and leave Config.Source alone.
func TestCredentialSourceOption(t *testing.T) {
	src := &staticSource{name: "custom"}
	for name, opt := range map[string]Option{"WithCredentialSource": WithCredentialSource(src), "WithSource": WithSource(src)} {
		cfg := NewConfig("app")
		cfg.Source = "env"
		if err := cfg.Apply(opt); err != nil {
			t.Fatal(err)
		}
		if cfg.CredentialSource != src || cfg.Source != "env" {
			t.Errorf("%s: CredentialSource %v Source %q", name, cfg.CredentialSource, cfg.Source)
		}
	}
}

// TestLoginTimeoutSetting: the default, the zero value of a hand-made
// Config, the option, the DSN and what is refused.
func TestLoginTimeoutSetting(t *testing.T) {
	if DefaultLoginTimeout != 30*time.Second {
		t.Errorf("DefaultLoginTimeout = %v", DefaultLoginTimeout)
	}
	for name, c := range map[string]*Config{
		"NewConfig":    NewConfig("app"),
		"NewIAMConfig": NewIAMConfig("app", "db.example.com", 0, ""),
		"zero Config":  {SecretID: "app"},
	} {
		if got := c.loginTimeout(); got != DefaultLoginTimeout {
			t.Errorf("%s: loginTimeout() = %v, want %v", name, got, DefaultLoginTimeout)
		}
		if err := c.validate(); err != nil && name != "NewIAMConfig" {
			t.Errorf("%s: validate: %v", name, err)
		}
	}
	c := NewConfig("app")
	if err := c.Apply(WithLoginTimeout(45 * time.Second)); err != nil || c.LoginTimeout != 45*time.Second || c.loginTimeout() != 45*time.Second {
		t.Errorf("WithLoginTimeout(45s): %v, LoginTimeout %v", err, c.LoginTimeout)
	}
	for _, d := range []time.Duration{0, -time.Second} {
		err := NewConfig("app").Apply(WithLoginTimeout(d))
		if !errors.Is(err, ErrInvalidDSN) || !strings.Contains(err.Error(), "loginTimeout must be positive") {
			t.Errorf("WithLoginTimeout(%v) = %v, want ErrInvalidDSN naming loginTimeout", d, err)
		}
	}
	bad := NewConfig("app")
	bad.LoginTimeout = -time.Second
	if _, err := NewConnector(bad); !errors.Is(err, ErrInvalidDSN) || !strings.Contains(err.Error(), "loginTimeout") {
		t.Errorf("NewConnector with LoginTimeout -1s = %v, want ErrInvalidDSN naming loginTimeout", err)
	}
	if out := fmt.Sprint(NewConfig("app")); !strings.Contains(out, "LoginTimeout:30s") {
		t.Errorf("Format: %s", out)
	}
}

// TestExportedErrorsNamePackage: the exported errors start with
// "rotatingmysql:".
func TestExportedErrorsNamePackage(t *testing.T) {
	for _, err := range []error{ErrInvalidDSN, ErrEmptyDSN, ErrNoUsableCredentials, errMySQLDSN} {
		if !strings.HasPrefix(err.Error(), "rotatingmysql: ") {
			t.Errorf("%q does not start with \"rotatingmysql: \"", err)
		}
	}
}
