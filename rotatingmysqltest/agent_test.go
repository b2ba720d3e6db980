package rotatingmysqltest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testAgentToken = "agent-token-for-tests"

// newTestAgent starts a fake agent on a store holding one secret.
func newTestAgent(t *testing.T) (*Agent, *Store, string) {
	t.Helper()
	st := NewStore()
	arn, _, err := st.CreateSecret("app/db", `{"username":"u","password":"p1"}`)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAgent(st, testAgentToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, st, arn
}

// agentClient sends requests to a fake agent and closes its connections
// at the end of the test.
type agentClient struct {
	t *testing.T
	a *Agent
	c *http.Client
}

func newAgentClient(t *testing.T, a *Agent) *agentClient {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &agentClient{t: t, a: a, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// do sends method path?query with the given headers and returns the status
// and body.
func (c *agentClient) do(method, pathQuery string, header map[string]string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.a.URL()+pathQuery, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (c *agentClient) get(pathQuery string) (int, string) {
	c.t.Helper()
	return c.do(http.MethodGet, pathQuery, map[string]string{AgentTokenHeader: testAgentToken})
}

func TestAgentProtocol(t *testing.T) {
	a, _, arn := newTestAgent(t)
	c := newAgentClient(t, a)
	tok := map[string]string{AgentTokenHeader: testAgentToken}
	q := "/secretsmanager/get?secretId=" + url.QueryEscape(arn)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		status             int
		body               string // substring
	}{
		{name: "ping needs no token", method: "GET", path: "/ping", status: 200, body: "healthy"},
		{name: "no token", method: "GET", path: q, status: 403, body: "Bad Token"},
		{name: "wrong token", method: "GET", path: q, header: map[string]string{AgentTokenHeader: "nope"}, status: 403, body: "Bad Token"},
		{name: "forwarded", method: "GET", path: q, header: map[string]string{AgentTokenHeader: testAgentToken, "X-Forwarded-For": "10.0.0.1"}, status: 400, body: "Forwarded"},
		{name: "POST is checked after the token", method: "POST", path: q, status: 403},
		{name: "POST with token", method: "POST", path: q, header: tok, status: 405, body: "Not allowed"},
		{name: "unknown parameter", method: "GET", path: q + "&versionStage=AWSCURRENT&abc=1", header: tok, status: 400, body: "unknown parameter: abc"},
		{name: "missing secretId", method: "GET", path: "/secretsmanager/get?versionStage=AWSCURRENT", header: tok, status: 400, body: "missing parameter secretId"},
		{name: "bad refreshNow", method: "GET", path: q + "&refreshNow=yes", header: tok, status: 400, body: "invalid refreshNow value"},
		{name: "refreshNow 1", method: "GET", path: q + "&refreshNow=1", header: tok, status: 200, body: `"CreatedDate":"`},
		{name: "refreshNow FALSE", method: "GET", path: q + "&refreshNow=FALSE", header: tok, status: 200},
		{name: "no such secret", method: "GET", path: "/secretsmanager/get?secretId=nope", header: tok, status: 400, body: `"__type":"ResourceNotFoundException"`},
		{name: "no such stage", method: "GET", path: q + "&versionStage=AWSPENDING", header: tok, status: 400, body: `"message":"Secrets Manager can't find`},
		{name: "path style", method: "GET", path: "/v1/app/db?versionStage=AWSCURRENT", header: tok, status: 200, body: `"Name":"app/db"`},
		{name: "path style refuses secretId", method: "GET", path: "/v1/app/db?secretId=x", header: tok, status: 400, body: "unknown parameter: secretId"},
		{name: "path style without id", method: "GET", path: "/v1/", header: tok, status: 400, body: "missing secret ID"},
		{name: "unknown path", method: "GET", path: "/other", header: tok, status: 404, body: "Not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.do(tc.method, tc.path, tc.header)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, status, body, tc.status, tc.body)
			}
		})
	}
	log := a.Log()
	if len(log) != a.Requests() || len(log) != 17 {
		t.Fatalf("log holds %d requests, Requests() %d, want 17", len(log), a.Requests())
	}
	if r := log[1]; r.TokenHeader || r.Token || r.Status != 403 {
		t.Errorf("no-token request logged as %+v", r)
	}
	if r := log[2]; !r.TokenHeader || r.Token {
		t.Errorf("wrong-token request logged as %+v", r)
	}
	if r := log[6]; !r.Token || !slices.Equal(r.UnknownParams(), []string{"abc"}) || r.Params.Get("versionStage") != "AWSCURRENT" {
		t.Errorf("unknown-parameter request logged as %+v", r)
	}
	if r := log[3]; !r.Forwarded || r.Status != 400 {
		t.Errorf("forwarded request logged as %+v", r)
	}
}

func TestAgentAnswer(t *testing.T) {
	a, st, arn := newTestAgent(t)
	c := newAgentClient(t, a)
	v, err := st.GetSecretValue(arn, "", StageCurrent)
	if err != nil {
		t.Fatal(err)
	}
	status, body := c.get("/secretsmanager/get?secretId=" + url.QueryEscape(arn))
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	created, ok := out["CreatedDate"].(string)
	if !ok {
		t.Fatalf("CreatedDate %T, want a string as the agent sends", out["CreatedDate"])
	}
	secs, err := strconv.ParseFloat(created, 64)
	if err != nil || int64(secs) != v.CreatedDate.Unix() {
		t.Fatalf("CreatedDate %q, want %d.xxx", created, v.CreatedDate.Unix())
	}
	if out["ARN"] != arn || out["Name"] != "app/db" || out["VersionId"] != v.VersionID || out["SecretString"] != v.SecretString {
		t.Fatalf("answer %v", out)
	}
	if stages, _ := out["VersionStages"].([]any); len(stages) != 1 || stages[0] != StageCurrent {
		t.Fatalf("VersionStages %v", out["VersionStages"])
	}

	// Binary secrets come base64-encoded.
	if _, err := st.PutSecretBinary(arn, []byte{0, 1, 2}, []string{"BIN"}); err != nil {
		t.Fatal(err)
	}
	_, body = c.get("/secretsmanager/get?versionStage=BIN&secretId=" + url.QueryEscape(arn))
	var bin struct{ SecretBinary string }
	if err := json.Unmarshal([]byte(body), &bin); err != nil || bin.SecretBinary != base64.StdEncoding.EncodeToString([]byte{0, 1, 2}) || strings.Contains(body, "SecretString") {
		t.Fatalf("binary answer %s (%v)", body, err)
	}
}

func TestAgentCache(t *testing.T) {
	a, st, arn := newTestAgent(t)
	c := newAgentClient(t, a)
	q := "/secretsmanager/get?secretId=" + url.QueryEscape(arn)
	password := func(pathQuery string) string {
		t.Helper()
		status, body := c.get(pathQuery)
		if status != 200 {
			t.Fatalf("%s: %d %s", pathQuery, status, body)
		}
		var out struct{ SecretString string }
		json.Unmarshal([]byte(body), &out)
		var doc struct{ Password string }
		json.Unmarshal([]byte(out.SecretString), &doc)
		return doc.Password
	}
	if got := password(q); got != "p1" {
		t.Fatalf("first read %q", got)
	}
	if _, err := st.PutSecretValue(arn, `{"username":"u","password":"p2"}`, nil); err != nil {
		t.Fatal(err)
	}
	// The cache key is the literal request: the same request is served
	// stale, another spelling of it reads the store.
	if got := password(q); got != "p1" {
		t.Fatalf("cached read %q, want p1", got)
	}
	if got := password(q + "&versionStage=AWSCURRENT"); got != "p2" {
		t.Fatalf("other cache key %q, want p2", got)
	}
	if got := password(q + "&refreshNow=true"); got != "p2" {
		t.Fatalf("refreshNow read %q, want p2", got)
	}
	if got := password(q); got != "p2" {
		t.Fatalf("after refreshNow the cache holds %q, want p2", got)
	}
	if n := a.StoreReads(); n != 3 {
		t.Fatalf("store reads %d, want 3", n)
	}
	a.SetTTL(0)
	password(q)
	password(q)
	if n := a.StoreReads(); n != 5 {
		t.Fatalf("with TTL 0 store reads %d, want 5", n)
	}
	a.ResetRequests()
	if a.Requests() != 0 || a.StoreReads() != 0 {
		t.Fatal("ResetRequests left counts")
	}
}

func TestAgentFaults(t *testing.T) {
	a, _, arn := newTestAgent(t)
	c := newAgentClient(t, a)
	q := "/secretsmanager/get?secretId=" + url.QueryEscape(arn)
	a.Fail(Fault{Status: 429, Times: 1})
	if status, body := c.get(q); status != 429 || body != "Connection limit exceeded" {
		t.Fatalf("429: %d %q", status, body)
	}
	a.Fail(Fault{Status: 502, Type: "ConnectionError", Times: 2})
	for range 2 {
		if status, body := c.get(q); status != 502 || !strings.Contains(body, `"__type":"ConnectionError"`) {
			t.Fatalf("502: %d %q", status, body)
		}
	}
	if status, _ := c.get(q); status != 200 {
		t.Fatalf("after Times the fault is gone: %d", status)
	}
	a.Fail(Fault{})
	if status, body := c.get(q); status != 500 || body != `{"__type":"InternalFailure"}` {
		t.Fatalf("500: %d %q", status, body)
	}
	// Faults come after the token check, as the agent's own errors do.
	if status, _ := c.do("GET", q, nil); status != 403 {
		t.Fatalf("fault before the token check: %d", status)
	}
	a.ClearFaults()
	if status, _ := c.get(q); status != 200 {
		t.Fatalf("ClearFaults: %d", status)
	}
}

func TestAgentStopStart(t *testing.T) {
	a, st, arn := newTestAgent(t)
	c := newAgentClient(t, a)
	q := "/secretsmanager/get?secretId=" + url.QueryEscape(arn)
	if status, _ := c.get(q); status != 200 {
		t.Fatal(status)
	}
	url0 := a.URL()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", a.URL()+q, nil)
	req.Header.Set(AgentTokenHeader, testAgentToken)
	if _, err := c.c.Do(req); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stopped agent: %v, want connection refused", err)
	}
	if _, err := st.PutSecretValue(arn, `{"username":"u","password":"p2"}`, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if a.URL() != url0 {
		t.Fatalf("URL changed across Stop/Start: %s -> %s", url0, a.URL())
	}
	// A restarted agent has an empty cache.
	if status, body := c.get(q); status != 200 || !strings.Contains(body, `p2`) {
		t.Fatalf("restarted: %d %s", status, body)
	}
	if a.Env()["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] != a.Port() || a.Env()["AWS_TOKEN"] != testAgentToken {
		t.Fatalf("Env %v", a.Env())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}
