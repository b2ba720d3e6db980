package credsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Settings of the Secrets Manager Agent and the Lambda "Parameters and
// Secrets" extension that the Agent source follows.
const (
	// DefaultAgentPort is the port both the agent and the extension listen
	// on unless configured otherwise.
	DefaultAgentPort = 2773
	// AgentPortEnv is the variable that sets the Lambda extension's port;
	// the Agent source reads it too.
	AgentPortEnv = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
	// DefaultAgentTokenFile is where the agent's installer writes the token.
	DefaultAgentTokenFile = "/var/run/awssmatoken"
	// AgentTokenHeader carries the token in every request.
	AgentTokenHeader = "X-Aws-Parameters-Secrets-Token"
)

// AgentTokenEnv lists the variables the token is read from, first set wins:
// the agent's own order. A value file://PATH means "read the token from
// PATH".
var AgentTokenEnv = []string{"AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}

// RemoteAgentTokenEnv lists the variables the token is read from for an
// agent that is not on loopback (AllowRemote): AWS_TOKEN only, set for that
// purpose. AWS_SESSION_TOKEN and AWS_CONTAINER_AUTHORIZATION_TOKEN are AWS
// credentials of the process and never leave the host.
var RemoteAgentTokenEnv = []string{"AWS_TOKEN"}

// maxAgentBody bounds an answer of the agent; a secret is at most 64 KiB.
const maxAgentBody = 1 << 20

// Agent is the Source that asks the AWS Secrets Manager Agent (EC2, ECS,
// EKS) or the Lambda "Parameters and Secrets" extension, both local caching
// proxies of GetSecretValue:
//
//	GET http://127.0.0.1:PORT/secretsmanager/get?secretId=ID[&versionStage=S][&refreshNow=true]
//
// PORT is PARAMETERS_SECRETS_EXTENSION_HTTP_PORT when set, else 2773;
// Endpoint overrides the whole base URL. The token sent in
// X-Aws-Parameters-Secrets-Token is Token when set; else it comes from
// AWS_TOKEN, AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN (the
// first set; file://PATH reads it from PATH), else from TokenFile when
// readable, read again for each request. It never appears in an error.
//
// AWSCURRENT is asked for without versionStage, so the agent's cache entry
// is the one other clients of the agent share (its cache key is the literal
// request); other stages are named. A forced refresh (Request.Refresh) adds
// refreshNow=true, which makes the agent bypass its cache; should an agent
// refuse that parameter as a bad request (a build that does not know it),
// the source asks again without it and stops sending it.
//
// Errors: a 403 says the agent refused the token and which variable it came
// from; ResourceNotFoundException wraps ErrNotFound; a refused or dropped
// connection wraps ErrUnavailable (a Chain moves on to its next source),
// as does a missing token; 429, 5xx and timeouts are *AgentError or context
// errors for which the Cache serves its last good value.
type Agent struct {
	// SecretID is the secret's name or ARN.
	SecretID string
	// Endpoint is the agent's base URL, such as "http://127.0.0.1:2773"
	// ("host:port" means http). Empty means 127.0.0.1 and the port above.
	Endpoint string
	// AllowRemote lets Endpoint name a host that is not loopback. The token
	// travels in every request, in clear over http: allow it only over a
	// network path you trust.
	AllowRemote bool
	// TokenFile is read when no token variable is set; empty means
	// DefaultAgentTokenFile.
	TokenFile string
	// Token, when set, is the token sent, and the variables and TokenFile
	// are not read: for a program that gets the token from somewhere
	// other than its environment (its own configuration store, a file it
	// reads itself). Surrounding white space is trimmed. It prints as
	// [redacted] (see Token) and never appears in an error; errors name
	// it "Agent.Token".
	Token Token
	// Keys names the JSON keys of the secret's fields; the zero value
	// reads the RDS keys (username, password, host, port, dbname).
	Keys Keys

	once      sync.Once
	base      string // scheme://host:port, no trailing slash
	initErr   error
	transport *http.Transport
	client    *http.Client

	// noRefreshNow is set once the agent refused refreshNow as a request
	// error: a build that does not know the parameter.
	noRefreshNow atomic.Bool
}

var (
	_ Source    = (*Agent)(nil)
	_ io.Closer = (*Agent)(nil)
)

// String names the source in logs and errors.
func (a *Agent) String() string { return "agent" }

// BaseURL returns the URL the source sends its requests to, or why it
// refuses to use it (a port variable that is not a port, an endpoint that
// is not loopback without AllowRemote). It is resolved once.
func (a *Agent) BaseURL() (string, error) {
	a.once.Do(a.init)
	return a.base, a.initErr
}

func (a *Agent) init() {
	ep := a.Endpoint
	if ep == "" {
		port := DefaultAgentPort
		if v, ok := os.LookupEnv(AgentPortEnv); ok && v != "" {
			p, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || p < 1 || p > 65535 {
				a.initErr = fmt.Errorf("agent source: %s=%q is not a port number (1 to 65535)", AgentPortEnv, v)
				return
			}
			port = p
		}
		ep = "http://127.0.0.1:" + strconv.Itoa(port)
	}
	base, err := parseAgentEndpoint(ep, a.AllowRemote)
	if err != nil {
		a.initErr = err
		return
	}
	a.base = base
	a.transport = &http.Transport{
		// Never through a proxy: the token must reach the agent alone, and
		// the agent refuses forwarded requests.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     60 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	a.client = &http.Client{
		Transport: a.transport,
		// A redirect would carry the token header elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// parseAgentEndpoint checks an endpoint and returns its base URL.
func parseAgentEndpoint(ep string, allowRemote bool) (string, error) {
	raw := ep
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("agent source: endpoint %q is not a base URL such as http://127.0.0.1:2773", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("agent source: endpoint %q: port must be from 1 to 65535", raw)
		}
	}
	if !allowRemote && !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("agent source: endpoint %q is not a loopback address: the agent token would leave this host "+
			"(the agent and the Lambda extension listen on 127.0.0.1); to send it anyway, over a network you trust, "+
			"set allowRemoteAgent=true in the DSN (Go: WithAllowRemoteAgent(true))", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Token is a bearer token, such as the agent's, that prints as [redacted]
// under every fmt verb (%v, %+v, %#v, %s, %q, %x...) and marshals (JSON,
// text) as [redacted], so that a configuration printed or logged whole does
// not show it; an empty Token prints empty. string(t) is its value.
type Token string

// String returns Redacted, or "" for an empty token.
func (t Token) String() string {
	if t == "" {
		return ""
	}
	return Redacted
}

// GoString is the redacted form for %#v.
func (t Token) GoString() string { return "credsource.Token(" + strconv.Quote(t.String()) + ")" }

// Format prints the redacted form under every verb.
func (t Token) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, t.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(t.String()))
	default:
		_, _ = io.WriteString(f, t.String())
	}
}

// MarshalText returns the redacted form, so that encoding/json and
// log/slog's JSON handler do not write the token either.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

var (
	_ fmt.Formatter  = Token("")
	_ fmt.GoStringer = Token("")
	_ fmt.Stringer   = Token("")
)

// agentTokenField names Agent.Token in errors (the value is never printed).
const agentTokenField = "Agent.Token"

// agentToken is the token and where it came from (for errors; the value is
// never printed).
type agentToken struct {
	value string
	from  string // e.g. "AWS_TOKEN", "AWS_TOKEN (file:///run/token)", "file /var/run/awssmatoken"
}

// token finds the token: Token when set, else the way the agent does; for
// an agent off this host (remote), only from AWS_TOKEN or the token file.
func (a *Agent) token(remote bool) (agentToken, error) {
	if a.Token != "" {
		tok := strings.TrimSpace(string(a.Token))
		if tok == "" {
			return agentToken{}, fmt.Errorf("agent source: %w: %s is only white space", ErrUnavailable, agentTokenField)
		}
		remember(tok)
		return agentToken{value: tok, from: agentTokenField}, nil
	}
	names := AgentTokenEnv
	if remote {
		names = RemoteAgentTokenEnv
	}
	for _, name := range names {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			continue
		}
		path, isFile := strings.CutPrefix(v, "file://")
		if !isFile {
			return agentToken{value: v, from: name}, nil
		}
		from := fmt.Sprintf("%s (file://%s)", name, path)
		tok, err := readTokenFile(path)
		if err != nil {
			return agentToken{}, fmt.Errorf("agent source: token from %s: %w", from, err)
		}
		remember(tok)
		return agentToken{value: tok, from: from}, nil
	}
	path := a.TokenFile
	if path == "" {
		path = DefaultAgentTokenFile
	}
	if tok, err := readTokenFile(path); err == nil {
		remember(tok)
		return agentToken{value: tok, from: "file " + path}, nil
	}
	if remote {
		return agentToken{}, fmt.Errorf("agent source: %w: no token for the agent at %s, which is not on this host: only Agent.Token (Go: WithAgentToken), AWS_TOKEN (a value file://PATH reads the token from PATH) or the token file %s is sent off the host; AWS_SESSION_TOKEN and AWS_CONTAINER_AUTHORIZATION_TOKEN are AWS credentials and never are",
			ErrUnavailable, a.base, path)
	}
	return agentToken{}, fmt.Errorf("agent source: %w: no token for the Secrets Manager Agent or Lambda extension: set %s (the first set is used; a value file://PATH reads the token from PATH), make %s readable, or give it in Go (Agent.Token; rotatingmysql.WithAgentToken)",
		ErrUnavailable, strings.Join(AgentTokenEnv, ", "), path)
}

