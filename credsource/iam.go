package credsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
)

// IAM token lifetimes.
const (
	// IAMTokenLifetime is how long RDS accepts an IAM authentication token
	// after it was signed (its X-Amz-Expires, 900 s).
	IAMTokenLifetime = 15 * time.Minute
	// DefaultIAMTokenTTL is how long a token is reused before a new one is
	// signed: 30 s before it expires, as AWS's JDBC and Go wrappers do, so
	// that a login that starts just before the end still carries a valid
	// token.
	DefaultIAMTokenTTL = IAMTokenLifetime - 30*time.Second
	// IAMCredentialsMargin is how long before its signing credentials
	// expire a token is renewed (RDS refuses a token once they have): a
	// minute, or half the credentials' remaining life at signing when that
	// is shorter.
	IAMCredentialsMargin = time.Minute
)

// ErrIAMCredentials is wrapped by IAM's errors when no AWS credentials could
// be had to sign a token (no role, an expired SSO session, a credential
// process that failed). The provider's own error is wrapped too.
var ErrIAMCredentials = errors.New("no AWS credentials to sign the IAM authentication token")

// IAM is the Source of RDS IAM database authentication: each version is an
// authentication token that BuildAuthToken (aws-sdk-go-v2/feature/rds/auth)
// signs locally, with no network call, from the process's AWS credentials.
// The token is the password for a mysql_clear_password login over TLS.
//
// Each Fetch signs a new token; the Cache in front of it reuses one for its
// TTL (DefaultIAMTokenTTL), and a login refused with 1045 forces a Fetch,
// hence a new token. The credentials provider is asked for each token, so
// rotated role or session credentials are used as soon as the provider
// returns them. A token is bounded by the credentials that signed it: when
// they can expire (aws.Credentials.CanExpire), the Secret's RefreshBy is
// their expiry less IAMCredentialsMargin (half their remaining life when
// that is shorter), so the cache signs the next token before RDS
// would refuse this one, and its Expires (half the margin before, and
// never later than the token's own lifetime) stops the cache serving it.
//
// Two tokens signed with the same credentials in the same second are the
// same (X-Amz-Date has whole seconds): a Fetch in the second of the
// previous token with the same access key waits for the next second, so
// that a token refused is never followed by the same token.
//
// Tokens have no staging labels: asking for any stage but AWSCURRENT fails
// with an error wrapping ErrNoStages and ErrNotFound. The token appears only
// in Secret.Creds.Password; the VersionID is a sequence number.
type IAM struct {
	// User is the database user the token is for (the DBUser it names).
	User string
	// Host and Port are the endpoint the client dials; the token names them.
	Host string
	Port int
	// DBName is the database to use, if any.
	DBName string
	// Region is the region the token is signed for: the database's. Empty
	// means the region of an RDS host name, else the AWS configuration's.
	Region string
	// AWSConfig, when set, supplies the credentials (and the region);
	// otherwise config.LoadDefaultConfig is used on first Fetch.
	AWSConfig *aws.Config

	mu    sync.Mutex
	creds aws.CredentialsProvider
	reg   string

	signMu   sync.Mutex // serialises signing, for the one-second rule
	lastSign time.Time  // when the previous token was signed
	lastKey  string     // the access key id and session token that signed it
	now      func() time.Time

	seq atomic.Uint64
}

var _ Source = (*IAM)(nil)

// String names the source in logs and errors.
func (s *IAM) String() string { return "iam" }

// Format prints the source's settings under every verb; never the AWS
// configuration, whose credentials provider may hold keys.
func (s *IAM) Format(f fmt.State, verb rune) {
	_, _ = fmt.Fprintf(f, "credsource.IAM{User:%q Host:%q Port:%d DBName:%q Region:%q}", s.User, s.Host, s.Port, s.DBName, s.Region)
}

var _ fmt.Formatter = (*IAM)(nil)

// Endpoint returns USER@HOST:PORT, the identity the source signs tokens for.
func (s *IAM) Endpoint() string {
	return s.User + "@" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// RegionFromRDSHost returns the region of an RDS endpoint host name
// (NAME.ID.REGION.rds.amazonaws.com, clusters, readers and proxies alike,
// and the .com.cn partition), or "" when host is not one.
func RegionFromRDSHost(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, suffix := range []string{".rds.amazonaws.com", ".rds.amazonaws.com.cn"} {
		rest, ok := strings.CutSuffix(host, suffix)
		if !ok {
			continue
		}
		labels := strings.Split(rest, ".")
		// NAME.ID.REGION at least: a bare REGION.rds.amazonaws.com is the
		// RDS API's endpoint, not a database's.
		if len(labels) < 3 {
			return ""
		}
		region := labels[len(labels)-1]
		if strings.Count(region, "-") >= 2 {
			return region
		}
	}
	return ""
}

// provider returns the credentials provider and the region, loading the
// default AWS configuration on first use (again after a failure).
func (s *IAM) provider(ctx context.Context) (aws.CredentialsProvider, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creds != nil {
		return s.creds, s.reg, nil
	}
	var cfg aws.Config
	if s.AWSConfig != nil {
		cfg = s.AWSConfig.Copy()
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return nil, "", Redact(fmt.Errorf("IAM token for %s: load AWS configuration: %w", s.Endpoint(), err))
		}
	}
	region := s.Region
	if region == "" {
		region = RegionFromRDSHost(s.Host)
	}
	if region == "" {
		region = cfg.Region
	}
	if region == "" {
		return nil, "", fmt.Errorf("IAM token for %s: %w: %s is not an RDS endpoint name, so set AWS_REGION or region= in the DSN (Go: Config.Region)", s.Endpoint(), ErrNoRegion, s.Host)
	}
	if cfg.Credentials == nil {
		return nil, "", fmt.Errorf("IAM token for %s: %w: the AWS configuration has no credentials provider", s.Endpoint(), ErrIAMCredentials)
	}
	s.creds, s.reg = cfg.Credentials, region
	return s.creds, s.reg, nil
}

