package rotatingmysqltest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// newEmulator starts a SecretsManager closed at the end of the test.
func newEmulator(t *testing.T) *SecretsManager {
	t.Helper()
	sm, err := NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	return sm
}

// newClient returns a real SDK client for sm that keeps the SDK's retry rules
// (3 attempts, what is retryable) but does not wait between attempts.
func newClient(t *testing.T, sm *SecretsManager) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.NewFromConfig(sm.AWSConfig(), func(o *secretsmanager.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
}

// mustCreate creates a secret in the emulator's store.
func mustCreate(t *testing.T, sm *SecretsManager, name, value string) (arn, versionID string) {
	t.Helper()
	arn, versionID, err := sm.Store().CreateSecret(name, value)
	if err != nil {
		t.Fatal(err)
	}
	return arn, versionID
}

func mustPut(t *testing.T, st *Store, id, value string, stages ...string) string {
	t.Helper()
	v, err := st.PutSecretValue(id, value, stages)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGetSecretValue(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	arn, v1 := mustCreate(t, sm, "app/db", "one")
	v2 := mustPut(t, sm.Store(), "app/db", "two")
	v3 := mustPut(t, sm.Store(), arn, "three", StagePending)

	if !regexp.MustCompile(`^arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-[A-Za-z0-9]{6}$`).MatchString(arn) {
		t.Errorf("ARN %q has not the service's form", arn)
	}
	tests := []struct {
		name                   string
		id, versionID, stage   string
		wantValue, wantVersion string
		wantStages             []string
		wantNotFound           bool
	}{
		{name: "by name", id: "app/db", wantValue: "two", wantVersion: v2, wantStages: []string{StageCurrent}},
		{name: "by ARN", id: arn, wantValue: "two", wantVersion: v2, wantStages: []string{StageCurrent}},
		{name: "AWSPREVIOUS", id: "app/db", stage: StagePrevious, wantValue: "one", wantVersion: v1, wantStages: []string{StagePrevious}},
		{name: "AWSPENDING", id: arn, stage: StagePending, wantValue: "three", wantVersion: v3, wantStages: []string{StagePending}},
		{name: "by version", id: "app/db", versionID: v1, wantValue: "one", wantVersion: v1, wantStages: []string{StagePrevious}},
		{name: "version and its stage", id: "app/db", versionID: v3, stage: StagePending, wantValue: "three", wantVersion: v3, wantStages: []string{StagePending}},
		{name: "version without that stage", id: "app/db", versionID: v1, stage: StageCurrent, wantNotFound: true},
		{name: "unknown stage", id: "app/db", stage: "NOPE", wantNotFound: true},
		{name: "unknown name", id: "app/other", wantNotFound: true},
		{name: "unknown ARN", id: ARNPrefix + "app/db-AAAAAA", wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(tt.id)}
			if tt.versionID != "" {
				in.VersionId = aws.String(tt.versionID)
			}
			if tt.stage != "" {
				in.VersionStage = aws.String(tt.stage)
			}
			out, err := c.GetSecretValue(context.Background(), in)
			if tt.wantNotFound {
				var nf *types.ResourceNotFoundException
				if !errors.As(err, &nf) {
					t.Fatalf("err = %v (%T), want *types.ResourceNotFoundException", err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(out.SecretString); got != tt.wantValue {
				t.Errorf("SecretString = %q, want %q", got, tt.wantValue)
			}
			if aws.ToString(out.VersionId) != tt.wantVersion || !slices.Equal(out.VersionStages, tt.wantStages) {
				t.Errorf("version %s %v, want %s %v", aws.ToString(out.VersionId), out.VersionStages, tt.wantVersion, tt.wantStages)
			}
			if aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "app/db" {
				t.Errorf("ARN, Name = %s, %s", aws.ToString(out.ARN), aws.ToString(out.Name))
			}
			if d := time.Since(aws.ToTime(out.CreatedDate)); d < 0 || d > time.Minute {
				t.Errorf("CreatedDate %v is not about now", out.CreatedDate)
			}
		})
	}
}

func TestGetSecretValueBinary(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "bin", "text")
	if _, err := sm.Store().PutSecretBinary("bin", []byte{0, 1, 0xff}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := newClient(t, sm).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil {
		t.Fatal(err)
	}
	if out.SecretString != nil || string(out.SecretBinary) != "\x00\x01\xff" {
		t.Errorf("got SecretString %v, SecretBinary %q; want only the binary", out.SecretString, out.SecretBinary)
	}
}

// TestStagingLabels drives a rotation's label moves through the SDK.
func TestStagingLabels(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	ctx := context.Background()
	id := aws.String("app/db")
	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("one")})
	if err != nil {
		t.Fatal(err)
	}
	v1 := aws.ToString(created.VersionId)
	const v2 = "00000000-0000-4000-8000-000000000002"
	put, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: id, SecretString: aws.String("two"), ClientRequestToken: aws.String(v2), VersionStages: []string{StagePending},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(put.VersionId) != v2 || !slices.Equal(put.VersionStages, []string{StagePending}) {
		t.Fatalf("PutSecretValue = %s %v, want %s [AWSPENDING]", aws.ToString(put.VersionId), put.VersionStages, v2)
	}
	// Retrying with the same token and value is idempotent; another value is refused.
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("two"), ClientRequestToken: aws.String(v2)}); err != nil {
		t.Errorf("idempotent retry: %v", err)
	}
	var exists *types.ResourceExistsException
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("x"), ClientRequestToken: aws.String(v2)}); !errors.As(err, &exists) {
		t.Errorf("same token, other value: err = %v, want *types.ResourceExistsException", err)
	}

	move := func(removeFrom string) error {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String(StageCurrent), MoveToVersionId: aws.String(v2)}
		if removeFrom != "" {
			in.RemoveFromVersionId = aws.String(removeFrom)
		}
		_, err := c.UpdateSecretVersionStage(ctx, in)
		return err
	}
	var invalid *types.InvalidParameterException
	for _, removeFrom := range []string{"", v2} {
		if err := move(removeFrom); !errors.As(err, &invalid) {
			t.Errorf("move AWSCURRENT, RemoveFromVersionId %q: err = %v, want *types.InvalidParameterException", removeFrom, err)
		}
	}
	if err := move(v1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String(StagePending), RemoveFromVersionId: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{v1: {StagePrevious}, v2: {StageCurrent}}
	if len(d.VersionIdsToStages) != len(want) || !slices.Equal(d.VersionIdsToStages[v1], want[v1]) || !slices.Equal(d.VersionIdsToStages[v2], want[v2]) {
		t.Errorf("VersionIdsToStages = %v, want %v", d.VersionIdsToStages, want)
	}

	// A third version makes v1 lose AWSPREVIOUS: deprecated, listed only on request.
	v3 := mustPut(t, sm.Store(), "app/db", "three")
	for _, include := range []bool{false, true} {
		list, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: id, IncludeDeprecated: aws.Bool(include)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range list.Versions {
			got = append(got, aws.ToString(v.VersionId))
		}
		want := []string{v2, v3}
		if include {
			want = []string{v1, v2, v3}
		}
		if !slices.Equal(got, want) {
			t.Errorf("IncludeDeprecated %v: versions %v, want %v", include, got, want)
		}
	}
	pages := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: id, IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(2)})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Versions)
	}
	if n != 3 {
		t.Errorf("paginated listing has %d versions, want 3", n)
	}
}

