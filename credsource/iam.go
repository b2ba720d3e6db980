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
// returns them.
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
	signed := time.Now()
	retrieved := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return ac, nil })
	tok, err := auth.BuildAuthToken(ctx, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), region, s.User, retrieved)
	if err != nil {
		return nil, Redact(fmt.Errorf("IAM token for %s: sign: %w", s.Endpoint(), err), ac.SecretAccessKey, ac.SessionToken)
	}
	remember(tok)
	n := s.seq.Add(1)
	return &Secret{
		ID:          s.Endpoint(),
		VersionID:   "iam-token-" + strconv.FormatUint(n, 10),
		Stages:      []string{string(Current)},
		CreatedDate: signed,
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
