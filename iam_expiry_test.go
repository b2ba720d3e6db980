package rotatingmysql_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// shortSessions is a credentials provider of session credentials that live
// life each, as an assumed role's do (for an hour, in production): it
// returns the current ones while they have more than half their life left,
// else new ones (a new access key), which it registers with the front with
// their expiry, as STS would make them known to RDS.
type shortSessions struct {
	front *rotatingmysqltest.IAMFront
	life  time.Duration

	mu     sync.Mutex
	cur    aws.Credentials
	minted int
}

func (s *shortSessions) Retrieve(context.Context) (aws.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.minted == 0 || time.Until(s.cur.Expires) < s.life/2 {
		s.minted++
		s.cur = aws.Credentials{
			AccessKeyID:     fmt.Sprintf("ASIASHORTSESSION%04d", s.minted),
			SecretAccessKey: fmt.Sprintf("short-Session-Secret-%04d", s.minted),
			SessionToken:    fmt.Sprintf("short-Session-Token-%04d", s.minted),
			CanExpire:       true,
			Expires:         time.Now().Add(s.life),
			Source:          "test",
		}
		s.front.AddCredentials(s.cur)
	}
	return s.cur, nil
}

func (s *shortSessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minted
}

// TestIAMTokensOutliveShortCredentials: the AWS credentials that sign the
// tokens expire every 3 s, and the front refuses a token once its signing
// credentials have expired, as RDS does, however young the token. A pool
// under load (every query a new login) across several expiries, with the
// default token TTL (14.5 min), sees 0 refused logins and 0 errors: each
// token is renewed before its credentials expire, not after a refusal.
func TestIAMTokensOutliveShortCredentials(t *testing.T) {
	t.Parallel()
	b := newIAMBed(t)
	sessions := &shortSessions{front: b.front, life: 3 * time.Second}
	cfgAWS := aws.Config{Region: iamRegion, Credentials: sessions}
	_, db := openConfig(t, rotatingmysql.NewIAMConfig(iamUser, b.front.Host(), b.front.Port(), b.db),
		rotatingmysql.WithAWSConfig(cfgAWS), rotatingmysql.WithTLSConfig(b.front.ClientTLSConfig()))
	db.SetMaxIdleConns(0)
	l := startLoad(db, 4)
	defer l.cancel()
	// Several expiries: wait for sessions, not for time.
	deadline := time.Now().Add(30 * time.Second)
	for sessions.count() < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	l.stop(t)
	s := b.front.Stats()
	t.Logf("front: %d accepted, %d refused, %d tokens, %d sessions; by key %v", s.Accepted, s.Refused, s.DistinctTokens, sessions.count(), s.ByAccessKey)
	if sessions.count() < 5 {
		t.Fatalf("%d sessions in 30 s, want at least 5 (4 expiries)", sessions.count())
	}
	if s.Refused != 0 {
		t.Errorf("front refused %d logins (last: %s), want 0: a token outlived its credentials", s.Refused, s.LastRefusal)
	}
	if len(s.ByAccessKey) < 4 {
		t.Errorf("logins signed with %d access keys, want at least 4", len(s.ByAccessKey))
	}
}
