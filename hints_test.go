package rotatingmysql_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// TestPingSaysWhatToFix: through sql.Open and Ping, with the SDK's default
// chain against the emulator: no credentials anywhere, no region, access
// denied and a secret that does not exist each give an error that starts
// with "rotatingmysql:", says what to fix before the SDK's text, and keeps
// the SDK's error reachable.
func TestPingSaysWhatToFix(t *testing.T) {
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	name := testdb.UniqueName("hints")
	arn, _, err := sm.Store().CreateSecret(name, rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "app-Password-0003", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := sm.Env()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_DEFAULT_REGION": "",
	} {
		base[k] = v
	}
	for _, tc := range []struct {
		name  string
		dsn   string
		env   map[string]string
		fault *rotatingmysqltest.Fault
		is    error
		want  []string
	}{
		{"no credentials", arn, map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, nil, credsource.ErrNoAWSCredentials,
			[]string{"no AWS credentials found (tried: environment, shared config/credentials files, web identity, ECS/EKS container credentials, EC2 instance role)", "AWS_PROFILE", "source=env"}},
		{"no region", name, map[string]string{"AWS_REGION": ""}, nil, credsource.ErrNoRegion,
			[]string{"no AWS region", "AWS_REGION", "region=", "full ARN"}},
		{"access denied", arn, nil, &rotatingmysqltest.Fault{Type: "AccessDeniedException"}, credsource.ErrAccessDenied,
			[]string{"secretsmanager:GetSecretValue on " + arn, "kms:Decrypt"}},
		{"not found", name + "-missing", nil, nil, credsource.ErrNotFound,
			[]string{`no secret "` + name + `-missing"`, "region " + rotatingmysqltest.Region}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			sm.ClearFaults()
			if tc.fault != nil {
				sm.Fail("GetSecretValue", *tc.fault)
			}
			db, err := sql.Open("rotatingmysql", tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Ping()
			if !errors.Is(err, tc.is) {
				t.Fatalf("Ping error %v does not wrap %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "rotatingmysql: ") {
				t.Errorf("error %q does not start with rotatingmysql:", msg)
			}
			sdk := strings.Index(msg, "operation error")
			for _, want := range tc.want {
				i := strings.Index(msg, want)
				if i < 0 || sdk >= 0 && i > sdk {
					t.Errorf("error %q: %q missing or after the SDK's text", msg, want)
				}
			}
			var op *smithy.OperationError
			if tc.is != credsource.ErrNoRegion && !errors.As(err, &op) {
				t.Errorf("errors.As finds no *smithy.OperationError in %v", err)
			}
			if testing.Verbose() {
				t.Logf("%s", msg)
			}
		})
	}
}
