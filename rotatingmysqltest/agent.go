package rotatingmysqltest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// AgentTokenHeader is the header in which clients of the Secrets Manager
// Agent send its token.
const AgentTokenHeader = "X-Aws-Parameters-Secrets-Token"

// DefaultAgentTTL is how long the agent caches a secret unless configured
// otherwise.
const DefaultAgentTTL = 300 * time.Second

// agentParams are the only query parameters the agent accepts.
var agentParams = []string{"secretId", "versionId", "versionStage", "refreshNow"}

// AgentRequest is what the fake agent recorded of one request. It holds
// no token.
type AgentRequest struct {
	Method string
	Path   string
	// Params are the query parameters as received, decoded.
	Params url.Values
	// TokenHeader reports whether the request carried the token header at
	// all; Token whether it carried the right token.
	TokenHeader, Token bool
	// Forwarded reports whether it carried X-Forwarded-For.
	Forwarded bool
	// Status is the status the agent answered.
	Status int
}

// UnknownParams returns the query parameters the agent does not know.
func (r AgentRequest) UnknownParams() []string {
	var out []string
	for k := range r.Params {
		if !slices.Contains(agentParams, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Agent is an in-process AWS Secrets Manager Agent (the same protocol as
// the Lambda "Parameters and Secrets" extension) on 127.0.0.1, serving a
// Store that a SecretsManager emulator may share, so one rotation is seen
// through both. It follows the agent's protocol:
//
//   - GET /secretsmanager/get?secretId=ID with optional versionId,
//     versionStage and refreshNow (true, false, 1, 0); any other parameter is
//     refused with 400 "unknown parameter: NAME". GET /v1/ID takes the same
//     parameters but secretId. GET /ping answers "healthy" without a token.
//   - Other requests need the header X-Aws-Parameters-Secrets-Token with
//     the agent's token (else 403), no X-Forwarded-For (else 400), and the
//     GET method (else 405), checked in that order.
//   - Answers are GetSecretValue-shaped JSON with CreatedDate as a string of
//     epoch seconds; AWS errors keep their status (400) with
//     {"__type":...,"message":...}.
//   - It caches each (secretId, versionId, versionStage) for the TTL
//     (DefaultAgentTTL unless SetTTL); refreshNow=true reads the Store again.
//
// It records every request (Requests, Log) and can be stopped and started
// again on the same port (Stop, Start), which empties its cache as a restart
// of the real agent does.
type Agent struct {
	store *Store
	token string
	net   *switchable

	mu         sync.Mutex
	log        []AgentRequest
	storeReads int
	ttl        time.Duration
	cache      map[agentKey]agentEntry
	fault      *Fault
}

type agentKey struct{ id, versionID, stage string }

type agentEntry struct {
	body    []byte
	fetched time.Time
}

// NewAgent starts a fake agent on a free port of 127.0.0.1 that serves
// store and requires token.
func NewAgent(store *Store, token string) (*Agent, error) {
	return NewAgentAt(store, token, "127.0.0.1:0")
}

// NewAgentAt starts a fake agent listening on addr, such as
// "127.0.0.1:2773".
func NewAgentAt(store *Store, token, addr string) (*Agent, error) {
	if token == "" {
		return nil, errors.New("rotatingmysqltest: the agent needs a token")
	}
	a := &Agent{store: store, token: token, ttl: DefaultAgentTTL, cache: make(map[agentKey]agentEntry)}
	var err error
	if a.net, err = listen("Agent", addr, a); err != nil {
		return nil, err
	}
	return a, nil
}

// URL returns the agent's base URL, such as "http://127.0.0.1:41234". It
// stays the same across Stop and Start.
func (a *Agent) URL() string { return "http://" + a.net.addr }

// Addr returns the agent's address, host:port.
func (a *Agent) Addr() string { return a.net.addr }

// Port returns the agent's port, the value for
// PARAMETERS_SECRETS_EXTENSION_HTTP_PORT.
func (a *Agent) Port() string {
	_, port, _ := net.SplitHostPort(a.net.addr)
	return port
}

// Token returns the token the agent requires.
func (a *Agent) Token() string { return a.token }

// Store returns the Store the agent serves.
func (a *Agent) Store() *Store { return a.store }

// Env returns the variables with which a client finds this agent: the
// Lambda extension's port variable and AWS_TOKEN. The other token variables
// are emptied so that AWS_TOKEN is the one used.
func (a *Agent) Env() map[string]string {
	return map[string]string{
		"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": a.Port(),
		"AWS_TOKEN":                              a.token,
		"AWS_SESSION_TOKEN":                      "",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN":      "",
	}
}

// Stop kills the agent: the listener closes, so connections are refused,
// and open connections (idle keep-alive ones included) are closed. Its cache
// is lost.
func (a *Agent) Stop() error {
	changed, err := a.net.setDown(true)
	if changed {
		a.mu.Lock()
		clear(a.cache)
		a.mu.Unlock()
	}
	return err
}

// Start listens again on the same address after Stop, with an empty cache.
func (a *Agent) Start() error {
	_, err := a.net.setDown(false)
	return err
}

// Close stops the agent for good.
func (a *Agent) Close() error { return a.net.close() }

// SetTTL sets how long the agent serves a secret from its cache; 0 turns
// the cache off.
func (a *Agent) SetTTL(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ttl = d
}

// Fail makes the next f.Times secret requests (all of them when Times is
// 0) that pass the token check answer with f.Status (500 when zero) and,
// when f.Type is set, the AWS error body {"__type":f.Type,...}; else a
// plain-text body, as the agent's own 429 "Connection limit exceeded", or
// with f.EchoHeaders the request's headers (token included). f.Message is
// the AWS error's message; f.Delay delays the answer.
func (a *Agent) Fail(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fault = &f
}

// ClearFaults removes the fault.
func (a *Agent) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fault = nil
}

// Requests returns how many requests the agent received, of any kind.
func (a *Agent) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.log)
}

// Log returns every request received, oldest first.
func (a *Agent) Log() []AgentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AgentRequest, len(a.log))
	for i, r := range a.log {
		r.Params = cloneValues(r.Params)
		out[i] = r
	}
	return out
}

