package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Order is the GORM model of the tests: a unique Ref to provoke duplicate
// keys, and a time column that needs parseTime.
type Order struct {
	ID        uint   `gorm:"primaryKey"`
	Ref       string `gorm:"size:64;uniqueIndex"`
	Amount    int
	CreatedAt time.Time
}

func TestGORMThroughRotation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dialector func(t *testing.T, b *bed) gorm.Dialector
	}{
		{
			// The driver by name: GORM calls sql.Open("rotatingmysql", DSN).
			name: "DriverName and DSN",
			dialector: func(t *testing.T, b *bed) gorm.Dialector {
				return mysql.New(mysql.Config{DriverName: "rotatingmysql", DSN: b.arn + "?parseTime=true"})
			},
		},
		{
			// A pool built from a connector, for options set from code.
			name: "Conn from sql.OpenDB",
			dialector: func(t *testing.T, b *bed) gorm.Dialector {
				sqlDB := sql.OpenDB(b.connector())
				t.Cleanup(func() { sqlDB.Close() })
				return mysql.New(mysql.Config{Conn: sqlDB})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, "gorm-Initial-pw1")
			gdb, err := gorm.Open(tc.dialector(t, b), &gorm.Config{TranslateError: true, Logger: logger.Discard})
			if err != nil {
				t.Fatalf("gorm.Open: %v", err)
			}
			sqlDB, err := gdb.DB()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sqlDB.Close() })
			sqlDB.SetMaxIdleConns(0) // every statement dials: each meets the rotation

			if err := gdb.AutoMigrate(&Order{}); err != nil {
				t.Fatalf("AutoMigrate: %v", err)
			}
			if err := gdb.Create(&Order{Ref: "before", Amount: 1}).Error; err != nil {
				t.Fatalf("Create before the rotation: %v", err)
			}

			b.rotateUnderLoad(4, time.Second, func(ctx context.Context, w, i int) error {
				o := Order{Ref: fmt.Sprintf("w%d-%d", w, i), Amount: i}
				if err := gdb.WithContext(ctx).Create(&o).Error; err != nil {
					return err
				}
				var got Order
				if err := gdb.WithContext(ctx).First(&got, o.ID).Error; err != nil {
					return err
				}
				if got.Ref != o.Ref || got.CreatedAt.IsZero() {
					return fmt.Errorf("read back %+v, wrote %+v", got, o)
				}
				return nil
			})

			if err := gdb.Create(&Order{Ref: "after", Amount: 2}).Error; err != nil {
				t.Fatalf("Create after the rotation: %v", err)
			}
			// Query errors are go-sql-driver/mysql's own, so GORM still
			// translates them.
			err = gdb.Create(&Order{Ref: "after", Amount: 3}).Error
			if !errors.Is(err, gorm.ErrDuplicatedKey) {
				t.Fatalf("duplicate Ref: %v, want gorm.ErrDuplicatedKey", err)
			}
			var n int64
			if err := gdb.Model(&Order{}).Where("ref IN ?", []string{"before", "after"}).Count(&n).Error; err != nil || n != 2 {
				t.Fatalf("count: %d, %v", n, err)
			}
		})
	}

	// mysql.Open(dsn) opens go-sql-driver/mysql's "mysql" driver, whose
	// DSN parser cannot read a secret ARN.
	if _, err := gorm.Open(mysql.Open("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-AbCdEf"), &gorm.Config{Logger: logger.Discard}); err == nil {
		t.Error("gorm.Open(mysql.Open(ARN)) succeeded: the README's note on GORM is out of date")
	}
}
