package rotatingmysql

import (
	"time"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// Stats is a snapshot of what a Connector has done, in the manner of
// sql.DBStats. Export it to your metrics system (expvar, Prometheus,
// OpenTelemetry) from a ticker; the library itself depends on none of them.
type Stats struct {
	// Fetches counts the calls made to the credential source, by stage.
	Fetches map[credsource.Stage]uint64
	// CacheHits and CacheMisses count Connects served from the cache and
	// Connects that needed a fetch (first use, TTL expired).
	CacheHits, CacheMisses uint64
	// Coalesced counts waits that shared a fetch another connection began.
	Coalesced uint64
	// StaleServed counts failed fetches answered with the last good version.
	StaleServed uint64
	// AuthRefused counts logins the server refused with 1045 and the driver
	// absorbed or reported.
	AuthRefused uint64
	// Recovered counts Connects that met 1045 and then logged in.
	Recovered uint64
	// PendingUsed counts switches to an AWSPENDING version that logged in
	// (the rotation window between setSecret and finishSecret).
	PendingUsed uint64
	// GaveUp counts Connects that returned a ConnectError.
	GaveUp uint64
	// CurrentVersionID is the version new connections use now (the one that
	// last logged in); empty before the first login.
	CurrentVersionID string
	// CurrentStage is the stage that version was fetched as.
	CurrentStage credsource.Stage
	// LastRefresh is when the latest fetch began; LastError the latest
	// fetch error, nil once a fetch has succeeded since.
	LastRefresh time.Time
	LastError   error
}

// Stats returns a snapshot of the connector's counters.
func (c *Connector) Stats() Stats {
	cs := c.cache.Stats()
	s := Stats{
		Fetches:     cs.Fetches,
		CacheHits:   cs.Hits,
		CacheMisses: cs.Misses,
		Coalesced:   cs.Coalesced,
		StaleServed: cs.StaleServed,
		AuthRefused: c.authRefused.Load(),
		Recovered:   c.recovered.Load(),
		PendingUsed: c.pendingUsed.Load(),
		GaveUp:      c.gaveUp.Load(),
		LastRefresh: cs.LastFetch,
		LastError:   cs.LastError,
	}
	if v := c.good.Load(); v != nil {
		m := v.info()
		s.CurrentVersionID, s.CurrentStage = m.secret.VersionID, m.stage
	}
	return s
}
