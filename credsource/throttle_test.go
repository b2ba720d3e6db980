package credsource

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// fixedDelay is a retryer whose every delay is one second.
type fixedDelay struct{ aws.RetryerV2 }

func (fixedDelay) RetryDelay(int, error) (time.Duration, error) { return time.Second, nil }

// TestThrottleSpread: after a throttling error the SDK's wait is doubled;
// after any other error it is the SDK's own.
func TestThrottleSpread(t *testing.T) {
	r := throttleSpread{fixedDelay{retry.NewStandard()}}
	for _, tc := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"ThrottlingException", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, 2 * time.Second},
		{"TooManyRequestsException", &smithy.GenericAPIError{Code: "TooManyRequestsException"}, 2 * time.Second},
		{"InternalServiceError", &smithy.GenericAPIError{Code: "InternalServiceError"}, time.Second},
		{"network", errors.New("connection reset"), time.Second},
	} {
		if d, err := r.RetryDelay(1, tc.err); err != nil || d != tc.want {
			t.Errorf("%s: delay %v (%v), want %v", tc.name, d, err, tc.want)
		}
	}
}

// TestThrottleSpreadOnlyDefaultRetryer: the source's client gets the
// spread over the SDK's default retryer, and keeps a retryer the program
// set in its aws.Config.
func TestThrottleSpreadOnlyDefaultRetryer(t *testing.T) {
	retryerOf := func(cfg *aws.Config) aws.Retryer {
		s := &SecretsManager{SecretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:spread-AbCdEf", AWSConfig: cfg}
		c, err := s.API(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c.(*secretsmanager.Client).Options().Retryer
	}
	if r := retryerOf(&aws.Config{Region: "us-east-1"}); !isSpread(r) {
		t.Errorf("default retryer %T: not spread after throttling", r)
	}
	own := func() aws.Retryer { return retry.NewStandard() }
	if r := retryerOf(&aws.Config{Region: "us-east-1", Retryer: own}); isSpread(r) {
		t.Errorf("the program's retryer %T was wrapped", r)
	}
}

func isSpread(r aws.Retryer) bool {
	_, ok := r.(throttleSpread)
	return ok
}