// readTokenFile reads a token file, trimming surrounding white space.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// Fetch asks the agent for the version with the requested stage.
func (a *Agent) Fetch(ctx context.Context, req Request) (*Secret, error) {
	stage := req.Stage
	if stage == "" {
		stage = Current
	}
	base, err := a.BaseURL()
	if err != nil {
		return nil, err
	}
	tok, err := a.token(!isLoopbackURL(base))
	if err != nil {
		return nil, Redact(fmt.Errorf("secret %q stage %s: %w", a.SecretID, stage, err))
	}
	sec, err := a.fetch(ctx, base, stage, req.Refresh, tok)
	if err != nil {
		// The token is replaced wherever an answer or a transport error
		// quotes it (a proxy echoing the request, say).
		return nil, Redact(err, tok.value)
	}
	return sec, nil
}

// isLoopbackURL reports whether base (scheme://host:port) names a loopback
// host.
func isLoopbackURL(base string) bool {
	u, err := url.Parse(base)
	return err == nil && isLoopbackHost(u.Hostname())
}

// fetch asks the agent at base, with the token tok.
func (a *Agent) fetch(ctx context.Context, base string, stage Stage, refresh bool, tok agentToken) (*Secret, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFetchTimeout)
		defer cancel()
	}
	refresh = refresh && !a.noRefreshNow.Load()
	status, body, err := a.get(ctx, base, stage, refresh, tok.value)
	if err == nil && refresh && status == http.StatusBadRequest && !isAWSError(body) {
		// The agent refused the request itself, not the secret: the only
		// parameter that can be new to it is refreshNow. Ask again without
		// it (the agent's cache may then answer; AWSPENDING is rarely
		// cached, so the fallback to it still works).
		a.noRefreshNow.Store(true)
		status, body, err = a.get(ctx, base, stage, false, tok.value)
	}
	if err != nil {
		return nil, a.transportError(ctx, stage, base, err)
	}
	if status != http.StatusOK {
		return nil, newAgentError(a.SecretID, stage, base, status, body, tok)
	}
	if len(body) > maxAgentBody {
		return nil, fmt.Errorf("secret %q stage %s: agent at %s: answer larger than %d bytes", a.SecretID, stage, base, maxAgentBody)
	}
	out, err := parseAgentResponse(body)
	if err != nil {
		return nil, fmt.Errorf("secret %q stage %s: agent at %s: %w", a.SecretID, stage, base, err)
	}
	sec := &Secret{
		ID:          a.SecretID,
		ARN:         out.ARN,
		Name:        out.Name,
		VersionID:   out.VersionID,
		Stages:      out.VersionStages,
		CreatedDate: out.CreatedDate,
		Source:      "agent",
	}
	if out.SecretString == nil {
		reason := "has no SecretString"
		if out.HasBinary {
			reason = "holds only SecretBinary"
		}
		return nil, &SecretError{SecretID: a.SecretID, VersionID: sec.VersionID,
			Reason: reason + "; rotatingmysql needs the RDS JSON format in SecretString"}
	}
	if sec.Creds, err = a.Keys.Parse(a.SecretID, sec.VersionID, []byte(*out.SecretString)); err != nil {
		return nil, err
	}
	return sec, nil
}

