package credsource

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// setSDKEnv points the SDK's default chain at sm's keys and region, with no
// shared config file and no endpoint variable, then applies set.
func setSDKEnv(t *testing.T, sm *rotatingmysqltest.SecretsManager, set map[string]string) {
	t.Helper()
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": "", "AWS_ENDPOINT_URL": "", "AWS_USE_FIPS_ENDPOINT": "", "AWS_CA_BUNDLE": "", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_CONFIG_FILE": "/nonexistent/rotatingmysql-test", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/rotatingmysql-test",
	} {
		t.Setenv(k, v)
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
}

// fetchOnce fetches AWSCURRENT with src and closes it.
func fetchOnce(t *testing.T, src *SecretsManager) (*Secret, error) {
	t.Helper()
	defer src.Close()
	return src.Fetch(context.Background(), Request{})
}

// TestEndpointVariables: with no aws.Config, the source's client honours
// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL, and the
// service-specific one wins.
func TestEndpointVariables(t *testing.T) {
	global, _ := newSMEmulator(t)
	specific, _ := newSMEmulator(t)
	for _, tc := range []struct {
		name          string
		env           map[string]string
		want, notWant *rotatingmysqltest.SecretsManager
	}{
		{"global only", map[string]string{"AWS_ENDPOINT_URL": global.URL()}, global, specific},
		{"specific only", map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": specific.URL()}, specific, global},
		{"both: specific wins", map[string]string{"AWS_ENDPOINT_URL": global.URL(), "AWS_ENDPOINT_URL_SECRETS_MANAGER": specific.URL()}, specific, global},
	} {
		t.Run(tc.name, func(t *testing.T) {
			global.ResetCalls()
			specific.ResetCalls()
			setSDKEnv(t, global, tc.env)
			if _, err := fetchOnce(t, &SecretsManager{SecretID: "app/db"}); err != nil {
				t.Fatal(err)
			}
			if tc.want.Calls("GetSecretValue") != 1 || tc.notWant.Calls("GetSecretValue") != 0 {
				t.Errorf("calls: wanted endpoint %d, other %d; want 1 and 0", tc.want.Calls("GetSecretValue"), tc.notWant.Calls("GetSecretValue"))
			}
		})
	}
}

// loadConfigVia loads the default AWS configuration (the environment's
// variables) with an HTTP client that delivers every request to sm, so that
// the endpoint the SDK resolves shows in sm's request log.
func loadConfigVia(t *testing.T, sm *rotatingmysqltest.SecretsManager) *SecretsManager {
	t.Helper()
	hc := sm.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return &SecretsManager{AWSConfig: &cfg}
}

// lastRequest returns the last request sm received.
func lastRequest(t *testing.T, sm *rotatingmysqltest.SecretsManager) rotatingmysqltest.Request {
	t.Helper()
	reqs := sm.Requests()
	if len(reqs) == 0 {
		t.Fatal("the emulator received no request")
	}
	return reqs[len(reqs)-1]
}

// TestFIPSEndpoint: AWS_USE_FIPS_ENDPOINT=true makes the request go to
// secretsmanager-fips.REGION.amazonaws.com (the host the SDK resolved,
// seen by the emulator); without it, to secretsmanager.REGION.amazonaws.com.
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true sets the endpoint variables
// aside.
func TestFIPSEndpoint(t *testing.T) {
	sm, _ := newSMEmulator(t)
	for _, tc := range []struct {
		name, wantHost string
		env            map[string]string
	}{
		{"default", "secretsmanager.us-east-1.amazonaws.com", nil},
		{"fips", "secretsmanager-fips.us-east-1.amazonaws.com", map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}},
		{"endpoint variables ignored", "secretsmanager-fips.us-east-1.amazonaws.com", map[string]string{
			"AWS_USE_FIPS_ENDPOINT": "true", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:9", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setSDKEnv(t, sm, tc.env)
			src := loadConfigVia(t, sm)
			src.SecretID = "app/db"
			if _, err := fetchOnce(t, src); err != nil {
				t.Fatal(err)
			}
			if r := lastRequest(t, sm); r.Host != tc.wantHost || r.Region != "us-east-1" {
				t.Errorf("request to host %q, region %q; want %q in us-east-1", r.Host, r.Region, tc.wantHost)
			}
		})
	}
}

