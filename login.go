package rotatingmysql

import "time"

// TEMPORARY until the DSN branch lands (it defines these with the DSN
// parameter loginTimeout).
const DefaultLoginTimeout = 30 * time.Second

func (c *Config) loginTimeout() time.Duration { return DefaultLoginTimeout }
