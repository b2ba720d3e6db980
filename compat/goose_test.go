package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/rotatingmysql/rotatingmysql"
)

// gooseMigrations are two goose SQL migrations, the second with two
// statements.
var gooseMigrations = fstest.MapFS{
	"00001_create_accounts.sql": {Data: []byte(`-- +goose Up
CREATE TABLE accounts (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL);
-- +goose Down
DROP TABLE accounts;
`)},
	"00002_add_note.sql": {Data: []byte(`-- +goose Up
ALTER TABLE accounts ADD COLUMN note VARCHAR(64) NULL;
INSERT INTO accounts (name, note) VALUES ('seed', 'from 00002');
-- +goose Down
ALTER TABLE accounts DROP COLUMN note;
`)},
}

// TestGooseThroughRotation runs pressly/goose's Provider on the driver by
// name (parseTime=true: goose scans its version table's timestamps into
// time.Time) while the password rotates: one worker migrates all the way
// up and all the way down in turns, another reads the status.
func TestGooseThroughRotation(t *testing.T) {
	b := newBed(t, "goose-Initial-pw1")
	db, err := sql.Open(rotatingmysql.DriverName, b.arn+"?parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // every migration run dials: each meets the rotation

	p, err := goose.NewProvider(goose.DialectMySQL, db, gooseMigrations)
	if err != nil {
		t.Fatal(err)
	}
	b.rotateUnderLoad(2, time.Second, func(ctx context.Context, w, i int) error {
		switch {
		case w == 1:
			status, err := p.Status(ctx)
			if err != nil {
				return err
			}
			for _, s := range status {
				if s.State == goose.StateApplied && s.AppliedAt.IsZero() {
					return fmt.Errorf("migration %d applied at the zero time", s.Source.Version)
				}
			}
			return nil
		case i%2 == 0:
			return wantResults(p.Up(ctx))
		default:
			return wantResults(p.DownTo(ctx, 0))
		}
	})

	if _, err := p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, err := p.GetDBVersion(context.Background()); err != nil || v != 2 {
		t.Fatalf("version after Up: %d, %v; want 2", v, err)
	}

	// goose.OpenDBWithDriver takes the driver name as goose's dialect,
	// and goose knows no dialect named rotatingmysql (the goose command
	// line tool opens it that way, so it cannot use the driver either).
	if _, err := goose.OpenDBWithDriver(rotatingmysql.DriverName, b.arn); err == nil {
		t.Error("goose.OpenDBWithDriver accepted the driver name as a dialect: the README's note on goose is out of date")
	}
}

// wantResults turns a goose run that applied fewer than both migrations
// into an error: each run of the test moves from one end to the other.
func wantResults(results []*goose.MigrationResult, err error) error {
	if err == nil && len(results) != 2 {
		return fmt.Errorf("goose ran %d migrations, want 2", len(results))
	}
	return err
}
