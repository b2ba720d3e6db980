package rotatingmysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "rotatingmysql"

// Driver is the rotatingmysql database/sql driver. It implements
// driver.DriverContext, so sql.Open reports a malformed DSN at once; no
// network I/O happens before the first connection.
type Driver struct{}

var theDriver = &Driver{}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

func init() {
	sql.Register(DriverName, theDriver)
}

// Open opens one connection for the DSN. database/sql uses OpenConnector
// instead; Open exists for the driver.Driver interface.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	// The connection does not need its connector: release the connector's
	// share of the source and cache (closed if no other uses them).
	defer c.(*Connector).Close()
	return c.Connect(context.Background())
}

// OpenConnector parses the DSN and returns a connector for it.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnector(cfg)
}
