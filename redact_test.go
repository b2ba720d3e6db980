package rotatingmysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// Canaries: values that must never appear in any output of the library.
const (
	canaryKeyID   = "AKIACANARYKEYID00001"
	canarySecret  = "canary-Secret-Access-Key-7f3Qz9Lw"
	canaryToken   = "canary-Session-Token-Vb81Kd0Zt5"
	canaryAgentTk = "canary-Agent-Token-Mn42Xc7Rp0"
)

// canaryOutputs are the outputs of a credential_process that the SDK
// cannot parse, each holding the canary keys: JSON with a bad Expiration
// (the SDK quotes the whole output), a field of the wrong type, JSON cut
// short, and not JSON at all.
var canaryOutputs = map[string]string{
	"bad expiration": `{"Version":1,"AccessKeyId":"` + canaryKeyID + `","SecretAccessKey":"` + canarySecret + `","SessionToken":"` + canaryToken + `","Expiration":"not-a-date"}`,
	"wrong type":     `{"Version":"one","AccessKeyId":"` + canaryKeyID + `","SecretAccessKey":"` + canarySecret + `","SessionToken":"` + canaryToken + `"}`,
	"cut short":      `{"Version":1,"AccessKeyId":"` + canaryKeyID + `","SecretAccessKey":"` + canarySecret + `","SessionToken":"` + canaryToken,
	"not json":       `export AWS_SECRET_ACCESS_KEY=` + canarySecret + ` AWS_SESSION_TOKEN=` + canaryToken,
}

// credentialProcessFiles writes a shared config file with a profile
// "canary" whose credential_process prints output, and an empty shared
// credentials file; it returns their paths.
func credentialProcessFiles(t *testing.T, output string) (conf, creds string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.txt"), []byte(output+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "helper.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat '"+filepath.Join(dir, "out.txt")+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte("[profile canary]\ncredential_process = "+script+"\nregion = "+rotatingmysqltest.Region+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds = filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, creds
}

// useCredentialProcess points the SDK's default chain, through the
// environment, at a profile whose credential_process prints output, and at
// the emulator; no other credentials are reachable.
func useCredentialProcess(t *testing.T, sm *rotatingmysqltest.SecretsManager, output string) {
	t.Helper()
	conf, empty := credentialProcessFiles(t, output)
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "canary", "AWS_CONFIG_FILE": conf, "AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

// credentialProcessConfig loads, with config.LoadDefaultConfig and no
// environment, an aws.Config whose credentials come from a profile whose
// credential_process prints output (the profile named explicitly wins over
// any credentials in the environment), and whose endpoint is the
// emulator's.
func credentialProcessConfig(t *testing.T, sm *rotatingmysqltest.SecretsManager, output string) aws.Config {
	t.Helper()
	conf, empty := credentialProcessFiles(t, output)
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithSharedConfigProfile("canary"),
		config.WithSharedConfigFiles([]string{conf}),
		config.WithSharedCredentialsFiles([]string{empty}),
		config.WithRegion(rotatingmysqltest.Region),
		config.WithBaseEndpoint(sm.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// leakCheck collects every output channel and reports any canary in one.
type leakCheck struct {
	t       *testing.T
	canary  []string
	outputs map[string]string
}

func newLeakCheck(t *testing.T, canary ...string) *leakCheck {
	return &leakCheck{t: t, canary: canary, outputs: map[string]string{}}
}

// err adds err under every fmt verb and its Error text.
func (l *leakCheck) err(name string, err error) {
	l.t.Helper()
	if err == nil {
		l.t.Fatalf("%s: no error", name)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%q", "%s", "%x"} {
		l.outputs[name+" "+verb] = fmt.Sprintf(verb, err)
	}
	l.outputs[name+" .Error()"] = err.Error()
}

func (l *leakCheck) add(name, s string) { l.outputs[name] = s }

// check fails the test for every output that holds a canary, and for
// outputs that are empty (a channel that said nothing proves nothing).
func (l *leakCheck) check() {
	l.t.Helper()
	for name, out := range l.outputs {
		if out == "" {
			l.t.Errorf("%s: empty output", name)
		}
		for _, c := range l.canary {
			if strings.Contains(out, c) {
				l.t.Errorf("%s holds the canary %q: %s", name, c, out)
			}
			// A hex dump (%x) would hold it encoded.
			if strings.Contains(out, fmt.Sprintf("%x", c)) {
				l.t.Errorf("%s holds the canary %q hex-encoded", name, c)
			}
		}
	}
}

// TestRedactCredentialProcessOutput: with a credential_process helper
// whose output the SDK cannot parse (its error quotes the whole output,
// keys included), no canary key or token reaches the Ping error under any
// verb, the debug logs (text and JSON), Stats, HealthCheck or
// RotationStatus; errors.As still finds the SDK's
// *processcreds.ProviderError. The program's aws.Config is loaded from the
// profile with config.LoadDefaultConfig (files named in Go);
// TestRedactCredentialProcessDefaultChain goes through the environment and
// the library's own default chain.
func TestRedactCredentialProcessOutput(t *testing.T) {
	t.Parallel()
	for name, output := range canaryOutputs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sm, arn := canarySecretsManager(t)
			checkCredentialProcessRedacted(t, arn, rotatingmysql.WithAWSConfig(credentialProcessConfig(t, sm, output)))
		})
	}
}

