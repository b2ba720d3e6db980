package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// DBTX is the interface sqlc generates for its Queries: what *sql.DB and
// *sql.Tx both have, so the same queries run on a pool or in a
// transaction.
type DBTX interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

var (
	_ DBTX = (*sql.DB)(nil)
	_ DBTX = (*sql.Tx)(nil)
)

// Author is a row of the authors table, as sqlc generates it.
type Author struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// Queries holds the queries of the test in the shape sqlc generates.
type Queries struct{ db DBTX }

// NewQueries returns the queries on db (a pool or a transaction).
func NewQueries(db DBTX) *Queries { return &Queries{db: db} }

// WithTx returns the queries in tx.
func (q *Queries) WithTx(tx *sql.Tx) *Queries { return &Queries{db: tx} }

// CreateAuthor inserts an author and returns its id.
func (q *Queries) CreateAuthor(ctx context.Context, name string) (int64, error) {
	res, err := q.db.ExecContext(ctx, "INSERT INTO authors (name) VALUES (?)", name)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// GetAuthor reads an author by id.
func (q *Queries) GetAuthor(ctx context.Context, id int64) (Author, error) {
	var a Author
	err := q.db.QueryRowContext(ctx, "SELECT id, name, created_at FROM authors WHERE id = ?", id).Scan(&a.ID, &a.Name, &a.CreatedAt)
	return a, err
}

// ListAuthors reads the authors whose id is at most maxID.
func (q *Queries) ListAuthors(ctx context.Context, maxID int64) ([]Author, error) {
	rows, err := q.db.QueryContext(ctx, "SELECT id, name, created_at FROM authors WHERE id <= ? ORDER BY id", maxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var authors []Author
	for rows.Next() {
		var a Author
		if err := rows.Scan(&a.ID, &a.Name, &a.CreatedAt); err != nil {
			return nil, err
		}
		authors = append(authors, a)
	}
	return authors, rows.Err()
}

// CountAuthors counts the authors with a prepared statement (sqlc's
// emit_prepared_queries).
func (q *Queries) CountAuthors(ctx context.Context) (int64, error) {
	stmt, err := q.db.PrepareContext(ctx, "SELECT COUNT(*) FROM authors")
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	var n int64
	err = stmt.QueryRowContext(ctx).Scan(&n)
	return n, err
}

// TestSqlcDBTXThroughRotation runs sqlc-style queries through their DBTX
// interface on a *sql.DB and in *sql.Tx transactions while the password
// rotates.
func TestSqlcDBTXThroughRotation(t *testing.T) {
	b := newBed(t, "sqlc-Initial-pw1")
	db := sql.OpenDB(b.connector())
	defer db.Close()
	db.SetMaxIdleConns(0) // every statement dials: each meets the rotation

	ctx := context.Background()
	createNamedTable(t, db, "authors")
	pool := NewQueries(db)
	if _, err := pool.CreateAuthor(ctx, "first"); err != nil {
		t.Fatal(err)
	}

	b.rotateUnderLoad(4, time.Second, func(ctx context.Context, w, i int) error {
		name := fmt.Sprintf("w%d-%d", w, i)
		q := pool
		var tx *sql.Tx
		if w%2 == 1 {
			var err error
			if tx, err = db.BeginTx(ctx, nil); err != nil {
				return err
			}
			defer tx.Rollback() // after Commit, a no-op
			q = pool.WithTx(tx)
		}
		id, err := q.CreateAuthor(ctx, name)
		if err != nil {
			return err
		}
		a, err := q.GetAuthor(ctx, id)
		if err != nil {
			return err
		}
		list, err := q.ListAuthors(ctx, 1)
		if err != nil {
			return err
		}
		n, err := q.CountAuthors(ctx)
		if err != nil {
			return err
		}
		if a.Name != name || a.CreatedAt.IsZero() || len(list) != 1 || list[0].Name != "first" || n < 2 {
			return fmt.Errorf("read %+v, %+v and %d authors after creating %q", a, list, n, name)
		}
		if tx != nil {
			return tx.Commit()
		}
		return nil
	})
}
