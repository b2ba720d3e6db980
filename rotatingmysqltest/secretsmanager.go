package rotatingmysqltest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Credentials and region the emulator hands to clients in AWSConfig and Env.
// The emulator checks that requests are signed but not the signature.
const (
	Region          = "us-east-1"
	AccessKeyID     = "AKIDTEST"
	SecretAccessKey = "secret"
)

// AnyOp is the operation name for a Fault that applies to every operation
// without one of its own.
const AnyOp = "*"

// Fault makes the emulator misbehave for an operation; see SecretsManager.Fail.
type Fault struct {
	// Status is the HTTP status of the error answer. Zero means 500 for
	// InternalServiceError and ServiceUnavailable, 400 otherwise.
	Status int
	// Type is the error's __type, such as "ThrottlingException" or
	// "InternalServiceError". Empty means InternalServiceError or, when Status
	// is zero too, no error at all: only the Delay.
	Type string
	// Times is how many requests the fault hits; 0 means until cleared.
	Times int
	// Delay is how long to wait before answering. A request whose context ends
	// first (the client gave up) gets no answer.
	Delay time.Duration
	// Message is the error's message; empty means "Injected fault.".
	Message string
	// EchoHeaders makes the error's message quote the request's headers
	// (after Message), as a misbehaving proxy or a debug build might: for
	// tests that a client never prints what it sent (a token, a signature).
	EchoHeaders bool
}

// message is the fault's error message for a request with headers h.
func (f Fault) message(h http.Header) string {
	msg := f.Message
	if msg == "" {
		msg = "Injected fault."
	}
	if f.EchoHeaders {
		var b strings.Builder
		b.WriteString(msg)
		b.WriteString(" Request headers:")
		keys := make([]string, 0, len(h))
		for k := range h {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, v := range h[k] {
				fmt.Fprintf(&b, " %s: %s;", k, v)
			}
		}
		msg = b.String()
	}
	return msg
}

// SecretsManager is an in-process HTTP server speaking the Secrets Manager AWS
// JSON 1.1 protocol on 127.0.0.1, backed by a Store. It counts calls, can
// inject faults and can enforce a request rate per operation as the
// service's quotas do (SetQuota), counting requests per second
// (RequestRates) so that a test can see what a fleet of clients does to the
// account's quota; it is safe for concurrent use.
//
// Calls are counted per request received, so the aws-sdk-go-v2 client's own
// retries count as separate calls, and a refused connection counts as none.
// The SDK's default retryer makes 3 attempts for ThrottlingException (waiting
// up to 1 s, then 2 s), for 500/502/503/504 (up to 50 ms, then 100 ms) and for
// refused connections; other errors are not retried. Its retry quota is per
// client: 500 tokens, 14 per 5xx retry and 5 per throttling retry, refilled
// only by successes. A client that met about 17 operations failing with 5xx
// (50 throttled) stops retrying, so counts depend on the client's history: use
// a new client per test, or ratelimit.None.
type SecretsManager struct {
	store *Store
	net   *switchable

	mu         sync.Mutex
	calls      map[string]int
	stageCalls map[string]int
	total      int
	faults     map[string]Fault
	quotas     map[string]*bucket
	rates      rateLog
	clock      func() time.Time
	requests   []Request
	answered   map[string]int
}

// NewSecretsManager starts an emulator with a Store of its own.
func NewSecretsManager() (*SecretsManager, error) { return NewSecretsManagerWithStore(NewStore()) }

// NewSecretsManagerWithStore starts an emulator serving store, which other
// fakes may share.
func NewSecretsManagerWithStore(store *Store) (*SecretsManager, error) {
	s := &SecretsManager{
		store: store,
		calls: make(map[string]int), stageCalls: make(map[string]int), faults: make(map[string]Fault),
		quotas: make(map[string]*bucket), clock: time.Now,
	}
	s.rates = rateLog{origin: s.clock(), byOp: make(map[string][]RequestRate)}
	var err error
	if s.net, err = listen("SecretsManager", "127.0.0.1:0", s); err != nil {
		return nil, err
	}
	return s, nil
}

// URL returns the emulator's base URL, such as "http://127.0.0.1:41234". It
// stays the same across SetDown.
func (s *SecretsManager) URL() string { return "http://" + s.net.addr }

// Store returns the Store the emulator serves.
func (s *SecretsManager) Store() *Store { return s.store }

