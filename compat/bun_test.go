package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"

	"github.com/rotatingmysql/rotatingmysql"
)

// Widget is the bun model of the tests: a unique name, and a time column
// that needs parseTime.
type Widget struct {
	bun.BaseModel `bun:"table:widgets"`

	ID        int64     `bun:",pk,autoincrement"`
	Name      string    `bun:",unique,notnull"`
	CreatedAt time.Time `bun:",nullzero,notnull,default:current_timestamp"`
}

// TestBunThroughRotation runs bun (bun.NewDB with mysqldialect) on the
// driver by name while the password rotates: inserts, reads back, and
// transactions (RunInTx).
func TestBunThroughRotation(t *testing.T) {
	b := newBed(t, "bun-Initial-pw1")
	sqldb, err := sql.Open(rotatingmysql.DriverName, b.arn+"?parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	db := bun.NewDB(sqldb, mysqldialect.New())
	defer db.Close()
	db.SetMaxIdleConns(0) // every statement dials: each meets the rotation

	ctx := context.Background()
	if _, err := db.NewCreateTable().Model((*Widget)(nil)).Exec(ctx); err != nil {
		t.Fatalf("create table: %v", err)
	}
	b.rotateUnderLoad(4, time.Second, func(ctx context.Context, w, i int) error {
		wid := &Widget{Name: fmt.Sprintf("w%d-%d", w, i)}
		if w == 0 {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewInsert().Model(wid).Exec(ctx)
				return err
			})
		}
		if _, err := db.NewInsert().Model(wid).Exec(ctx); err != nil {
			return err
		}
		var got Widget
		if err := db.NewSelect().Model(&got).Where("name = ?", wid.Name).Scan(ctx); err != nil {
			return err
		}
		if got.ID != wid.ID || got.CreatedAt.IsZero() {
			return fmt.Errorf("read back %+v, inserted %+v", got, wid)
		}
		return nil
	})
	if n, err := db.NewSelect().Model((*Widget)(nil)).Count(ctx); err != nil || n == 0 {
		t.Fatalf("widgets after the rotation: %d, %v", n, err)
	}
}