// StoreReads returns how many times the agent read the Store: the
// GetSecretValue calls the real agent would have made.
func (a *Agent) StoreReads() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.storeReads
}

// ResetRequests empties the log and the counters.
func (a *Agent) ResetRequests() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = nil
	a.storeReads = 0
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// ServeHTTP answers one request as the agent does.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := AgentRequest{
		Method:    r.Method,
		Path:      r.URL.Path,
		Params:    lenientQuery(r.URL.RawQuery),
		Forwarded: r.Header.Get("X-Forwarded-For") != "",
	}
	_, rec.TokenHeader = r.Header[http.CanonicalHeaderKey(AgentTokenHeader)]
	rec.Token = rec.TokenHeader && r.Header.Get(AgentTokenHeader) == a.token
	status, body := a.answer(r, &rec)
	rec.Status = status
	a.mu.Lock()
	a.log = append(a.log, rec)
	a.mu.Unlock()
	w.WriteHeader(status)
	w.Write(body)
}

func (a *Agent) answer(r *http.Request, rec *AgentRequest) (int, []byte) {
	path := r.URL.Path
	if path != "/ping" {
		if rec.Forwarded {
			return http.StatusBadRequest, []byte("Forwarded")
		}
		if !rec.Token {
			return http.StatusForbidden, []byte("Bad Token")
		}
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, []byte("Not allowed")
	}
	var q agentQuery
	var err error
	switch {
	case path == "/ping":
		return http.StatusOK, []byte("healthy")
	case path == "/secretsmanager/get":
		q, err = parseAgentQuery(r.URL.RawQuery, true)
	case strings.HasPrefix(path, "/v1/"):
		q, err = parseAgentQuery(r.URL.RawQuery, false)
		q.secretID = strings.TrimPrefix(path, "/v1/")
		if err == nil && q.secretID == "" {
			err = errors.New("missing secret ID")
		}
	default:
		return http.StatusNotFound, []byte("Not found")
	}
	if err != nil {
		return http.StatusBadRequest, []byte(err.Error())
	}
	if status, body, ok := a.faulted(r); ok {
		return status, body
	}
	return a.fetch(q)
}