// TestFIPSPseudoRegionRefused: a v1-era -fips pseudo-region, from Region,
// AWS_REGION or the secret's ARN, is refused before any request, with an
// error naming the region to use and AWS_USE_FIPS_ENDPOINT=true.
func TestFIPSPseudoRegionRefused(t *testing.T) {
	sm, _ := newSMEmulator(t)
	for _, tc := range []struct {
		name       string
		id, region string // SecretID, Region
		awsRegion  string // AWS_REGION
	}{
		{"Region", "app/db", "us-east-1-fips", "us-east-1"},
		{"AWS_REGION", "app/db", "", "fips-us-east-1"},
		{"ARN", "arn:aws:secretsmanager:us-east-1-fips:123456789012:secret:app/db-AbCdEf", "", "us-east-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setSDKEnv(t, sm, map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL(), "AWS_REGION": tc.awsRegion})
			sm.ResetCalls()
			_, err := fetchOnce(t, &SecretsManager{SecretID: tc.id, Region: tc.region})
			if !errors.Is(err, ErrFIPSRegion) || !strings.Contains(err.Error(), "AWS_USE_FIPS_ENDPOINT=true") || !strings.Contains(err.Error(), "use region us-east-1 ") {
				t.Fatalf("err = %v, want ErrFIPSRegion naming us-east-1 and AWS_USE_FIPS_ENDPOINT=true", err)
			}
			if n := sm.TotalCalls(); n != 0 {
				t.Errorf("%d requests sent, want 0", n)
			}
		})
	}
	if err := CheckRegion("us-gov-west-1"); err != nil {
		t.Errorf("CheckRegion(us-gov-west-1) = %v, want nil", err)
	}
}

// TestCrossAccountARN: a secret of another account, read by its full ARN
// from a process whose AWS_REGION is another region, is asked of the ARN's
// region's endpoint, signed for that region, with the full ARN as SecretId
// (a name would be looked up in the caller's own account).
func TestCrossAccountARN(t *testing.T) {
	sm, _ := newSMEmulator(t)
	const shared = "arn:aws:secretsmanager:eu-central-1:210987654321:secret:shared/app-db-AbCdEf"
	if _, err := sm.Store().CreateSecretWithARN(shared, rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw", "appdb")); err != nil {
		t.Fatal(err)
	}
	t.Run("resolved endpoint", func(t *testing.T) {
		setSDKEnv(t, sm, map[string]string{"AWS_REGION": "us-west-2"})
		src := loadConfigVia(t, sm)
		src.SecretID = shared
		sec, err := fetchOnce(t, src)
		if err != nil {
			t.Fatal(err)
		}
		r := lastRequest(t, sm)
		if r.Host != "secretsmanager.eu-central-1.amazonaws.com" || r.Region != "eu-central-1" || r.SecretID != shared {
			t.Errorf("request %+v; want host secretsmanager.eu-central-1.amazonaws.com, region eu-central-1, SecretId the full ARN", r)
		}
		if sec.ARN != shared || sec.Creds.Username != "app" {
			t.Errorf("fetched %s (%v), want the shared secret", sec.ARN, sec.Creds)
		}
	})
	t.Run("endpoint variable", func(t *testing.T) {
		setSDKEnv(t, sm, map[string]string{"AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL()})
		if _, err := fetchOnce(t, &SecretsManager{SecretID: shared}); err != nil {
			t.Fatal(err)
		}
		if r := lastRequest(t, sm); r.Region != "eu-central-1" || r.SecretID != shared {
			t.Errorf("request %+v; want region eu-central-1 and SecretId the full ARN", r)
		}
	})
}
