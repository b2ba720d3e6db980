package rotatingmysql

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/retry"
)

// Config configures a rotatingmysql connector. Build one with NewConfig or
// ParseDSN, adjust it with fields or Options, and pass it to NewConnector.
// NewConnector copies it, so later changes do not reach the connector.
type Config struct {
	// SecretID names the secret: an ARN or a name for the Secrets Manager
	// and agent sources, a variable name for env, a path for file. With
	// source=iam it is USER@HOST[:PORT][/DBNAME], the login the tokens are
	// for (nothing in it is secret).
	SecretID string
	// Source selects where credentials come from: "secretsmanager"
	// (default), "agent" (the Secrets Manager Agent or the Lambda
	// extension on localhost), "env" (SecretID names an environment
	// variable holding the secret JSON), "file" (SecretID is a path to a
	// file holding it), or a comma-separated chain such as
	// "agent,secretsmanager", tried in order while a source is unreachable.
	// "iam" uses RDS IAM database authentication tokens instead of a secret
	// (see the README's IAM section); it cannot be chained.
	// Ignored when CredentialSource is set.
	Source string
	// Region overrides the region of the ARN and of the SDK's default chain.
	Region string
	// Host, Port and DBName override the secret's (RDS-managed rds!...
	// secrets hold no host; RDS Proxy and reader endpoints use another).
	Host   string
	Port   int
	DBName string
	// User is the database user of source=iam, filled from SecretID.
	User string
	// Keys names the JSON keys the secret's fields are read from, for
	// secrets not in the RDS shape; empty keys are the RDS ones.
	Keys credsource.Keys
	// AllowInsecureIAM lets source=iam send its token without verified TLS
	// (no tls=, tls=preferred, tls=skip-verify): for a local test server
	// only, since anyone on the path can replay the token for 15 minutes.
	AllowInsecureIAM bool
	// TTL is how long a fetched version is used before the source is asked
	// again. A login refused with 1045 refreshes at once, whatever the TTL.
	// With source=iam it is how long a token is reused: the default 15m
	// becomes credsource.DefaultIAMTokenTTL (14m30s), and it must be less
	// than the token's 15-minute lifetime.
	TTL time.Duration
	// Retry bounds the recovery from 1045: logins per Connect, total time,
	// backoff between rounds.
	Retry retry.Policy
	// RefusedHold is how long a version the server refused (1045) is held
	// back before one connection probes it again; the hold doubles after
	// each failed probe, up to the TTL. It bounds the failed logins a wrong
	// secret costs (MariaDB max_password_errors, MySQL
	// FAILED_LOGIN_ATTEMPTS). Default 1 minute.
	RefusedHold time.Duration
	// MySQL holds every go-sql-driver/mysql setting (TLS, timeouts,
	// parseTime, session variables...). User, Passwd, Net, Addr and DBName
	// are filled from the secret for each version.
	MySQL *mysql.Config

	// AWSConfig, when set, is used by the Secrets Manager source instead of
	// config.LoadDefaultConfig, and by source=iam to sign tokens with its
	// credentials.
	AWSConfig *aws.Config
	// SecretsManagerClient, when set, is the client the Secrets Manager
	// source calls.
	SecretsManagerClient credsource.SecretsManagerAPI
	// AgentEndpoint overrides the agent source's base URL (default
	// http://127.0.0.1:PORT, PORT from PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
	// else 2773).
	AgentEndpoint string
	// AllowRemoteAgent lets AgentEndpoint name a host that is not loopback.
	// The agent token travels in every request: allow it only over a
	// network path you trust.
	AllowRemoteAgent bool
	// AgentToken, when set, is the token the agent source sends, instead of
	// the one it reads from AWS_TOKEN, AWS_SESSION_TOKEN,
	// AWS_CONTAINER_AUTHORIZATION_TOKEN or the agent's token file (see
	// credsource.Agent): for a program that gets the token from elsewhere
	// (a Lambda or ECS task reading its own configuration). Empty means
	// the environment. It prints as [redacted] (credsource.Token) and
	// has no DSN parameter: a token does not belong in a connection string.
	// Option: WithAgentToken.
	AgentToken credsource.Token
	// CredentialSource, when set, replaces Source entirely.
	CredentialSource credsource.Source
	// Logger receives the connector's events (secret fetched, 1045
	// absorbed, AWSPENDING used, gave up). Nil discards them.
	Logger *slog.Logger
	// IsolateCache gives the connector a source, a cache and a ledger of
	// its own instead of sharing them with the process's other connectors
	// on the same secret (see the README, "One cache per secret per
	// process"). The zero value shares. DSN: isolateCache=true; option:
	// WithIsolateCache(true).
	IsolateCache bool
	// Isolate is the old name of IsolateCache: true isolates too.
	//
	// Deprecated: use IsolateCache.
	Isolate bool
	// LoginTimeout bounds one login (TCP connect and handshake) when the
	// caller's context has no deadline (database/sql's background opener,
	// db.Ping()); default 30s so that an Aurora Serverless instance
	// resuming from auto-pause (~15 s) still answers. Zero means the
	// default. DSN: loginTimeout=30s; option: WithLoginTimeout.
	LoginTimeout time.Duration
	// Tracer receives the connector's events (fetches, logins and their
	// outcomes, switches, give-ups) with the Connect's context; nil traces
	// nothing, at no cost. Option: WithTracer; package otelrotatingmysql
	// implements it with OpenTelemetry.
	Tracer Tracer
	// ReplicaRegions are the regions the secret is replicated to, asked in
	// order when the secret's own region fails with an error that is the
	// region's (no connection, a timeout, 5xx, throttling), never for the
	// caller's (not found, access denied); see
	// credsource.SecretsManager.ReplicaRegions. For the secretsmanager
	// source (alone or after agent in a chain). DSN:
	// replicaRegions=us-west-2,eu-west-1; option: WithReplicaRegions.
	ReplicaRegions []string

	// ownAccounts gives the connector an account table of its own (a
	// simulated process of the drill; see internal/simproc).
	ownAccounts bool
}

