package rotatingmysql_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/retry"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// testParallel is how many parallel tests run at once by default.
const testParallel = 16

// testdbMain adapts testdb.Run to goleak.VerifyTestMain, which checks for
// leaked goroutines once the tests have passed and the server has stopped.
type testdbMain struct{ m *testing.M }

// Run sets -parallel, unless given, and runs the tests with testdb.Run.
func (r testdbMain) Run() int {
	if !flag.Parsed() {
		flag.Parse() // for flag.Visit; m.Run parses only once
	}
	// The integration tests mostly wait (for a TTL, a hold, a fault to
	// end) and their loads are paced: more of them than GOMAXPROCS (the
	// default of -parallel) run at once, unless -parallel is given.
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !given && p != nil {
		if err := p.Value.Set(strconv.Itoa(testParallel)); err != nil {
			panic(err)
		}
	}
	return testdb.Run(r.m)
}

// leakLog is a bytes.Buffer safe for the concurrent writes of a logger.
type leakLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *leakLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *leakLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// errorSink collects every error the application saw, with its time.
type errorSink struct {
	mu   sync.Mutex
	errs []error
	at   []time.Time
}

func (s *errorSink) add(err error) {
	if err == nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
	s.at = append(s.at, now)
}

func (s *errorSink) all() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// after returns the errors seen after t.
func (s *errorSink) after(t time.Time) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []error
	for i, at := range s.at {
		if at.After(t) {
			out = append(out, s.errs[i])
		}
	}
	return out
}

// secretForms returns the ways a secret could show up in text: as is, as
// JSON and Go string escaping would write it, and in hex.
func secretForms(secret string) []string {
	j, _ := json.Marshal(secret)
	forms := []string{
		secret,
		strings.Trim(string(j), `"`),
		strings.Trim(fmt.Sprintf("%q", secret), `"`),
		hex.EncodeToString([]byte(secret)),
		strings.ToUpper(hex.EncodeToString([]byte(secret))),
	}
	if len(secret) >= 16 {
		forms = append(forms, secret[:len(secret)/2], secret[len(secret)/2:])
	}
	return forms
}

// findSecret returns the first secret of secrets found in text, or "".
func findSecret(text string, secrets []string) string {
	for _, s := range secrets {
		for _, f := range secretForms(s) {
			if strings.Contains(text, f) {
				return s
			}
		}
	}
	return ""
}

// passwords returns every password any version of the bed's secret held.
func (b *bed) passwords() []string {
	b.t.Helper()
	vs, err := b.sm.Store().ListVersions(b.arn)
	if err != nil {
		b.t.Fatal(err)
	}
	pws := []string{b.password}
	for _, v := range vs {
		var doc struct{ Password string }
		if json.Unmarshal([]byte(v.SecretString), &doc) == nil && doc.Password != "" {
			pws = append(pws, doc.Password)
		}
	}
	return pws
}

// pingN pings db n times and records the errors.
func pingN(db *sql.DB, n int, sink *errorSink) {
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sink.add(db.PingContext(ctx))
		cancel()
	}
}

