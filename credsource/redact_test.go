package credsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

const (
	canaryKey   = "canary-Key-9Vq4Rt2Lm8"
	canaryTok   = "canary-Tok-3Xw7Bn1Pk6"
	canaryAgent = "canary-Agent-5Hd8Jf2Qs4"
)

// TestRedactText: the secret material in error texts of the shapes
// dependencies produce is replaced; the rest, including the library's own
// messages that name secret fields without their values, is kept.
func TestRedactText(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		keep     []string // substrings that must survive
	}{
		{"json", `bad output: {"Version":1,"AccessKeyId":"AKIAX","SecretAccessKey":"` + canaryKey + `","SessionToken":"` + canaryTok + `"}`, []string{"Version", "SecretAccessKey"}},
		{"json cut", `output: {"SecretAccessKey": "` + canaryKey, []string{"output"}},
		{"json quoted", fmt.Sprintf("output %q", `{"Token":"`+canaryTok+`","password":"`+canaryKey+`"}`), []string{"output"}},
		{"json number", `{"password": 1234567890123, "pwd":"` + canaryKey + `"}`, nil},
		{"query", "host:3306?Action=connect&X-Amz-Security-Token=" + canaryTok + "&X-Amz-Signature=" + canaryKey, []string{"Action=connect"}},
		{"ini", "aws_secret_access_key = " + canaryKey + "\naws_session_token=" + canaryTok, nil},
		{"header", "request headers: X-Aws-Parameters-Secrets-Token: " + canaryTok + "; Accept: */*", []string{"Accept: */*"}},
		{"env", "export AWS_SECRET_ACCESS_KEY=" + canaryKey + " AWS_SESSION_TOKEN=" + canaryTok, []string{"export"}},
		{"library text", `secret "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf" (version v1): field "password": must be a JSON string`,
			[]string{`arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf`, `field "password": must be a JSON string`}},
		{"keys", "missing or empty (keys configured: usernameKey=U passwordKey=P hostKey=H portKey=O dbnameKey=D)", []string{"passwordKey=P"}},
		{"booleans", "allowCleartextPasswords=true", []string{"allowCleartextPasswords=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Redact(errors.New(tc.in))
			out := err.Error()
			for _, c := range []string{canaryKey, canaryTok} {
				if strings.Contains(out, c) {
					t.Errorf("%q holds %q", out, c)
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(out, k) {
					t.Errorf("%q lost %q", out, k)
				}
			}
			if strings.Contains(tc.in, canaryKey) && !strings.Contains(out, Redacted) {
				t.Errorf("%q has no %s", out, Redacted)
			}
		})
	}
}

// TestRedactKeepsChain: the redacted error unwraps to the original, so
// errors.Is and errors.As reach the sentinels and types beneath, and every
// fmt verb prints the redacted text.
func TestRedactKeepsChain(t *testing.T) {
	inner := &SecretError{SecretID: "s", Reason: `{"password":"` + canaryKey + `"}`}
	err := Redact(fmt.Errorf("fetch: %w: %w", ErrUnavailable, inner))
	var se *SecretError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &se) || se != inner {
		t.Fatalf("errors.Is/As lost the chain of %v", err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out := fmt.Sprintf(verb, err)
		if strings.Contains(out, canaryKey) || strings.Contains(out, fmt.Sprintf("%x", canaryKey)) {
			t.Errorf("%s prints the canary: %s", verb, out)
		}
	}
	if Redact(nil) != nil {
		t.Error("Redact(nil) is not nil")
	}
	if again := Redact(err); again != err {
		t.Error("redacting a redacted error made a new one")
	}
	if got := Redact(errors.New("tok "+canaryAgent), canaryAgent).Error(); strings.Contains(got, canaryAgent) {
		t.Errorf("a secret given to Redact survived: %s", got)
	}
}