func TestErrorTypes(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	mustCreate(t, sm, "app/db", "one")
	ctx := context.Background()
	id := aws.String("app/db")
	tests := []struct {
		name string
		call func() error
		// is reports whether err has the expected type.
		is func(err error) bool
	}{
		{"not found", func() error {
			_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
			return err
		}, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"exists", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("x")})
			return err
		}, func(err error) bool { var e *types.ResourceExistsException; return errors.As(err, &e) }},
		{"invalid parameter", func() error {
			_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: id, VersionStage: aws.String(StageCurrent), RemoveFromVersionId: aws.String("x")})
			return err
		}, func(err error) bool { var e *types.InvalidParameterException; return errors.As(err, &e) }},
		{"rotation not enabled", func() error {
			_, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: id})
			return err
		}, func(err error) bool { var e *types.InvalidRequestException; return errors.As(err, &e) }},
		{"unmodelled throttling", func() error {
			sm.Fail("GetSecretValue", Fault{Type: "ThrottlingException"})
			defer sm.ClearFaults()
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: id})
			return err
		}, func(err error) bool {
			var e *smithy.GenericAPIError
			return errors.As(err, &e) && e.ErrorCode() == "ThrottlingException"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var op *smithy.OperationError
			if !tt.is(err) || !errors.As(err, &op) {
				t.Errorf("err = %v (%T), not of the expected type", err, err)
			}
		})
	}
}

