package credsource

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// throttleSpread is the SDK's retryer with its waits after a throttling
// error (ThrottlingException, 429) doubled: a fleet of processes throttled
// together spreads its retries over twice the time, so that fewer of them
// meet the quota again (rotation-drill -processes 33000 -virtual, 3.3
// times the quota: 1.45 requests per process per rotation instead of 1.61,
// every process on the new password in 5.1 s; docs/fleet.md). Other errors
// keep the SDK's waits.
type throttleSpread struct{ aws.RetryerV2 }

// RetryDelay is the wrapped retryer's delay, doubled after a throttling
// error.
func (t throttleSpread) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := t.RetryerV2.RetryDelay(attempt, err)
	if derr == nil && retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
		d *= 2
	}
	return d, derr
}

// spreadThrottleRetries wraps the client's retryer in throttleSpread. The
// source applies it only to the SDK's default retryer (an aws.Config
// without a Retryer of its own).
func spreadThrottleRetries(o *secretsmanager.Options) {
	if r, ok := o.Retryer.(aws.RetryerV2); ok {
		o.Retryer = throttleSpread{r}
	}
}
