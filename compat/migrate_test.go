package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/mysql"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/rotatingmysql/rotatingmysql"
)

// migrateMigrations are two golang-migrate migrations, each file with two
// statements (which need multiStatements=true).
var migrateMigrations = fstest.MapFS{
	"1_create_ledger.up.sql": {Data: []byte(`CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, entry VARCHAR(64) NOT NULL);
INSERT INTO ledger (entry) VALUES ('opened');`)},
	"1_create_ledger.down.sql": {Data: []byte(`DELETE FROM ledger;
DROP TABLE ledger;`)},
	"2_add_amount.up.sql": {Data: []byte(`ALTER TABLE ledger ADD COLUMN amount INT NOT NULL DEFAULT 0;
UPDATE ledger SET amount = 1;`)},
	"2_add_amount.down.sql": {Data: []byte(`UPDATE ledger SET amount = 0;
ALTER TABLE ledger DROP COLUMN amount;`)},
}

// TestMigrateThroughRotation runs golang-migrate with its mysql database
// driver built on a *sql.DB of ours (mysql.WithInstance, migrations from
// an fs.FS through source/iofs) while the password rotates: each run opens
// a pool, migrates all the way up or all the way down, and closes; the
// Close of the migration closes the caller's pool too.
func TestMigrateThroughRotation(t *testing.T) {
	b := newBed(t, "migrate-Initial-pw1")
	dsn := b.arn + "?multiStatements=true"
	run := func(down bool) error {
		db, err := sql.Open(rotatingmysql.DriverName, dsn)
		if err != nil {
			return err
		}
		// WithInstance takes a connection for the migration's lifetime:
		// each run dials one.
		drv, err := mysql.WithInstance(db, &mysql.Config{})
		if err != nil {
			db.Close()
			return fmt.Errorf("mysql.WithInstance: %w", err)
		}
		src, err := iofs.New(migrateMigrations, ".")
		if err != nil {
			return err
		}
		m, err := migrate.NewWithInstance("iofs", src, "mysql", drv)
		if err != nil {
			return err
		}
		if down {
			err = m.Down()
		} else {
			err = m.Up()
		}
		srcErr, dbErr := m.Close()
		if err := errors.Join(err, srcErr, dbErr); err != nil {
			return err
		}
		if db.Ping() == nil {
			return errors.New("the pool still answers after m.Close(): the README's note that it closes the caller's DB is out of date")
		}
		return nil
	}

	b.rotateUnderLoad(1, time.Second, func(_ context.Context, _, i int) error {
		return run(i%2 == 1)
	})

	// The rotation ended after a run up or a run down.
	if err := run(false); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		t.Fatal(err)
	}
	var n int
	if err := b.srv.Root().QueryRow("SELECT COUNT(*) FROM `" + b.db + "`.ledger WHERE amount = 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows migrated: %d, %v; want 1", n, err)
	}

	// The mysql:// URL goes to go-sql-driver/mysql's DSN parser and the
	// "mysql" driver: it cannot name a secret.
	src, err := iofs.New(migrateMigrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := migrate.NewWithSourceInstance("iofs", src, "mysql://"+b.arn); err == nil {
		m.Close()
		t.Error("migrate accepted a mysql:// URL holding a secret ARN: the README's note on golang-migrate is out of date")
	}
}