// isolated reports whether the connector keeps its source, cache and
// ledger to itself (IsolateCache, or its deprecated name Isolate).
func (c *Config) isolated() bool { return c.IsolateCache || c.Isolate }

// loginTimeout returns the bound of one login: LoginTimeout, or
// DefaultLoginTimeout when it is zero.
func (c *Config) loginTimeout() time.Duration {
	if c.LoginTimeout <= 0 {
		return DefaultLoginTimeout
	}
	return c.LoginTimeout
}

// logger returns the configured logger, or one that discards.
func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// NewConfig returns a Config for the secret with every default.
func NewConfig(secretID string) *Config {
	return &Config{
		SecretID:     secretID,
		TTL:          credsource.DefaultTTL,
		Retry:        retry.DefaultPolicy(),
		RefusedHold:  DefaultRefusedHold,
		LoginTimeout: DefaultLoginTimeout,
		MySQL:        mysql.NewConfig(),
	}
}

// DefaultRefusedHold is the default of Config.RefusedHold.
const DefaultRefusedHold = time.Minute

// DefaultLoginTimeout is the default of Config.LoginTimeout: longer than an
// Aurora Serverless instance takes to resume from auto-pause (about 15 s).
const DefaultLoginTimeout = 30 * time.Second

// NewIAMConfig returns a Config for source=iam: the connector logs in as
// user to host:port (0 means 3306) and database dbname (may be empty) with
// RDS IAM authentication tokens. Give it TLS (WithTLSConfig) before
// NewConnector.
func NewIAMConfig(user, host string, port int, dbname string) *Config {
	id := user + "@" + host
	if strings.Contains(host, ":") {
		id = user + "@[" + host + "]"
	}
	if port != 0 {
		id += ":" + strconv.Itoa(port)
	}
	if dbname != "" {
		id += "/" + dbname
	}
	c := NewConfig(id)
	c.Source = "iam"
	c.TTL = credsource.DefaultIAMTokenTTL
	return c
}

// Option changes a Config; see Config.Apply.
type Option func(*Config) error

// Apply applies the options in order and stops at the first error.
func (c *Config) Apply(opts ...Option) error {
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return err
		}
	}
	return nil
}

// WithAWSConfig makes the Secrets Manager source use the program's own
// aws.Config (credentials, region, endpoint, retryer).
func WithAWSConfig(cfg aws.Config) Option {
	return func(c *Config) error { c.AWSConfig = &cfg; return nil }
}

// WithSecretKeys makes the JSON sources (secretsmanager, agent, env, file)
// read the secret's fields from the keys k names, such as
// credsource.Keys{Username: "DB_USER", Password: "DB_PASSWORD"}; empty
// fields keep the RDS keys.
func WithSecretKeys(k credsource.Keys) Option {
	return func(c *Config) error {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("%w: secret keys: %w", ErrInvalidDSN, err)
		}
		c.Keys = k
		return nil
	}
}

// WithAllowInsecureIAM lets source=iam log in without verified TLS, for a
// local test server only: the token travels in clear text and can be
// replayed for 15 minutes by anyone who sees it.
func WithAllowInsecureIAM(allow bool) Option {
	return func(c *Config) error { c.AllowInsecureIAM = allow; return nil }
}

