package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mysqlRootTarget sets up the drill on the real server that o.mysqlRoot
// names: a new user and database, dropped at the end.
func mysqlRootTarget(ctx context.Context, o *options) (*target, error) {
	cfg, err := mysql.ParseDSN(o.mysqlRoot)
	if err != nil {
		return nil, fmt.Errorf("-mysql-root: %w", err)
	}
	if cfg.Net != "tcp" {
		return nil, fmt.Errorf("-mysql-root: the secret needs a TCP address: use user@tcp(host:port)/, not %s", cfg.Net)
	}
	admin, err := openDB(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("-mysql-root: log in as %s on %s: %w", cfg.User, cfg.Addr, err)
	}
	var version string
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		admin.Close()
		return nil, fmt.Errorf("-mysql-root: %w", err)
	}
	name := "drill_" + strings.ToLower(newPassword()[:8])
	acct := account{user: name, password: newPassword(), db: name}
	if !strings.Contains(version, "MariaDB") {
		version = "MySQL " + version
	}
	return emulatedTarget(ctx, o, admin, cfg.Addr, version+" on "+cfg.Addr, acct, true, func() error { return nil })
}
