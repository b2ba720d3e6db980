package compat_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// Item is the sqlx row of the tests.
type Item struct {
	ID        int64     `db:"id"`
	Name      string    `db:"name"`
	CreatedAt time.Time `db:"created_at"`
}

func TestSqlxThroughRotation(t *testing.T) {
	b := newBed(t, "sqlx-Initial-pw1")
	db, err := sqlx.Open("rotatingmysql", b.arn+"?parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0) // every statement dials: each meets the rotation

	ctx := context.Background()
	createNamedTable(t, db, "items")
	for _, name := range []string{"a", "b", "c"} {
		if _, err := db.NamedExecContext(ctx, "INSERT INTO items (name) VALUES (:name)", Item{Name: name}); err != nil {
			t.Fatal(err)
		}
	}

	b.rotateUnderLoad(4, time.Second, func(ctx context.Context, w, i int) error {
		var first Item
		if err := db.GetContext(ctx, &first, "SELECT id, name, created_at FROM items WHERE name = ?", "a"); err != nil {
			return err
		}
		var items []Item
		if err := db.SelectContext(ctx, &items, "SELECT id, name, created_at FROM items WHERE id <= 3 ORDER BY id"); err != nil {
			return err
		}
		if first.CreatedAt.IsZero() || len(items) != 3 || items[2].Name != "c" {
			return fmt.Errorf("read %+v and %+v", first, items)
		}
		_, err := db.NamedExecContext(ctx, "INSERT INTO items (name) VALUES (:name)", Item{Name: fmt.Sprintf("w%d-%d", w, i)})
		return err
	})

	var items []Item
	if err := db.Select(&items, "SELECT id, name, created_at FROM items WHERE name IN (?, ?, ?) ORDER BY id", "a", "b", "c"); err != nil || len(items) != 3 {
		t.Fatalf("Select after the rotation: %v, %v", items, err)
	}
}