func TestRotateSecret(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	arn, _ := mustCreate(t, sm, "app/db", "one")
	ctx := context.Background()
	const lambda = "arn:aws:lambda:us-east-1:123456789012:function:rotate"
	out, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String(arn), RotationLambdaARN: aws.String(lambda),
		RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.VersionId) == "" || sm.Calls("RotateSecret") != 1 {
		t.Errorf("VersionId %q, %d calls", aws.ToString(out.VersionId), sm.Calls("RotateSecret"))
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != lambda ||
		d.RotationRules == nil || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 30 ||
		aws.ToTime(d.NextRotationDate).Sub(aws.ToTime(d.CreatedDate)).Round(time.Hour) != 30*24*time.Hour {
		t.Errorf("DescribeSecret = enabled %v, %s, %+v, next %v", aws.ToBool(d.RotationEnabled), aws.ToString(d.RotationLambdaARN), d.RotationRules, d.NextRotationDate)
	}
	// A rotation left pending blocks the next one.
	mustPut(t, sm.Store(), arn, "two", StagePending)
	var invalid *types.InvalidRequestException
	if _, err := c.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn)}); !errors.As(err, &invalid) {
		t.Errorf("rotation in progress: err = %v, want *types.InvalidRequestException", err)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		fault     Fault
		wantCalls int
		// wantErr reports whether err is the expected outcome; nil means success.
		wantErr func(error) bool
	}{
		{name: "throttled twice then served", op: "GetSecretValue", fault: Fault{Type: "ThrottlingException", Times: 2}, wantCalls: 3},
		{name: "throttled until cleared", op: "GetSecretValue", fault: Fault{Type: "ThrottlingException"}, wantCalls: 3,
			wantErr: func(err error) bool {
				var e smithy.APIError
				return errors.As(err, &e) && e.ErrorCode() == "ThrottlingException"
			}},
		{name: "500 once", op: "GetSecretValue", fault: Fault{Status: 500, Times: 1}, wantCalls: 2},
		{name: "InternalServiceError until cleared", op: AnyOp, fault: Fault{Type: "InternalServiceError"}, wantCalls: 3,
			wantErr: func(err error) bool { var e *types.InternalServiceError; return errors.As(err, &e) }},
		{name: "503 is retried", op: "GetSecretValue", fault: Fault{Status: 503, Type: "ServiceUnavailable"}, wantCalls: 3,
			wantErr: func(err error) bool {
				var e smithy.APIError
				return errors.As(err, &e) && e.ErrorCode() == "ServiceUnavailable"
			}},
		{name: "400s are not retried", op: "GetSecretValue", fault: Fault{Type: "AccessDeniedException"}, wantCalls: 1,
			wantErr: func(err error) bool {
				var e smithy.APIError
				return errors.As(err, &e) && e.ErrorCode() == "AccessDeniedException"
			}},
		{name: "other operation unaffected", op: "DescribeSecret", fault: Fault{Type: "ThrottlingException"}, wantCalls: 1},
		{name: "delay only", op: "GetSecretValue", fault: Fault{Delay: 20 * time.Millisecond}, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newEmulator(t)
			mustCreate(t, sm, "app/db", "one")
			sm.Fail(tt.op, tt.fault)
			_, err := newClient(t, sm).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("err = %v, want success", err)
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Errorf("err = %v (%T), not the expected one", err, err)
			}
			if got := sm.Calls("GetSecretValue"); got != tt.wantCalls {
				t.Errorf("%d GetSecretValue calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

// TestDefaultRetryerRetriesThrottling checks the SDK's default retryer, with
// its real backoff (up to 1 s after a first throttled attempt).
func TestDefaultRetryerRetriesThrottling(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "app/db", "one")
	sm.Fail("GetSecretValue", Fault{Type: "ThrottlingException", Times: 1})
	c := secretsmanager.NewFromConfig(sm.AWSConfig())
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}); err != nil {
		t.Fatal(err)
	}
	if got := sm.Calls("GetSecretValue"); got != 2 {
		t.Errorf("%d calls, want 2 (one throttled, one retry)", got)
	}
}

func TestFaultDelayPastDeadline(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "app/db", "one")
	sm.Fail("GetSecretValue", Fault{Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(t, sm).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: the deadline was not honoured", d)
	}
	if got := sm.Calls("GetSecretValue"); got != 1 {
		t.Errorf("%d calls, want 1 (no retry after the deadline)", got)
	}
}

