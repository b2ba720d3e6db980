package rotatingmysql

import (
	"crypto/sha256"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
	"github.com/rotatingmysql/rotatingmysql/internal/simproc"
)

// One cache per secret per process. Connectors whose fetches would be the
// same share one credential source (one SDK client), one cache and, per
// server address and login settings, one ledger of evidence: N pools on
// one secret cost one fetch per stage, and a password refused to one pool
// is not dialed by the others that would send the same login. The parts are
// reference-counted and closed with the last connector that uses them.
//
// The sharing key is everything that changes what a fetch returns or how it
// is made: the source list, the secret id (with source=iam, the user, host,
// port and database), the region and the replica regions, the JSON keys, the agent endpoint and
// whether a remote agent is allowed, the TTL, the aws.Config's settings
// (region, endpoint, retry mode and attempts, log mode, app id, defaults
// mode) and the identity of the program's own objects (the aws.Config's
// credentials provider and HTTP client; a Secrets Manager client; a custom
// Source; the logger). A connector whose aws.Config carries middleware
// (APIOptions), endpoint resolvers or a retryer, or whose objects cannot
// be compared, keeps parts of its own: such settings cannot be compared,
// so sharing could hand it another connector's client.
//
// The ledger's key adds the DSN's host and port overrides, the
// refused-password hold and the login settings (TLS, auth plugin options):
// a 1045 is evidence only for logins made the same way. The database is not
// in it: pools on other databases of one account share the evidence. The
// other go-sql-driver/mysql settings (timeouts, session variables) are each
// connector's own.
//
// Across every ledger, isolated or not, the process keeps one account table
// (accounts): trials and probes are claimed per server account, and a lock
// error holds the account for all.
//
// Config.IsolateCache (DSN isolateCache=true) opts out of sharing the
// source, cache and ledger; not out of the account table.

// accounts is the process's account table: the failed-login budget is per
// server account per process.
var accounts = ledger.NewAccounts()

func init() {
	// The drill's simulated processes each keep their own account table
	// (internal/simproc); they also keep their own cache and ledger.
	simproc.OwnAccounts = func() any {
		return Option(func(c *Config) error { c.ownAccounts, c.IsolateCache = true, true; return nil })
	}
}

// shared is a source and its cache, used by every connector with the same
// fetch key.
type shared struct {
	key        fetchKey
	inRegistry bool // in the registry under key
	src        credsource.Source
	cache      *credsource.Cache

	refs    int                         // guarded by registry.mu
	ledgers map[ledgerKey]*sharedLedger // guarded by registry.mu
}

// ledgerKey adds to the fetch key what changes the versions a fetch
// resolves to (the DSN's address overrides) and the ledger's hold.
type ledgerKey struct {
	host  string
	port  int
	hold  time.Duration
	login loginSettings
}

// loginSettings are the go-sql-driver/mysql settings that change how the
// password is sent, and so whether the server accepts it.
type loginSettings struct {
	tls                                       string // the TLS config's name, or its identity
	serverPubKey                              string
	cleartext, native, old, plaintextFallback bool
}

func loginSettingsOf(mc *mysql.Config) loginSettings {
	ls := loginSettings{tls: mc.TLSConfig, serverPubKey: mc.ServerPubKey,
		cleartext: mc.AllowCleartextPasswords, native: mc.AllowNativePasswords,
		old: mc.AllowOldPasswords, plaintextFallback: mc.AllowFallbackToPlaintext}
	if mc.TLS != nil && ls.tls == "" {
		ls.tls = fmt.Sprintf("%p", mc.TLS)
	}
	return ls
}

type sharedLedger struct {
	l    *ledger.Ledger[*version]
	refs int
}

var registry = struct {
	mu    sync.Mutex
	parts map[fetchKey]*shared
}{parts: make(map[fetchKey]*shared)}