// get sends one request and reads the answer.
func (a *Agent) get(ctx context.Context, base string, stage Stage, refresh bool, token string) (int, []byte, error) {
	q := url.Values{"secretId": {a.SecretID}}
	if stage != Current {
		q.Set("versionStage", string(stage))
	}
	if refresh {
		q.Set("refreshNow", "true")
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/secretsmanager/get?"+q.Encode(), nil)
	if err != nil {
		return 0, nil, err
	}
	hreq.Header.Set(AgentTokenHeader, token)
	resp, err := a.client.Do(hreq)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	return resp.StatusCode, body, err
}

// isAWSError reports whether an error answer carries an AWS error type
// (the service's answer about the secret) rather than the agent's own
// plain-text refusal of the request.
func isAWSError(body []byte) bool {
	var doc struct {
		Type string `json:"__type"`
	}
	return json.Unmarshal(body, &doc) == nil && doc.Type != ""
}

// transportError classifies a failure to get an answer: no connection (or
// a dropped one) is ErrUnavailable, so a chain moves on; a timeout is
// transient and the cache serves its last good value.
func (a *Agent) transportError(ctx context.Context, stage Stage, base string, err error) error {
	prefix := fmt.Sprintf("secret %q stage %s: agent at %s", a.SecretID, stage, base)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL repeats what prefix says
	}
	var op *net.OpError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: no answer: %w", prefix, ctx.Err())
	case errors.Is(err, syscall.ECONNREFUSED):
		where := fmt.Sprintf("the port comes from %s, default %d", AgentPortEnv, DefaultAgentPort)
		if a.Endpoint != "" {
			where = "the endpoint is set by agentEndpoint"
		}
		return fmt.Errorf("%s: %w: connection refused: the Secrets Manager Agent or Lambda extension is not running there (%s): %w",
			prefix, ErrUnavailable, where, err)
	case errors.As(err, &op) && op.Op == "dial" && !op.Timeout():
		return fmt.Errorf("%s: %w: cannot connect: %w", prefix, ErrUnavailable, err)
	case isTimeout(err):
		return fmt.Errorf("%s: timed out: %w", prefix, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%s: %w: the connection was closed before an answer (agent stopped?): %w", prefix, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", prefix, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the source's idle connections to the agent.
func (a *Agent) Close() error {
	a.once.Do(a.init)
	if a.transport != nil {
		a.transport.CloseIdleConnections()
	}
	return nil
}

// AgentError is an error answer of the agent or the Lambda extension. Its
// Unwrap returns ErrNotFound for ResourceNotFoundException.
type AgentError struct {
	SecretID string
	Stage    Stage
	// Endpoint is the agent's base URL.
	Endpoint string
	// StatusCode is the HTTP status: the AWS error's own status, or 403 (bad
	// token), 400 (bad request), 405, 429 (connection limit), 500, 502 and
	// 504 (the agent could not reach Secrets Manager).
	StatusCode int
	// Type is the AWS error's __type (e.g. ResourceNotFoundException),
	// empty when the agent answered plain text.
	Type string
	// Message is the error's message, or the plain-text answer, shortened.
	Message string
	// TokenFrom names where the token sent came from (a variable or a
	// file), never its value.
	TokenFrom string
}

// Error describes the answer; a refused token names its source.
func (e *AgentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "secret %q stage %s: agent at %s ", e.SecretID, e.Stage, e.Endpoint)
	switch {
	case e.StatusCode == http.StatusForbidden:
		fmt.Fprintf(&b, "refused the token from %s (403): it is not the token the agent was started with (the agent reads %s in its own environment, else %s)",
			e.TokenFrom, strings.Join(AgentTokenEnv, ", "), DefaultAgentTokenFile)
		return b.String()
	case e.StatusCode == http.StatusTooManyRequests:
		b.WriteString("is over its connection limit (429)")
	default:
		fmt.Fprintf(&b, "answered %d", e.StatusCode)
	}
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(e.Type)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Temporary() {
		b.WriteString(" (transient)")
	}
	return b.String()
}

// Unwrap returns ErrNotFound when the agent answered that the secret or the
// version does not exist.
func (e *AgentError) Unwrap() error {
	if e.Type == "ResourceNotFoundException" {
		return ErrNotFound
	}
	return nil
}

// Temporary reports whether the error may go away by itself: 429 and 5xx.
func (e *AgentError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func newAgentError(id string, stage Stage, base string, status int, body []byte, tok agentToken) *AgentError {
	e := &AgentError{SecretID: id, Stage: stage, Endpoint: base, StatusCode: status, TokenFrom: tok.from}
	// The message is redacted before it is shortened, so that no part of
	// the token survives a cut either.
	shorten := func(s string) string { return shorten(redactText(s, nil, []string{tok.value})) }
	var doc struct {
		Type    string `json:"__type"`
		Message string `json:"message"` // also matches "Message"
	}
	if json.Unmarshal(body, &doc) == nil && doc.Type != "" {
		// "prefix#Name" is allowed, as in the API's errors.
		e.Type = shorten(doc.Type[strings.LastIndexByte(doc.Type, '#')+1:])
		e.Message = shorten(doc.Message)
	} else if t := bytes.TrimSpace(body); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		// JSON that is no AWS error may be a secret-bearing answer (or a
		// part of one): never quoted.
		e.Message = "a JSON answer that is not an AWS error (not shown: it may hold the secret)"
	} else if status != http.StatusForbidden {
		e.Message = shorten(string(body))
	}
	return e
}

// shorten keeps error text printable and short.
func shorten(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "..."
	}
	return s
}

