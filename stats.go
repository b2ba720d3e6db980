package rotatingmysql

import (
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// Stats is a snapshot of what a Connector has done, in the manner of
// sql.DBStats. Counters only grow; export them to your metrics system
// (expvar, Prometheus, OpenTelemetry) from a ticker or a scrape callback.
// The library itself depends on none of them.
type Stats struct {
	// Fetches counts the calls made to the credential source, by stage,
	// whatever their outcome.
	Fetches map[credsource.Stage]uint64
	// FetchesBySource counts the versions fetched, by the source that
	// returned them ("secretsmanager", "agent", ...; with a chain of
	// sources, the member that answered).
	FetchesBySource map[string]uint64
	// FetchErrors counts fetches that failed (an answer that the version
	// does not exist, such as AWSPENDING outside a rotation, is not a
	// failure).
	FetchErrors uint64
	// CacheHits and CacheMisses count lookups of AWSCURRENT served from
	// the cache (after the TTL too, while a background refresh runs) and
	// lookups with nothing cached yet (first use), which wait for a fetch.
	// Each Connect makes one, a HealthCheck two.
	CacheHits, CacheMisses uint64
	// Coalesced counts waits that shared a fetch with other callers rather
	// than starting their own: every waiter of a shared fetch counts,
	// including the one that began it.
	Coalesced uint64
	// StaleServed counts failed fetches answered with the last good version.
	StaleServed uint64
	// AuthRefused counts logins the server refused with 1045, whether the
	// Connect then recovered or gave up.
	AuthRefused uint64
	// Recovered counts Connects that met 1045 and then logged in.
	Recovered uint64
	// PendingUsed counts switches to an AWSPENDING version that logged in
	// (the rotation window between setSecret and finishSecret).
	PendingUsed uint64
	// GaveUp counts Connects that returned a ConnectError.
	GaveUp uint64
	// CurrentVersionID is the version that last logged in: the one new
	// connections use while it keeps working; empty before the first login.
	CurrentVersionID string
	// CurrentStage is the label the source gives that version now
	// (AWSCURRENT, AWSPENDING), as of the last fetch; empty when it has
	// none any more.
	CurrentStage credsource.Stage
	// LastRefresh is when the latest fetch began; LastError the latest
	// fetch error, nil once a fetch has succeeded since. Its text is
	// redacted (credsource.Redact); errors.As still finds the cause.
	LastRefresh time.Time
	LastError   error
}

// Stats returns a snapshot of the connector's counters.
func (c *Connector) Stats() Stats {
	cs := c.sh.cache.Stats()
	s := Stats{
		Fetches:         cs.Fetches,
		FetchesBySource: cs.BySource,
		FetchErrors:     cs.FetchErrors,
		CacheHits:       cs.Hits,
		CacheMisses:     cs.Misses,
		Coalesced:       cs.Coalesced,
		StaleServed:     cs.StaleServed,
		AuthRefused:     c.authRefused.Load(),
		Recovered:       c.recovered.Load(),
		PendingUsed:     c.pendingUsed.Load(),
		GaveUp:          c.gaveUp.Load(),
		LastRefresh:     cs.LastFetch,
		LastError:       credsource.Redact(cs.LastError),
	}
	if v, label, ok := c.ledger.LastAccepted(); ok {
		s.CurrentVersionID, s.CurrentStage = v.secret.Load().VersionID, credsource.Stage(label)
	}
	return s
}
