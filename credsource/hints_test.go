package credsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// bareAWSEnv gives the SDK's default chain nothing to find: no keys, empty
// config and credentials files, no web identity, no container credentials,
// the instance metadata service disabled; the endpoint is the emulator's
// and the region is region ("" for none). Fast and offline.
func bareAWSEnv(t *testing.T, sm *rotatingmysqltest.SecretsManager, region string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_REGION": region, "AWS_DEFAULT_REGION": "",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL(), "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
	} {
		t.Setenv(k, v)
	}
}

// TestNoAWSCredentialsSaysWhatToFix: with no credentials anywhere, the
// error names the providers the SDK tried and how to give it some, before
// the SDK's own text; errors.Is finds ErrNoAWSCredentials and errors.As the
// SDK's *smithy.OperationError. No request reaches the service.
func TestNoAWSCredentialsSaysWhatToFix(t *testing.T) {
	sm, arn := newSMEmulator(t)
	bareAWSEnv(t, sm, rotatingmysqltest.Region)
	src := &SecretsManager{SecretID: arn}
	defer src.Close()
	_, err := src.Fetch(context.Background(), Request{})
	checkNoCredentials(t, err)
	if n := sm.TotalCalls(); n != 0 {
		t.Errorf("the emulator received %d requests, want none", n)
	}

	// IAM tokens are signed with the same chain.
	iam := &IAM{User: "app", Host: "db.example.com", Port: 3306, Region: rotatingmysqltest.Region}
	_, err = iam.Fetch(context.Background(), Request{})
	checkNoCredentials(t, err)
	if !errors.Is(err, ErrIAMCredentials) {
		t.Errorf("IAM: error %v does not wrap ErrIAMCredentials", err)
	}
}

func checkNoCredentials(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNoAWSCredentials) {
		t.Fatalf("error %v does not wrap ErrNoAWSCredentials", err)
	}
	var op *smithy.OperationError
	if !errors.As(err, &op) {
		t.Errorf("errors.As finds no *smithy.OperationError in %v", err)
	}
	msg := err.Error()
	ours := strings.Index(msg, "no AWS credentials found (tried: environment, shared config/credentials files, web identity, ECS/EKS container credentials, EC2 instance role)")
	sdk := strings.Index(msg, "operation error")
	if ours < 0 || sdk < 0 || ours > sdk {
		t.Errorf("error %q: want our explanation, then the SDK's text", msg)
	}
	for _, want := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "role", "source=env", "source=file", "source=agent"} {
		if !strings.Contains(msg[:sdk], want) {
			t.Errorf("error %q: our part lacks %q", msg, want)
		}
	}
}

// TestNoRegionSaysWhatToFix: a secret name (not an ARN) and no region
// anywhere: the error says how to give one, and no request is made.
func TestNoRegionSaysWhatToFix(t *testing.T) {
	sm, _ := newSMEmulator(t)
	bareAWSEnv(t, sm, "")
	t.Setenv("AWS_ACCESS_KEY_ID", rotatingmysqltest.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", rotatingmysqltest.SecretAccessKey)
	src := &SecretsManager{SecretID: "app/db"}
	defer src.Close()
	_, err := src.Fetch(context.Background(), Request{})
	if !errors.Is(err, ErrNoRegion) {
		t.Fatalf("error %v does not wrap ErrNoRegion", err)
	}
	for _, want := range []string{"no AWS region", "AWS_REGION", "region=", "full ARN", `"app/db"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := sm.TotalCalls(); n != 0 {
		t.Errorf("the emulator received %d requests, want none", n)
	}
	iam := &IAM{User: "app", Host: "db.example.com", Port: 3306}
	if _, err := iam.Fetch(context.Background(), Request{}); !errors.Is(err, ErrNoRegion) || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("IAM: error %v, want ErrNoRegion saying AWS_REGION", err)
	}
}

// TestAPIErrorsSayWhatToFix: access denied names the IAM action, the
// resource and kms:Decrypt; a KMS failure names kms:Decrypt; not found
// names the secret and the region asked. The SDK's error stays reachable.
func TestAPIErrorsSayWhatToFix(t *testing.T) {
	sm, arn := newSMEmulator(t)
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		name   string
		id     string
		fault  *rotatingmysqltest.Fault
		is     error
		as     func(error) bool
		wanted []string
	}{
		{"access denied by ARN", arn, &rotatingmysqltest.Fault{Type: "AccessDeniedException"}, ErrAccessDenied,
			func(err error) bool {
				var api smithy.APIError
				return errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException"
			},
			[]string{"access denied", "secretsmanager:GetSecretValue", arn, "kms:Decrypt", "customer managed key"}},
		{"access denied by name", "app/db", &rotatingmysqltest.Fault{Type: "AccessDeniedException"}, ErrAccessDenied, nil,
			[]string{"secretsmanager:GetSecretValue", "arn:aws:secretsmanager:" + rotatingmysqltest.Region + ":ACCOUNT_ID:secret:app/db-*", "kms:Decrypt"}},
		{"kms", arn, &rotatingmysqltest.Fault{Type: "DecryptionFailure"}, ErrAccessDenied,
			func(err error) bool { var df *types.DecryptionFailure; return errors.As(err, &df) },
			[]string{"kms:Decrypt", "KMS key"}},
		{"not found", "no/such-secret", nil, ErrNotFound,
			func(err error) bool { var nf *types.ResourceNotFoundException; return errors.As(err, &nf) },
			[]string{`"no/such-secret"`, "region " + rotatingmysqltest.Region, "full ARN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm.ClearFaults()
			if tc.fault != nil {
				sm.Fail("GetSecretValue", *tc.fault)
			}
			src := &SecretsManager{SecretID: tc.id}
			defer src.Close()
			_, err := src.Fetch(context.Background(), Request{})
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not wrap %v", err, tc.is)
			}
			if tc.as != nil && !tc.as(err) {
				t.Errorf("errors.As does not reach the SDK's error in %v", err)
			}
			msg := err.Error()
			for _, want := range tc.wanted {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			// Ours first: the SDK's text comes after what to fix.
			if i := strings.Index(msg, "operation error"); i >= 0 && i < strings.Index(msg, tc.wanted[0]) {
				t.Errorf("error %q: the SDK's text comes before ours", msg)
			}
		})
	}
}
