package rotatingmysql

import "github.com/rotatingmysql/rotatingmysql/credsource"

// CacheStatsOf returns the counters of the cache c shares (for the
// external tests: Stats does not carry Waited and Revalidated).
func CacheStatsOf(c *Connector) credsource.CacheStats { return c.sh.cache.Stats() }
