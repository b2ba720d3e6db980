package credsource

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func TestRegionOrder(t *testing.T) {
	reps := []string{"us-west-2", "eu-west-1"}
	for _, tc := range []struct {
		serving string
		probe   bool
		want    []string
	}{
		{"", false, []string{"us-east-1", "us-west-2", "eu-west-1"}},
		{"us-east-1", true, []string{"us-east-1", "us-west-2", "eu-west-1"}},
		{"eu-west-1", false, []string{"eu-west-1", "us-west-2", "us-east-1"}},
		{"eu-west-1", true, []string{"us-east-1", "eu-west-1", "us-west-2"}},
	} {
		got := RegionOrder("us-east-1", reps, tc.serving, tc.probe)
		if len(got) != len(tc.want) {
			t.Errorf("serving %q probe %v: %v, want %v", tc.serving, tc.probe, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("serving %q probe %v: %v, want %v", tc.serving, tc.probe, got, tc.want)
				break
			}
		}
	}
	if got := ReplicaID("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf", "eu-west-1"); got != "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf" {
		t.Errorf("ReplicaID of an ARN = %s", got)
	}
	if got := ReplicaID("app/db", "eu-west-1"); got != "app/db" {
		t.Errorf("ReplicaID of a name = %s", got)
	}
}

// regionsBed is the primary region and two replicas, with app/db created in
// the primary and replicated.
type regionsBed struct {
	r   *rotatingmysqltest.Regions
	arn string
}

