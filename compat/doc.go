// Package compat holds the compatibility tests of rotatingmysql with the
// libraries its users arrive with: GORM (gorm.io/gorm with
// gorm.io/driver/mysql) and sqlx. Each test runs against a real MariaDB
// through a full password rotation, with the test kit's Secrets Manager
// emulator holding the secret, and requires that the application sees no
// error.
//
// It is a module of its own so that rotatingmysql's go.mod lists only what
// the library needs. The package has no API: it exists for its tests and
// its Examples, which show how to wire each library to rotatingmysql.
package compat
