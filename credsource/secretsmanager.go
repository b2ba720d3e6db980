package credsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// SecretsManagerAPI is the part of the Secrets Manager client the library
// uses; *secretsmanager.Client implements it.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// SecretsManager is the Source that calls the Secrets Manager API
// (GetSecretValue) through aws-sdk-go-v2.
//
// Without Client or AWSConfig it builds its client on first use with
// config.LoadDefaultConfig, which honours the usual AWS_* variables,
// including AWS_ENDPOINT_URL_SECRETS_MANAGER. The region comes from Region,
// else from the secret's ARN, else from the SDK's default chain.
//
// Unless Client or AWSConfig.HTTPClient is given, the source makes an HTTP
// client of its own (the SDK's default transport settings, its own
// connection pool) and Close closes its idle connections, so that no
// connection or goroutine outlives the source. A client or HTTPClient the
// caller gave stays the caller's to close.
type SecretsManager struct {
	// SecretID is the secret's name or ARN.
	SecretID string
	// Region overrides the region of the ARN and of the default chain.
	Region string
	// AWSConfig, when set, is used instead of config.LoadDefaultConfig.
	AWSConfig *aws.Config
	// Client, when set, is used as is (Region and AWSConfig are ignored).
	Client SecretsManagerAPI
	// Keys names the JSON keys of the secret's fields; the zero value
	// reads the RDS keys (username, password, host, port, dbname).
	Keys Keys
	// ReplicaRegions are regions the secret is replicated to
	// (ReplicateSecretToRegions), asked in this order when the secret's
	// own region fails with an error that is the region's (no
	// connection, a timeout, 5xx, throttling after the SDK's retries),
	// never for the caller's (not found, access denied, a decryption
	// failure, a malformed secret). A replica is asked for the ARN with its
	// region swapped (a name stays the name), through the same client with
	// the region changed. The region that answered is remembered; while a
	// replica serves, the secret's own region is asked again at most once
	// per ProbeInterval, and serves again as soon as it answers.
	ReplicaRegions []string
	// ProbeInterval is how often the secret's own region is asked again
	// while a replica serves; zero means DefaultProbeInterval.
	ProbeInterval time.Duration
	// RegionTimeout bounds one region's answer when another region could
	// still be asked; zero means DefaultRegionTimeout.
	RegionTimeout time.Duration

	mu     sync.Mutex
	client SecretsManagerAPI
	// own is the transport of the HTTP client the source made; nil when
	// the caller gave the client or the HTTPClient.
	own    *http.Transport
	region string // the client's region, for errors
	closed atomic.Bool

	repMu sync.Mutex
	rep   replicaState
	now   func() time.Time // nil: time.Now (tests inject a clock)
}

var (
	_ Source    = (*SecretsManager)(nil)
	_ io.Closer = (*SecretsManager)(nil)
)

// String names the source in logs and errors.
func (s *SecretsManager) String() string { return "secretsmanager" }

// API returns the client the source uses, building it on first use.
func (s *SecretsManager) API(ctx context.Context) (SecretsManagerAPI, error) {
	if s.Client != nil {
		return s.Client, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	var cfg aws.Config
	var made bool // the HTTP client is the source's to close
	if s.AWSConfig != nil {
		cfg = s.AWSConfig.Copy()
		made = cfg.HTTPClient == nil
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return nil, Redact(fmt.Errorf("secret %q: load AWS configuration: %w", s.SecretID, err))
		}
		// Given no HTTP client, LoadDefaultConfig made one (with
		// AWS_CA_BUNDLE applied, if set): the source's own.
		made = true
	}
	region := s.Region
	if region == "" {
		if a, err := arn.Parse(s.SecretID); err == nil {
			region = a.Region
		}
	}
	if region != "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("secret %q: %w: %s", s.SecretID, ErrNoRegion, noRegionFix)
	}
	if err := CheckRegion(cfg.Region); err != nil {
		return nil, fmt.Errorf("secret %q: %w", s.SecretID, err)
	}
	s.region = cfg.Region
	if made {
		s.own, cfg.HTTPClient = ownHTTPClient(cfg.HTTPClient)
	}
	var opts []func(*secretsmanager.Options)
	if cfg.Retryer == nil {
		// The SDK's standard retryer: its waits after a throttling error
		// doubled (throttleSpread). A retryer of the program's own is kept
		// as it is.
		opts = append(opts, spreadThrottleRetries)
	}
	s.client = secretsmanager.NewFromConfig(cfg, opts...)
	return s.client, nil
}

