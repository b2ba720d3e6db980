package rotatingmysql

import (
	"io"
	"reflect"
	"sync"
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/internal/ledger"
)

// One cache per secret per process. Connectors whose fetches would be the
// same share one credential source (one SDK client), one cache and, per
// database address, one ledger of evidence: N pools on one secret cost one
// fetch per stage, and a password refused to one pool is not dialed by the
// others. The parts are reference-counted and closed with the last
// connector that uses them.
//
// The sharing key is everything that changes what a fetch returns or how it
// is made: the source list, the secret id (with source=iam, the user, host,
// port and database), the region, the JSON keys, the agent endpoint and
// whether a remote agent is allowed, the TTL, and the identity of the
// program's own objects (the aws.Config's credentials provider, HTTP client,
// region and endpoint; a Secrets Manager client; a custom Source; the
// logger). The ledger's key adds the DSN's host, port and dbname overrides
// and the refused-password hold. The go-sql-driver/mysql settings (TLS,
// timeouts, session variables) are each connector's own: every connector
// dials with its own.
//
// Config.IsolateCache (DSN isolateCache=true) opts out: the connector gets parts
// of its own.

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
	host, dbname string
	port         int
	hold         time.Duration
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
	ledKey := ledgerKey{host: cfg.Host, dbname: cfg.DBName, port: cfg.Port, hold: cfg.RefusedHold}
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
	return ledger.New[*version](ledger.Options{Hold: cfg.RefusedHold, MaxHold: max(cfg.TTL, cfg.RefusedHold)})
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
	keys                                          credsource.Keys
	allowRemoteAgent                              bool
	ttl                                           time.Duration
	awsRegion, awsEndpoint                        string
	awsCredentials, awsHTTPClient                 any
	smClient, customSource, logger                any
}

// shareKey returns the key under which connectors share a source and a
// cache; ok is false when the connector keeps its own (IsolateCache, or one of
// the program's objects is of a type that cannot be compared).
func (c *Config) shareKey() (k fetchKey, ok bool) {
	if c.isolated() {
		return k, false
	}
	k = fetchKey{
		source: c.Source, secretID: c.SecretID, region: c.Region, user: c.User, keys: c.Keys.WithDefaults(),
		agentEndpoint: c.AgentEndpoint, allowRemoteAgent: c.AllowRemoteAgent, ttl: c.TTL,
		smClient: c.SecretsManagerClient, customSource: c.CredentialSource, logger: c.Logger,
	}
	if a := c.AWSConfig; a != nil {
		k.awsRegion, k.awsCredentials, k.awsHTTPClient = a.Region, a.Credentials, a.HTTPClient
		if a.BaseEndpoint != nil {
			k.awsEndpoint = *a.BaseEndpoint
		}
	}
	for _, v := range [...]any{k.awsCredentials, k.awsHTTPClient, k.smClient, k.customSource, k.logger} {
		if v != nil && !reflect.TypeOf(v).Comparable() {
			return fetchKey{}, false
		}
	}
	return k, true
}
