package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/compat/ent"
	"github.com/rotatingmysql/rotatingmysql/compat/ent/note"
)

// TestEntThroughRotation runs the ent client generated in ./ent on a pool
// of ours (entsql.OpenDB(dialect.MySQL, db)) while the password rotates:
// creates, reads back by a unique field, and transactions.
func TestEntThroughRotation(t *testing.T) {
	b := newBed(t, "ent-Initial-pw1")
	db := sql.OpenDB(b.connector())
	defer db.Close()
	db.SetMaxIdleConns(0) // every statement dials: each meets the rotation
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.MySQL, db)))
	defer client.Close()

	ctx := context.Background()
	if err := client.Schema.Create(ctx); err != nil {
		t.Fatalf("Schema.Create: %v", err)
	}
	b.rotateUnderLoad(4, time.Second, func(ctx context.Context, w, i int) error {
		title := fmt.Sprintf("w%d-%d", w, i)
		if w == 0 {
			// A transaction: its statements share the one connection it
			// dialed.
			tx, err := client.Tx(ctx)
			if err != nil {
				return err
			}
			if _, err := tx.Note.Create().SetTitle(title).Save(ctx); err != nil {
				return fmt.Errorf("create in a transaction: %w (rollback: %v)", err, tx.Rollback())
			}
			return tx.Commit()
		}
		created, err := client.Note.Create().SetTitle(title).Save(ctx)
		if err != nil {
			return err
		}
		got, err := client.Note.Query().Where(note.Title(title)).Only(ctx)
		if err != nil {
			return err
		}
		if got.ID != created.ID || got.CreatedAt.IsZero() {
			return fmt.Errorf("read back %v, created %v", got, created)
		}
		return nil
	})
	if n, err := client.Note.Query().Count(ctx); err != nil || n == 0 {
		t.Fatalf("notes after the rotation: %d, %v", n, err)
	}

	// ent.Open takes the driver name as ent's dialect: it knows mysql,
	// postgres and sqlite3, not rotatingmysql.
	if c, err := ent.Open(rotatingmysql.DriverName, b.arn); err == nil {
		c.Close()
		t.Error("ent.Open accepted the driver name as a dialect: the README's note on ent is out of date")
	}
}
