package credsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestRegionFromRDSHost(t *testing.T) {
	for host, want := range map[string]string{
		"mydb.abc123xyz.us-east-1.rds.amazonaws.com":              "us-east-1",
		"mydb.cluster-abc123xyz.eu-west-3.rds.amazonaws.com":      "eu-west-3",
		"mydb.cluster-ro-abc123xyz.ap-south-2.rds.amazonaws.com":  "ap-south-2",
		"myproxy.proxy-abc123xyz.us-gov-west-1.rds.amazonaws.com": "us-gov-west-1",
		"MYDB.ABC.CN-NORTH-1.RDS.AMAZONAWS.COM.CN.":               "cn-north-1",
		"rds.us-east-1.amazonaws.com":                             "",
		"us-east-1.rds.amazonaws.com":                             "",
		"db.example.com":                                          "",
		"127.0.0.1":                                               "",
		"mydb.abc.notaregion.rds.amazonaws.com":                   "",
	} {
		if got := RegionFromRDSHost(host); got != want {
			t.Errorf("RegionFromRDSHost(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestIAMFetch(t *testing.T) {
	const secretKey = "iam-Unit-Secret-Key"
	cfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIAUNIT", secretKey, "")}
	s := &IAM{User: "app", Host: "mydb.abc.eu-west-1.rds.amazonaws.com", Port: 3306, DBName: "d", AWSConfig: &cfg}
	ctx := context.Background()
	sec, err := s.Fetch(ctx, Request{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse("https://" + sec.Creds.Password)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "mydb.abc.eu-west-1.rds.amazonaws.com:3306" || q.Get("Action") != "connect" || q.Get("DBUser") != "app" ||
		!strings.Contains(q.Get("X-Amz-Credential"), "/eu-west-1/rds-db/") || q.Get("X-Amz-Expires") != "900" {
		t.Errorf("token %s: want a connect request for app on the host, region from the host name", u.Redacted())
	}
	if sec.VersionID != "iam-token-1" || sec.Source != "iam" || sec.Creds.Username != "app" || sec.Creds.DBName != "d" || !sec.HasStage(Current) {
		t.Errorf("secret %+v", sec)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, sec) + fmt.Sprintf(verb, s); strings.Contains(out, "X-Amz") || strings.Contains(out, secretKey) {
			t.Errorf("%s shows the token or the key: %s", verb, out)
		}
	}
	sec2, err := s.Fetch(ctx, Request{Refresh: true})
	if err != nil || sec2.VersionID != "iam-token-2" {
		t.Errorf("refresh: %v %v", sec2, err)
	}
	if _, err := s.Fetch(ctx, Request{Stage: Pending}); !errors.Is(err, ErrNoStages) || !errors.Is(err, ErrNotFound) {
		t.Errorf("AWSPENDING: %v, want ErrNoStages", err)
	}
}

func TestIAMFetchErrors(t *testing.T) {
	ctx := context.Background()
	noRegion := &IAM{User: "app", Host: "db.example.com", Port: 3306, AWSConfig: &aws.Config{Credentials: credentials.NewStaticCredentialsProvider("A", "B", "")}}
	if _, err := noRegion.Fetch(ctx, Request{}); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("no region: %v", err)
	}
	failing := &IAM{User: "app", Host: "db.example.com", Port: 3306, Region: "eu-west-1", AWSConfig: &aws.Config{
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{}, errors.New("failed to refresh cached credentials, no EC2 IMDS role found")
		}),
	}}
	if _, err := failing.Fetch(ctx, Request{}); !errors.Is(err, ErrIAMCredentials) || !strings.Contains(err.Error(), "no EC2 IMDS role found") || !strings.Contains(err.Error(), "app@db.example.com:3306") {
		t.Errorf("failing provider: %v", err)
	}
	noCreds := &IAM{User: "app", Host: "db.example.com", Port: 3306, Region: "eu-west-1", AWSConfig: &aws.Config{}}
	if _, err := noCreds.Fetch(ctx, Request{}); !errors.Is(err, ErrIAMCredentials) {
		t.Errorf("no provider: %v", err)
	}
}

// TestTokenBounds: a token is renewed a margin before its signing
// credentials expire (a minute, or half their remaining life), is
// not served past half that margin, and never past its own lifetime.
func TestTokenBounds(t *testing.T) {
	signed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		creds            aws.Credentials
		refresh, expires time.Duration // after signed; refresh -1 for none
	}{
		{"static keys", aws.Credentials{}, -1, IAMTokenLifetime},
		{"hour session", aws.Credentials{CanExpire: true, Expires: signed.Add(time.Hour)}, 59 * time.Minute, IAMTokenLifetime},
		{"ten minutes left", aws.Credentials{CanExpire: true, Expires: signed.Add(10 * time.Minute)}, 9 * time.Minute, 9*time.Minute + 30*time.Second},
		{"three seconds left", aws.Credentials{CanExpire: true, Expires: signed.Add(3 * time.Second)}, 1500 * time.Millisecond, 2250 * time.Millisecond},
		{"already expired", aws.Credentials{CanExpire: true, Expires: signed.Add(-time.Second)}, -time.Second, -time.Second},
	} {
		r, e := TokenBounds(signed, tc.creds)
		wantR := time.Time{}
		if tc.refresh != -1 {
			wantR = signed.Add(tc.refresh)
		}
		if !r.Equal(wantR) || !e.Equal(signed.Add(tc.expires)) {
			t.Errorf("%s: refresh %v expires %v, want %v and %v", tc.name, r.Sub(signed), e.Sub(signed), tc.refresh, tc.expires)
		}
	}
}

// TestSameSecondWait: a second token with the same credentials in the
// same second waits for the next second; other credentials, or a later
// second, do not wait.
func TestSameSecondWait(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		last, now time.Duration
		same      bool
		wantWait  time.Duration
	}{
		{"first token", -1, 0, true, 0},
		{"same second", 100 * time.Millisecond, 700 * time.Millisecond, true, 300 * time.Millisecond},
		{"same instant", 0, 0, true, time.Second},
		{"other credentials", 100 * time.Millisecond, 700 * time.Millisecond, false, 0},
		{"next second", 900 * time.Millisecond, 1100 * time.Millisecond, true, 0},
		{"clock stepped back", 1500 * time.Millisecond, 200 * time.Millisecond, true, 1800 * time.Millisecond},
	} {
		var last time.Time
		if tc.last != -1 {
			last = base.Add(tc.last)
		}
		if got := SameSecondWait(last, tc.same, base.Add(tc.now)); got != tc.wantWait {
			t.Errorf("%s: wait %v, want %v", tc.name, got, tc.wantWait)
		}
	}
}

// TestIAMFetchNeverRepeatsAToken: Fetches in quick succession with the same
// credentials (a refusal's refresh right after the token was signed) return
// different tokens, each in a second of its own.
func TestIAMFetchNeverRepeatsAToken(t *testing.T) {
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIASAMESECOND000001", SecretAccessKey: "same-second-secret"}, nil
	})
	s := &IAM{User: "u", Host: "db.example", Port: 3306, Region: "us-east-1", AWSConfig: &aws.Config{Credentials: creds}}
	seen := map[string]bool{}
	for range 3 {
		sec, err := s.Fetch(context.Background(), Request{Refresh: true})
		if err != nil {
			t.Fatal(err)
		}
		if seen[sec.Creds.Password] {
			t.Fatalf("token %s signed twice", sec.VersionID)
		}
		seen[sec.Creds.Password] = true
	}
}
