package rotatingmysql

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	// CredentialSource, when set, replaces Source entirely.
	CredentialSource credsource.Source
	// Logger receives the connector's events (secret fetched, 1045
	// absorbed, AWSPENDING used, gave up). Nil discards them.
	Logger *slog.Logger
	// Isolate gives the connector a source, a cache and a ledger of its
	// own instead of sharing them with the process's other connectors on
	// the same secret (see the README, "One cache per secret per
	// process"). DSN: sharedCache=false.
	Isolate bool
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
		SecretID:    secretID,
		TTL:         credsource.DefaultTTL,
		Retry:       retry.DefaultPolicy(),
		RefusedHold: DefaultRefusedHold,
		MySQL:       mysql.NewConfig(),
	}
}

// DefaultRefusedHold is the default of Config.RefusedHold.
const DefaultRefusedHold = time.Minute

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

// WithSource replaces the DSN's source by a custom one.
func WithSource(src credsource.Source) Option {
	return func(c *Config) error { c.CredentialSource = src; return nil }
}

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

// WithSharedCache(false) gives the connector a source, a cache and a ledger
// of its own (Config.Isolate); by default connectors on the same secret
// with the same source settings share them.
func WithSharedCache(share bool) Option {
	return func(c *Config) error { c.Isolate = !share; return nil }
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
	"sharedCache": func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.Isolate = !b
		return nil
	},
	"allowRemoteAgent": func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.AllowRemoteAgent = b
		return nil
	},
	"usernameKey": secretKey(func(k *credsource.Keys) *string { return &k.Username }),
	"passwordKey": secretKey(func(k *credsource.Keys) *string { return &k.Password }),
	"hostKey":     secretKey(func(k *credsource.Keys) *string { return &k.Host }),
	"portKey":     secretKey(func(k *credsource.Keys) *string { return &k.Port }),
	"dbnameKey":   secretKey(func(k *credsource.Keys) *string { return &k.DBName }),
	"allowInsecureIAM": func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.AllowInsecureIAM = b
		return nil
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
	// Credentials come from the secret only.
	"user":     rejectCredential,
	"password": rejectCredential,
	"passwd":   rejectCredential,
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

func rejectCredential(*Config, string) error {
	return fmt.Errorf("credentials come from the secret; remove this parameter")
}

func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration such as 30s or 15m, got %q", v)
	}
	return d, nil
}

// ParseDSN parses SECRET_ID[?PARAMS]. SECRET_ID is a secret's ARN or name
// (or, with source=env or source=file, a variable name or a path; with
// source=iam, USER@HOST[:PORT][/DBNAME]).
// rotatingmysql's own parameters are source, region, host, port, dbname,
// ttl, retryTimeout, maxLoginAttempts, refusedHold, sharedCache,
// agentEndpoint, allowRemoteAgent, usernameKey, passwordKey, hostKey,
// portKey, dbnameKey and allowInsecureIAM;
// every other parameter is go-sql-driver/mysql's and is validated by it (a
// name it does not know is a session variable set on connect).
func ParseDSN(dsn string) (*Config, error) {
	id, query, _ := strings.Cut(dsn, "?")
	cfg := NewConfig(id)
	var mysqlParams []string
	seen := make(map[string]bool)
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			if kv == "" {
				continue
			}
			rawKey, rawVal, _ := strings.Cut(kv, "=")
			set, own := ownParams[rawKey]
			if !own {
				mysqlParams = append(mysqlParams, kv)
				continue
			}
			// Two values for one parameter (source=env&source=file) would
			// leave the choice to their order: refuse it.
			if seen[rawKey] {
				return nil, fmt.Errorf("%w: parameter %q is given more than once", ErrInvalidDSN, rawKey)
			}
			seen[rawKey] = true
			val, err := url.QueryUnescape(rawVal)
			if err != nil {
				return nil, fmt.Errorf("%w: parameter %q: bad escaping", ErrInvalidDSN, rawKey)
			}
			if err := set(cfg, val); err != nil {
				return nil, fmt.Errorf("%w: parameter %q: %w", ErrInvalidDSN, rawKey, err)
			}
		}
	}
	if len(mysqlParams) > 0 {
		// The mysql driver validates its own parameters; the DSN given to it
		// holds no address and no credentials.
		mc, err := mysql.ParseDSN("/?" + strings.Join(mysqlParams, "&"))
		if err != nil {
			// The mysql driver's errors do not always name the parameter
			// ("time: missing unit in duration"): find it.
			for _, kv := range mysqlParams {
				if _, perr := mysql.ParseDSN("/?" + kv); perr != nil {
					key, _, _ := strings.Cut(kv, "=")
					return nil, fmt.Errorf("%w: parameter %q: %w", ErrInvalidDSN, key, perr)
				}
			}
			return nil, fmt.Errorf("%w: %w", ErrInvalidDSN, err)
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
	c.Retry = c.Retry.WithDefaults()
	if err := c.Keys.Validate(); err != nil {
		return fmt.Errorf("%w: secret keys: %w", ErrInvalidDSN, err)
	}
	if c.CredentialSource == nil && usesSource(c.Source, "iam") {
		if err := c.validateIAM(); err != nil {
			return fmt.Errorf("%w: source=iam: %w", ErrInvalidDSN, err)
		}
	} else if c.AllowInsecureIAM {
		return fmt.Errorf("%w: allowInsecureIAM applies to source=iam only", ErrInvalidDSN)
	}
	if c.CredentialSource == nil {
		if _, err := sourceFactory(c.Source); err != nil {
			return fmt.Errorf("%w: parameter \"source\": %w", ErrInvalidDSN, err)
		}
		// The agent's settings with a source list that has no agent: one
		// of the two is a mistake.
		if (c.AgentEndpoint != "" || c.AllowRemoteAgent) && !usesSource(c.Source, "agent") {
			src := c.Source
			if src == "" {
				src = "secretsmanager"
			}
			return fmt.Errorf("%w: agentEndpoint and allowRemoteAgent apply to source=agent, but source is %q", ErrInvalidDSN, src)
		}
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
	_, _ = fmt.Fprintf(f, "rotatingmysql.Config{SecretID:%q Source:%q Region:%q Host:%q Port:%d DBName:%q User:%q Keys:{%v} TTL:%v RefusedHold:%v Retry:%+v}",
		c.SecretID, src, c.Region, c.Host, c.Port, c.DBName, c.User, c.Keys, c.TTL, c.RefusedHold, c.Retry)
}

var _ fmt.Formatter = (*Config)(nil)
var _ io.Closer = (*Connector)(nil)
