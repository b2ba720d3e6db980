package rotatingmysqltest

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Request is one request an emulator received, as its request log keeps it.
type Request struct {
	// Op is the operation ("GetSecretValue").
	Op string
	// Host is the Host the client addressed: the endpoint the SDK
	// resolved (secretsmanager-fips.us-east-1.amazonaws.com with
	// AWS_USE_FIPS_ENDPOINT=true), also when the request came through
	// HTTPClient, which delivers it here whatever its URL.
	Host string
	// Region is the region of the request's SigV4 credential scope.
	Region string
	// SecretID and VersionStage are the request's fields.
	SecretID, VersionStage string
	// At is when the request arrived.
	At time.Time
}

// maxRequests bounds the request log.
const maxRequests = 10000

// Requests returns the request log: the first 10,000 requests received
// since the start or the last ResetCalls, in order.
func (s *SecretsManager) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Answered returns how many requests for op the emulator answered with
// success (not an error, a fault or a throttling answer).
func (s *SecretsManager) Answered(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered[op]
}

// logRequest appends a request to the log. Called with s.mu held.
func (s *SecretsManager) logRequest(r *http.Request, op string, in *request) {
	if len(s.requests) >= maxRequests {
		return
	}
	s.requests = append(s.requests, Request{Op: op, Host: r.Host, Region: scopeRegion(r.Header.Get("Authorization")),
		SecretID: in.SecretID, VersionStage: in.VersionStage, At: s.now()})
}

// scopeRegion returns the region of a SigV4 Authorization header's
// Credential=KEY/DATE/REGION/SERVICE/aws4_request, or "".
func scopeRegion(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}

// HTTPClient returns an HTTP client for aws.Config.HTTPClient that
// delivers every request to the emulator, whatever host and scheme the SDK
// resolved, keeping that host in the Host header (the request log's Host).
// A test can so leave the endpoint to the SDK (regions, FIPS, ARNs) and
// still be answered here. Close the client's idle connections with
// CloseIdleConnections.
func (s *SecretsManager) HTTPClient() *RedirectClient {
	return NewRedirectClient(func(*http.Request) string { return s.net.addr })
}

// RedirectClient is an aws.HTTPClient that sends each request to the
// address a function picks for it (host:port, plain HTTP), keeping the
// host the SDK resolved in the Host header.
type RedirectClient struct {
	to func(*http.Request) string
	tr *http.Transport
}

var _ aws.HTTPClient = (*RedirectClient)(nil)

// NewRedirectClient returns a client that sends each request to
// to(request).
func NewRedirectClient(to func(*http.Request) string) *RedirectClient {
	return &RedirectClient{to: to, tr: &http.Transport{
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:    16,
		IdleConnTimeout: 30 * time.Second,
	}}
}

// Do sends req to the address the client picks for it.
func (c *RedirectClient) Do(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Host = req.URL.Host
	r.URL.Scheme, r.URL.Host = "http", c.to(req)
	return c.tr.RoundTrip(r)
}

// CloseIdleConnections closes the client's idle connections.
func (c *RedirectClient) CloseIdleConnections() { c.tr.CloseIdleConnections() }
