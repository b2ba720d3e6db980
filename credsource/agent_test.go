package credsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// agentResponseCases is the table of parseAgentResponse; the fuzz target
// seeds its corpus from it.
var agentResponseCases = []struct {
	name    string
	body    string
	want    *agentResponse // nil when an error is expected
	created time.Time
}{
	{
		name: "agent answer, CreatedDate as a string",
		body: `{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf","Name":"a","VersionId":"v1","SecretString":"{\"username\":\"u\"}","VersionStages":["AWSCURRENT"],"CreatedDate":"1700000000.123"}`,
		want: &agentResponse{ARN: "arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf", Name: "a", VersionID: "v1",
			SecretString: ptr(`{"username":"u"}`), VersionStages: []string{"AWSCURRENT"}},
		created: time.Unix(1700000000, 123000000),
	},
	{
		name:    "API answer, CreatedDate as a number",
		body:    `{"Name":"a","VersionId":"v1","SecretString":"x","CreatedDate":1700000000.5}`,
		want:    &agentResponse{Name: "a", VersionID: "v1", SecretString: ptr("x")},
		created: time.Unix(1700000000, 500000000),
	},
	{
		name:    "whole seconds string",
		body:    `{"SecretString":"x","CreatedDate":"1700000000"}`,
		want:    &agentResponse{SecretString: ptr("x")},
		created: time.Unix(1700000000, 0),
	},
	{
		name:    "more than nine fraction digits",
		body:    `{"SecretString":"x","CreatedDate":"1.1234567891"}`,
		want:    &agentResponse{SecretString: ptr("x")},
		created: time.Unix(1, 123456789),
	},
	{
		name:    "RFC 3339 string",
		body:    `{"SecretString":"x","CreatedDate":"2023-11-14T22:13:20Z"}`,
		want:    &agentResponse{SecretString: ptr("x")},
		created: time.Unix(1700000000, 0),
	},
	{
		name:    "exponent number",
		body:    `{"SecretString":"x","CreatedDate":1.7e9}`,
		want:    &agentResponse{SecretString: ptr("x")},
		created: time.Unix(1700000000, 0),
	},
	{name: "unknown date form is ignored", body: `{"SecretString":"x","CreatedDate":"yesterday"}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "negative date is ignored", body: `{"SecretString":"x","CreatedDate":"-5.5"}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "huge date is ignored", body: `{"SecretString":"x","CreatedDate":"99999999999999999999"}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "NaN date is ignored", body: `{"SecretString":"x","CreatedDate":"NaN"}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "date as object is ignored", body: `{"SecretString":"x","CreatedDate":{"a":1}}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "null date", body: `{"SecretString":"x","CreatedDate":null}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "binary only", body: `{"VersionId":"v","SecretBinary":"AAEC"}`, want: &agentResponse{VersionID: "v", HasBinary: true}},
	{name: "null binary", body: `{"VersionId":"v","SecretBinary":null}`, want: &agentResponse{VersionID: "v"}},
	{name: "unknown fields ignored", body: `{"SecretString":"x","Extra":[1,2,{}]}`, want: &agentResponse{SecretString: ptr("x")}},
	{name: "empty object", body: `{}`, want: &agentResponse{}},
	{name: "white space around", body: " \n{\"SecretString\":\"x\"}\n", want: &agentResponse{SecretString: ptr("x")}},
	{name: "empty body", body: ``},
	{name: "plain text", body: `healthy`},
	{name: "array", body: `[1]`},
	{name: "truncated", body: `{"SecretString":"{\"password\":\"hunter2`},
	{name: "SecretString not a string", body: `{"SecretString":{"password":"hunter2"}}`},
	{name: "stages not a list", body: `{"SecretString":"x","VersionStages":"AWSCURRENT"}`},
	{name: "trailing garbage", body: `{"SecretString":"x"} hunter2`},
}

func ptr(s string) *string { return &s }