// WithSecretsManagerClient makes the Secrets Manager source call client.
func WithSecretsManagerClient(client credsource.SecretsManagerAPI) Option {
	return func(c *Config) error { c.SecretsManagerClient = client; return nil }
}

// WithCredentialSource sets Config.CredentialSource: a custom source that
// replaces the DSN's source (Config.Source) entirely.
func WithCredentialSource(src credsource.Source) Option {
	return func(c *Config) error { c.CredentialSource = src; return nil }
}

// WithSource is the old name of WithCredentialSource.
//
// Deprecated: use WithCredentialSource; WithSource sets
// Config.CredentialSource, not Config.Source.
func WithSource(src credsource.Source) Option { return WithCredentialSource(src) }

// WithAgentEndpoint sets the agent source's base URL, such as
// "http://127.0.0.1:2773". A host that is not loopback is refused unless
// WithAllowRemoteAgent(true) is given too.
func WithAgentEndpoint(endpoint string) Option {
	return func(c *Config) error { c.AgentEndpoint = endpoint; return nil }
}

// WithAllowRemoteAgent lets the agent endpoint be a host that is not
// loopback. The agent token travels in every request: allow it only over a
// network path you trust.
func WithAllowRemoteAgent(allow bool) Option {
	return func(c *Config) error { c.AllowRemoteAgent = allow; return nil }
}

// WithAgentToken sets Config.AgentToken: the token the agent source sends
// to the Secrets Manager Agent or the Lambda extension, given in Go instead
// of through AWS_TOKEN or the token file (which it then does not read).
// The token is never printed, logged or put in an error. An empty token, or
// one with a control character inside, is refused.
func WithAgentToken(token string) Option {
	return func(c *Config) error {
		t := credsource.Token(strings.TrimSpace(token))
		if t == "" {
			return fmt.Errorf("%w: agent token is empty", ErrInvalidDSN)
		}
		if err := checkAgentToken(t); err != nil {
			return err
		}
		c.AgentToken = t
		return nil
	}
}

// checkAgentToken refuses a token that no agent accepts, without quoting it.
func checkAgentToken(t credsource.Token) error {
	if t != "" && strings.TrimSpace(string(t)) == "" {
		return fmt.Errorf("%w: agent token is only white space", ErrInvalidDSN)
	}
	if strings.ContainsFunc(strings.TrimSpace(string(t)), unicode.IsControl) {
		return fmt.Errorf("%w: agent token has a control character (a line break inside?): not a token the agent accepts", ErrInvalidDSN)
	}
	return nil
}

// WithTLSConfig sets the TLS configuration of every connection. When its
// ServerName is empty, each connection verifies against the host it dials.
func WithTLSConfig(t *tls.Config) Option {
	return func(c *Config) error { c.MySQL.TLS = t; return nil }
}

// WithMySQLConfig lets fn adjust the go-sql-driver/mysql configuration
// (fn must not set User or Passwd: they come from the secret).
func WithMySQLConfig(fn func(*mysql.Config) error) Option {
	return func(c *Config) error { return fn(c.MySQL) }
}

// WithLogger sets the logger for the connector's events.
func WithLogger(l *slog.Logger) Option {
	return func(c *Config) error { c.Logger = l; return nil }
}

// WithRetryPolicy sets the bounds of the recovery from 1045; zero fields
// keep their defaults.
func WithRetryPolicy(p retry.Policy) Option {
	return func(c *Config) error { c.Retry = p.WithDefaults(); return nil }
}

// WithTTL sets how long a fetched version is used before asking again.
func WithTTL(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("%w: ttl must be positive, got %v", ErrInvalidDSN, d)
		}
		c.TTL = d
		return nil
	}
}

// WithRefusedHold sets how long a refused version is held back before it
// is probed again (see Config.RefusedHold).
func WithRefusedHold(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("%w: refusedHold must be positive, got %v", ErrInvalidDSN, d)
		}
		c.RefusedHold = d
		return nil
	}
}

// WithLoginTimeout sets Config.LoginTimeout, the bound of one login when
// the caller's context has no deadline; it must be positive.
func WithLoginTimeout(d time.Duration) Option {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("%w: loginTimeout must be positive, got %v", ErrInvalidDSN, d)
		}
		c.LoginTimeout = d
		return nil
	}
}

// WithIsolateCache(true) sets Config.IsolateCache: the connector gets a
// source, a cache and a ledger of its own; by default (false) connectors on
// the same secret with the same source settings share them.
func WithIsolateCache(isolate bool) Option {
	return func(c *Config) error { c.IsolateCache, c.Isolate = isolate, false; return nil }
}