// Close stops the emulator and closes its connections.
func (s *SecretsManager) Close() error { return s.net.close() }

// OpenConnections returns how many client connections the emulator holds
// open now, idle keep-alive ones included: a client that has closed its
// idle connections leaves none behind. The server notices a client's close
// when it reads the EOF, a moment later: poll.
func (s *SecretsManager) OpenConnections() int { return s.net.open() }

// SetDown with true closes the listener, so new connections are refused, and
// closes the open ones, idle keep-alive connections included. With false it
// listens again on the same address.
func (s *SecretsManager) SetDown(down bool) error {
	_, err := s.net.setDown(down)
	return err
}

// Fail makes the operation op (such as "GetSecretValue", or AnyOp) answer
// with f, replacing any fault op had. Faulted requests still count as calls.
func (s *SecretsManager) Fail(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = f
}

// ClearFaults removes every fault.
func (s *SecretsManager) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Calls returns how many requests for op the emulator received.
func (s *SecretsManager) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// GetSecretValueCalls returns how many GetSecretValue requests asked for
// stage; a request naming neither stage nor version counts as AWSCURRENT, so
// stage "" is AWSCURRENT too. Requests naming only a VersionId are counted by
// Calls alone.
func (s *SecretsManager) GetSecretValueCalls(stage string) int {
	if stage == "" {
		stage = StageCurrent
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stageCalls[stage]
}

// TotalCalls returns how many requests the emulator received.
func (s *SecretsManager) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// ResetCalls sets every counter to zero and restarts the per-second
// counts (RequestRates) now. Quotas keep their state.
func (s *SecretsManager) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	clear(s.stageCalls)
	s.total = 0
	s.requests = nil
	clear(s.answered)
	s.rates = rateLog{origin: s.now(), byOp: make(map[string][]RequestRate)}
}

// now reads the emulator's clock. Called with s.mu held.
func (s *SecretsManager) now() time.Time { return s.clock() }

// AWSConfig returns a configuration that points an aws-sdk-go-v2 client, such
// as secretsmanager.NewFromConfig, at the emulator. The SDK's default retryer
// is kept.
func (s *SecretsManager) AWSConfig() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(s.URL()),
	}
}

// Env returns environment variables that make config.LoadDefaultConfig reach
// the emulator. Empty values unset variables that would get in the way; the
// SDK treats an empty variable as unset.
func (s *SecretsManager) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":    s.URL(),
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_REGION":                          Region,
		"AWS_ACCESS_KEY_ID":                   AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":               SecretAccessKey,
		"AWS_SESSION_TOKEN":                   "",
		"AWS_PROFILE":                         "",
		"AWS_EC2_METADATA_DISABLED":           "true",
	}
}

// request holds the input fields of every operation served.
type request struct {
	SecretID            string  `json:"SecretId"`
	VersionID           string  `json:"VersionId"`
	VersionStage        string  `json:"VersionStage"`
	Name                string  `json:"Name"`
	SecretString        *string `json:"SecretString"`
	SecretBinary        []byte  `json:"SecretBinary"`
	VersionStages       []string
	ClientRequestToken  string
	MoveToVersionID     string `json:"MoveToVersionId"`
	RemoveFromVersionID string `json:"RemoveFromVersionId"`
	IncludeDeprecated   bool
	MaxResults          int
	NextToken           string
	RotationLambdaARN   string
	RotationRules       *struct{ AutomaticallyAfterDays *int }
}

type object = map[string]any

// ServeHTTP answers one Secrets Manager request.
func (s *SecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	var in request
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, &in)
	}
	f, faulted, throttled := s.received(r, op, &in)
	if faulted && f.Delay > 0 && sleep(r.Context(), f.Delay) != nil {
		panic(http.ErrAbortHandler) // the client is gone: answer nothing
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "Signature="):
		writeError(w, http.StatusBadRequest, "IncompleteSignatureException", "Authorization header requires a AWS4-HMAC-SHA256 signature.")
		return
	}
	if throttled {
		// The service's own answer above a quota: lower-case "message",
		// unlike most errors of the protocol (the SDK reads both).
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(object{"__type": "ThrottlingException", "message": "Rate exceeded"})
		return
	}
	if faulted && (f.Type != "" || f.Status != 0) {
		writeError(w, f.status(), f.errType(), f.message(r.Header))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "Invalid JSON body.")
		return
	}
	out, err := s.do(op, &in)
	var e *Error
	switch {
	case errors.As(err, &e):
		writeError(w, http.StatusBadRequest, e.Code, e.Message)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "InternalServiceError", err.Error())
	default:
		s.mu.Lock()
		if s.answered == nil {
			s.answered = make(map[string]int)
		}
		s.answered[op]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(out)
	}
}

