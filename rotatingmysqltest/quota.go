package rotatingmysqltest

import (
	"math"
	"time"
)

// Service quotas of Secrets Manager per account and region, in requests per
// second, above which the service answers ThrottlingException.
const (
	GetSecretValueQuota = 10000
	DescribeSecretQuota = 40000
)

// Quota limits the request rate of one operation, as the service's
// per-account quotas do: a token bucket holding Burst tokens, refilled at
// Rate tokens per second; a request takes one token, and a request that
// finds the bucket empty is answered as the service answers it, HTTP 400
// {"__type":"ThrottlingException","message":"Rate exceeded"}. The SDK
// classifies that as a throttling error and retries it with backoff (three
// attempts in all by default).
type Quota struct {
	// Rate is the sustained rate, in requests per second; zero or less
	// removes the quota.
	Rate float64
	// Burst is how many requests may arrive at once after a quiet spell;
	// zero means one second's worth, Rate rounded up.
	Burst int
}

// bucket is a token bucket that takes the time as an argument, as
// golang.org/x/time/rate's AllowN does, so that tests can pass any time.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(q Quota, now time.Time) *bucket {
	burst := float64(q.Burst)
	if q.Burst <= 0 {
		burst = math.Ceil(q.Rate)
	}
	burst = max(burst, 1)
	return &bucket{rate: q.Rate, burst: burst, tokens: burst, last: now}
}

// allow takes a token at now if one is there.
func (b *bucket) allow(now time.Time) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// RequestRate counts one operation's requests in one second.
type RequestRate struct {
	// Start is the beginning of the second, on the emulator's clock.
	Start time.Time
	// Accepted requests were served (or failed for another reason than
	// the quota, an injected fault included); Throttled were refused by
	// the quota.
	Accepted, Throttled int
}

// Requests returns Accepted plus Throttled: the rate the clients offered.
func (r RequestRate) Requests() int { return r.Accepted + r.Throttled }

// rateLog counts requests per second since an origin.
type rateLog struct {
	origin time.Time
	byOp   map[string][]RequestRate
}

func (l *rateLog) add(op string, now time.Time, throttled bool) {
	i := int(now.Sub(l.origin) / time.Second)
	if i < 0 {
		i = 0 // a clock set back: count it in the first second
	}
	rs := l.byOp[op]
	for len(rs) <= i {
		rs = append(rs, RequestRate{Start: l.origin.Add(time.Duration(len(rs)) * time.Second)})
	}
	if throttled {
		rs[i].Throttled++
	} else {
		rs[i].Accepted++
	}
	l.byOp[op] = rs
}

// SetQuota limits op (such as "GetSecretValue") to q, with a bucket that
// starts full; a Rate of zero removes op's quota. Requests over the quota
// are answered ThrottlingException before any fault applies, and count as
// calls. AnyOp is not an operation here: each operation has its own quota,
// as in the service.
func (s *SecretsManager) SetQuota(op string, q Quota) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Rate <= 0 {
		delete(s.quotas, op)
		return
	}
	s.quotas[op] = newBucket(q, s.now())
}

// SetClock makes the emulator read the time from now instead of time.Now,
// for the quotas and the per-second counts, and restarts the per-second
// counts at now(). A test can then step the time without sleeping.
func (s *SecretsManager) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	s.clock = now
	s.rates = rateLog{origin: now(), byOp: make(map[string][]RequestRate)}
}

// RequestRates returns op's requests per second (AnyOp: of every
// operation together), one entry per second from the emulator's start (or
// its last ResetCalls or SetClock) to the second of the latest request of
// op, quiet seconds included; nil before any request of op.
func (s *SecretsManager) RequestRates(op string) []RequestRate {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rates.byOp[op]
	if len(rs) == 0 {
		return nil
	}
	return append([]RequestRate(nil), rs...)
}

// Throttled returns how many requests for op (AnyOp: for any operation)
// the quota refused.
func (s *SecretsManager) Throttled(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rates.byOp[op] {
		n += r.Throttled
	}
	return n
}

// RateOrigin returns the start of the first second RequestRates counts.
func (s *SecretsManager) RateOrigin() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rates.origin
}

// throttle reports whether op's quota refuses a request arriving now, and
// counts the request in the per-second log. Called with s.mu held.
func (s *SecretsManager) throttle(op string, now time.Time) bool {
	b := s.quotas[op]
	throttled := b != nil && !b.allow(now)
	s.rates.add(op, now, throttled)
	s.rates.add(AnyOp, now, throttled)
	return throttled
}