// Fetch signs a new token.
func (s *IAM) Fetch(ctx context.Context, req Request) (*Secret, error) {
	if err := singleVersion("IAM authentication for "+s.Endpoint(), req.Stage); err != nil {
		return nil, err
	}
	if s.User == "" || s.Host == "" || s.Port == 0 {
		return nil, fmt.Errorf("IAM token: the user, host and port must be set (got %q)", s.Endpoint())
	}
	creds, region, err := s.provider(ctx)
	if err != nil {
		return nil, err
	}
	// BuildAuthToken's only fallible steps are the provider and the
	// endpoint, checked above; the provider's error is wrapped so that the
	// cause (no role, expired SSO session) shows. It may quote keys (a
	// credential_process whose output the SDK could not parse quotes all
	// of it), so its text is redacted.
	ac, err := creds.Retrieve(ctx)
	if err != nil {
		what := "IAM token for " + s.Endpoint()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %w: %w", what, ErrIAMCredentials, ctx.Err())
		case noCredentials(err):
			return nil, Redact(&also{err: noCredentialsError(what, err), sentinel: ErrIAMCredentials})
		}
		return nil, Redact(fmt.Errorf("%s: %w: %w", what, ErrIAMCredentials, err))
	}
	remember(ac.SecretAccessKey, ac.SessionToken)
	retrieved := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return ac, nil })
	// BuildAuthToken reads time.Now itself: the one-second rule waits on
	// the real clock.
	s.signMu.Lock()
	signed, err := s.signTime(ctx, ac.AccessKeyID+"\x00"+ac.SessionToken)
	if err != nil {
		s.signMu.Unlock()
		return nil, fmt.Errorf("IAM token for %s: %w", s.Endpoint(), err)
	}
	tok, err := auth.BuildAuthToken(ctx, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), region, s.User, retrieved)
	s.signMu.Unlock()
	if err != nil {
		return nil, Redact(fmt.Errorf("IAM token for %s: sign: %w", s.Endpoint(), err), ac.SecretAccessKey, ac.SessionToken)
	}
	remember(tok)
	refreshBy, expires := TokenBounds(signed, ac)
	n := s.seq.Add(1)
	return &Secret{
		ID:          s.Endpoint(),
		VersionID:   "iam-token-" + strconv.FormatUint(n, 10),
		Stages:      []string{string(Current)},
		CreatedDate: signed,
		RefreshBy:   refreshBy,
		Expires:     expires,
		Source:      "iam",
		Creds: Credentials{
			Engine:   "mysql",
			Host:     s.Host,
			Port:     s.Port,
			Username: s.User,
			Password: tok,
			DBName:   s.DBName,
		},
	}, nil
}

// signTime waits, when the previous token was signed in the current second
// with the same credentials (key), for the next second, so that the token
// signed next differs from it; it returns the signing time and records it.
// Called with s.signMu held.
func (s *IAM) signTime(ctx context.Context, key string) (time.Time, error) {
	now := s.clock()
	if wait := SameSecondWait(s.lastSign, s.lastKey == key, now); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, fmt.Errorf("waiting for the next second to sign a new token: %w", context.Cause(ctx))
		case <-t.C:
		}
		now = s.clock()
	}
	s.lastSign, s.lastKey = now, key
	return now, nil
}

func (s *IAM) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// SameSecondWait returns how long to wait at now before signing a token so
// that it differs from the previous one, signed at last: until the next
// whole second when sameCreds (the same access key and session token) and
// last is in now's second, else 0. X-Amz-Date has one-second resolution,
// so two tokens for one user and host signed with the same credentials in
// one second are identical, and a token refused would be sent again.
func SameSecondWait(last time.Time, sameCreds bool, now time.Time) time.Duration {
	if !sameCreds || last.IsZero() {
		return 0
	}
	sec := now.Truncate(time.Second)
	if last.Truncate(time.Second).Before(sec) {
		return 0
	}
	// last is in now's second (or, with a clock that stepped back, later):
	// wait for the second after last's.
	return last.Truncate(time.Second).Add(time.Second).Sub(now)
}

// TokenBounds returns when a token signed at signed with creds is to be
// renewed at the latest (refreshBy) and when it stops being served
// (expires). A token lives IAMTokenLifetime; when creds can expire, RDS
// refuses it once they have, so refreshBy is their expiry less a margin
// (IAMCredentialsMargin, or half their remaining life when that is
// shorter: a login takes time, and a short session leaves it little) and expires is half the margin before their expiry. Without an
// expiry, refreshBy is zero (the cache's TTL decides) and expires is the
// token's lifetime.
func TokenBounds(signed time.Time, creds aws.Credentials) (refreshBy, expires time.Time) {
	expires = signed.Add(IAMTokenLifetime)
	if !creds.CanExpire || creds.Expires.IsZero() {
		return time.Time{}, expires
	}
	left := creds.Expires.Sub(signed)
	margin := min(IAMCredentialsMargin, left/2)
	if margin < 0 {
		margin = 0
	}
	refreshBy = creds.Expires.Add(-margin)
	if e := creds.Expires.Add(-margin / 2); e.Before(expires) {
		expires = e
	}
	return refreshBy, expires
}
