package rotatingmysql

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
)

// wrappedProvider is a comparable struct whose interface field holds a
// func: reflect calls its type comparable, and hashing it panics.
type wrappedProvider struct{ p aws.CredentialsProvider }

func (w wrappedProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	return w.p.Retrieve(ctx)
}

// TestShareKeyNeverPanics: connectors whose aws.Config holds objects that
// cannot be map keys, or settings that cannot be compared (middleware,
// resolvers, a retryer), keep parts of their own instead of panicking or
// sharing another connector's client.
func TestShareKeyNeverPanics(t *testing.T) {
	funcProvider := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
	})
	cases := []struct {
		name  string
		aws   aws.Config
		share bool
	}{
		{"plain", aws.Config{Region: "us-east-1"}, true},
		{"func provider in a struct", aws.Config{Region: "us-east-1", Credentials: wrappedProvider{funcProvider}}, false},
		{"func provider", aws.Config{Region: "us-east-1", Credentials: funcProvider}, false},
		{"APIOptions", aws.Config{Region: "us-east-1", APIOptions: []func(*middleware.Stack) error{func(*middleware.Stack) error { return nil }}}, false},
		{"retryer", aws.Config{Region: "us-east-1", Retryer: func() aws.Retryer { return aws.NopRetryer{} }}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewConfig("arn:aws:secretsmanager:us-east-1:123456789012:secret:share-AbCdEf")
			if err := cfg.Apply(WithAWSConfig(tc.aws)); err != nil {
				t.Fatal(err)
			}
			if _, ok := cfg.shareKey(); ok != tc.share {
				t.Errorf("shareKey shares = %v, want %v", ok, tc.share)
			}
			c, err := NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestShareKeySeparatesAWSSettings: two aws.Configs that differ in a
// setting that changes which client answers do not share a source.
// TestShareKeySeparatesAgentTokens: connectors on one secret and agent
// with other tokens (WithAgentToken) do not share a source; with the same
// token they do.
func TestShareKeySeparatesAgentTokens(t *testing.T) {
	key := func(token string) fetchKey {
		cfg, err := ParseDSN("arn:aws:secretsmanager:us-east-1:123456789012:secret:share-AbCdEf?source=agent")
		if err != nil {
			t.Fatal(err)
		}
		var opts []Option
		if token != "" {
			opts = append(opts, WithAgentToken(token))
		}
		if err := cfg.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		k, ok := cfg.shareKey()
		if !ok {
			t.Fatal("not shared")
		}
		return k
	}
	if key("token-a") == key("token-b") || key("token-a") == key("") {
		t.Error("connectors with other agent tokens share a source")
	}
	if key("token-a") != key("token-a") {
		t.Error("connectors with the same agent token do not share a source")
	}
}

func TestShareKeySeparatesAWSSettings(t *testing.T) {
	key := func(a aws.Config) fetchKey {
		cfg := NewConfig("arn:aws:secretsmanager:us-east-1:123456789012:secret:share-AbCdEf")
		if err := cfg.Apply(WithAWSConfig(a)); err != nil {
			t.Fatal(err)
		}
		k, ok := cfg.shareKey()
		if !ok {
			t.Fatal("not shared")
		}
		return k
	}
	base := aws.Config{Region: "us-east-1"}
	for name, other := range map[string]aws.Config{
		"endpoint":   {Region: "us-east-1", BaseEndpoint: aws.String("https://vpce.example")},
		"retry mode": {Region: "us-east-1", RetryMode: aws.RetryModeAdaptive},
		"attempts":   {Region: "us-east-1", RetryMaxAttempts: 7},
		"log mode":   {Region: "us-east-1", ClientLogMode: aws.LogRequest},
		"region":     {Region: "eu-west-1"},
	} {
		if key(base) == key(other) {
			t.Errorf("%s: the sharing key is the same", name)
		}
	}
}