// ownHTTPClient returns an HTTP client whose transport the source holds, so
// that Close can close its idle connections: the SDK's BuildableClient
// keeps its transport out of reach. The transport is a copy of the one
// made's settings (the SDK's defaults, plus a CA bundle from the
// configuration), or the SDK's defaults when made is nil or of another kind.
func ownHTTPClient(made aws.HTTPClient) (*http.Transport, aws.HTTPClient) {
	b, ok := made.(*awshttp.BuildableClient)
	if !ok {
		b = awshttp.NewBuildableClient()
	}
	tr := b.GetTransport()
	return tr, &http.Client{
		Transport: tr,
		Timeout:   b.GetTimeout(),
		// As the SDK's own client: an answer is never a redirect to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close closes the idle connections of the HTTP client the source made for
// itself (nothing of a Client or HTTPClient the caller gave). A fetch still
// under way, or made later, closes its connection when it ends, so that
// none is left open; the source stays usable.
func (s *SecretsManager) Close() error {
	s.closed.Store(true)
	s.closeIdle()
	return nil
}

func (s *SecretsManager) closeIdle() {
	s.mu.Lock()
	tr := s.own
	s.mu.Unlock()
	if tr != nil {
		tr.CloseIdleConnections()
	}
}

// Fetch calls GetSecretValue for the requested stage.
func (s *SecretsManager) Fetch(ctx context.Context, req Request) (*Secret, error) {
	api, err := s.API(ctx)
	if err != nil {
		return nil, err
	}
	stage := req.Stage
	if stage == "" {
		stage = Current
	}
	if len(s.ReplicaRegions) > 0 {
		return s.fetchReplicated(ctx, api, stage)
	}
	sec, _, err := s.fetchIn(ctx, api, "", s.SecretID, stage)
	return sec, err
}

// fetchIn asks region ("" for the client's own) for the version of id with
// stage. It returns the SDK's error as it was too (raw), for
// RegionalError.
func (s *SecretsManager) fetchIn(ctx context.Context, api SecretsManagerAPI, region, id string, stage Stage) (sec *Secret, raw, err error) {
	var opts []func(*secretsmanager.Options)
	if region != "" && region != s.clientRegion() {
		opts = append(opts, func(o *secretsmanager.Options) { o.Region = region })
	}
	out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(id),
		VersionStage: aws.String(string(stage)),
	}, opts...)
	if s.closed.Load() {
		// Closed during or before this fetch: the SDK has read the answer
		// to its end, so the connection is back in the idle pool.
		s.closeIdle()
	}
	if region == "" {
		region = s.clientRegion()
	}
	if err != nil {
		return nil, err, classifyAPIError(id, stage, region, err)
	}
	sec = &Secret{
		ID:        s.SecretID,
		Region:    region,
		ARN:       aws.ToString(out.ARN),
		Name:      aws.ToString(out.Name),
		VersionID: aws.ToString(out.VersionId),
		Stages:    out.VersionStages,
		Source:    "secretsmanager",
	}
	if out.CreatedDate != nil {
		sec.CreatedDate = *out.CreatedDate
	}
	if out.SecretString == nil {
		reason := "has no SecretString"
		if out.SecretBinary != nil {
			reason = "holds only SecretBinary"
		}
		return nil, nil, &SecretError{SecretID: s.SecretID, VersionID: sec.VersionID,
			Reason: reason + "; rotatingmysql needs the RDS JSON format in SecretString"}
	}
	if sec.Creds, err = s.Keys.Parse(s.SecretID, sec.VersionID, []byte(*out.SecretString)); err != nil {
		return nil, nil, err
	}
	return sec, nil, nil
}

// clientRegion is the region the source's client asks, for errors.
func (s *SecretsManager) clientRegion() string {
	if c, ok := s.Client.(*secretsmanager.Client); ok {
		return c.Options().Region
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.region
}

// classifyAPIError wraps the SDK's error with the sentinel a caller branches
// on and, for the errors with a known fix, says what to fix first, keeping
// the SDK error reachable with errors.As. Its text is redacted: a
// credential provider's error may quote keys.
func classifyAPIError(id string, stage Stage, region string, err error) error {
	var send *smithyhttp.RequestSendError
	if h := apiErrorHint(id, stage, region, err); h != nil {
		return Redact(h)
	}
	if errors.As(err, &send) {
		return Redact(fmt.Errorf("secret %q stage %s: %w: %w", id, stage, ErrUnavailable, err))
	}
	return Redact(fmt.Errorf("secret %q stage %s: %w", id, stage, err))
}

// ErrFIPSRegion is wrapped by CheckRegion's error for an AWS SDK v1 FIPS
// pseudo-region.
var ErrFIPSRegion = errors.New("a FIPS pseudo-region is not a region")

// CheckRegion refuses the FIPS pseudo-regions of the AWS SDK v1 era
// (us-east-1-fips, fips-us-east-1), which aws-sdk-go-v2 does not take as
// regions: the error names the region to use and AWS_USE_FIPS_ENDPOINT=true,
// with which the SDK resolves secretsmanager-fips.REGION.amazonaws.com.
func CheckRegion(region string) error {
	r := strings.ToLower(region)
	if !strings.HasPrefix(r, "fips-") && !strings.HasSuffix(r, "-fips") && !strings.Contains(r, "-fips-") {
		return nil
	}
	base := strings.TrimSuffix(strings.TrimPrefix(r, "fips-"), "-fips")
	base = strings.Replace(base, "-fips-", "-", 1)
	return fmt.Errorf("region %q: %w: use region %s and set AWS_USE_FIPS_ENDPOINT=true "+
		"(Go: config.LoadDefaultConfig(ctx, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled)) and WithAWSConfig)",
		region, ErrFIPSRegion, base)
}