// acquire returns the parts for cfg, made the first time they are asked for, and
// the ledger for its addresses. The caller must release them.
func acquire(cfg *Config) (*shared, *ledger.Ledger[*version], error) {
	key, ok := cfg.shareKey()
	ledKey := ledgerKey{host: cfg.Host, port: cfg.Port, hold: cfg.RefusedHold, login: loginSettingsOf(cfg.MySQL)}
	if !ok {
		sh, err := newShared(cfg)
		if err != nil {
			return nil, nil, err
		}
		l := newLedger(cfg)
		sh.refs = 1
		sh.ledgers[ledKey] = &sharedLedger{l: l, refs: 1}
		return sh, l, nil
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	sh := registry.parts[key]
	if sh == nil {
		var err error
		if sh, err = newShared(cfg); err != nil {
			return nil, nil, err
		}
		sh.key, sh.inRegistry = key, true
		registry.parts[key] = sh
	}
	sh.refs++
	sl := sh.ledgers[ledKey]
	if sl == nil {
		sl = &sharedLedger{l: newLedger(cfg)}
		sh.ledgers[ledKey] = sl
	}
	sl.refs++
	return sh, sl.l, nil
}

func newShared(cfg *Config) (*shared, error) {
	src, err := cfg.newSource()
	if err != nil {
		return nil, err
	}
	return &shared{
		src:     src,
		cache:   credsource.NewCache(src, credsource.CacheOptions{TTL: cfg.TTL, Logger: cfg.logger()}),
		ledgers: make(map[ledgerKey]*sharedLedger, 1),
	}, nil
}

func newLedger(cfg *Config) *ledger.Ledger[*version] {
	acc := accounts
	if cfg.ownAccounts {
		acc = ledger.NewAccounts()
	}
	return ledger.New[*version](ledger.Options{Hold: cfg.RefusedHold, MaxHold: max(cfg.TTL, cfg.RefusedHold),
		Accounts: acc, Group: fmt.Sprintf("%+v", loginSettingsOf(cfg.MySQL)), Tokens: usesSource(cfg.Source, "iam") || hasIAMSource(cfg.CredentialSource)})
}

// release drops one use of the parts and of the ledger l; the last use
// closes the cache (ending its fetches) and the source.
func (sh *shared) release(l *ledger.Ledger[*version]) error {
	if sh.inRegistry {
		registry.mu.Lock()
	}
	sh.refs--
	for k, sl := range sh.ledgers {
		if sl.l == l {
			if sl.refs--; sl.refs <= 0 {
				delete(sh.ledgers, k)
			}
		}
	}
	last := sh.refs == 0
	if last && sh.inRegistry && registry.parts[sh.key] == sh {
		delete(registry.parts, sh.key)
	}
	if sh.inRegistry {
		registry.mu.Unlock()
	}
	if !last {
		return nil
	}
	sh.cache.Close()
	if cl, ok := sh.src.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// fetchKey identifies what a fetch returns and how it is made. Its any
// fields hold the program's own objects, compared by identity; it is a map
// key only while a connector uses it.
type fetchKey struct {
	source, secretID, region, agentEndpoint, user string
	replicas                                      string // the replica regions, in order
	keys                                          credsource.Keys
	allowRemoteAgent                              bool
	agentToken                                    [sha256.Size]byte // of Config.AgentToken, when set (never the token)
	ttl                                           time.Duration
	aws                                           awsKey
	awsCredentials, awsHTTPClient                 any
	smClient, customSource, logger                any
}

// awsKey is what an aws.Config sets that changes which client answers and
// how, in comparable form.
type awsKey struct {
	region, endpoint, appID, defaultsMode string
	retryMode                             aws.RetryMode
	retryMaxAttempts                      int
	logMode                               aws.ClientLogMode
}

// shareKey returns the key under which connectors share a source and a
// cache; ok is false when the connector keeps its own (IsolateCache, an
// aws.Config with settings that cannot be compared, or one of the program's
// objects cannot be used as a map key).
func (c *Config) shareKey() (k fetchKey, ok bool) {
	if c.isolated() {
		return k, false
	}
	k = fetchKey{
		source: c.Source, secretID: c.SecretID, region: c.Region, user: c.User, keys: c.Keys.WithDefaults(),
		replicas:      strings.Join(c.ReplicaRegions, ","),
		agentEndpoint: c.AgentEndpoint, allowRemoteAgent: c.AllowRemoteAgent, ttl: c.TTL,
		smClient: c.SecretsManagerClient, customSource: c.CredentialSource, logger: c.Logger,
	}
	if c.AgentToken != "" {
		// Connectors that send another token get another answer (or a 403).
		k.agentToken = sha256.Sum256([]byte(c.AgentToken))
	}
	if a := c.AWSConfig; a != nil {
		if len(a.APIOptions) > 0 || len(a.ServiceOptions) > 0 || a.Retryer != nil || !emptySlices(a.Interceptors) ||
			a.EndpointResolver != nil || a.EndpointResolverWithOptions != nil { //nolint:staticcheck // a deprecated resolver still changes the endpoint
			return fetchKey{}, false
		}
		k.aws = awsKey{region: a.Region, appID: a.AppID, defaultsMode: string(a.DefaultsMode),
			retryMode: a.RetryMode, retryMaxAttempts: a.RetryMaxAttempts, logMode: a.ClientLogMode}
		if a.BaseEndpoint != nil {
			k.aws.endpoint = *a.BaseEndpoint
		}
		k.awsCredentials, k.awsHTTPClient = a.Credentials, a.HTTPClient
	}
	for _, v := range [...]any{k.awsCredentials, k.awsHTTPClient, k.smClient, k.customSource, k.logger} {
		if !hashable(v) {
			return fetchKey{}, false
		}
	}
	return k, true
}

// emptySlices reports whether every field of the struct v is an empty
// slice (an interceptor registry with nothing registered).
func emptySlices(v any) bool {
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.Slice && f.Len() > 0 {
			return false
		}
	}
	return true
}

// hashable reports whether v can be a map key: its type is comparable and
// no func, map or slice hides in an interface inside it (reflect's
// Comparable says yes for such a struct, and hashing it panics).
func hashable(v any) (ok bool) {
	if v == nil {
		return true
	}
	if !reflect.TypeOf(v).Comparable() {
		return false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = map[any]struct{}{v: {}}
	return true
}