// WithSharedCache is the old, inverted spelling of WithIsolateCache:
// WithSharedCache(false) is WithIsolateCache(true).
//
// Deprecated: use WithIsolateCache.
func WithSharedCache(share bool) Option { return WithIsolateCache(!share) }

// WithTracer sets Config.Tracer: t receives the connector's events.
func WithTracer(t Tracer) Option {
	return func(c *Config) error { c.Tracer = t; return nil }
}

// ownParams are the DSN parameters rotatingmysql reads itself; every other
// parameter goes to go-sql-driver/mysql.
var ownParams = map[string]func(c *Config, v string) error{
	"source": func(c *Config, v string) error { c.Source = v; return nil },
	"region": func(c *Config, v string) error { c.Region = v; return nil },
	"host":   func(c *Config, v string) error { c.Host = v; return nil },
	"dbname": func(c *Config, v string) error { c.DBName = v; return nil },
	"agentEndpoint": func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("must be a base URL such as http://127.0.0.1:2773")
		}
		c.AgentEndpoint = v
		return nil
	},
	"isolateCache": func(c *Config, v string) error {
		b, err := parseBool(v)
		c.IsolateCache = b
		return err
	},
	// Deprecated spelling of isolateCache, inverted.
	"sharedCache": func(c *Config, v string) error {
		b, err := parseBool(v)
		c.IsolateCache = !b
		return err
	},
	"allowRemoteAgent": func(c *Config, v string) error {
		b, err := parseBool(v)
		c.AllowRemoteAgent = b
		return err
	},
	"usernameKey": secretKey(func(k *credsource.Keys) *string { return &k.Username }),
	"passwordKey": secretKey(func(k *credsource.Keys) *string { return &k.Password }),
	"hostKey":     secretKey(func(k *credsource.Keys) *string { return &k.Host }),
	"portKey":     secretKey(func(k *credsource.Keys) *string { return &k.Port }),
	"dbnameKey":   secretKey(func(k *credsource.Keys) *string { return &k.DBName }),
	"allowInsecureIAM": func(c *Config, v string) error {
		b, err := parseBool(v)
		c.AllowInsecureIAM = b
		return err
	},
	"port": func(c *Config, v string) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("must be a whole number from 1 to 65535, got %q", v)
		}
		c.Port = p
		return nil
	},
	"ttl": func(c *Config, v string) error {
		d, err := parsePositiveDuration(v)
		c.TTL = d
		return err
	},
	"refusedHold": func(c *Config, v string) error {
		d, err := parsePositiveDuration(v)
		c.RefusedHold = d
		return err
	},
	"loginTimeout": func(c *Config, v string) error {
		d, err := parsePositiveDuration(v)
		c.LoginTimeout = d
		return err
	},
	"retryTimeout": func(c *Config, v string) error {
		d, err := parsePositiveDuration(v)
		c.Retry.Timeout = d
		return err
	},
	"maxLoginAttempts": func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("must be a whole number from 1 to 100, got %q", v)
		}
		c.Retry.MaxLogins = n
		return nil
	},
	"replicaRegions": func(c *Config, v string) error {
		c.ReplicaRegions = nil
		for _, r := range strings.Split(v, ",") {
			c.ReplicaRegions = append(c.ReplicaRegions, strings.TrimSpace(r))
		}
		return nil
	},
}

// refusedParams are names refused in any letter case, with the reason.
// go-sql-driver/mysql sends a name it does not know to the server as
// SET NAME = VALUE on every connection, in whatever case it is written:
// ?PASSWORD=x would change the account's password.
var refusedParams = map[string]string{
	"user":     credentialsFromSecret,
	"username": credentialsFromSecret,
	"password": credentialsFromSecret,
	"passwd":   credentialsFromSecret,
	"net":      "the address comes from the secret (host= and port= override it); remove this parameter",
	"addr":     "the address comes from the secret (host= and port= override it); remove this parameter",
	// go-sql-driver/mysql panics on it.
	"strict": "go-sql-driver/mysql removed strict mode; remove this parameter",
}

const credentialsFromSecret = "credentials come from the secret; remove this parameter"

// mysqlParams are go-sql-driver/mysql's parameter names (v1.10), for the
// suggestion when one is written in another letter case. A name missing
// here still reaches go-sql-driver/mysql.
var mysqlParams = []string{
	"allowAllFiles", "allowCleartextPasswords", "allowFallbackToPlaintext",
	"allowNativePasswords", "allowOldPasswords", "charset", "checkConnLiveness",
	"clientFoundRows", "collation", "columnsWithAlias", "compress",
	"connectionAttributes", "interpolateParams", "loc", "maxAllowedPacket",
	"multiStatements", "parseTime", "readTimeout", "rejectReadOnly",
	"serverPubKey", "timeTruncate", "timeout", "tls", "writeTimeout",
}