// received counts a request, applies op's quota and, unless the quota
// refused it, takes the fault that applies to it.
func (s *SecretsManager) received(r *http.Request, op string, in *request) (f Fault, faulted, throttled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logRequest(r, op, in)
	s.total++
	s.calls[op]++
	if op == "GetSecretValue" && (in.VersionStage != "" || in.VersionID == "") {
		s.stageCalls[cmp.Or(in.VersionStage, StageCurrent)]++
	}
	if s.throttle(op, s.now()) {
		return Fault{}, false, true
	}
	f, faulted = s.fault(op)
	return f, faulted, false
}

// fault takes the fault that applies to op. Called with s.mu held.
func (s *SecretsManager) fault(op string) (Fault, bool) {
	key := op
	f, ok := s.faults[key]
	if !ok {
		key = AnyOp
		if f, ok = s.faults[key]; !ok {
			return Fault{}, false
		}
	}
	if f.Times > 0 {
		if left := f.Times - 1; left == 0 {
			delete(s.faults, key)
		} else {
			g := f
			g.Times = left
			s.faults[key] = g
		}
	}
	return f, true
}

func (f Fault) status() int {
	switch {
	case f.Status != 0:
		return f.Status
	case f.Type == "InternalServiceError" || f.Type == "ServiceUnavailable":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func (f Fault) errType() string {
	if f.Type == "" {
		return "InternalServiceError"
	}
	return f.Type
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(object{"__type": typ, "Message": msg})
}

// do runs one operation against the store.
func (s *SecretsManager) do(op string, in *request) (object, error) {
	st := s.store
	switch op {
	case "GetSecretValue":
		v, err := st.GetSecretValue(in.SecretID, in.VersionID, in.VersionStage)
		if err != nil {
			return nil, err
		}
		out, err := s.names(in.SecretID)
		out["VersionId"], out["VersionStages"], out["CreatedDate"] = v.VersionID, v.Stages, epoch(v.CreatedDate)
		if v.SecretBinary != nil {
			out["SecretBinary"] = v.SecretBinary
		} else {
			out["SecretString"] = v.SecretString
		}
		return out, err
	case "DescribeSecret":
		d, err := st.Describe(in.SecretID)
		if err != nil {
			return nil, err
		}
		out := object{
			"ARN": d.ARN, "Name": d.Name, "CreatedDate": epoch(d.CreatedDate),
			"LastChangedDate": epoch(d.LastChangedDate), "VersionIdsToStages": d.VersionIDsToStages,
			"RotationEnabled": d.Rotation.Enabled,
		}
		if d.Rotation.LambdaARN != "" {
			out["RotationLambdaARN"] = d.Rotation.LambdaARN
		}
		if d.Rotation.AutomaticallyAfterDays > 0 {
			out["RotationRules"] = object{"AutomaticallyAfterDays": d.Rotation.AutomaticallyAfterDays}
		}
		if !d.LastRotatedDate.IsZero() {
			out["LastRotatedDate"] = epoch(d.LastRotatedDate)
		}
		if !d.NextRotationDate.IsZero() {
			out["NextRotationDate"] = epoch(d.NextRotationDate)
		}
		return out, nil
	case "CreateSecret":
		arn, vid, err := st.create(in.Name, in.ClientRequestToken, in.SecretString, in.SecretBinary)
		if err != nil {
			return nil, err
		}
		out := object{"ARN": arn, "Name": in.Name}
		if vid != "" {
			out["VersionId"] = vid
		}
		return out, nil
	case "PutSecretValue":
		v, err := st.putValue(in.SecretID, in.ClientRequestToken, in.SecretString, in.SecretBinary, in.VersionStages)
		if err != nil {
			return nil, err
		}
		out, err := s.names(in.SecretID)
		out["VersionId"], out["VersionStages"] = v.VersionID, v.Stages
		return out, err
	case "UpdateSecretVersionStage":
		if err := st.UpdateSecretVersionStage(in.SecretID, in.VersionStage, in.MoveToVersionID, in.RemoveFromVersionID); err != nil {
			return nil, err
		}
		return s.names(in.SecretID)
	case "ListSecretVersionIds":
		return s.listVersions(in)
	case "RotateSecret":
		return s.rotate(in)
	}
	return nil, &Error{Code: "UnknownOperationException", Message: fmt.Sprintf("Unknown operation %q.", op)}
}

// names returns the secret's ARN and Name, the start of most answers.
func (s *SecretsManager) names(id string) (object, error) {
	d, err := s.store.Describe(id)
	return object{"ARN": d.ARN, "Name": d.Name}, err
}

func (s *SecretsManager) listVersions(in *request) (object, error) {
	vs, err := s.store.ListVersions(in.SecretID)
	if err != nil {
		return nil, err
	}
	out, err := s.names(in.SecretID)
	if !in.IncludeDeprecated {
		vs = slices.DeleteFunc(vs, func(v Version) bool { return len(v.Stages) == 0 })
	}
	start, _ := strconv.Atoi(in.NextToken)
	start = min(max(start, 0), len(vs))
	end := len(vs)
	if in.MaxResults > 0 && start+in.MaxResults < end {
		end = start + in.MaxResults
		out["NextToken"] = strconv.Itoa(end)
	}
	list := []object{}
	for _, v := range vs[start:end] {
		list = append(list, object{"VersionId": v.VersionID, "VersionStages": v.Stages, "CreatedDate": epoch(v.CreatedDate)})
	}
	out["Versions"] = list
	return out, err
}

// rotate records rotation settings given with RotateSecret and checks that a
// rotation could start; no rotation function runs.
func (s *SecretsManager) rotate(in *request) (object, error) {
	d, err := s.store.Describe(in.SecretID)
	if err != nil {
		return nil, err
	}
	rot := d.Rotation
	if in.RotationLambdaARN != "" || in.RotationRules != nil {
		rot.Enabled = true
		rot.LambdaARN = cmp.Or(in.RotationLambdaARN, rot.LambdaARN)
		if in.RotationRules != nil && in.RotationRules.AutomaticallyAfterDays != nil {
			rot.AutomaticallyAfterDays = *in.RotationRules.AutomaticallyAfterDays
		}
		if err := s.store.SetRotation(in.SecretID, rot.Enabled, rot.LambdaARN, rot.AutomaticallyAfterDays); err != nil {
			return nil, err
		}
	}
	if !rot.Enabled || rot.LambdaARN == "" {
		return nil, errorf(ErrInvalidRequest, "No Lambda rotation function ARN is associated with this secret.")
	}
	if v, err := s.store.GetSecretValue(in.SecretID, "", StagePending); err == nil && !slices.Contains(v.Stages, StageCurrent) {
		return nil, errorf(ErrInvalidRequest, "A previous rotation isn't complete. That rotation will be reattempted.")
	}
	return object{"ARN": d.ARN, "Name": d.Name, "VersionId": cmp.Or(in.ClientRequestToken, newUUID())}, nil
}

// epoch renders t as the protocol does: seconds since 1970 as a JSON number
// with milliseconds.
func epoch(t time.Time) json.Number {
	ms := t.UnixMilli()
	return json.Number(fmt.Sprintf("%d.%03d", ms/1000, ms%1000))
}

var _ http.Handler = (*SecretsManager)(nil)

// sleep waits for d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Outage is a way the service can be down for a test: "500" (every
// GetSecretValue answers HTTP 500), "refused" (connections refused) or
// "hang" (GetSecretValue answers after a minute).
type Outage string

// The outages Break knows.
const (
	Outage500     Outage = "500"
	OutageRefused Outage = "refused"
	OutageHang    Outage = "hang"
)

// Outages lists every Outage, for table tests.
var Outages = []Outage{Outage500, OutageRefused, OutageHang}

// Break puts the emulator into outage o.
func (s *SecretsManager) Break(o Outage) error {
	switch o {
	case Outage500:
		s.Fail("GetSecretValue", Fault{Status: 500})
	case OutageRefused:
		return s.SetDown(true)
	case OutageHang:
		s.Fail("GetSecretValue", Fault{Delay: time.Minute})
	default:
		return fmt.Errorf("rotatingmysqltest: unknown outage %q", o)
	}
	return nil
}