// TestNoPasswordInLogsOrErrors runs the rotation and failure scenarios with
// a debug-level logger (JSON and text) and checks that no password of any
// version appears in the log or in any error the application saw, under
// every fmt verb.
func TestNoPasswordInLogsOrErrors(t *testing.T) {
	t.Parallel()
	testdb.Require(t) // every scenario needs the server
	var logs leakLog
	logger := slog.New(teeHandler(
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	sink := &errorSink{}
	var (
		mu      sync.Mutex
		secrets []string
	)
	collect := func(s ...string) {
		mu.Lock()
		defer mu.Unlock()
		secrets = append(secrets, s...)
	}
	ctx := context.Background()
	opts := func(extra ...rotatingmysql.Option) []rotatingmysql.Option {
		return append([]rotatingmysql.Option{rotatingmysql.WithLogger(logger)}, extra...)
	}
	// A short retry bound keeps the failing scenarios quick.
	quick := rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: time.Second})

	// The scenarios run in parallel, each on its own bed; the group ends
	// when they all have.
	t.Run("scenarios", func(t *testing.T) {
		t.Run("single-user rotation under load", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Initial-Pw-1")
			db := b.open(opts(rotatingmysql.WithTTL(300 * time.Millisecond))...)
			db.SetMaxIdleConns(0)
			l := dialLoad(db, 8, 15*time.Second, sink)
			b.rot.Pause = 500 * time.Millisecond
			err := b.rot.Rotate(ctx)
			time.Sleep(500 * time.Millisecond)
			l.finish()
			if err != nil {
				t.Fatal(err)
			}
			collect(b.passwords()...)
		})
		t.Run("stuck rotation uses AWSPENDING", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Stuck-Pw-2")
			db := b.open(opts()...)
			db.SetMaxIdleConns(0)
			pingN(db, 1, sink)
			if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx)); err != nil {
				t.Fatal(err)
			}
			pingN(db, 5, sink)
			collect(b.passwords()...)
		})
		t.Run("multi-user rotation", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Multi-Pw-3")
			b.rot.Strategy = rotatingmysqltest.MultiUser
			db := b.open(opts(rotatingmysql.WithTTL(200 * time.Millisecond))...)
			db.SetMaxIdleConns(0)
			l := dialLoad(db, 4, 15*time.Second, sink)
			err := b.rot.Rotate(ctx)
			time.Sleep(400 * time.Millisecond)
			l.finish()
			if err != nil {
				t.Fatal(err)
			}
			collect(b.passwords()...)
		})
		t.Run("wrong everywhere", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Real-Pw-4")
			b.putWrong("leak-Wrong-Current-4", "leak-Wrong-Pending-4")
			db := b.open(opts(quick)...)
			pingN(db, 2, sink)
			collect(b.passwords()...)
		})
		t.Run("malformed secret holding a password", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Real-Pw-5")
			for _, doc := range []string{
				"username=app password=leak-Malformed-Pw-5",
				`{"username":"app","password":"leak-Truncated-Pw-5`,
				`{"username":"app","password":"leak-Badport-Pw-5","port":"x"}`,
				`{"username":["app"],"password":"leak-Badtype-Pw-5"}`,
			} {
				if _, err := b.sm.Store().PutSecretValue(b.arn, doc, nil); err != nil {
					t.Fatal(err)
				}
				pingN(b.open(opts()...), 1, sink)
			}
			collect(b.passwords()...)
			collect("leak-Malformed-Pw-5", "leak-Truncated-Pw-5", "leak-Badport-Pw-5", "leak-Badtype-Pw-5")
		})
		t.Run("Secrets Manager down and throttled", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Outage-Pw-6")
			db := b.open(opts(rotatingmysql.WithTTL(50*time.Millisecond), quick)...)
			db.SetMaxIdleConns(0)
			pingN(db, 1, sink)
			b.sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "ThrottlingException", Times: 3})
			time.Sleep(60 * time.Millisecond)
			pingN(db, 2, sink)
			if err := b.sm.SetDown(true); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
			pingN(db, 2, sink)
			// A rotation during the outage: the new password cannot be learned.
			if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx)); err != nil {
				t.Fatal(err)
			}
			pingN(db, 1, sink)
			if err := b.sm.SetDown(false); err != nil {
				t.Fatal(err)
			}
			pingN(db, 1, sink)
			collect(b.passwords()...)
		})
		t.Run("account locked", func(t *testing.T) {
			t.Parallel()
			b := newBed(t, "leak-Locked-Pw-7")
			if _, err := b.srv.Root().ExecContext(ctx, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", b.user)); err != nil {
				t.Fatal(err)
			}
			pingN(b.open(opts()...), 1, sink)
			collect(b.passwords()...)
		})

		// source=iam: tokens are passwords, and the AWS secret access key and
		// session token sign them.
		iamSecrets := func(b *iamBed) {
			collect(b.front.Tokens()...)
			collect(iamSecretKey)
		}
		t.Run("iam pool across token lifetimes", func(t *testing.T) {
			t.Parallel()
			b := newIAMBed(t)
			b.front.SetTokenLifetime(time.Second) // some logins meet an expired token
			db := b.open(opts(rotatingmysql.WithTTL(200 * time.Millisecond))...)
			db.SetMaxIdleConns(0)
			l := dialLoad(db, 4, 15*time.Second, sink)
			waitFor(t, "4 IAM tokens", func() bool { return b.front.Stats().DistinctTokens >= 4 })
			l.finish()
			iamSecrets(b)
		})
		t.Run("iam refused, wrong secret key, session token", func(t *testing.T) {
			t.Parallel()
			b := newIAMBed(t)
			b.creds.set(aws.Credentials{AccessKeyID: iamKeyID, SecretAccessKey: "leak-Iam-Wrong-Secret-Key-8", SessionToken: "leak-Iam-Session-Token-8"})
			pingN(b.open(opts(quick)...), 2, sink)
			iamSecrets(b)
			collect("leak-Iam-Wrong-Secret-Key-8", "leak-Iam-Session-Token-8")
		})
		t.Run("iam credentials provider fails", func(t *testing.T) {
			t.Parallel()
			b := newIAMBed(t)
			b.creds.fail(errors.New("no EC2 IMDS role found"))
			pingN(b.open(opts(quick)...), 1, sink)
			iamSecrets(b)
		})
	})

	text := logs.String()
	// The scenarios happened: the log has events of every level and the
	// application saw the failures it should have.
	for _, want := range []string{"secret fetched", "login refused", "using AWSPENDING", "gave up", "fetch failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q: the scenarios did not run as intended", want)
		}
	}
	errs := sink.all()
	if len(errs) < 5 {
		t.Errorf("only %d errors seen: the failure scenarios did not fail", len(errs))
	}
	if len(secrets) < 25 {
		t.Fatalf("only %d passwords collected", len(secrets))
	}
	if s := findSecret(text, secrets); s != "" {
		t.Errorf("the log holds a password (%d bytes of log)", len(text))
		for _, line := range strings.Split(text, "\n") {
			if findSecret(line, []string{s}) != "" {
				t.Errorf("leaking line: %s", line)
				break
			}
		}
	}
	for _, err := range errs {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if out := fmt.Sprintf(verb, err); findSecret(out, secrets) != "" {
				t.Errorf("error under %s holds a password: %T %v", verb, err, err)
			}
		}
	}
	t.Logf("%d passwords checked against %d bytes of log and %d errors", len(secrets), len(text), len(errs))
}

