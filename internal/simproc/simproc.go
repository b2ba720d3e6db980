// Package simproc lets the rotation drill's fleet mode run many simulated
// processes in one: each simulated process must keep the evidence a real
// process keeps on its own, its failed-login budget included, instead of
// the one account table a process shares between its connectors.
//
// The root package fills OwnAccounts at init; only code in this
// repository can import it.
package simproc

// OwnAccounts returns a rotatingmysql.Option (as any, to avoid an import
// cycle) that gives a connector an account table of its own, as a separate
// process would have.
var OwnAccounts func() any
