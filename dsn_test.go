package rotatingmysql

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const testARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app-AbCdEf"

var dsnTests = []struct {
	name  string
	dsn   string
	check func(t *testing.T, c *Config)
	err   string // substring of the error; empty means success
}{
	{name: "arn only", dsn: testARN, check: func(t *testing.T, c *Config) {
		if c.SecretID != testARN || c.TTL != 15*time.Minute || c.Retry.MaxLogins != 5 || c.Retry.Timeout != 10*time.Second {
			t.Errorf("defaults: %+v", c)
		}
	}},
	{name: "name with own params", dsn: "prod/app?region=us-west-2&host=proxy.example.com&port=3307&dbname=orders&ttl=5m&retryTimeout=3s&maxLoginAttempts=3",
		check: func(t *testing.T, c *Config) {
			if c.SecretID != "prod/app" || c.Region != "us-west-2" || c.Host != "proxy.example.com" || c.Port != 3307 ||
				c.DBName != "orders" || c.TTL != 5*time.Minute || c.Retry.Timeout != 3*time.Second || c.Retry.MaxLogins != 3 {
				t.Errorf("got %+v", c)
			}
		}},
	{name: "mysql params pass through", dsn: testARN + "?parseTime=true&loc=Local&timeout=2s&readTimeout=5s&interpolateParams=true&charset=utf8mb4",
		check: func(t *testing.T, c *Config) {
			m := c.MySQL
			if !m.ParseTime || m.Timeout != 2*time.Second || m.ReadTimeout != 5*time.Second || !m.InterpolateParams || m.Loc != time.Local {
				t.Errorf("mysql config not applied: %+v", m)
			}
			if m.Addr != "" || m.User != "" || m.Passwd != "" {
				t.Errorf("placeholder leaked into mysql config: addr %q user %q", m.Addr, m.User)
			}
		}},
	{name: "unknown param is a session variable", dsn: testARN + "?sql_mode=%27ANSI%27&time_zone=%27%2B00:00%27",
		check: func(t *testing.T, c *Config) {
			if c.MySQL.Params["sql_mode"] != "'ANSI'" || c.MySQL.Params["time_zone"] != "'+00:00'" {
				t.Errorf("params: %v", c.MySQL.Params)
			}
		}},
	{name: "tls name kept for per-host resolution", dsn: testARN + "?tls=true", check: func(t *testing.T, c *Config) {
		if c.MySQL.TLSConfig != "true" || c.MySQL.TLS != nil {
			t.Errorf("tls: name %q config %v", c.MySQL.TLSConfig, c.MySQL.TLS)
		}
	}},
	{name: "source alias api", dsn: "app?source=api", check: func(t *testing.T, c *Config) {}},
	{name: "empty", dsn: "", err: "secret id is empty"},
	{name: "params only", dsn: "?region=us-east-1", err: "secret id is empty"},
	{name: "bad arn service", dsn: "arn:aws:ssm:us-east-1:123456789012:parameter/x", err: "not a Secrets Manager secret ARN"},
	{name: "arn without region", dsn: "arn:aws:secretsmanager::123456789012:secret:x", err: "not a Secrets Manager secret ARN"},
	{name: "malformed arn", dsn: "arn:aws:secretsmanager", err: "not a Secrets Manager secret ARN"},
	{name: "bad port", dsn: "app?port=70000", err: `parameter "port"`},
	{name: "port not a number", dsn: "app?port=abc", err: `parameter "port"`},
	{name: "bad ttl", dsn: "app?ttl=-1s", err: `parameter "ttl"`},
	{name: "ttl without unit", dsn: "app?ttl=60", err: `parameter "ttl"`},
	{name: "bad retryTimeout", dsn: "app?retryTimeout=0s", err: `parameter "retryTimeout"`},
	{name: "bad maxLoginAttempts", dsn: "app?maxLoginAttempts=0", err: `parameter "maxLoginAttempts"`},
	{name: "unknown source", dsn: "app?source=vault", err: `unknown source "vault"`},
	{name: "password param refused", dsn: "app?password=hunter2", err: `parameter "password": credentials come from the secret`},
	{name: "bad mysql bool", dsn: "app?parseTime=maybe", err: "invalid DSN"},
	{name: "bad mysql duration", dsn: "app?readTimeout=soon", err: "invalid DSN"},
	{name: "unknown tls config", dsn: "app?tls=nosuchconfig", err: "invalid DSN"},
	{name: "bad escaping", dsn: "app?host=%zz", err: `parameter "host": bad escaping`},
}

func TestParseDSN(t *testing.T) {
	for _, tt := range dsnTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseDSN(tt.dsn)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("ParseDSN(%q) = %+v, want error containing %q", tt.dsn, c, tt.err)
				}
				if !errors.Is(err, ErrInvalidDSN) {
					t.Errorf("error %v does not wrap ErrInvalidDSN", err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q, want it to contain %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error repeats a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDSN(%q): %v", tt.dsn, err)
			}
			tt.check(t, c)
		})
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, tt := range dsnTests {
		f.Add(tt.dsn)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := ParseDSN(dsn)
		if err != nil {
			if !errors.Is(err, ErrInvalidDSN) {
				t.Fatalf("ParseDSN(%q) error %v does not wrap ErrInvalidDSN", dsn, err)
			}
			return
		}
		if c.SecretID == "" || c.TTL <= 0 || c.Retry.MaxLogins < 1 || c.MySQL == nil {
			t.Fatalf("ParseDSN(%q) accepted an unusable config: %+v", dsn, c)
		}
		if _, err := NewConnector(c); err != nil {
			t.Fatalf("NewConnector after ParseDSN(%q): %v", dsn, err)
		}
	})
}

func TestConfigFormatRedacts(t *testing.T) {
	c, err := ParseDSN(testARN + "?host=db.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		if !strings.Contains(out, "db.example.com") || strings.Contains(out, "AWSConfig") {
			t.Errorf("%s: %s", verb, out)
		}
	}
}
