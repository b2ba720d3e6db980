package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// target is what a drill runs against: a database, a secret, a way to
// rotate it and a way to count the Secrets Manager calls the app makes.
type target struct {
	// describe names the database and the Secrets Manager for the report.
	describe string
	secretID string
	// connector opens the rotatingmysql connector the app workers share.
	connector func() (*rotatingmysql.Connector, error)
	// plain is the go-sql-driver/mysql configuration with the password
	// read once, at start, as applications do today.
	plain *mysql.Config
	// rotation performs one rotation, marking its steps.
	rotation rotation
	// apiCalls returns the calls made to the credential service so far,
	// and what was counted (the emulator's requests, or the connector's
	// fetches when the service cannot be asked).
	apiCalls     func(c *rotatingmysql.Connector) int
	apiCallsFrom string
	// close releases what the target set up (accounts, servers).
	close func() error
	// fleet is what the fleet drill needs; nil with -aws.
	fleet *fleetTarget
	// regions counts each region's GetSecretValue requests and answers
	// (-replica-regions); nil otherwise.
	regions func() []RegionRow
}

// rotation rotates the secret once, calling mark at each step it sees.
type rotation interface {
	rotate(ctx context.Context, mark func(step string)) error
}

// plainConfig is the go-sql-driver/mysql configuration an application
// builds from the secret it read once.
func plainConfig(c credsource.Credentials) (*mysql.Config, error) {
	if c.Host == "" {
		return nil, fmt.Errorf("the secret has no host (an RDS-managed secret?): pass -host")
	}
	port := c.Port
	if port == 0 {
		port = 3306
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = c.Username, c.Password, c.DBName
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(c.Host, strconv.Itoa(port))
	cfg.Timeout = 5 * time.Second
	return cfg, nil
}

// openDB opens a pool on cfg and checks that it logs in.
func openDB(ctx context.Context, cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