// TestFormatRedactsPasswords prints every exported configuration,
// connector, error and secret type under every fmt verb and checks that no
// password appears.
func TestFormatRedactsPasswords(t *testing.T) {
	t.Parallel()
	b := newBed(t, "fmt-Initial-Pw-1")
	ctx := context.Background()
	cfg := rotatingmysql.NewConfig(b.arn)
	if err := cfg.Apply(
		rotatingmysql.WithAWSConfig(b.sm.AWSConfig()),
		rotatingmysql.WithLogger(slog.New(slog.DiscardHandler)),
	); err != nil {
		t.Fatal(err)
	}
	c, err := rotatingmysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0)
	ping(t, db)
	// A stuck rotation: the connector holds two versions, one refused.
	if err := errors.Join(b.rot.CreateSecret(ctx), b.rot.SetSecret(ctx), b.rot.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
	ping(t, db)

	// A ConnectError with attempts.
	w := newBed(t, "fmt-Real-Pw-2")
	w.putWrong("fmt-Wrong-Current-2", "fmt-Wrong-Pending-2")
	connErr := w.open(rotatingmysql.WithRetryPolicy(retry.Policy{Timeout: 2 * time.Second})).Ping()
	var ce *rotatingmysql.ConnectError
	if !errors.As(connErr, &ce) || len(ce.Attempts) == 0 {
		t.Fatalf("want a ConnectError with attempts, got %v", connErr)
	}

	aws := b.sm.AWSConfig()
	src := &credsource.SecretsManager{SecretID: b.arn, AWSConfig: &aws}
	sec, err := src.Fetch(ctx, credsource.Request{Stage: credsource.Pending})
	if err != nil {
		t.Fatal(err)
	}
	cache := credsource.NewCache(src, credsource.CacheOptions{})
	if _, err := cache.Get(ctx, credsource.Current); err != nil {
		t.Fatal(err)
	}
	_, secErr := credsource.ParseCredentials("id", "v1", []byte(`{"username":"u","password":"fmt-Parse-Pw-3","port":"x"}`))
	if secErr == nil {
		t.Fatal("ParseCredentials accepted a bad port")
	}
	dsnCfg, err := rotatingmysql.ParseDSN(b.arn + "?host=h&port=3307&ttl=1m&parseTime=true&usernameKey=DB_USER")
	if err != nil {
		t.Fatal(err)
	}

	// source=iam: the configuration, the connector, the source and a token.
	ib := newIAMBed(t)
	iamDB := ib.open()
	iamDB.SetMaxIdleConns(0)
	ping(t, iamDB)
	iamCfg := rotatingmysql.NewIAMConfig(iamUser, ib.front.Host(), ib.front.Port(), ib.db)
	if err := iamCfg.Apply(rotatingmysql.WithAWSConfig(ib.awsConfig()), rotatingmysql.WithTLSConfig(ib.front.ClientTLSConfig())); err != nil {
		t.Fatal(err)
	}
	iamConn, err := rotatingmysql.NewConnector(iamCfg)
	if err != nil {
		t.Fatal(err)
	}
	iamAWS := ib.awsConfig()
	iamSrc := &credsource.IAM{User: iamUser, Host: ib.front.Host(), Port: ib.front.Port(), Region: iamRegion, AWSConfig: &iamAWS}
	tok, err := iamSrc.Fetch(ctx, credsource.Request{})
	if err != nil {
		t.Fatal(err)
	}

	values := map[string]any{
		"*Config":                    cfg,
		"Config":                     *cfg,
		"*Config from ParseDSN":      dsnCfg,
		"*Connector":                 c,
		"Stats":                      c.Stats(),
		"*ConnectError":              ce,
		"ConnectError":               *ce,
		"Attempt":                    ce.Attempts[0],
		"connect error chain":        connErr,
		"*credsource.Secret":         sec,
		"credsource.Secret":          *sec,
		"credsource.Credentials":     sec.Creds,
		"*credsource.Credentials":    &sec.Creds,
		"*credsource.SecretsManager": src,
		"credsource.CacheStats":      cache.Stats(),
		"*credsource.SecretError":    secErr,
		"retry.Policy":               cfg.Retry,
		"*Config source=iam":         iamCfg,
		"*Connector source=iam":      iamConn,
		"*credsource.IAM":            iamSrc,
		"credsource.IAM":             iamSrc,
		"*credsource.Secret (token)": tok,
		"credsource.Secret (token)":  *tok,
		"IAMFrontStats":              ib.front.Stats(),
	}
	secrets := append(append(b.passwords(), w.passwords()...), "fmt-Parse-Pw-3", iamSecretKey, tok.Creds.Password)
	secrets = append(secrets, ib.front.Tokens()...)
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			if out := fmt.Sprintf(verb, v); findSecret(out, secrets) != "" {
				t.Errorf("fmt %s of %s shows a password: %s", verb, name, out)
			}
		}
	}
	// The check can fail: the pending password is in the fetched secret.
	if sec.Creds.Password == "" || findSecret(sec.Creds.Password, secrets) == "" {
		t.Fatal("the fetched secret holds none of the passwords checked")
	}
}
