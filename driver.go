package rotatingmysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "rotatingmysql"

// Driver is the rotatingmysql database/sql driver. It implements
// driver.DriverContext, so sql.Open reports a malformed DSN at once; no
// network I/O happens before the first connection. The one exception is
// the empty DSN: sql.Open(DriverName, "") succeeds, and every connection
// of that DB fails with ErrEmptyDSN.
type Driver struct{}

var theDriver = &Driver{}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

func init() {
	sql.Register(DriverName, theDriver)
}

// ErrEmptyDSN is the error every connection of sql.Open(DriverName, "")
// fails with. sql.Open itself accepts the empty DSN, because tools that wrap
// drivers (XSAM/otelsql's Register) open a driver with it only to find its
// type, and close it. It wraps ErrInvalidDSN.
var ErrEmptyDSN = fmt.Errorf("%w: the DSN is empty (want SECRET_ID[?PARAMS], e.g. arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)", ErrInvalidDSN)

// Open opens one connection for the DSN. database/sql uses OpenConnector
// instead; Open exists for the driver.Driver interface.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	// The connection does not need its connector: release the connector's
	// share of the source and cache (closed if no other uses them).
	defer c.(io.Closer).Close()
	return c.Connect(context.Background())
}

// OpenConnector parses the DSN and returns a connector for it. For the
// empty DSN it returns a connector whose Connect fails with ErrEmptyDSN; it
// holds nothing, so closing it is free.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	if dsn == "" {
		return emptyConnector{}, nil
	}
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnector(cfg)
}

// emptyConnector is the connector of the empty DSN: it starts nothing and
// holds nothing; every Connect fails with ErrEmptyDSN.
type emptyConnector struct{}

var (
	_ driver.Connector = emptyConnector{}
	_ io.Closer        = emptyConnector{}
)

func (emptyConnector) Connect(context.Context) (driver.Conn, error) { return nil, ErrEmptyDSN }
func (emptyConnector) Driver() driver.Driver                        { return theDriver }
func (emptyConnector) Close() error                                 { return nil }
