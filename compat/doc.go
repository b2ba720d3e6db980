// Package compat holds the compatibility tests of rotatingmysql with the
// libraries its users arrive with: GORM (gorm.io/gorm with
// gorm.io/driver/mysql), sqlx, sqlc-style DBTX queries, bun, ent (its
// client generated in ./ent), pressly/goose, golang-migrate, and the two
// OpenTelemetry wrappers of database/sql (XSAM/otelsql and uptrace's
// otelsql). Each test runs against a real MariaDB through a full password
// rotation, with the test kit's Secrets Manager emulator holding the
// secret and the pool opening new connections throughout, and requires
// that the application sees no error while the driver absorbs at least one
// refused login. The versions of the tools are pinned in go.mod.
//
// It is a module of its own so that rotatingmysql's go.mod lists only what
// the library needs. The package has no API: it exists for its tests and
// its Examples, which show how to wire each library to rotatingmysql.
package compat