// checkPassedName checks a parameter name that is not one of rotatingmysql's
// own before it goes to go-sql-driver/mysql, where an unknown name becomes
// a session variable (SET NAME = VALUE on every connection). It refuses the
// names listed in refusedParams in any case, one of rotatingmysql's or
// go-sql-driver/mysql's names in another case, a near miss of one of
// rotatingmysql's names (within edit distance 1 for a name of up to 4
// letters, 2 otherwise, ignoring case), and a name that is not a plain
// identifier (letters, digits, _), which no session variable has.
func checkPassedName(name string) error {
	lower := strings.ToLower(name)
	if why, ok := refusedParams[lower]; ok {
		return errors.New(why)
	}
	for _, p := range mysqlParams {
		if p == name {
			return nil
		}
	}
	if own := ownName(lower); own != "" {
		if strings.EqualFold(own, name) {
			return fmt.Errorf("unknown parameter; did you mean %q? (parameter names are case-sensitive)", own)
		}
		return fmt.Errorf("unknown parameter; did you mean %q?", own)
	}
	for _, p := range mysqlParams {
		if strings.EqualFold(p, name) {
			return fmt.Errorf("unknown parameter; did you mean go-sql-driver/mysql's %q? (parameter names are case-sensitive)", p)
		}
	}
	if !isIdentifier(name) {
		return errors.New("not a parameter of rotatingmysql or go-sql-driver/mysql, nor a session variable name (letters, digits and _)")
	}
	return nil
}

// ownName returns the rotatingmysql parameter lower (a lowercased name)
// is a near miss of, or "".
func ownName(lower string) string {
	best, bestDist := "", 3
	for _, own := range sortedOwnParams {
		limit := 2
		if len(own) <= 4 {
			limit = 1
		}
		if len(lower) > len(own)+limit || len(lower) < len(own)-limit {
			continue // too far; and a long name costs no time
		}
		if d := editDistance(lower, strings.ToLower(own)); d <= limit && d < bestDist {
			best, bestDist = own, d
		}
	}
	return best
}

// sortedOwnParams lists ownParams in a fixed order, so that a suggestion
// does not depend on map order.
var sortedOwnParams = func() []string {
	names := make([]string, 0, len(ownParams))
	for n := range ownParams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}()

// editDistance is the number of single-byte edits (insert, delete,
// substitute, swap two neighbours) that turn a into b: the optimal string
// alignment distance.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// isIdentifier reports whether s is a plain SQL identifier.
func isIdentifier(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// secretKey sets the JSON key of one secret field.
func secretKey(field func(*credsource.Keys) *string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("must name a JSON key of the secret, such as DB_USER")
		}
		*field(&c.Keys) = v
		return nil
	}
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("must be true or false, got %q", v)
	}
	return b, nil
}

func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration such as 30s or 15m, got %q", v)
	}
	return d, nil
}

// errMySQLDSN is the error for a go-sql-driver/mysql DSN (or a URL with a
// password) given to rotatingmysql. It never repeats the DSN, which holds a
// password.
var errMySQLDSN = fmt.Errorf("%w: this looks like a go-sql-driver/mysql DSN (USER:PASSWORD@NET(ADDR)/DBNAME) or a URL with a password; "+
	"rotatingmysql takes SECRET_ID[?PARAMS]: the secret's ARN or name, with ?host=HOST&port=PORT&dbname=DBNAME "+
	"to override the address the secret holds (e.g. arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME?host=db.example.com); "+
	"the user and password come from the secret", ErrInvalidDSN)

// looksLikeMySQLDSN reports whether dsn is written the way
// go-sql-driver/mysql reads a DSN, with a password (USER:PASSWORD@...) or a
// network address (tcp(HOST:PORT)/...), or as a URL with a password
// (mysql://USER:PASSWORD@HOST/DB), instead of as a secret id. Secret names,
// environment variable names and source=iam's USER@HOST[:PORT] hold
// neither (names have no ':' or '(', and an ARN is never taken for one);
// source=file's paths are checked for a network address only.
func looksLikeMySQLDSN(dsn string) bool {
	if strings.HasPrefix(dsn, "arn:") {
		return false
	}
	id, query, _ := strings.Cut(dsn, "?")
	// USER:PASSWORD@: a ':' in the secret id before the first '@' (which
	// may follow a '?' in the password).
	if colon := strings.IndexByte(id, ':'); colon >= 0 && strings.IndexByte(dsn, '@') > colon && !namesFileSource(query) {
		return true
	}
	// go-sql-driver/mysql looks for its parameters after the last '/', so
	// a password may hold a '?': try the DSN up to either.
	for _, s := range []string{id, dsn} {
		slash := strings.LastIndex(s, "/")
		if slash < 0 {
			continue
		}
		if q := strings.IndexByte(s[slash:], '?'); q >= 0 {
			s = s[:slash+q] // without the parameters: go-sql-driver/mysql panics on some
		}
		mc, err := mysql.ParseDSN(s)
		if err != nil {
			continue
		}
		if mc.Passwd != "" {
			return true
		}
		switch mc.Net {
		case "tcp", "tcp4", "tcp6", "unix":
			if strings.Contains(s[:slash], mc.Net+"(") {
				return true
			}
		}
	}
	return false
}

