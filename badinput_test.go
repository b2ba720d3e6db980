package rotatingmysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Bad input: each case is refused with an error that says what is wrong and
// where (parameter, secret, version, field), never repeats a password, and
// never panics.

const badInputPW = "bad-Input-Secret-Pw-9"

// TestBadDSN: sql.Open refuses a malformed DSN at once, without I/O, with an
// error wrapping ErrInvalidDSN that names the parameter.
func TestBadDSN(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app-AbCdEf"
	for _, tc := range []struct{ name, dsn, want string }{
		{"parameters only", "?region=eu-west-1", "secret id is empty"},
		{"ARN of another service", "arn:aws:ssm:eu-west-1:123456789012:parameter/db", "not a Secrets Manager secret ARN"},
		{"ARN without region", "arn:aws:secretsmanager::123456789012:secret:prod/app", "not a Secrets Manager secret ARN"},
		{"ARN of no secret", "arn:aws:secretsmanager:eu-west-1:123456789012:prod/app", "not a Secrets Manager secret ARN"},
		{"truncated ARN", "arn:aws:secretsmanager:eu-west-1", "not a Secrets Manager secret ARN"},
		{"port not a number", arn + "?port=mysql", `parameter "port"`},
		{"port out of range", arn + "?port=65536", `parameter "port"`},
		{"ttl without unit", arn + "?ttl=900", `parameter "ttl"`},
		{"ttl negative", arn + "?ttl=-5m", `parameter "ttl"`},
		{"retryTimeout zero", arn + "?retryTimeout=0s", `parameter "retryTimeout"`},
		{"maxLoginAttempts too large", arn + "?maxLoginAttempts=1000", `parameter "maxLoginAttempts"`},
		{"bad escaping", arn + "?host=db%2", `parameter "host": bad escaping`},
		{"password in the DSN", arn + "?password=" + badInputPW, `parameter "password": credentials come from the secret`},
		{"passwd in the DSN", arn + "?passwd=" + badInputPW, `parameter "passwd"`},
		{"user in the DSN", arn + "?user=admin", `parameter "user"`},
		{"PASSWORD in capitals (SET PASSWORD would change it)", arn + "?PASSWORD=" + badInputPW, `parameter "PASSWORD": credentials come from the secret`},
		{"Passwd in mixed case", arn + "?Passwd=" + badInputPW, `parameter "Passwd": credentials come from the secret`},
		{"User in mixed case", arn + "?User=admin", `parameter "User": credentials come from the secret`},
		{"net in the DSN", arn + "?net=tcp", `parameter "net": the address comes from the secret`},
		{"ADDR in the DSN", arn + "?ADDR=db:3306", `parameter "ADDR": the address comes from the secret`},
		{"own parameter in another case", arn + "?TTL=5m", `parameter "TTL": unknown parameter; did you mean "ttl"?`},
		{"Source in another case", "DB_SECRET?Source=env", `did you mean "source"?`},
		{"own parameter misspelt", arn + "?maxLoginAttempt=3", `parameter "maxLoginAttempt": unknown parameter; did you mean "maxLoginAttempts"?`},
		{"mysql parameter in another case", arn + "?TLS=true", `parameter "TLS": unknown parameter; did you mean go-sql-driver/mysql's "tls"?`},
		{"a name no session variable has", arn + "?@@global.max_connections=1", "nor a session variable name"},
		{"parameter without a value", arn + "?tls", `parameter "tls" has no value`},
		{"session variable twice", arn + "?sql_mode=ANSI&SQL_MODE=TRADITIONAL", `parameters "sql_mode" and "SQL_MODE" name the same setting`},
		{"strict", arn + "?strict=true", `parameter "strict": go-sql-driver/mysql removed strict mode`},
		{"a '/' in a value would drop tls=true", arn + "?tls=true&connectionAttributes=svc:api(v2)/prod", `parameter "connectionAttributes": go-sql-driver/mysql cannot read a '/' in a value`},
		{"loginTimeout zero", arn + "?loginTimeout=0s", `parameter "loginTimeout": must be a positive duration`},
		{"isolateCache and sharedCache", arn + "?isolateCache=true&sharedCache=false", "sharedCache is the deprecated spelling of isolateCache"},
		{"unknown source", arn + "?source=vault", `unknown source "vault"`},
		{"unknown source in a chain", arn + "?source=secretsmanager,vault", `unknown source "vault"`},
		{"source given twice", "DB_SECRET?source=env&source=file", `parameter "source" is given more than once`},
		{"own parameter given twice", arn + "?ttl=1m&ttl=2m", `parameter "ttl" is given more than once`},
		{"agent endpoint without the agent source", arn + "?agentEndpoint=http://127.0.0.1:2773", `apply to source=agent, but source is "secretsmanager"`},
		{"agent setting with another source", "DB_SECRET?source=env&allowRemoteAgent=true", `apply to source=agent, but source is "env"`},
		{"agent endpoint not loopback", arn + "?source=agent&agentEndpoint=http://10.0.0.8:2773", "10.0.0.8"},
		{"agent endpoint not a URL", arn + "?source=agent&agentEndpoint=http://%5B::1", "is not a base URL"},
		{"allowRemoteAgent not a bool", arn + "?source=agent&allowRemoteAgent=sure", `parameter "allowRemoteAgent"`},
		{"mysql parameter of the wrong type", arn + "?parseTime=maybe", `parameter "parseTime": invalid bool`},
		{"mysql duration without unit", arn + "?readTimeout=30", `parameter "readTimeout"`},
		{"unregistered tls config", arn + "?tls=corporate", `parameter "tls"`},
		{"iam without TLS", "app@db.example.com:3306/appdb?source=iam", "source=iam: no TLS"},
		{"iam with tls=preferred", "app@db.example.com?source=iam&tls=preferred", "tls=preferred falls back to plain TCP"},
		{"iam with tls=skip-verify", "app@db.example.com?source=iam&tls=skip-verify", "does not verify the server's certificate"},
		{"iam without user", "db.example.com?source=iam&tls=true", "no database user"},
		{"iam with a bad port", "app@db.example.com:mysql?source=iam&tls=true", `port "mysql"`},
		{"iam with a password", "app@db.example.com?source=iam&tls=true&password=" + badInputPW, `parameter "password"`},
		{"iam region disagrees with the RDS host", "app@mydb.abc.eu-west-1.rds.amazonaws.com?source=iam&tls=true&region=eu-west-2", "RDS endpoint in eu-west-1"},
		{"iam ttl past the token's life", "app@db.example.com?source=iam&tls=true&ttl=15m1s", "RDS refuses it 15m0s after it is signed"},
		{"iam in a chain", "app@db.example.com?source=env,iam&tls=true", "cannot be chained"},
		{"iam with secret keys", "app@db.example.com?source=iam&tls=true&passwordKey=PW", "apply to sources that read a secret JSON"},
		{"allowInsecureIAM not a bool", "app@h?source=iam&allowInsecureIAM=yes-please", `parameter "allowInsecureIAM"`},
		{"allowInsecureIAM without iam", arn + "?allowInsecureIAM=true", "applies to source=iam only"},
		{"empty key parameter", arn + "?passwordKey=", `parameter "passwordKey": must name a JSON key`},
		{"one key for two fields", arn + "?usernameKey=login&hostKey=login", `the username and the host are both read from the JSON key "login"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open("rotatingmysql", tc.dsn)
			if err == nil {
				db.Close()
				t.Fatalf("sql.Open(%q) succeeded, want an error containing %q", tc.dsn, tc.want)
			}
			if !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
				t.Errorf("error %v does not wrap ErrInvalidDSN", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), badInputPW) {
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
}

// TestMySQLDSNByMistake: a go-sql-driver/mysql DSN given to rotatingmysql
// is refused at sql.Open with what to pass instead, and the error never
// shows the password it holds, under any verb.
func TestMySQLDSNByMistake(t *testing.T) {
	for _, dsn := range []string{
		"app:" + badInputPW + "@tcp(db:3306)/app",
		"app:" + badInputPW + "@tcp(db.example.com:3306)/app?parseTime=true&tls=true",
		"app:" + badInputPW + "@/app",
		"app:" + badInputPW + "?x@tcp(db)/app",
		"app:" + badInputPW + "@unix(/var/run/mysqld/mysqld.sock)/app?strict=true",
		"tcp(db:3306)/app",
		"app@tcp(db:3306)/app",
		"app:" + badInputPW + "@db.example.com:3306/app",
		"mysql://app:" + badInputPW + "@db.example.com:3306/app",
	} {
		db, err := sql.Open("rotatingmysql", dsn)
		if err == nil {
			db.Close()
			t.Errorf("sql.Open of a go-sql-driver/mysql DSN succeeded")
			continue
		}
		if !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
			t.Errorf("error %v does not wrap ErrInvalidDSN", err)
		}
		for _, want := range []string{"go-sql-driver/mysql DSN", "SECRET_ID[?PARAMS]", "?host=HOST", "the user and password come from the secret"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%q"} {
			if out := fmt.Sprintf(verb, err); strings.Contains(out, badInputPW) || strings.Contains(out, "db:3306") {
				t.Errorf("error under %s repeats the DSN: %s", verb, out)
			}
		}
	}
}

// TestEmptyDSN: sql.Open(name, "") succeeds, as driver wrappers need
// (XSAM/otelsql's Register opens and closes it); every connection then
// fails with ErrEmptyDSN, and closing leaves no goroutine behind.
func TestEmptyDSN(t *testing.T) {
	before := goleak.IgnoreCurrent()
	db, err := sql.Open("rotatingmysql", "")
	if err != nil {
		t.Fatalf("sql.Open(\"\"): %v", err)
	}
	err = db.Ping()
	if !errors.Is(err, rotatingmysql.ErrEmptyDSN) || !errors.Is(err, rotatingmysql.ErrInvalidDSN) {
		t.Errorf("Ping = %v, want ErrEmptyDSN", err)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "rotatingmysql: ") {
		t.Errorf("Ping error %q does not start with \"rotatingmysql: \"", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	goleak.VerifyNone(t, before)
}

// TestUnknownDSNParameter: a parameter neither rotatingmysql nor the mysql
// driver knows is, as with go-sql-driver/mysql, a session variable set on
// connect: a real one takes effect, and one the server does not know fails
// the first connection with the server's error naming it (1193). (A near
// miss of rotatingmysql's own names is refused at sql.Open: TestBadDSN.)
func TestUnknownDSNParameter(t *testing.T) {
	t.Parallel()
	b := newBed(t, "unknown-Param-Pw")
	// The DSN parsed as sql.Open parses it; the emulator's aws.Config in Go.
	db := b.openParams("no_such_variable=3")
	err := db.Ping()
	if n := mysqlErrNumber(err); n != 1193 || !strings.Contains(err.Error(), "no_such_variable") {
		t.Errorf("error %d %v, want the server's 1193 naming it", n, err)
	}
	db = b.openParams("sql_mode=%27ANSI_QUOTES%27&tls=false&connectionAttributes=svc:api(v2)%2Fprod")
	var mode string
	if err := db.QueryRow("SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "ANSI_QUOTES" {
		t.Errorf("sql_mode %q, want ANSI_QUOTES", mode)
	}
}

// TestBadSecret: a secret whose content cannot be used fails the connection
// with a *credsource.SecretError naming the secret, the version and the
// field, without the password, and without refetching on every connection.
func TestBadSecret(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 60<<10)
	for _, tc := range []struct {
		name, doc string
		binary    bool
		field     string // "" for a whole-document error
		want      string
	}{
		{name: "not JSON", doc: "username=app password=" + badInputPW, want: "not valid JSON"},
		{name: "truncated JSON", doc: `{"username":"app","password":"` + badInputPW, want: "not valid JSON"},
		{name: "JSON array", doc: `["app","` + badInputPW + `"]`, want: "not a JSON object"},
		{name: "empty", doc: " ", want: "SecretString is empty"},
		{name: "missing username", doc: `{"password":"` + badInputPW + `"}`, field: "username", want: "missing or empty"},
		{name: "missing password", doc: `{"username":"app"}`, field: "password", want: "missing or empty"},
		{name: "empty password", doc: `{"username":"app","password":""}`, field: "password", want: "missing or empty"},
		{name: "null password", doc: `{"username":"app","password":null}`, field: "password", want: "missing or empty"},
		{name: "username of the wrong type", doc: `{"username":42,"password":"` + badInputPW + `"}`, field: "username", want: "must be a JSON string"},
		{name: "password of the wrong type", doc: `{"username":"app","password":{"v":"` + badInputPW + `"}}`, field: "password", want: "must be a JSON string"},
		{name: "port out of range", doc: `{"username":"app","password":"` + badInputPW + `","port":99999}`, field: "port", want: "from 1 to 65535"},
		{name: "port not a number", doc: `{"username":"app","password":"` + badInputPW + `","port":"three"}`, field: "port", want: "number"},
		{name: "SecretBinary only", doc: `{"username":"app","password":"` + badInputPW + `"}`, binary: true, want: "holds only SecretBinary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, "bad-Secret-Real-Pw")
			var vid string
			var err error
			if tc.binary {
				vid, err = b.sm.Store().PutSecretBinary(b.arn, []byte(tc.doc), nil)
			} else {
				vid, err = b.sm.Store().PutSecretValue(b.arn, tc.doc, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			db := b.open()
			db.SetMaxIdleConns(0)
			for range 5 {
				err = db.Ping()
				var se *credsource.SecretError
				if !errors.As(err, &se) {
					t.Fatalf("error %T %v, want a *credsource.SecretError", err, err)
				}
				if se.Field != tc.field || se.VersionID != vid {
					t.Fatalf("error names field %q version %q, want %q %q: %v", se.Field, se.VersionID, tc.field, vid, err)
				}
				for _, part := range []string{b.arn, vid, tc.field, tc.want} {
					if !strings.Contains(err.Error(), part) {
						t.Fatalf("error %q does not contain %q", err, part)
					}
				}
				if findSecret(fmt.Sprintf("%v %+v %#v", err, err, err), []string{badInputPW, "bad-Secret-Real-Pw"}) != "" {
					t.Fatalf("error shows a password: %v", err)
				}
			}
			if n := b.apiCalls(); n != 1 {
				t.Errorf("5 connections made %d API calls, want 1 (the answer is cached for the TTL)", n)
			}
		})
	}
	t.Run("huge unknown field is ignored", func(t *testing.T) {
		b := newBed(t, "bad-Secret-Huge-Pw")
		doc := fmt.Sprintf(`{"engine":"mariadb","host":%q,"port":%d,"username":%q,"password":%q,"dbname":%q,"notes":%q}`,
			b.host, b.port, b.user, b.password, b.db, huge)
		if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
			t.Fatal(err)
		}
		ping(t, b.open())
	})
	t.Run("huge password is refused by the server, not echoed", func(t *testing.T) {
		b := newBed(t, "bad-Secret-Huge-Pw-2")
		hugePW := "huge-" + strings.Repeat("p", 60<<10)
		doc := fmt.Sprintf(`{"host":%q,"port":%d,"username":%q,"password":%q,"dbname":%q}`, b.host, b.port, b.user, hugePW, b.db)
		if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := b.open(rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second})).PingContext(ctx)
		if n := mysqlErrNumber(err); n != erAccessDenied {
			t.Fatalf("error %d %v, want 1045", n, err)
		}
		if strings.Contains(fmt.Sprintf("%v %+v", err, err), "pppppppppppppppp") {
			t.Fatal("error shows the password")
		}
	})
}

