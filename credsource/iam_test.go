package credsource

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

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