// namesFileSource reports whether the DSN parameters query choose
// source=file (alone or in a list), whose secret id is a path that may
// hold any character.
func namesFileSource(query string) bool {
	for _, kv := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(kv, "source="); ok && usesSource(v, "file") {
			return true
		}
	}
	return false
}

// ParseDSN parses SECRET_ID[?PARAMS]. SECRET_ID is a secret's ARN or name
// (or, with source=env or source=file, a variable name or a path; with
// source=iam, USER@HOST[:PORT][/DBNAME]).
// rotatingmysql's own parameters are source, region, host, port, dbname,
// ttl, retryTimeout, maxLoginAttempts, refusedHold, loginTimeout,
// isolateCache (sharedCache is its deprecated, inverted spelling),
// agentEndpoint, allowRemoteAgent, usernameKey, passwordKey, hostKey,
// portKey, dbnameKey and allowInsecureIAM; every other parameter is
// go-sql-driver/mysql's and is validated by it (a name it does not know is
// a session variable, set on every connection).
//
// ParseDSN refuses, naming the parameter: user, password, passwd, net and
// addr in any letter case; a parameter of rotatingmysql or go-sql-driver
// written in another case or misspelt by a letter or two ("did you mean");
// a name given twice; a value go-sql-driver/mysql would not apply as
// written (a '/' in a value: write %2F); and a go-sql-driver/mysql DSN
// (USER:PASSWORD@tcp(HOST)/DB), without repeating it.
func ParseDSN(dsn string) (*Config, error) {
	if looksLikeMySQLDSN(dsn) {
		return nil, errMySQLDSN
	}
	id, query, _ := strings.Cut(dsn, "?")
	cfg := NewConfig(id)
	var passed []string
	seen := make(map[string]string) // lowercased name: the name as written
	for _, kv := range strings.Split(query, "&") {
		if kv == "" {
			continue
		}
		key, rawVal, hasValue := strings.Cut(kv, "=")
		if !hasValue {
			// go-sql-driver/mysql would skip it without a word.
			return nil, fmt.Errorf("%w: parameter %q has no value (want NAME=VALUE)", ErrInvalidDSN, key)
		}
		// Two values for one parameter (source=env&source=file) would
		// leave the choice to their order; MySQL's variable names ignore
		// case.
		lower := strings.ToLower(key)
		if prev, dup := seen[lower]; dup {
			if prev == key {
				return nil, fmt.Errorf("%w: parameter %q is given more than once", ErrInvalidDSN, key)
			}
			return nil, fmt.Errorf("%w: parameters %q and %q name the same setting", ErrInvalidDSN, prev, key)
		}
		seen[lower] = key
		set, own := ownParams[key]
		if !own {
			if err := checkPassedName(key); err != nil {
				return nil, fmt.Errorf("%w: parameter %q: %w", ErrInvalidDSN, key, err)
			}
			passed = append(passed, kv)
			continue
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q: bad escaping", ErrInvalidDSN, key)
		}
		if err := set(cfg, val); err != nil {
			return nil, fmt.Errorf("%w: parameter %q: %w", ErrInvalidDSN, key, err)
		}
	}
	if _, ok := seen["sharedcache"]; ok {
		if _, ok := seen["isolatecache"]; ok {
			return nil, fmt.Errorf("%w: sharedCache is the deprecated spelling of isolateCache: give isolateCache only", ErrInvalidDSN)
		}
	}
	if len(passed) > 0 {
		mc, err := parseMySQLParams(passed)
		if err != nil {
			return nil, err
		}
		mc.Addr = ""
		if mc.TLSConfig != "" {
			// ParseDSN resolved the TLS name against its placeholder
			// address; let each version's connector resolve it against the
			// real host so that ServerName is right.
			mc.TLS = nil
		}
		cfg.MySQL = mc
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseMySQLParams has go-sql-driver/mysql parse its parameters (NAME=VALUE
// as written in the DSN), one at a time and then together, and checks that
// each one is in effect in the result: no value can make a parameter
// vanish (go-sql-driver/mysql splits a DSN at its last '/', so a value
// holding "(...)/" would otherwise turn every parameter before it into an
// address, tls=true included).
func parseMySQLParams(kvs []string) (*mysql.Config, error) {
	alone := make([][]string, len(kvs)) // each parameter's effect, as go-sql-driver/mysql formats it
	for i, kv := range kvs {
		key, _, _ := strings.Cut(kv, "=")
		if strings.Contains(kv, "/") {
			return nil, fmt.Errorf("%w: parameter %q: go-sql-driver/mysql cannot read a '/' in a value (it would drop the parameters before it); write it as %%2F", ErrInvalidDSN, key)
		}
		mc, err := parseMySQLQuery(kv)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q: %w", ErrInvalidDSN, key, err)
		}
		alone[i] = formattedParams(mc)
	}
	mc, err := parseMySQLQuery(strings.Join(kvs, "&"))
	if err != nil {
		return nil, fmt.Errorf("%w: go-sql-driver/mysql parameters: %w", ErrInvalidDSN, err)
	}
	together := formattedParams(mc)
	for i, kv := range kvs {
		for _, p := range alone[i] {
			if !slices.Contains(together, p) {
				key, _, _ := strings.Cut(kv, "=")
				return nil, fmt.Errorf("%w: parameter %q is not in effect once the other go-sql-driver/mysql parameters are applied", ErrInvalidDSN, key)
			}
		}
	}
	return mc, nil
}

// parseMySQLQuery parses query as the parameters of a go-sql-driver/mysql
// DSN that has no user, address or database, and checks that it was read
// that way.
func parseMySQLQuery(query string) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN("/?" + query)
	if err != nil {
		return nil, err
	}
	if mc.User != "" || mc.Passwd != "" || mc.DBName != "" || mc.Net != "tcp" || mc.Addr != "127.0.0.1:3306" {
		return nil, errors.New("go-sql-driver/mysql does not read it as a parameter")
	}
	return mc, nil
}

// formattedParams returns the parameters of mc's DSN as go-sql-driver/mysql
// formats them (only those that differ from its defaults).
func formattedParams(mc *mysql.Config) []string {
	_, query, _ := strings.Cut(mc.FormatDSN(), "?")
	if query == "" {
		return nil
	}
	return strings.Split(query, "&")
}

// validate checks what can be checked without I/O.
func (c *Config) validate() error {
	if c.SecretID == "" && c.CredentialSource == nil {
		return fmt.Errorf("%w: the secret id is empty (want SECRET_ID[?PARAMS], e.g. arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", ErrInvalidDSN)
	}
	if strings.HasPrefix(c.SecretID, "arn:") && (c.CredentialSource != nil || secretIDIsSecret(c.Source)) {
		a, err := arn.Parse(c.SecretID)
		if err != nil || a.Service != "secretsmanager" || !strings.HasPrefix(a.Resource, "secret:") || a.Region == "" {
			return fmt.Errorf("%w: %q is not a Secrets Manager secret ARN (want arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME)", ErrInvalidDSN, c.SecretID)
		}
		if err := credsource.CheckRegion(a.Region); err != nil {
			return fmt.Errorf("%w: the secret's ARN: %w", ErrInvalidDSN, err)
		}
	}
	if c.Region != "" {
		if err := credsource.CheckRegion(c.Region); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidDSN, err)
		}
	}
	if c.MySQL == nil {
		c.MySQL = mysql.NewConfig()
	}
	if c.MySQL.User != "" || c.MySQL.Passwd != "" {
		return fmt.Errorf("%w: MySQL.User and MySQL.Passwd must be empty: credentials come from the secret", ErrInvalidDSN)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("%w: port must be from 1 to 65535, got %d", ErrInvalidDSN, c.Port)
	}
	if c.TTL <= 0 {
		c.TTL = credsource.DefaultTTL
	}
	if c.RefusedHold <= 0 {
		c.RefusedHold = DefaultRefusedHold
	}
	if c.LoginTimeout < 0 {
		return fmt.Errorf("%w: loginTimeout must be positive, got %v", ErrInvalidDSN, c.LoginTimeout)
	}
	c.Retry = c.Retry.WithDefaults()
	if err := c.Keys.Validate(); err != nil {
		return fmt.Errorf("%w: secret keys: %w", ErrInvalidDSN, err)
	}
	switch {
	case c.CredentialSource == nil && usesSource(c.Source, "iam"):
		if err := c.validateIAM(); err != nil {
			return fmt.Errorf("%w: source=iam: %w", ErrInvalidDSN, err)
		}
	case c.CredentialSource != nil && hasIAMSource(c.CredentialSource):
		// The IAM rules hold however IAM is configured (WithSource, a
		// chain holding an IAM source).
		if err := c.checkIAMSource(); err != nil {
			return fmt.Errorf("%w: IAM source: %w", ErrInvalidDSN, err)
		}
	case c.AllowInsecureIAM:
		return fmt.Errorf("%w: allowInsecureIAM applies to source=iam only", ErrInvalidDSN)
	}
	if err := checkAgentToken(c.AgentToken); err != nil {
		return err
	}
	if c.CredentialSource == nil {
		if _, err := sourceFactory(c.Source); err != nil {
			return fmt.Errorf("%w: parameter \"source\": %w", ErrInvalidDSN, err)
		}
		// The agent's settings with a source list that has no agent: one
		// of the two is a mistake.
		if (c.AgentEndpoint != "" || c.AllowRemoteAgent || c.AgentToken != "") && !usesSource(c.Source, "agent") {
			src := c.Source
			if src == "" {
				src = "secretsmanager"
			}
			return fmt.Errorf("%w: agentEndpoint, allowRemoteAgent and the agent token (WithAgentToken) apply to source=agent, but source is %q", ErrInvalidDSN, src)
		}
	}
	if err := c.validateReplicaRegions(); err != nil {
		return fmt.Errorf("%w: replicaRegions: %w", ErrInvalidDSN, err)
	}
	return nil
}