func TestAgentParseResponse(t *testing.T) {
	for _, tc := range agentResponseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAgentResponse([]byte(tc.body))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %q without error", tc.body)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error quotes the body: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !got.CreatedDate.Equal(tc.created) {
				t.Errorf("CreatedDate %v, want %v", got.CreatedDate, tc.created)
			}
			got.CreatedDate = time.Time{}
			if got.ARN != tc.want.ARN || got.Name != tc.want.Name || got.VersionID != tc.want.VersionID ||
				got.HasBinary != tc.want.HasBinary || !slices.Equal(got.VersionStages, tc.want.VersionStages) ||
				(got.SecretString == nil) != (tc.want.SecretString == nil) ||
				(got.SecretString != nil && *got.SecretString != *tc.want.SecretString) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAgentEndpointChecks(t *testing.T) {
	for _, tc := range []struct {
		ep          string
		allowRemote bool
		want        string // base URL, or "" for an error
		errHas      string
	}{
		{ep: "http://127.0.0.1:2773", want: "http://127.0.0.1:2773"},
		{ep: "http://127.0.0.1:2773/", want: "http://127.0.0.1:2773"},
		{ep: "127.0.0.1:9999", want: "http://127.0.0.1:9999"},
		{ep: "localhost:2773", want: "http://localhost:2773"},
		{ep: "http://LOCALHOST:2773", want: "http://LOCALHOST:2773"},
		{ep: "http://[::1]:2773", want: "http://[::1]:2773"},
		{ep: "http://127.8.9.10:2773", want: "http://127.8.9.10:2773"},
		{ep: "https://127.0.0.1:2773", want: "https://127.0.0.1:2773"},
		{ep: "http://10.0.0.5:2773", errHas: "not a loopback address"},
		{ep: "http://agent.internal:2773", errHas: "allowRemoteAgent=true"},
		{ep: "http://localhost.evil.example:2773", errHas: "not a loopback address"},
		{ep: "http://10.0.0.5:2773", allowRemote: true, want: "http://10.0.0.5:2773"},
		{ep: "ftp://127.0.0.1:2773", errHas: "not a base URL"},
		{ep: "http://127.0.0.1:2773/secretsmanager/get", errHas: "not a base URL"},
		{ep: "http://127.0.0.1:2773?x=1", errHas: "not a base URL"},
		{ep: "http://user:pw@127.0.0.1:2773", errHas: "not a base URL"},
		{ep: "http://127.0.0.1:99999", errHas: "port must be"},
		{ep: "http://:2773", errHas: "not a base URL"},
	} {
		t.Run(tc.ep, func(t *testing.T) {
			a := &Agent{SecretID: "s", Endpoint: tc.ep, AllowRemote: tc.allowRemote}
			got, err := a.BaseURL()
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("BaseURL = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("BaseURL = %q, %v; want an error containing %q", got, err, tc.errHas)
			}
			// A refused endpoint never gets a request.
			if _, ferr := a.Fetch(context.Background(), Request{}); ferr == nil {
				t.Fatal("Fetch succeeded with a refused endpoint")
			}
		})
	}
}

func TestAgentPortVariable(t *testing.T) {
	t.Setenv(AgentPortEnv, "")
	if got, err := (&Agent{}).BaseURL(); err != nil || got != "http://127.0.0.1:2773" {
		t.Fatalf("default: %q, %v", got, err)
	}
	t.Setenv(AgentPortEnv, "4567")
	if got, err := (&Agent{}).BaseURL(); err != nil || got != "http://127.0.0.1:4567" {
		t.Fatalf("from %s: %q, %v", AgentPortEnv, got, err)
	}
	if got, err := (&Agent{Endpoint: "http://127.0.0.1:1234"}).BaseURL(); err != nil || got != "http://127.0.0.1:1234" {
		t.Fatalf("endpoint overrides the variable: %q, %v", got, err)
	}
	t.Setenv(AgentPortEnv, "http")
	if _, err := (&Agent{}).BaseURL(); err == nil || !strings.Contains(err.Error(), AgentPortEnv) {
		t.Fatalf("bad port variable: %v", err)
	}
}

// agentWorld is a fake agent holding one secret, and the environment that
// points the Agent source at it.
type agentWorld struct {
	store *rotatingmysqltest.Store
	fake  *rotatingmysqltest.Agent
	arn   string
	src   *Agent
}