func newRegionsBed(t *testing.T) *regionsBed {
	t.Helper()
	r, err := rotatingmysqltest.NewRegions("us-west-2", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	arn, _, err := r.Primary().Store().CreateSecret("app/db", rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw1", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	b := &regionsBed{r: r, arn: arn}
	b.waitReplicated(t, "")
	return b
}

// waitReplicated polls until every replica holds AWSCURRENT with versionID
// ("" for any).
func (b *regionsBed) waitReplicated(t *testing.T, versionID string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, name := range []string{"us-west-2", "eu-west-1"} {
		for {
			v, err := b.r.Region(name).Store().GetSecretValue("app/db", "", "AWSCURRENT")
			if err == nil && (versionID == "" || v.VersionID == versionID) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not replicated to %s: %v", name, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// fakeClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (b *regionsBed) source(t *testing.T, id string, clock *manualClock) *SecretsManager {
	cfg := b.r.AWSConfig()
	s := &SecretsManager{SecretID: id, AWSConfig: &cfg, ReplicaRegions: []string{"us-west-2", "eu-west-1"},
		RegionTimeout: 500 * time.Millisecond, ProbeInterval: 30 * time.Second, now: clock.Now}
	t.Cleanup(func() { s.Close() })
	return s
}

func gsv(sm *rotatingmysqltest.SecretsManager) int { return sm.Calls("GetSecretValue") }

// TestReplicaFailover: with the primary region down (500s, refused
// connections, a hang), a fetch is answered by the first replica, asked for
// the replica's ARN; the next fetches go to that replica without asking the
// primary until the probe interval has passed; the primary is then asked
// once, and serves again as soon as it answers.
func TestReplicaFailover(t *testing.T) {
	for _, outage := range rotatingmysqltest.Outages {
		t.Run(string(outage), func(t *testing.T) {
			b := newRegionsBed(t)
			primary, west := b.r.Primary(), b.r.Region("us-west-2")
			clock := &manualClock{t: time.Now()}
			s := b.source(t, b.arn, clock)
			ctx := context.Background()
			if sec, err := s.Fetch(ctx, Request{}); err != nil || sec.Region != "us-east-1" {
				t.Fatalf("healthy fetch: %v %v", sec, err)
			}
			if err := primary.Break(outage); err != nil {
				t.Fatal(err)
			}
			sec, err := s.Fetch(ctx, Request{})
			if err != nil || sec.Region != "us-west-2" || sec.Creds.Password != "pw1" {
				t.Fatalf("fetch during the outage: %v %v, want an answer from us-west-2", sec, err)
			}
			reqs := west.Requests()
			if want := "arn:aws:secretsmanager:us-west-2:"; len(reqs) == 0 || reqs[len(reqs)-1].SecretID[:len(want)] != want {
				t.Errorf("replica asked for %+v, want the ARN in us-west-2", reqs)
			}
			pBefore := gsv(primary)
			for range 5 {
				clock.Add(time.Second)
				if sec, err := s.Fetch(ctx, Request{}); err != nil || sec.Region != "us-west-2" {
					t.Fatalf("fetch within the interval: %v %v", sec, err)
				}
			}
			if n := gsv(primary) - pBefore; n != 0 {
				t.Errorf("primary asked %d times within the interval, want 0", n)
			}
			// The interval passes with the primary still down: one probe,
			// then the replica again.
			clock.Add(30 * time.Second)
			if sec, err := s.Fetch(ctx, Request{}); err != nil || sec.Region != "us-west-2" {
				t.Fatalf("fetch at the probe: %v %v", sec, err)
			}
			if _, err := s.Fetch(ctx, Request{}); err != nil {
				t.Fatal(err)
			}
			if outage != "refused" {
				if n := gsv(primary) - pBefore; n < 1 || n > 3 { // one probe, with the SDK's own retries
					t.Errorf("primary asked %d times over one interval, want one probe (up to 3 attempts)", n)
				}
			}
			// The primary returns: asked at the next probe, it serves.
			primary.ClearFaults()
			if err := primary.SetDown(false); err != nil {
				t.Fatal(err)
			}
			clock.Add(31 * time.Second)
			for range 3 {
				if sec, err := s.Fetch(ctx, Request{}); err != nil || sec.Region != "us-east-1" {
					t.Fatalf("fetch after the primary's return: %v %v, want us-east-1", sec, err)
				}
			}
			byRegion, serving := s.RegionStats()
			if serving != "us-east-1" || byRegion["us-west-2"] < 7 || byRegion["us-east-1"] < 4 {
				t.Errorf("region stats %v (serving %s)", byRegion, serving)
			}
		})
	}
}

// TestReplicaNoFailoverForCallerErrors: not found and access denied are
// the caller's errors: no replica is asked.
func TestReplicaNoFailoverForCallerErrors(t *testing.T) {
	b := newRegionsBed(t)
	clock := &manualClock{t: time.Now()}
	west, eu := b.r.Region("us-west-2"), b.r.Region("eu-west-1")
	ctx := context.Background()
	if _, err := b.source(t, "no/such/secret", clock).Fetch(ctx, Request{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing secret: %v, want ErrNotFound", err)
	}
	b.r.Primary().Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "AccessDeniedException", Status: 400})
	if _, err := b.source(t, "app/db", clock).Fetch(ctx, Request{}); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("access denied: %v, want ErrAccessDenied", err)
	}
	b.r.Primary().Fail("GetSecretValue", rotatingmysqltest.Fault{Type: "DecryptionFailure", Status: 400})
	if _, err := b.source(t, "app/db", clock).Fetch(ctx, Request{}); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("decryption failure: %v, want ErrAccessDenied", err)
	}
	if n := gsv(west) + gsv(eu); n != 0 {
		t.Errorf("replicas asked %d times, want 0", n)
	}
}

// TestReplicaAllRegionsDown: every region failing returns an error naming
// each region's failure, ErrUnavailable for refused connections.
func TestReplicaAllRegionsDown(t *testing.T) {
	b := newRegionsBed(t)
	for _, name := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		if err := b.r.Region(name).SetDown(true); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.source(t, "app/db", &manualClock{t: time.Now()}).Fetch(context.Background(), Request{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("all down: %v, want ErrUnavailable", err)
	}
	for _, name := range []string{"us-west-2", "eu-west-1"} {
		if !containsStr(err.Error(), "in "+name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