// validateReplicaRegions checks ReplicaRegions: regions (no -fips
// pseudo-region), none twice nor the Region itself, for a source list with
// the secretsmanager source.
func (c *Config) validateReplicaRegions() error {
	if len(c.ReplicaRegions) == 0 {
		return nil
	}
	switch {
	case c.CredentialSource != nil:
		return errors.New("applies to the sources the DSN names; with WithSource, set credsource.SecretsManager.ReplicaRegions")
	case c.Source != "" && !usesSource(c.Source, "secretsmanager"):
		return fmt.Errorf("applies to source=secretsmanager (or a chain such as agent,secretsmanager), but source is %q", c.Source)
	}
	seen := map[string]bool{}
	for _, r := range c.ReplicaRegions {
		switch {
		case r == "":
			return errors.New("a region is empty (want a comma-separated list such as us-west-2,eu-west-1)")
		case seen[r]:
			return fmt.Errorf("region %s is given twice", r)
		case r == c.Region:
			return fmt.Errorf("region %s is the secret's own region (region=)", r)
		}
		if err := credsource.CheckRegion(r); err != nil {
			return err
		}
		if strings.ContainsAny(r, " /:?#@") {
			return fmt.Errorf("%q is not a region name", r)
		}
		seen[r] = true
	}
	return nil
}