// agentToken of the bad-answer tests: distinctive, so that a leak shows.
const badAgentToken = "tok-Bad-Agent-Secret-31"

// agentAnswer is a canned answer of a misbehaving agent.
type agentAnswer struct {
	status      int
	contentType string
	body        string
}

// badAgent serves the fake agent's answers, or a canned bad one while set.
type badAgent struct {
	ag  *rotatingmysqltest.Agent
	bad atomic.Pointer[agentAnswer]
}

func (b *badAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := b.bad.Load()
	if a == nil {
		b.ag.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// TestBadAgentAnswers: the agent (or whatever listens on its port) answers
// with an HTML error page, truncated JSON, a body of another content type,
// 429 or 5xx. On the first connection the application gets an error that
// names the secret, the stage and the endpoint and says what was wrong,
// without the token or a password; once a good version is cached, the same
// answers do not fail any connection (the cached password still works).
func TestBadAgentAnswers(t *testing.T) {
	t.Parallel()
	b := newBed(t, "bad-Agent-Real-Pw")
	ag, err := rotatingmysqltest.NewAgent(b.sm.Store(), badAgentToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Close() })
	ba := &badAgent{ag: ag}
	srv := httptest.NewServer(ba)
	t.Cleanup(srv.Close)
	dsn := b.arn + "?source=agent&agentEndpoint=" + srv.URL
	// The DSN as sql.Open parses it; the token in Go, not the environment.
	open := func(t *testing.T, dsn string) *sql.DB {
		t.Helper()
		cfg, err := rotatingmysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		_, db := openConfig(t, cfg, rotatingmysql.WithAgentToken(badAgentToken))
		return db
	}
	secrets := []string{badAgentToken, b.password, badInputPW}

	for _, tc := range []struct {
		name string
		agentAnswer
		want string
	}{
		{"HTML error page", agentAnswer{502, "text/html",
			"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"},
			"answered 502"},
		{"HTML page with status 200", agentAnswer{200, "text/html; charset=utf-8",
			"<!DOCTYPE html><html><body><p>It works!</p></body></html>"},
			"not a JSON object"},
		{"truncated JSON", agentAnswer{200, "application/json",
			`{"ARN":"` + b.arn + `","VersionId":"v9","SecretString":"{\"username\":\"app\",\"password\":\"` + badInputPW},
			"not valid JSON"},
		{"wrong content type", agentAnswer{200, "application/xml",
			`<?xml version="1.0"?><GetSecretValueResult><SecretString>` + badInputPW + `</SecretString></GetSecretValueResult>`},
			"not a JSON object"},
		{"429 connection limit", agentAnswer{429, "text/plain", "Connection limit exceeded"}, "connection limit (429)"},
		{"500", agentAnswer{500, "application/json", `{"__type":"InternalFailure"}`}, "answered 500 InternalFailure"},
		{"503 plain text", agentAnswer{503, "text/plain", "Service Unavailable"}, "answered 503"},
		{"504 timeout", agentAnswer{504, "application/json", `{"__type":"TimeoutError","message":"request timed out"}`}, "answered 504 TimeoutError"},
		{"5xx carrying a secret", agentAnswer{500, "application/json",
			`{"ARN":"` + b.arn + `","SecretString":"{\"username\":\"app\",\"password\":\"` + badInputPW + `\"}"}`},
			"answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := tc.agentAnswer
			ba.bad.Store(&answer)
			defer ba.bad.Store(nil)
			db := open(t, dsn)
			err := db.Ping()
			if err == nil {
				t.Fatal("connected through a bad answer")
			}
			for _, part := range []string{b.arn, "AWSCURRENT", srv.URL, tc.want} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
			if s := findSecret(fmt.Sprintf("%v %+v %#v", err, err, err), secrets); s != "" {
				t.Errorf("error shows a secret: %v", err)
			}
			t.Logf("%v", err)

			// Warm: the cached version serves through the bad answers.
			ba.bad.Store(nil)
			db2 := open(t, dsn+"&ttl=50ms")
			db2.SetMaxIdleConns(0)
			ping(t, db2)
			ba.bad.Store(&answer)
			for range 5 {
				time.Sleep(60 * time.Millisecond) // past the TTL
				if err := db2.Ping(); err != nil {
					t.Fatalf("with a good version cached: %v", err)
				}
			}
		})
	}
}