// faulted applies the injected fault, if any.
func (a *Agent) faulted(r *http.Request) (int, []byte, bool) {
	a.mu.Lock()
	f := a.fault
	if f != nil && f.Times > 0 {
		if f.Times == 1 {
			a.fault = nil
		} else {
			g := *f
			g.Times--
			a.fault = &g
		}
	}
	a.mu.Unlock()
	if f == nil {
		return 0, nil, false
	}
	if sleep(r.Context(), f.Delay) != nil {
		panic(http.ErrAbortHandler) // the client is gone
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if f.Type == "" {
		if f.EchoHeaders {
			return status, []byte(f.message(r.Header)), true
		}
		if status == http.StatusTooManyRequests {
			return status, []byte("Connection limit exceeded"), true
		}
		return status, agentErrorBody("InternalFailure", ""), true
	}
	return status, agentErrorBody(f.Type, f.message(r.Header)), true
}

type agentQuery struct {
	secretID, versionID, versionStage string
	refreshNow                        bool
}

// parseAgentQuery reads the query as the agent does: parameters in order,
// an unknown one or a bad refreshNow refused, the last of a repeated one
// kept.
func parseAgentQuery(raw string, wantSecretID bool) (agentQuery, error) {
	var q agentQuery
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, kerr := url.QueryUnescape(k)
		v, verr := url.QueryUnescape(v)
		if kerr != nil || verr != nil {
			return q, errors.New("invalid query encoding")
		}
		switch k {
		case "secretId":
			if !wantSecretID {
				return q, fmt.Errorf("unknown parameter: %s", k)
			}
			q.secretID = v
		case "versionId":
			q.versionID = v
		case "versionStage":
			q.versionStage = v
		case "refreshNow":
			switch strings.ToLower(v) {
			case "true", "1":
				q.refreshNow = true
			case "false", "0":
				q.refreshNow = false
			default:
				return q, errors.New("invalid refreshNow value")
			}
		default:
			return q, fmt.Errorf("unknown parameter: %s", k)
		}
	}
	if wantSecretID && q.secretID == "" {
		return q, errors.New("missing parameter secretId")
	}
	return q, nil
}

// lenientQuery decodes a query for the log, keeping what it can.
func lenientQuery(raw string) url.Values {
	v, _ := url.ParseQuery(raw)
	if v == nil {
		v = url.Values{}
	}
	return v
}

// fetch serves a query from the cache or the Store.
func (a *Agent) fetch(q agentQuery) (int, []byte) {
	key := agentKey{q.secretID, q.versionID, q.versionStage}
	now := time.Now()
	a.mu.Lock()
	if e, ok := a.cache[key]; ok && !q.refreshNow && now.Sub(e.fetched) < a.ttl {
		a.mu.Unlock()
		return http.StatusOK, e.body
	}
	a.storeReads++
	a.mu.Unlock()

	v, err := a.store.GetSecretValue(q.secretID, q.versionID, q.versionStage)
	var d Description
	if err == nil {
		d, err = a.store.Describe(q.secretID)
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		return http.StatusBadRequest, agentErrorBody(e.Code, e.Message)
	case err != nil:
		return http.StatusInternalServerError, agentErrorBody("InternalFailure", "")
	}
	out := object{
		"ARN": d.ARN, "Name": d.Name, "VersionId": v.VersionID, "VersionStages": v.Stages,
		// The agent serializes CreatedDate as a string, unlike the API.
		"CreatedDate": string(epoch(v.CreatedDate)),
	}
	if v.SecretBinary != nil {
		out["SecretBinary"] = base64.StdEncoding.EncodeToString(v.SecretBinary)
	} else {
		out["SecretString"] = v.SecretString
	}
	body, err := json.Marshal(out)
	if err != nil {
		return http.StatusInternalServerError, agentErrorBody("InternalFailure", "")
	}
	a.mu.Lock()
	if a.ttl > 0 && a.net.up() {
		a.cache[key] = agentEntry{body: body, fetched: now}
	}
	a.mu.Unlock()
	return http.StatusOK, body
}

// agentErrorBody formats an error as the agent does: InternalFailure has
// no message.
func agentErrorBody(typ, msg string) []byte {
	if msg == "" || typ == "InternalFailure" {
		return []byte(`{"__type":"InternalFailure"}`)
	}
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{typ, msg})
	return b
}

var _ http.Handler = (*Agent)(nil)
