package rotatingmysqltest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// fakeClock is a clock a test steps by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func getSecret(ctx context.Context, c *secretsmanager.Client, id string) error {
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	return err
}

// TestQuotaThrottlesAsTheService checks the token bucket against the real
// SDK client: requests within the burst pass, the next is refused with the
// service's ThrottlingException, which the SDK classifies as throttling and
// retries (3 attempts), and the bucket refills at the rate, up to the burst.
func TestQuotaThrottlesAsTheService(t *testing.T) {
	sm := newEmulator(t)
	clock := newFakeClock()
	sm.SetClock(clock.Now)
	mustCreate(t, sm, "app/db", "v1")
	sm.SetQuota("GetSecretValue", Quota{Rate: 2, Burst: 2})
	client := newClient(t, sm) // the SDK's retry rules, no waiting
	ctx := context.Background()

	for i := range 2 {
		if err := getSecret(ctx, client, "app/db"); err != nil {
			t.Fatalf("request %d within the burst: %v", i+1, err)
		}
	}
	err := getSecret(ctx, client, "app/db")
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || ae.ErrorMessage() != "Rate exceeded" {
		t.Fatalf("over the quota: got %v, want ThrottlingException \"Rate exceeded\"", err)
	}
	var generic *smithy.GenericAPIError
	if !errors.As(err, &generic) {
		t.Errorf("the SDK should see an unmodelled error (*smithy.GenericAPIError), got %T", ae)
	}
	if got := (retry.IsErrorThrottles(retry.DefaultThrottles)).IsErrorThrottle(err); got != aws.TrueTernary {
		t.Errorf("the SDK's standard retryer does not classify the answer as throttling: %v", got)
	}
	if got, want := sm.Calls("GetSecretValue"), 2+3; got != want {
		t.Errorf("GetSecretValue calls = %d, want %d (2 served, then 3 attempts throttled)", got, want)
	}
	if got := sm.Throttled("GetSecretValue"); got != 3 {
		t.Errorf("Throttled = %d, want 3", got)
	}
	// Another operation has its own quota (none here).
	if _, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")}); err != nil {
		t.Errorf("DescribeSecret has no quota but was refused: %v", err)
	}

	// Half a second refills one token at 2/s.
	clock.Advance(500 * time.Millisecond)
	if err := getSecret(ctx, client, "app/db"); err != nil {
		t.Fatalf("after 500 ms at 2/s: %v", err)
	}
	// A long quiet spell refills up to the burst, not beyond.
	clock.Advance(time.Minute)
	one := secretsmanager.NewFromConfig(sm.AWSConfig(), func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	ok := 0
	for range 5 {
		if getSecret(ctx, one, "app/db") == nil {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("after a minute: %d of 5 requests served, want the burst, 2", ok)
	}
	// Removing the quota serves everything.
	sm.SetQuota("GetSecretValue", Quota{})
	for range 5 {
		if err := getSecret(ctx, one, "app/db"); err != nil {
			t.Fatalf("without a quota: %v", err)
		}
	}
}

// TestQuotaAnswerOnTheWire checks the bytes of the answer: HTTP 400 and the
// service's body.
func TestQuotaAnswerOnTheWire(t *testing.T) {
	sm := newEmulator(t)
	sm.SetQuota("GetSecretValue", Quota{Rate: 0.001, Burst: 1})
	var last *http.Response
	var body []byte
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, sm.URL()+"/", strings.NewReader(`{"SecretId":"nope"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00")
		if last, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(last.Body)
		last.Body.Close()
	}
	var doc map[string]string
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if last.StatusCode != http.StatusBadRequest || len(doc) != 2 || doc["__type"] != "ThrottlingException" || doc["message"] != "Rate exceeded" {
		t.Errorf("second request: %d %s, want 400 {\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}", last.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestRequestRates checks the per-second counts: by operation and in all,
// quiet seconds included, throttled requests apart.
func TestRequestRates(t *testing.T) {
	sm := newEmulator(t)
	clock := newFakeClock()
	sm.SetClock(clock.Now)
	origin := clock.Now()
	mustCreate(t, sm, "app/db", "v1")
	sm.SetQuota("GetSecretValue", Quota{Rate: 3, Burst: 3})
	client := secretsmanager.NewFromConfig(sm.AWSConfig(), func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	ctx := context.Background()
	for range 5 { // second 0: 3 served, 2 throttled
		getSecret(ctx, client, "app/db")
	}
	client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	clock.Advance(2*time.Second + 100*time.Millisecond) // second 2; second 1 quiet
	getSecret(ctx, client, "app/db")

	want := []RequestRate{
		{Start: origin, Accepted: 3, Throttled: 2},
		{Start: origin.Add(time.Second)},
		{Start: origin.Add(2 * time.Second), Accepted: 1},
	}
	got := sm.RequestRates("GetSecretValue")
	if len(got) != len(want) {
		t.Fatalf("RequestRates = %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Start.Equal(want[i].Start) || got[i].Accepted != want[i].Accepted || got[i].Throttled != want[i].Throttled {
			t.Errorf("second %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	all := sm.RequestRates(AnyOp)
	if len(all) != 3 || all[0].Requests() != 6 || all[2].Requests() != 1 {
		t.Errorf("RequestRates(AnyOp) = %+v, want 6, 0, 1 requests", all)
	}
	if got := sm.RequestRates("DescribeSecret"); len(got) != 1 || got[0].Accepted != 1 {
		t.Errorf("RequestRates(DescribeSecret) = %+v", got)
	}
	if !sm.RateOrigin().Equal(origin) {
		t.Errorf("RateOrigin = %v, want %v", sm.RateOrigin(), origin)
	}
	sm.ResetCalls()
	if got := sm.RequestRates(AnyOp); got != nil || sm.Throttled("GetSecretValue") != 0 {
		t.Errorf("after ResetCalls: %+v", got)
	}
}

// TestQuotaConcurrent sends requests from many goroutines with the clock
// stopped: exactly the burst is served, whatever the interleaving.
func TestQuotaConcurrent(t *testing.T) {
	sm := newEmulator(t)
	clock := newFakeClock()
	sm.SetClock(clock.Now)
	mustCreate(t, sm, "app/db", "v1")
	sm.SetQuota("GetSecretValue", Quota{Rate: 10, Burst: 25})
	client := secretsmanager.NewFromConfig(sm.AWSConfig(), func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if getSecret(context.Background(), client, "app/db") == nil {
					mu.Lock()
					served++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if served != 25 || sm.Throttled("GetSecretValue") != 75 {
		t.Errorf("served %d, throttled %d of 100; want 25 and 75", served, sm.Throttled("GetSecretValue"))
	}
}

// TestOpenConnections counts the emulator's client connections: one for a
// keep-alive client, none once the client has closed its idle connections.
func TestOpenConnections(t *testing.T) {
	sm := newEmulator(t)
	mustCreate(t, sm, "app/db", "v1")
	tr := &http.Transport{}
	cfg := sm.AWSConfig()
	cfg.HTTPClient = &http.Client{Transport: tr}
	client := secretsmanager.NewFromConfig(cfg)
	for range 3 {
		if err := getSecret(context.Background(), client, "app/db"); err != nil {
			t.Fatal(err)
		}
	}
	if n := sm.OpenConnections(); n != 1 {
		t.Errorf("OpenConnections = %d after 3 sequential requests, want 1", n)
	}
	tr.CloseIdleConnections()
	n := sm.OpenConnections()
	for i := 0; i < 200 && n != 0; i++ { // the server sees the EOF a moment later
		time.Sleep(10 * time.Millisecond)
		n = sm.OpenConnections()
	}
	if n != 0 {
		t.Errorf("OpenConnections = %d after the client closed its idle connections, want 0", n)
	}
}