func TestSetDown(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "app/db", "one")
	c := newClient(t, sm)
	get := func() error {
		_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
		return err
	}
	url := sm.URL()
	if err := get(); err != nil { // leaves an idle keep-alive connection
		t.Fatal(err)
	}
	if err := sm.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while down: err = %v, want connection refused", err)
	}
	if got := sm.TotalCalls(); got != 1 {
		t.Errorf("%d calls, want 1: refused connections are no calls", got)
	}
	if err := sm.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil || sm.URL() != url {
		t.Errorf("back up: err = %v, URL %s (was %s)", err, sm.URL(), url)
	}
}

func TestCallCounters(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	_, v1 := mustCreate(t, sm, "app/db", "one")
	mustPut(t, sm.Store(), "app/db", "two", StagePending)
	ctx := context.Background()
	for _, in := range []*secretsmanager.GetSecretValueInput{
		{SecretId: aws.String("app/db")},
		{SecretId: aws.String("app/db"), VersionStage: aws.String(StageCurrent)},
		{SecretId: aws.String("app/db"), VersionStage: aws.String(StagePending)},
		{SecretId: aws.String("app/db"), VersionId: aws.String(v1)},
		{SecretId: aws.String("missing")},
	} {
		c.GetSecretValue(ctx, in)
	}
	c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	tests := []struct {
		name      string
		got, want int
	}{
		{"GetSecretValue", sm.Calls("GetSecretValue"), 5},
		{"DescribeSecret", sm.Calls("DescribeSecret"), 1},
		{"stage empty", sm.GetSecretValueCalls(""), 3},
		{"AWSCURRENT", sm.GetSecretValueCalls(StageCurrent), 3},
		{"AWSPENDING", sm.GetSecretValueCalls(StagePending), 1},
		{"AWSPREVIOUS", sm.GetSecretValueCalls(StagePrevious), 0},
		{"total", sm.TotalCalls(), 6},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d calls, want %d", tt.name, tt.got, tt.want)
		}
	}
	sm.ResetCalls()
	if sm.TotalCalls() != 0 || sm.Calls("GetSecretValue") != 0 || sm.GetSecretValueCalls("") != 0 {
		t.Error("ResetCalls left counts")
	}
}

// TestProtocolErrors sends raw requests the SDK would never send.
func TestProtocolErrors(t *testing.T) {
	sm := newEmulator(t)
	const signed = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00"
	tests := []struct {
		name, target, auth, body string
		wantType                 string
	}{
		{"unsigned", "secretsmanager.GetSecretValue", "", `{"SecretId":"x"}`, "MissingAuthenticationTokenException"},
		{"other scheme", "secretsmanager.GetSecretValue", "Basic eDp5", `{"SecretId":"x"}`, "IncompleteSignatureException"},
		{"unknown operation", "secretsmanager.DeleteEverything", signed, `{}`, "UnknownOperationException"},
		{"bad JSON", "secretsmanager.GetSecretValue", signed, `{`, "SerializationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, sm.URL()+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", tt.target)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Type string `json:"__type"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || body.Type != tt.wantType {
				t.Errorf("got %d %s, want 400 %s", resp.StatusCode, body.Type, tt.wantType)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "app/db", "one")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // the service-specific variable wins
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.SecretString) != "one" {
		t.Errorf("SecretString = %q", aws.ToString(out.SecretString))
	}
}

func TestConcurrentUse(t *testing.T) {
	sm := newEmulator(t)
	c := newClient(t, sm)
	arn, _ := mustCreate(t, sm, "app/db", "v0")
	ctx := context.Background()
	const readers, reads, writes = 8, 25, 20
	var wg sync.WaitGroup
	errs := make(chan error, readers*reads+writes)
	for range readers {
		spawn(&wg, func() {
			for range reads {
				if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); err != nil {
					errs <- err
				}
			}
		})
	}
	spawn(&wg, func() {
		for range writes {
			if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn), SecretString: aws.String("v")}); err != nil {
				errs <- err
			}
		}
	})
	spawn(&wg, func() {
		for range writes {
			sm.Fail("DescribeSecret", Fault{Type: "ThrottlingException", Times: 1})
			sm.ClearFaults()
			sm.Calls("GetSecretValue")
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := sm.GetSecretValueCalls(StageCurrent); got != readers*reads {
		t.Errorf("%d GetSecretValue calls, want %d", got, readers*reads)
	}
	if vs, _ := sm.Store().ListVersions(arn); len(vs) != writes+1 {
		t.Errorf("%d versions, want %d", len(vs), writes+1)
	}
}

// spawn runs f in a goroutine counted by wg (sync.WaitGroup.Go needs Go 1.25;
// the module supports Go 1.24).
func spawn(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
}