func newAgentWorld(t *testing.T) *agentWorld {
	t.Helper()
	store := rotatingmysqltest.NewStore()
	arn, _, err := store.CreateSecret("app/db", rotatingmysqltest.SecretJSON("db.example", 3306, "app", "pw-1", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	fake, err := rotatingmysqltest.NewAgent(store, "the-agent-token-123")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	for k, v := range fake.Env() {
		t.Setenv(k, v)
	}
	src := &Agent{SecretID: arn, TokenFile: filepath.Join(t.TempDir(), "no-token-file")}
	t.Cleanup(func() { src.Close() })
	return &agentWorld{store: store, fake: fake, arn: arn, src: src}
}

func TestAgentFetch(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	sec, err := w.src.Fetch(ctx, Request{Stage: Current})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Source != "agent" || sec.ARN != w.arn || sec.Name != "app/db" || sec.VersionID == "" || !sec.HasStage(Current) ||
		sec.Creds.Password != "pw-1" || sec.Creds.Username != "app" || sec.Creds.Port != 3306 {
		t.Fatalf("secret %+v", sec)
	}
	if sec.CreatedDate.IsZero() || time.Since(sec.CreatedDate) > time.Minute {
		t.Fatalf("CreatedDate %v not read from the agent's string", sec.CreatedDate)
	}

	// AWSPENDING absent: ErrNotFound, not ErrUnavailable.
	_, err = w.src.Fetch(ctx, Request{Stage: Pending})
	var ae *AgentError
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) || !errors.As(err, &ae) || ae.StatusCode != 400 {
		t.Fatalf("pending absent: %v", err)
	}

	// The agent caches; a forced refresh bypasses its cache.
	if _, err := w.store.PutSecretValue(w.arn, rotatingmysqltest.SecretJSON("db.example", 3306, "app", "pw-2", "appdb"), nil); err != nil {
		t.Fatal(err)
	}
	if sec, err := w.src.Fetch(ctx, Request{}); err != nil || sec.Creds.Password != "pw-1" {
		t.Fatalf("cached answer expected from the agent: %v %v", sec, err)
	}
	if sec, err := w.src.Fetch(ctx, Request{Refresh: true}); err != nil || sec.Creds.Password != "pw-2" {
		t.Fatalf("refreshNow did not reach the store: %v %v", sec, err)
	}
	if _, err := w.store.PutSecretValue(w.arn, rotatingmysqltest.SecretJSON("db.example", 3306, "app", "pw-3", "appdb"), []string{"AWSPENDING"}); err != nil {
		t.Fatal(err)
	}
	if sec, err := w.src.Fetch(ctx, Request{Stage: Pending, Refresh: true}); err != nil || sec.Creds.Password != "pw-3" || !sec.HasStage(Pending) {
		t.Fatalf("pending: %v %v", sec, err)
	}

	log := w.fake.Log()
	want := []url.Values{
		{"secretId": {w.arn}},
		{"secretId": {w.arn}, "versionStage": {"AWSPENDING"}},
		{"secretId": {w.arn}},
		{"secretId": {w.arn}, "refreshNow": {"true"}},
		{"secretId": {w.arn}, "versionStage": {"AWSPENDING"}, "refreshNow": {"true"}},
	}
	if len(log) != len(want) {
		t.Fatalf("agent saw %d requests, want %d: %+v", len(log), len(want), log)
	}
	for i, r := range log {
		if r.Method != "GET" || r.Path != "/secretsmanager/get" || !r.Token || r.Forwarded || len(r.UnknownParams()) > 0 {
			t.Errorf("request %d: %+v", i, r)
		}
		if r.Params.Encode() != want[i].Encode() {
			t.Errorf("request %d params %v, want %v", i, r.Params, want[i])
		}
	}
}

func TestAgentToken(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  "+w.fake.Token()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unset := func() {
		for _, name := range AgentTokenEnv {
			t.Setenv(name, "")
		}
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		file    string // Agent.TokenFile
		token   Token  // Agent.Token
		wantErr string // "" for success
		refused string // for a 403: where the error must say the token came from
	}{
		{name: "AWS_TOKEN", env: map[string]string{"AWS_TOKEN": w.fake.Token()}},
		{name: "AWS_SESSION_TOKEN as in Lambda", env: map[string]string{"AWS_SESSION_TOKEN": w.fake.Token()}},
		{name: "AWS_CONTAINER_AUTHORIZATION_TOKEN", env: map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": w.fake.Token()}},
		{name: "AWS_TOKEN wins", env: map[string]string{"AWS_TOKEN": w.fake.Token(), "AWS_SESSION_TOKEN": "session-xyz"}},
		{name: "AWS_TOKEN wins even when wrong", env: map[string]string{"AWS_TOKEN": "wrong-token-456", "AWS_SESSION_TOKEN": w.fake.Token()}, refused: "AWS_TOKEN"},
		{name: "file:// value", env: map[string]string{"AWS_TOKEN": "file://" + tokenFile}},
		{name: "file:// value missing file", env: map[string]string{"AWS_TOKEN": "file://" + filepath.Join(dir, "absent")}, wantErr: "AWS_TOKEN (file://" + filepath.Join(dir, "absent")},
		{name: "default token file", file: tokenFile},
		{name: "wrong session token", env: map[string]string{"AWS_SESSION_TOKEN": "wrong-token-456"}, refused: "AWS_SESSION_TOKEN"},
		{name: "none", wantErr: "AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN"},
		{name: "Agent.Token without variables", token: Token(w.fake.Token())},
		{name: "Agent.Token wins over a wrong AWS_TOKEN", token: Token(w.fake.Token()), env: map[string]string{"AWS_TOKEN": "wrong-token-456"}},
		{name: "Agent.Token trimmed", token: Token(" " + w.fake.Token() + "\n")},
		{name: "Agent.Token wrong, the variable not tried", token: "wrong-token-456", env: map[string]string{"AWS_TOKEN": w.fake.Token()}, refused: "Agent.Token"},
		{name: "Agent.Token only white space", token: " \n", env: map[string]string{"AWS_TOKEN": w.fake.Token()}, wantErr: "Agent.Token is only white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unset()
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			src := &Agent{SecretID: w.arn, TokenFile: cmpOr(tc.file, filepath.Join(dir, "no-default")), Token: tc.token}
			defer src.Close()
			before := w.fake.Requests()
			sec, err := src.Fetch(ctx, Request{})
			switch {
			case tc.refused != "":
				var ae *AgentError
				t.Log(err)
				if !errors.As(err, &ae) || ae.StatusCode != 403 || !strings.Contains(err.Error(), "refused the token from "+tc.refused) {
					t.Fatalf("error %v, want a 403 naming %s", err, tc.refused)
				}
				if strings.Contains(err.Error(), "wrong-token-456") || strings.Contains(err.Error(), w.fake.Token()) {
					t.Fatalf("error prints a token: %v", err)
				}
				if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
					t.Fatalf("403 classified as unavailable or not found: %v", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if n := w.fake.Requests() - before; n != 0 {
					t.Fatalf("%d requests sent without a token", n)
				}
			default:
				if err != nil || sec.Creds.Password != "pw-1" {
					t.Fatalf("Fetch: %v %v", sec, err)
				}
			}
		})
	}
	t.Run("no token wraps ErrUnavailable and names the file", func(t *testing.T) {
		unset()
		src := &Agent{SecretID: w.arn, TokenFile: filepath.Join(dir, "absent")}
		_, err := src.Fetch(ctx, Request{})
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), filepath.Join(dir, "absent")) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestTokenNeverPrinted: a Token, alone or in an Agent, prints as
// [redacted] under every verb and in JSON; an empty one prints empty.
func TestTokenNeverPrinted(t *testing.T) {
	const value = "tok-Never-Printed-7781"
	tok := Token(value)
	src := &Agent{SecretID: "s", Token: tok}
	type holder struct {
		Tok Token
		In  *Agent
	}
	h := &holder{Tok: tok, In: src}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		for name, v := range map[string]any{"Token": tok, "*Agent": src, "struct": *h, "*struct": h} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) || strings.Contains(out, fmt.Sprintf("%X", value)) {
				t.Errorf("%s of %s prints the token: %s", verb, name, out)
			}
		}
	}
	if got := fmt.Sprintf("%v|%q|%#v", tok, tok, tok); got != `[redacted]|"[redacted]"|credsource.Token("[redacted]")` {
		t.Errorf("Token prints %s", got)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), value) || !strings.Contains(string(b), `"Tok":"[redacted]"`) {
		t.Errorf("JSON %s", b)
	}
	if got := fmt.Sprintf("%v|%q", Token(""), Token("")); got != `|""` {
		t.Errorf("empty Token prints %s, want it empty", got)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAgentErrors(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()

	t.Run("no such secret", func(t *testing.T) {
		src := &Agent{SecretID: "no/such/secret"}
		defer src.Close()
		_, err := src.Fetch(ctx, Request{})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ResourceNotFoundException") || !strings.Contains(err.Error(), "no/such/secret") {
			t.Fatalf("error %v", err)
		}
	})
	for _, tc := range []struct {
		name     string
		fault    rotatingmysqltest.Fault
		status   int
		wantType string
	}{
		{name: "429 connection limit", fault: rotatingmysqltest.Fault{Status: 429, Times: 1}, status: 429},
		{name: "500 internal", fault: rotatingmysqltest.Fault{Status: 500, Times: 1}, status: 500, wantType: "InternalFailure"},
		{name: "502 agent cannot reach AWS", fault: rotatingmysqltest.Fault{Status: 502, Type: "ConnectionError", Times: 1}, status: 502, wantType: "ConnectionError"},
		{name: "504 timeout", fault: rotatingmysqltest.Fault{Status: 504, Type: "TimeoutError", Times: 1}, status: 504, wantType: "TimeoutError"},
		{name: "400 other AWS error", fault: rotatingmysqltest.Fault{Status: 400, Type: "DecryptionFailure", Times: 1}, status: 400, wantType: "DecryptionFailure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.fake.Fail(tc.fault)
			_, err := w.src.Fetch(ctx, Request{Refresh: true})
			t.Log(err)
			var ae *AgentError
			if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Type != tc.wantType {
				t.Fatalf("error %v, want an AgentError %d %s", err, tc.status, tc.wantType)
			}
			if ae.Temporary() != (tc.status >= 429) {
				t.Fatalf("Temporary() = %v for %d", ae.Temporary(), tc.status)
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("%d wraps ErrNotFound or ErrUnavailable: %v", tc.status, err)
			}
		})
	}
	t.Run("timeout is transient", func(t *testing.T) {
		w.fake.Fail(rotatingmysqltest.Fault{Status: 500, Times: 1, Delay: 5 * time.Second})
		defer w.fake.ClearFaults()
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := w.src.Fetch(tctx, Request{Refresh: true})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		port := freePort(t)
		src := &Agent{SecretID: w.arn, Endpoint: "127.0.0.1:" + port}
		defer src.Close()
		_, err := src.Fetch(ctx, Request{})
		t.Log(err)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "http://127.0.0.1:"+port) || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("agent stopped and started again", func(t *testing.T) {
		if _, err := w.src.Fetch(ctx, Request{}); err != nil {
			t.Fatal(err) // leaves an idle keep-alive connection
		}
		if err := w.fake.Stop(); err != nil {
			t.Fatal(err)
		}
		_, err := w.src.Fetch(ctx, Request{})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("stopped agent: %v", err)
		}
		if err := w.fake.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.src.Fetch(ctx, Request{}); err != nil {
			t.Fatalf("restarted agent: %v", err)
		}
	})
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// fixedSource answers every fetch with one version.
type fixedSource struct{ calls int }