// agentResponse is the agent's GetSecretValue-shaped answer.
type agentResponse struct {
	ARN           string
	Name          string
	VersionID     string
	SecretString  *string
	HasBinary     bool
	VersionStages []string
	CreatedDate   time.Time // zero when absent or in a form not understood
}

// parseAgentResponse reads a 200 answer of the agent. The agent serializes
// CreatedDate as a string of epoch seconds ("1700000000.123"), unlike the
// API's number; both are accepted, and an unknown form leaves it zero rather
// than failing a login over metadata. Errors never quote the body, which
// holds a password.
func parseAgentResponse(body []byte) (*agentResponse, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errors.New("answer is not a JSON object")
	}
	var doc struct {
		ARN           *string         `json:"ARN"`
		Name          *string         `json:"Name"`
		VersionID     *string         `json:"VersionId"`
		SecretString  *string         `json:"SecretString"`
		SecretBinary  json.RawMessage `json:"SecretBinary"`
		VersionStages []string        `json:"VersionStages"`
		CreatedDate   json.RawMessage `json:"CreatedDate"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("answer is not valid JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return nil, fmt.Errorf("answer field %s is a JSON %s, want %s", te.Field, te.Value, te.Type)
		default:
			return nil, errors.New("answer is not a GetSecretValue JSON object")
		}
	}
	out := &agentResponse{
		SecretString:  doc.SecretString,
		HasBinary:     len(doc.SecretBinary) > 0 && string(doc.SecretBinary) != "null",
		VersionStages: doc.VersionStages,
		CreatedDate:   parseAgentTime(doc.CreatedDate),
	}
	for _, f := range []struct {
		src *string
		dst *string
	}{{doc.ARN, &out.ARN}, {doc.Name, &out.Name}, {doc.VersionID, &out.VersionID}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	return out, nil
}

// parseAgentTime reads epoch seconds with an optional fraction, as a JSON
// string (the agent) or number (the API), or an RFC 3339 string. It returns
// the zero time for anything else.
func parseAgentTime(raw json.RawMessage) time.Time {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return time.Time{}
	}
	if s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}
		}
		s = strings.TrimSpace(s)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	// Seconds and fraction as integers, so milliseconds survive exactly.
	secPart, frac, hasFrac := strings.Cut(s, ".")
	if sec, err := strconv.ParseUint(secPart, 10, 40); err == nil && (!hasFrac || isDigits(frac)) {
		var nsec int64
		for i := 0; i < 9; i++ {
			nsec *= 10
			if i < len(frac) {
				nsec += int64(frac[i] - '0')
			}
		}
		return time.Unix(int64(sec), nsec)
	}
	// Exponent forms such as 1.7e9.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f >= 1<<40 {
		return time.Time{}
	}
	whole, fr := math.Modf(f)
	return time.Unix(int64(whole), int64(fr*1e9))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