// TestRedactRemembered: a password this package has parsed is replaced
// wherever a later error quotes it (a custom source, a driver message).
func TestRedactRemembered(t *testing.T) {
	const pw = "remembered-Pw-4Gh7Kl0Zx"
	if _, err := ParseCredentials("s", "v", []byte(`{"username":"u","password":"`+pw+`"}`)); err != nil {
		t.Fatal(err)
	}
	if got := Redact(errors.New("server said: bad password " + pw + " for u")).Error(); strings.Contains(got, pw) {
		t.Errorf("remembered password survived: %s", got)
	}
}

// TestAgentErrorNeverQuotesToken: an agent whose answers echo the request's
// headers or quote the token: the AgentError (its Message and its text) and
// the error returned never hold the token, and errors.As still finds the
// AgentError.
func TestAgentErrorNeverQuotesToken(t *testing.T) {
	store := rotatingmysqltest.NewStore()
	id, _, err := store.CreateSecret("app/db", rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := rotatingmysqltest.NewAgent(store, canaryAgent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(canaryAgent), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range AgentTokenEnv {
		t.Setenv(name, "")
	}
	t.Setenv("AWS_TOKEN", "file://"+tokFile)
	for _, f := range []rotatingmysqltest.Fault{
		{Status: 500, EchoHeaders: true},
		{Type: "InternalServiceError", EchoHeaders: true},
		{Type: "AccessDeniedException", Message: "token " + canaryAgent + " refused"},
		{Status: 429, EchoHeaders: true},
	} {
		agent.Fail(f)
		src := &Agent{SecretID: id, Endpoint: agent.URL()}
		_, err := src.Fetch(context.Background(), Request{})
		src.Close()
		var ae *AgentError
		if !errors.As(err, &ae) {
			t.Fatalf("%+v: error %v is no AgentError", f, err)
		}
		for what, s := range map[string]string{"Message": ae.Message, "AgentError": ae.Error(), "error": err.Error(), "%+v": fmt.Sprintf("%+v", err)} {
			if strings.Contains(s, canaryAgent) {
				t.Errorf("%+v: %s holds the token: %s", f, what, s)
			}
		}
		if !strings.Contains(ae.Message, Redacted) {
			t.Errorf("%+v: Message %q: the quote of the token was not replaced", f, ae.Message)
		}
	}
}

// TestRemoteAgentToken: an agent that is not on loopback (AllowRemote)
// never receives AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN;
// without AWS_TOKEN or a token file the error says which token may be sent.
// On loopback AWS_SESSION_TOKEN is used, as the agent and Lambda do.
func TestRemoteAgentToken(t *testing.T) {
	for _, name := range AgentTokenEnv {
		t.Setenv(name, "")
	}
	t.Setenv("AWS_SESSION_TOKEN", canaryTok)
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", canaryKey)
	noFile := filepath.Join(t.TempDir(), "none")

	remote := &Agent{SecretID: "s", Endpoint: "http://192.0.2.1:2773", AllowRemote: true, TokenFile: noFile}
	if _, err := remote.BaseURL(); err != nil {
		t.Fatal(err)
	}
	_, err := remote.token(true)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("remote agent: token error %v, want one wrapping ErrUnavailable", err)
	}
	for _, want := range []string{"AWS_TOKEN", noFile, "AWS_SESSION_TOKEN", "never"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The whole Fetch fails before any request: nothing listens at
	// 192.0.2.1 (TEST-NET-1), and no dial is made.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := remote.Fetch(ctx, Request{}); err == nil || ctx.Err() != nil {
		t.Errorf("Fetch error %v (context %v): want the missing-token error at once", err, ctx.Err())
	}

	t.Setenv("AWS_TOKEN", canaryAgent)
	tok, err := remote.token(true)
	if err != nil || tok.value != canaryAgent || tok.from != "AWS_TOKEN" {
		t.Errorf("remote agent with AWS_TOKEN: token from %q, error %v", tok.from, err)
	}
	t.Setenv("AWS_TOKEN", "")
	if err := os.WriteFile(noFile, []byte(canaryAgent), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := remote.token(true); err != nil || tok.value != canaryAgent {
		t.Errorf("remote agent with a token file: error %v", err)
	}

	local := &Agent{SecretID: "s", TokenFile: noFile}
	if tok, err := local.token(false); err != nil || tok.from != "AWS_SESSION_TOKEN" {
		t.Errorf("loopback agent: token from %q, error %v; want AWS_SESSION_TOKEN", tok.from, err)
	}
}

// TestKeysMayNotBeEngine: a configured key may not be the fixed "engine"
// key (passwordKey=engine would put the password in Engine, which is
// printed), nor another field's; Parse refuses such keys too, so a source
// built by hand cannot skip the check.
func TestKeysMayNotBeEngine(t *testing.T) {
	doc := []byte(`{"engine":"` + canaryKey + `","username":"u","password":"pw"}`)
	for _, k := range []Keys{{Password: "engine"}, {Username: "engine"}, {Host: "engine"}, {DBName: "password"}, {Username: "login", Password: "login"}} {
		if err := k.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", k)
		}
		c, err := k.Parse("s", "v", doc)
		if err == nil {
			t.Errorf("%+v: Parse accepted it", k)
		}
		if strings.Contains(fmt.Sprint(err), canaryKey) || c.Password != "" {
			t.Errorf("%+v: error %v or credentials leak the value", k, err)
		}
	}
}

// TestEnginePrintedOnlyWhenKnown: Credentials print the engine only when it
// is an engine name; anything else under "engine" is not shown.
func TestEnginePrintedOnlyWhenKnown(t *testing.T) {
	for engine, shown := range map[string]bool{"mysql": true, "aurora-mysql": true, "mariadb": true, "aurora": true, canaryKey: false, "": true} {
		c := Credentials{Engine: engine, Username: "u", Password: "pw"}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, c)
			if strings.Contains(out, engine) != shown {
				t.Errorf("engine %q under %s: %s", engine, verb, out)
			}
		}
	}
}