func (f *fixedSource) Fetch(context.Context, Request) (*Secret, error) {
	f.calls++
	return &Secret{ID: "x", Source: "fixed", Creds: Credentials{Username: "u", Password: "fallback"}}, nil
}

func TestAgentChain(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	t.Run("agent down falls through", func(t *testing.T) {
		next := &fixedSource{}
		c := NewChain(&Agent{SecretID: w.arn, Endpoint: "127.0.0.1:" + freePort(t)}, next)
		defer c.Close()
		sec, err := c.Fetch(ctx, Request{})
		if err != nil || sec.Source != "fixed" || next.calls != 1 {
			t.Fatalf("chain: %v %v, next called %d", sec, err, next.calls)
		}
	})
	t.Run("no token falls through", func(t *testing.T) {
		t.Setenv("AWS_TOKEN", "")
		next := &fixedSource{}
		c := NewChain(&Agent{SecretID: w.arn, TokenFile: filepath.Join(t.TempDir(), "absent")}, next)
		defer c.Close()
		if sec, err := c.Fetch(ctx, Request{}); err != nil || sec.Source != "fixed" {
			t.Fatalf("chain: %v %v", sec, err)
		}
	})
	t.Run("not found ends the chain", func(t *testing.T) {
		next := &fixedSource{}
		c := NewChain(&Agent{SecretID: "no/such/secret"}, next)
		defer c.Close()
		if _, err := c.Fetch(ctx, Request{}); !errors.Is(err, ErrNotFound) || next.calls != 0 {
			t.Fatalf("chain: %v, next called %d", err, next.calls)
		}
	})
	t.Run("bad token ends the chain", func(t *testing.T) {
		t.Setenv("AWS_TOKEN", "wrong")
		next := &fixedSource{}
		c := NewChain(&Agent{SecretID: w.arn}, next)
		defer c.Close()
		if _, err := c.Fetch(ctx, Request{}); err == nil || next.calls != 0 {
			t.Fatalf("chain: %v, next called %d", err, next.calls)
		}
	})
}

