package rotatingmysql

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

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
		if c.SecretID != testARN || c.TTL != 15*time.Minute || c.Retry.MaxLogins != 5 || c.Retry.Timeout != 10*time.Second ||
			c.LoginTimeout != DefaultLoginTimeout || c.IsolateCache {
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
	{name: "loginTimeout", dsn: testARN + "?loginTimeout=45s", check: func(t *testing.T, c *Config) {
		if c.LoginTimeout != 45*time.Second || c.loginTimeout() != 45*time.Second {
			t.Errorf("loginTimeout %v", c.LoginTimeout)
		}
	}},
	{name: "isolateCache=true", dsn: testARN + "?isolateCache=true", check: isolated(true)},
	{name: "isolateCache=false", dsn: testARN + "?isolateCache=false", check: isolated(false)},
	{name: "deprecated sharedCache=false isolates", dsn: testARN + "?sharedCache=false", check: isolated(true)},
	{name: "deprecated sharedCache=true shares", dsn: testARN + "?sharedCache=true", check: isolated(false)},
	// Issue 19: a value holding "(...)/" made go-sql-driver/mysql read
	// every parameter before it as an address, tls=true included. Escaped,
	// the '/' reaches the value and TLS stays on.
	{name: "tls with an escaped slash after it", dsn: testARN + "?tls=true&connectionAttributes=svc:api(v2)%2Fprod",
		check: tlsAndAttributes("svc:api(v2)/prod")},
	{name: "tls with an escaped slash before it", dsn: testARN + "?connectionAttributes=svc:api(v2)%2Fprod&tls=true",
		check: tlsAndAttributes("svc:api(v2)/prod")},
	{name: "escaped slash in a session variable", dsn: testARN + "?time_zone=%27Europe%2FParis%27&tls=true", check: func(t *testing.T, c *Config) {
		if c.MySQL.Params["time_zone"] != "'Europe/Paris'" || c.MySQL.TLSConfig != "true" {
			t.Errorf("params %v tls %q", c.MySQL.Params, c.MySQL.TLSConfig)
		}
	}},
	{name: "session variables near no own name", dsn: testARN + "?autocommit=1&wait_timeout=60&max_statement_time=5&innodb_lock_wait_timeout=5",
		check: func(t *testing.T, c *Config) {
			if len(c.MySQL.Params) != 4 {
				t.Errorf("params %v", c.MySQL.Params)
			}
		}},
	{name: "secret name with @ and /", dsn: "team@prod/app", check: func(t *testing.T, c *Config) {
		if c.SecretID != "team@prod/app" {
			t.Errorf("secret id %q", c.SecretID)
		}
	}},
	{name: "secret name user@/db shape", dsn: "team@/app", check: func(t *testing.T, c *Config) {}},
	{name: "ARN with @ and :", dsn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a:b@tcp(x)/y-AbCdEf", check: func(t *testing.T, c *Config) {}},
	{name: "file path", dsn: "/run/secrets/db.json?source=file", check: func(t *testing.T, c *Config) {}},
	{name: "file path with : before @", dsn: "/mnt/c:/secrets/a@b.json?source=env,file", check: func(t *testing.T, c *Config) {}},
	{name: "iam with @ in a parameter", dsn: "app@[::1]:3306/d?source=iam&tls=true&connectionAttributes=owner:me@example.com", check: func(t *testing.T, c *Config) {
		if c.MySQL.ConnectionAttributes != "owner:me@example.com" {
			t.Errorf("attributes %q", c.MySQL.ConnectionAttributes)
		}
	}},
	{name: "secret name with : and @ in a parameter", dsn: "prod/app?connectionAttributes=owner:me@example.com", check: func(t *testing.T, c *Config) {}},
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
	// Names without case: go-sql-driver/mysql turns an unknown name into
	// SET NAME = VALUE on every connection; SET PASSWORD changes it.
	{name: "PASSWORD upper case", dsn: testARN + "?PASSWORD=hunter2", err: `parameter "PASSWORD": credentials come from the secret`},
	{name: "Passwd mixed case", dsn: testARN + "?Passwd=hunter2", err: `parameter "Passwd": credentials come from the secret`},
	{name: "USER", dsn: testARN + "?USER=admin", err: `parameter "USER": credentials come from the secret`},
	{name: "username", dsn: testARN + "?username=admin", err: `parameter "username": credentials come from the secret`},
	{name: "net", dsn: testARN + "?net=tcp", err: `parameter "net": the address comes from the secret`},
	{name: "ADDR", dsn: testARN + "?ADDR=db:3306", err: `parameter "ADDR": the address comes from the secret`},
	{name: "strict does not panic", dsn: testARN + "?strict=true", err: `parameter "strict": go-sql-driver/mysql removed strict mode`},
	{name: "TTL", dsn: testARN + "?TTL=5m", err: `parameter "TTL": unknown parameter; did you mean "ttl"?`},
	{name: "Source", dsn: "app?Source=env", err: `parameter "Source": unknown parameter; did you mean "source"?`},
	{name: "maxLoginAttempt", dsn: testARN + "?maxLoginAttempt=3", err: `parameter "maxLoginAttempt": unknown parameter; did you mean "maxLoginAttempts"?`},
	{name: "login_timeout", dsn: testARN + "?login_timeout=5s", err: `did you mean "loginTimeout"?`},
	{name: "refusedhold", dsn: testARN + "?refusedhold=1m", err: `did you mean "refusedHold"?`},
	{name: "tl", dsn: testARN + "?tl=1m", err: `did you mean "ttl"?`},
	{name: "ParseTime", dsn: testARN + "?ParseTime=true", err: `parameter "ParseTime": unknown parameter; did you mean go-sql-driver/mysql's "parseTime"?`},
	{name: "TLS", dsn: testARN + "?TLS=true", err: `did you mean go-sql-driver/mysql's "tls"?`},
	{name: "name with a space", dsn: testARN + "?GLOBAL max_connections=1", err: `parameter "GLOBAL max_connections": not a parameter`},
	{name: "backquoted name", dsn: testARN + "?`password`=hunter2", err: "not a parameter"},
	{name: "global variable", dsn: testARN + "?@@global.max_connections=1", err: "not a parameter"},
	{name: "empty name", dsn: testARN + "?=1", err: `parameter "": not a parameter`},
	{name: "no value", dsn: testARN + "?tls", err: `parameter "tls" has no value`},
	{name: "session variable twice in two cases", dsn: testARN + "?sql_mode=ANSI&SQL_MODE=TRADITIONAL", err: `parameters "sql_mode" and "SQL_MODE" name the same setting`},
	{name: "mysql parameter twice", dsn: testARN + "?tls=true&tls=false", err: `parameter "tls" is given more than once`},
	{name: "sharedCache and isolateCache", dsn: testARN + "?sharedCache=false&isolateCache=true", err: "give isolateCache only"},
	{name: "isolateCache not a bool", dsn: testARN + "?isolateCache=yes-please", err: `parameter "isolateCache": must be true or false`},
	{name: "loginTimeout zero", dsn: testARN + "?loginTimeout=0s", err: `parameter "loginTimeout": must be a positive duration`},
	{name: "loginTimeout without unit", dsn: testARN + "?loginTimeout=30", err: `parameter "loginTimeout"`},
	// Issue 19: refused rather than dropped.
	{name: "raw slash after tls", dsn: testARN + "?tls=true&connectionAttributes=svc:api(v2)/prod", err: `parameter "connectionAttributes": go-sql-driver/mysql cannot read a '/'`},
	{name: "raw slash before tls", dsn: testARN + "?connectionAttributes=svc:api(v2)/prod&tls=true", err: `parameter "connectionAttributes"`},
	{name: "raw slash with @", dsn: testARN + "?tls=true&sql_mode=a@b/c", err: `parameter "sql_mode"`},
	{name: "parameters that conflict", dsn: testARN + "?interpolateParams=true&collation=gbk_chinese_ci", err: "go-sql-driver/mysql parameters"},
	// A go-sql-driver/mysql DSN passed by mistake: refused without
	// repeating it (the password is hunter2).
	{name: "mysql DSN", dsn: "app:hunter2@tcp(db:3306)/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN with params", dsn: "app:hunter2@tcp(db:3306)/app?parseTime=true&strict=true", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN without address", dsn: "app:hunter2@/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN with ? in the password", dsn: "app:hunter2?x@tcp(db)/app?tls=true", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN over a socket", dsn: "app:hunter2@unix(/tmp/mysql.sock)/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN without user", dsn: "tcp(db:3306)/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN without tcp()", dsn: "app:hunter2@db.example.com:3306/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql DSN without tcp(), ? in the password", dsn: "app:hunter2?x@db:3306/app", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "mysql URL", dsn: "mysql://app:hunter2@db.example.com:3306/app?tls=true", err: "looks like a go-sql-driver/mysql DSN"},
	{name: "user and password only", dsn: "app:hunter2@db", err: "looks like a go-sql-driver/mysql DSN"},
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

// isolated checks Config.IsolateCache.
func isolated(want bool) func(t *testing.T, c *Config) {
	return func(t *testing.T, c *Config) {
		if c.IsolateCache != want || c.isolated() != want {
			t.Errorf("IsolateCache %v, want %v", c.IsolateCache, want)
		}
	}
}

// tlsAndAttributes checks that tls=true and connectionAttributes are both
// in effect.
func tlsAndAttributes(attrs string) func(t *testing.T, c *Config) {
	return func(t *testing.T, c *Config) {
		if c.MySQL.TLSConfig != "true" || c.MySQL.ConnectionAttributes != attrs || c.MySQL.Addr != "" {
			t.Errorf("tls %q attributes %q addr %q", c.MySQL.TLSConfig, c.MySQL.ConnectionAttributes, c.MySQL.Addr)
		}
	}
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
				for _, verb := range []string{"%v", "%+v", "%#v", "%q"} {
					if strings.Contains(fmt.Sprintf(verb, err), "hunter2") {
						t.Errorf("error under %s repeats a password: %v", verb, err)
					}
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

// FuzzParseDSN: ParseDSN never panics, wraps ErrInvalidDSN in every error,
// and for any DSN it accepts, every go-sql-driver/mysql parameter in it is
// in effect in the connector's mysql.Config: what go-sql-driver/mysql makes
// of that parameter alone (mysql.ParseDSN, formatted back with FormatDSN)
// is in what the connector dials with (issue 19: a value holding "(...)/"
// made tls=true vanish).
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
		if c.SecretID == "" || c.TTL <= 0 || c.Retry.MaxLogins < 1 || c.MySQL == nil || c.loginTimeout() <= 0 {
			t.Fatalf("ParseDSN(%q) accepted an unusable config: %+v", dsn, c)
		}
		if c.MySQL.User != "" || c.MySQL.Passwd != "" || c.MySQL.Addr != "" || c.MySQL.DBName != "" {
			t.Fatalf("ParseDSN(%q): the mysql config has a user, password, address or database of its own", dsn)
		}
		conn, err := NewConnector(c)
		if err != nil {
			t.Fatalf("NewConnector after ParseDSN(%q): %v", dsn, err)
		}
		defer conn.Close()
		checkMySQLParamsInEffect(t, dsn, conn.cfg.MySQL)
	})
}

// FuzzMySQLParamsInEffect: whatever parameters surround tls=true, a DSN
// that ParseDSN accepts dials with TLS, and every go-sql-driver/mysql
// parameter in it is in effect (issue 19).
func FuzzMySQLParamsInEffect(f *testing.F) {
	for _, seed := range [][2]string{
		{"connectionAttributes=svc:api(v2)/prod", ""},
		{"", "connectionAttributes=svc:api(v2)/prod"},
		{"connectionAttributes=svc:api(v2)%2Fprod", "parseTime=true"},
		{"sql_mode=a@b/c", "x=(y)/"},
		{"time_zone=%27%2B00:00%27", "loc=UTC&readTimeout=5s"},
		{"interpolateParams=true", "collation=utf8mb4_general_ci"},
		{"a=u:p@tcp(h)", "b=/d"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, before, after string) {
		dsn := testARN + "?" + before + "&tls=true&" + after
		c, err := ParseDSN(dsn)
		if err != nil {
			if !errors.Is(err, ErrInvalidDSN) {
				t.Fatalf("ParseDSN(%q) error %v does not wrap ErrInvalidDSN", dsn, err)
			}
			return
		}
		if c.MySQL.TLSConfig != "true" {
			t.Fatalf("ParseDSN(%q) accepted it without TLS: tls is %q", dsn, c.MySQL.TLSConfig)
		}
		checkMySQLParamsInEffect(t, dsn, c.MySQL)
	})
}

// checkMySQLParamsInEffect checks that each go-sql-driver/mysql parameter of
// dsn, parsed alone by go-sql-driver/mysql, has its effect in mc.
func checkMySQLParamsInEffect(t *testing.T, dsn string, mc *mysql.Config) {
	t.Helper()
	_, have, _ := strings.Cut(mc.FormatDSN(), "?")
	haveSet := make(map[string]bool)
	for _, p := range strings.Split(have, "&") {
		haveSet[p] = true
	}
	_, query, _ := strings.Cut(dsn, "?")
	for _, kv := range strings.Split(query, "&") {
		key, _, _ := strings.Cut(kv, "=")
		if _, own := ownParams[key]; own || kv == "" {
			continue
		}
		alone, err := mysql.ParseDSN("/?" + kv)
		if err != nil {
			t.Fatalf("ParseDSN(%q) accepted parameter %q, which go-sql-driver/mysql refuses alone: %v", dsn, key, err)
		}
		if key == "tls" && mc.TLSConfig != alone.TLSConfig {
			t.Fatalf("ParseDSN(%q): tls is %q, want %q", dsn, mc.TLSConfig, alone.TLSConfig)
		}
		_, want, _ := strings.Cut(alone.FormatDSN(), "?")
		for _, p := range strings.Split(want, "&") {
			if p != "" && !haveSet[p] {
				t.Fatalf("ParseDSN(%q): parameter %q is not in effect: %q missing from %q", dsn, key, p, have)
			}
		}
	}
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