// TestFileRefusesFIFO: a FIFO at the secret path (no writer) is refused at
// once instead of blocking the fetch for ever; so are devices.
func TestFileRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.json")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (&File{Path: path}).Fetch(context.Background(), Request{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "named pipe") || !strings.Contains(err.Error(), path) {
			t.Errorf("FIFO: error %v, want one naming the path and the pipe", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("Fetch of a FIFO blocked")
	}
	if st, err := os.Stat("/dev/zero"); err == nil && st.Mode()&fs.ModeDevice != 0 {
		if _, err := (&File{Path: "/dev/zero"}).Fetch(context.Background(), Request{}); err == nil || !strings.Contains(err.Error(), "device") {
			t.Errorf("/dev/zero: error %v, want a refusal naming a device", err)
		}
	}
}

// FuzzRedact: a secret value under a secret-named JSON key, as a
// key=value pair, or given to Redact, never survives, whatever text
// surrounds it.
func FuzzRedact(f *testing.F) {
	f.Add("bad output: ", " trailing", "s3cr3t-Value-1234")
	f.Add("", "", canaryKey)
	f.Add(`{"a":1,`, `}`, "x/y+z=w-0123456789")
	f.Fuzz(func(t *testing.T, before, after, secret string) {
		// A value as credentials carry it: no quotes, backslashes,
		// separators or spaces, and long enough not to be a word.
		if !replaceable(secret) || strings.ContainsAny(secret, "\"\\ \t\r\n&,;'}])") || !utf8.ValidString(secret) ||
			strings.Contains(before+after, secret) {
			t.Skip()
		}
		for _, text := range []string{
			before + `{"SecretAccessKey":"` + secret + `"}` + after,
			before + `"SessionToken": "` + secret + after,
			before + "X-Amz-Security-Token=" + secret + after,
		} {
			if out := Redact(errors.New(text)).Error(); strings.Contains(out, secret) {
				t.Errorf("%q: redacted to %q", text, out)
			}
		}
		if out := Redact(errors.New(before+secret+after), secret).Error(); strings.Contains(out, secret) {
			t.Errorf("a given secret survived: %q", out)
		}
	})
}