// usesSource reports whether the source list spec names the source name.
func usesSource(spec, name string) bool {
	for _, s := range strings.Split(spec, ",") {
		s = strings.TrimSpace(s)
		if alias, ok := sourceAliases[s]; ok {
			s = alias
		}
		if s == name {
			return true
		}
	}
	return false
}

// clone returns a deep enough copy for the connector to own.
func (c *Config) clone() *Config {
	cp := *c
	cp.ReplicaRegions = slices.Clone(c.ReplicaRegions)
	if c.MySQL != nil {
		cp.MySQL = c.MySQL.Clone()
	}
	return &cp
}

// Format prints the configuration without anything secret: the AWS
// configuration and the mysql.Config's TLS keys are left out.
func (c *Config) Format(f fmt.State, verb rune) {
	src := c.Source
	if c.CredentialSource != nil {
		src = fmt.Sprintf("%T", c.CredentialSource)
	}
	_, _ = fmt.Fprintf(f, "rotatingmysql.Config{SecretID:%q Source:%q Region:%q Host:%q Port:%d DBName:%q User:%q Keys:{%v} TTL:%v RefusedHold:%v LoginTimeout:%v IsolateCache:%v Retry:%+v}",
		c.SecretID, src, c.Region, c.Host, c.Port, c.DBName, c.User, c.Keys, c.TTL, c.RefusedHold, c.loginTimeout(), c.isolated(), c.Retry)
}

var _ fmt.Formatter = (*Config)(nil)
var _ io.Closer = (*Connector)(nil)

// WithReplicaRegions sets Config.ReplicaRegions: the regions the secret is
// replicated to, asked in order when its own region fails (DSN:
// replicaRegions=us-west-2,eu-west-1).
func WithReplicaRegions(regions ...string) Option {
	return func(c *Config) error { c.ReplicaRegions = slices.Clone(regions); return nil }
}
