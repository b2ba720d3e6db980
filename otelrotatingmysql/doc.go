// Package otelrotatingmysql reports what a rotatingmysql connector does to
// OpenTelemetry: span events on the span of the Connect (the otelsql
// connect span, or any span on the context given to Conn, Ping or the
// first query), and metrics.
//
// Use it as the connector's tracer:
//
//	t, err := otelrotatingmysql.New() // the global MeterProvider
//	cfg.Apply(rotatingmysql.WithTracer(t))
//
// Span events: rotatingmysql.login (every login but an accepted one with
// AWSCURRENT: the 1045s absorbed, the retry with AWSPENDING, lock errors),
// rotatingmysql.fetch (a refresh of the secret after a refusal),
// rotatingmysql.switch (the version new connections use changed),
// rotatingmysql.give_up (the Connect returned a ConnectError).
//
// Metrics (attributes: rotatingmysql.secret.id and, where it applies,
// rotatingmysql.secret.stage, rotatingmysql.fetch.result,
// rotatingmysql.login.outcome, rotatingmysql.give_up.reason; never a user
// name or a password):
//
//   - rotatingmysql.fetches {fetch}: fetches the connector asked for (the
//     first, and the refresh of both stages after a refusal), by stage and
//     result (ok, not_found, error); one the cache shares with other
//     callers counts for each. TTL refreshes in the background are not
//     counted (Stats.Fetches counts every call to the source).
//   - rotatingmysql.logins {login}: logins, by stage and outcome
//     (accepted, refused, failed, locked, abandoned).
//   - rotatingmysql.switches {switch}: changes of the version new
//     connections use, by the stage switched to (the first login is not
//     one).
//   - rotatingmysql.give_ups {connect}: Connects that returned a
//     ConnectError, by reason.
//   - rotatingmysql.holds.active {version}: versions held back now after a
//     refusal or a lock error (no login with them until a probe).
//   - rotatingmysql.fetch.age (s): seconds since the last successful fetch
//     of the secret that the connector saw.
//   - rotatingmysql.login.age (s): seconds since the last accepted login.
package otelrotatingmysql
