package rotatingmysql

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
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
	{name: "iam rds endpoint", dsn: "app_user@mydb.cluster-abc123.eu-central-1.rds.amazonaws.com:3307/appdb?source=iam&tls=true",
		check: func(t *testing.T, c *Config) {
			if c.User != "app_user" || c.Host != "mydb.cluster-abc123.eu-central-1.rds.amazonaws.com" || c.Port != 3307 || c.DBName != "appdb" ||
				c.TTL != 14*time.Minute+30*time.Second || !c.MySQL.AllowCleartextPasswords {
				t.Errorf("got %+v cleartext %v", c, c.MySQL.AllowCleartextPasswords)
			}
		}},
	{name: "iam defaults: port 3306, no database", dsn: "app@db.internal?source=iam&tls=true&region=us-east-1&ttl=5m",
		check: func(t *testing.T, c *Config) {
			if c.User != "app" || c.Host != "db.internal" || c.Port != 3306 || c.DBName != "" || c.Region != "us-east-1" || c.TTL != 5*time.Minute {
				t.Errorf("got %+v", c)
			}
		}},
	{name: "iam ipv6 and escaped user", dsn: "a%40b@[::1]:3306/d?source=iam&tls=true", check: func(t *testing.T, c *Config) {
		if c.User != "a@b" || c.Host != "::1" || c.Port != 3306 {
			t.Errorf("got %+v", c)
		}
	}},
	{name: "iam insecure opt-in", dsn: "app@127.0.0.1:3306?source=iam&allowInsecureIAM=true", check: func(t *testing.T, c *Config) {
		if !c.AllowInsecureIAM || c.MySQL.TLSConfig != "" {
			t.Errorf("got %+v", c)
		}
	}},
	{name: "secret keys", dsn: "prod/app?usernameKey=DB_USER&passwordKey=DB_PASSWORD&hostKey=DB_HOST&portKey=DB_PORT&dbnameKey=DB_NAME",
		check: func(t *testing.T, c *Config) {
			if c.Keys != (credsource.Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST", Port: "DB_PORT", DBName: "DB_NAME"}) {
				t.Errorf("keys %+v", c.Keys)
			}
		}},
	{name: "iam without tls", dsn: "app@db.example.com:3306?source=iam", err: "no TLS"},
	{name: "iam tls preferred", dsn: "app@db.example.com?source=iam&tls=preferred", err: "tls=preferred falls back to plain TCP"},
	{name: "iam tls skip-verify", dsn: "app@db.example.com?source=iam&tls=skip-verify", err: "does not verify"},
	{name: "iam without user", dsn: "db.example.com:3306?source=iam&tls=true", err: "no database user"},
	{name: "iam without host", dsn: "app@/db?source=iam&tls=true", err: "no host"},
	{name: "iam bad port", dsn: "app@h:99999?source=iam&tls=true", err: "port \"99999\""},
	{name: "iam region disagrees with host", dsn: "app@mydb.abc.eu-west-1.rds.amazonaws.com?source=iam&tls=true&region=us-east-1", err: "RDS endpoint in eu-west-1"},
	{name: "iam ttl too long", dsn: "app@h?source=iam&tls=true&ttl=20m", err: "ttl=20m0s"},
	{name: "iam chained", dsn: "app@h?source=iam,secretsmanager&tls=true", err: "cannot be chained"},
	{name: "iam with secret keys", dsn: "app@h?source=iam&tls=true&usernameKey=U", err: "apply to sources that read a secret JSON"},
	{name: "iam host given twice", dsn: "app@h1?source=iam&tls=true&host=h2", err: "disagrees"},
	{name: "insecure opt-in without iam", dsn: "app?allowInsecureIAM=true", err: "applies to source=iam only"},
	{name: "empty key", dsn: "app?usernameKey=", err: `parameter "usernameKey"`},
	{name: "two fields one key", dsn: "app?usernameKey=k&passwordKey=k", err: `both read from the JSON key "k"`},
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
