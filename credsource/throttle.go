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
// meet the quota again. At 3.3 times the quota (rotation-drill -virtual
// -processes 33000 -start-spread 7s -duration 40s) a rotation costs 1.46
// requests per process, every process on the new password in 5.1 s; with
// the SDK's own waits (the same with -sdk-throttle-backoff 1s), 1.61
// (docs/fleet.md). Other errors keep the SDK's waits.
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