func TestAgentBehindCache(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	c := NewCache(w.src, CacheOptions{TTL: time.Hour, MinRefreshInterval: time.Millisecond})
	if _, err := c.Get(ctx, Current); err != nil {
		t.Fatal(err)
	}
	// 5xx and a stopped agent: the last good version is served.
	w.fake.Fail(rotatingmysqltest.Fault{Status: 502, Type: "ConnectionError", Times: 1})
	time.Sleep(2 * time.Millisecond)
	if sec, err := c.Refresh(ctx, Current, time.Now()); err != nil || sec.Creds.Password != "pw-1" {
		t.Fatalf("502: %v %v", sec, err)
	}
	if err := w.fake.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if sec, err := c.Refresh(ctx, Current, time.Now()); err != nil || sec.Creds.Password != "pw-1" {
		t.Fatalf("stopped: %v %v", sec, err)
	}
	if st := c.Stats(); st.StaleServed != 2 || !errors.Is(st.LastError, ErrUnavailable) {
		t.Fatalf("stats %+v", st)
	}
	if err := w.fake.Start(); err != nil {
		t.Fatal(err)
	}
}

// TestAgentWithoutRefreshNow checks the fallback for an agent build that
// refuses refreshNow as an unknown parameter, as the agent refuses any
// parameter it does not know.
func TestAgentWithoutRefreshNow(t *testing.T) {
	var queries []url.Values
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		if r.URL.Query().Has("refreshNow") {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "unknown parameter: refreshNow")
			return
		}
		io.WriteString(w, `{"Name":"s","VersionId":"v1","SecretString":"{\"username\":\"u\",\"password\":\"p\"}","VersionStages":["AWSCURRENT"],"CreatedDate":"1700000000.000"}`)
	}))
	defer srv.Close()
	t.Setenv("AWS_TOKEN", "tok")
	src := &Agent{SecretID: "s", Endpoint: srv.URL}
	defer src.Close()
	for range 2 {
		if sec, err := src.Fetch(context.Background(), Request{Refresh: true}); err != nil || sec.Creds.Password != "p" {
			t.Fatalf("Fetch: %v %v", sec, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// First forced fetch: refused, then asked again without it; the second
	// no longer sends it.
	if len(queries) != 3 || !queries[0].Has("refreshNow") || queries[1].Has("refreshNow") || queries[2].Has("refreshNow") {
		t.Fatalf("queries %v", queries)
	}
}