// TestRedactCredentialProcessDefaultChain: TestRedactCredentialProcessOutput
// through the environment (AWS_PROFILE, AWS_CONFIG_FILE) and the SDK's
// default chain that the library loads itself (no aws.Config given), with
// the output the SDK quotes whole.
func TestRedactCredentialProcessDefaultChain(t *testing.T) {
	// Serial: points the SDK's default chain at the profile through the
	// environment (t.Setenv), which is what this test is about.
	sm, arn := canarySecretsManager(t)
	useCredentialProcess(t, sm, canaryOutputs["bad expiration"])
	checkCredentialProcessRedacted(t, arn)
}

// canarySecretsManager starts an emulator holding a secret and returns it
// and the secret's ARN.
func canarySecretsManager(t *testing.T) (*rotatingmysqltest.SecretsManager, string) {
	t.Helper()
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	arn, _, err := sm.Store().CreateSecret(testdb.UniqueName("canary"), rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "app-Password-0001", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	return sm, arn
}

// checkCredentialProcessRedacted opens the secret arn with opts, whose AWS
// credentials come from a failing credential_process, and checks that no
// canary reaches any output.
func checkCredentialProcessRedacted(t *testing.T, arn string, opts ...rotatingmysql.Option) {
	t.Helper()
	var text, js logBuffer
	lo := &slog.HandlerOptions{Level: slog.LevelDebug}
	logger := slog.New(teeHandler(slog.NewTextHandler(&text, lo), slog.NewJSONHandler(&js, lo)))
	c, db := openConfig(t, rotatingmysql.NewConfig(arn), append(opts, rotatingmysql.WithLogger(logger))...)

	l := newLeakCheck(t, canarySecret, canaryToken)
	pingErr := db.Ping()
	l.err("Ping", pingErr)
	var pe *processcreds.ProviderError
	if !errors.As(pingErr, &pe) {
		t.Errorf("errors.As finds no *processcreds.ProviderError in %v", pingErr)
	}
	if !strings.Contains(pingErr.Error(), "credential_process") {
		t.Errorf("Ping error %q does not say the credential_process failed", pingErr)
	}
	st := c.Stats()
	l.err("Stats().LastError", st.LastError)
	l.add("Stats %+v", fmt.Sprintf("%+v", st))
	l.add("Stats %#v", fmt.Sprintf("%#v", st))
	h := c.HealthCheck(context.Background())
	l.err("Health.Err", h.Err)
	l.add("Health.String", h.String())
	l.add("Health %+v", fmt.Sprintf("%+v", h))
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	l.add("Health JSON", string(hj))
	_, rsErr := c.RotationStatus(context.Background())
	l.err("RotationStatus", rsErr)
	if !errors.As(rsErr, &pe) {
		t.Errorf("errors.As finds no *processcreds.ProviderError in the RotationStatus error %v", rsErr)
	}
	l.add("text log", text.String())
	l.add("JSON log", js.String())
	l.check()
	if testing.Verbose() {
		t.Logf("Ping error: %v", pingErr)
	}
}

// TestRedactAgentEcho: an agent (or a proxy in front of it) whose error
// answer echoes the request's headers, token included, and a message that
// quotes the token in an AWS error: neither the Ping error, Stats, the
// health check nor the logs hold the token.
func TestRedactAgentEcho(t *testing.T) {
	t.Parallel()
	store := rotatingmysqltest.NewStore()
	arn, _, err := store.CreateSecret(testdb.UniqueName("echo"), rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "app-Password-0002", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := rotatingmysqltest.NewAgent(store, canaryAgentTk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	// The token given in Go (Agent.Token), so that no variable holds it:
	// the source must redact it by itself. (credsource's
	// TestAgentErrorNeverQuotesToken reads it from AWS_TOKEN=file://PATH.)
	for name, f := range map[string]rotatingmysqltest.Fault{
		"plain text echo": {Status: 502, EchoHeaders: true},
		"AWS error echo":  {Type: "InternalServiceError", EchoHeaders: true},
		"AWS error quote": {Type: "InternalServiceError", Message: "token " + canaryAgentTk + " is not valid here"},
		"403 echo":        {Status: 403, EchoHeaders: true},
	} {
		t.Run(name, func(t *testing.T) {
			agent.Fail(f)
			t.Cleanup(agent.ClearFaults)
			var text, js logBuffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			logger := slog.New(teeHandler(slog.NewTextHandler(&text, opts), slog.NewJSONHandler(&js, opts)))
			c, db := openConfig(t, rotatingmysql.NewConfig(arn), rotatingmysql.WithSource(&credsource.Agent{SecretID: arn, Endpoint: agent.URL(), Token: canaryAgentTk}),
				rotatingmysql.WithLogger(logger), rotatingmysql.WithSharedCache(false))
			l := newLeakCheck(t, canaryAgentTk)
			pingErr := db.Ping()
			l.err("Ping", pingErr)
			var ae *credsource.AgentError
			if !errors.As(pingErr, &ae) {
				t.Fatalf("errors.As finds no *credsource.AgentError in %v", pingErr)
			}
			if ae.Message != "" { // a 403 without a body has none
				l.add("AgentError.Message", ae.Message)
			}
			l.err("Stats().LastError", c.Stats().LastError)
			l.err("Health.Err", c.HealthCheck(context.Background()).Err)
			l.add("text log", text.String())
			l.add("JSON log", js.String())
			l.check()
			if f.EchoHeaders && !strings.Contains(ae.Message, credsource.Redacted) && f.Status != 403 {
				t.Errorf("the echoed headers were not redacted but dropped? message %q", ae.Message)
			}
		})
	}
}

// TestRedactMalformedSecrets: secrets whose JSON is malformed around a
// canary password, read from a variable, a file and Secrets Manager: no
// error, Stats, health check or log holds the canary.
func TestRedactMalformedSecrets(t *testing.T) {
	const canaryPw = "canary-Password-Qe93Lk1Vb"
	docs := map[string]string{
		"cut short":   `{"host":"127.0.0.1","username":"u","password":"` + canaryPw,
		"bare value":  `{"host":"127.0.0.1","username":"u","password":` + canaryPw + `}`,
		"not a doc":   `password=` + canaryPw,
		"no username": `{"host":"127.0.0.1","password":"` + canaryPw + `"}`,
		"array":       `["` + canaryPw + `"]`,
	}
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	for name, doc := range docs {
		for _, via := range []string{"env", "file", "secretsmanager"} {
			t.Run(name+"/"+via, func(t *testing.T) {
				var opts []rotatingmysql.Option
				var id string
				switch via {
				case "env":
					id = "ROTATINGMYSQL_CANARY_SECRET"
					t.Setenv(id, doc)
					opts = append(opts, rotatingmysql.WithSource(&credsource.Env{Name: id}))
				case "file":
					id = filepath.Join(t.TempDir(), "secret.json")
					if err := os.WriteFile(id, []byte(doc), 0o600); err != nil {
						t.Fatal(err)
					}
					opts = append(opts, rotatingmysql.WithSource(&credsource.File{Path: id}))
				default:
					if id, _, err = sm.Store().CreateSecret(testdb.UniqueName("malformed"), doc); err != nil {
						t.Fatal(err)
					}
					opts = append(opts, rotatingmysql.WithAWSConfig(sm.AWSConfig()))
				}
				var text, js logBuffer
				lo := &slog.HandlerOptions{Level: slog.LevelDebug}
				opts = append(opts, rotatingmysql.WithLogger(slog.New(teeHandler(slog.NewTextHandler(&text, lo), slog.NewJSONHandler(&js, lo)))))
				c, db := openConfig(t, rotatingmysql.NewConfig(id), opts...)
				l := newLeakCheck(t, canaryPw)
				l.err("Ping", db.Ping())
				l.err("Stats().LastError", c.Stats().LastError)
				l.err("Health.Err", c.HealthCheck(context.Background()).Err)
				l.add("text log", text.String())
				l.add("JSON log", js.String())
				l.check()
			})
		}
	}
}

// TestPasswordKeyEngineRefused: passwordKey=engine (or any key set to the
// fixed "engine" key) is refused at sql.Open: it would copy the password
// into Engine, a printed field.
func TestPasswordKeyEngineRefused(t *testing.T) {
	for _, param := range []string{"passwordKey=engine", "usernameKey=engine", "dbnameKey=engine"} {
		_, err := sql.Open("rotatingmysql", "app/db?region=us-east-1&"+param)
		if !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !strings.Contains(fmt.Sprint(err), `"engine"`) {
			t.Errorf("%s: error %v, want ErrInvalidDSN naming the engine key", param, err)
		}
	}
}
