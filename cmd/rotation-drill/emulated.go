package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// cleanupTimeout bounds dropping the drill's account, which runs even
// after an interrupt.
const cleanupTimeout = 10 * time.Second

// account is the application's user and database on the drill's server.
type account struct {
	user, password, db string
}

// emulatedTarget sets up an application account through admin, a secret
// for it in the Secrets Manager emulator, and a rotator that runs the
// managed rotation's steps itself. closeServer is called last by close.
func emulatedTarget(ctx context.Context, o *options, admin *sql.DB, addr, describe string, acct account, dropAccount bool, closeServer func() error) (_ *target, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	var cleanups []func() error
	cleanup := func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	cleanups = append(cleanups, closeServer, admin.Close)

	if dropAccount {
		// Registered first, so that a half-made account goes too; the name
		// is new (random), so nothing of anyone else's is dropped.
		cleanups = append(cleanups, func() error {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			return dropAccountOn(dctx, admin, acct)
		})
	}
	if err := createAccount(ctx, admin, acct); err != nil {
		return nil, fmt.Errorf("create the application account %s: %w", acct.user, err)
	}

	var sm *rotatingmysqltest.SecretsManager
	var regions *rotatingmysqltest.Regions
	if len(o.replicaRegions) > 0 {
		if regions, err = rotatingmysqltest.NewRegions(o.replicaRegions...); err != nil {
			return nil, fmt.Errorf("start the Secrets Manager emulators: %w", err)
		}
		cleanups = append(cleanups, regions.Close)
		sm = regions.Primary()
	} else {
		if sm, err = rotatingmysqltest.NewSecretsManager(); err != nil {
			return nil, fmt.Errorf("start the Secrets Manager emulator: %w", err)
		}
		cleanups = append(cleanups, sm.Close)
	}
	arn, _, err := sm.Store().CreateSecret("rotation-drill/"+acct.user, rotatingmysqltest.SecretJSON(host, port, acct.user, acct.password, acct.db))
	if err != nil {
		return nil, err
	}
	awsCfg := sm.AWSConfig()

	// rotatingmysql's connector, opened the way an application opens it.
	dsn, opts := arn, []rotatingmysql.Option{rotatingmysql.WithAWSConfig(awsCfg), rotatingmysql.WithLogger(o.logger), rotatingmysql.WithTracer(o.tracer)}
	calls := func() int { return sm.TotalCalls() }
	callsFrom := "requests the Secrets Manager emulator received"
	var regionRows func() []RegionRow
	if regions != nil {
		awsCfg = regions.AWSConfig()
		dsn = arn + "?replicaRegions=" + strings.Join(o.replicaRegions, ",")
		opts[0] = rotatingmysql.WithAWSConfig(awsCfg)
		names := append([]string{rotatingmysqltest.Region}, o.replicaRegions...)
		calls = func() int {
			n := 0
			for _, name := range names {
				n += regions.Region(name).TotalCalls()
			}
			return n
		}
		callsFrom = "requests the Secrets Manager emulators of every region received"
		regionRows = func() []RegionRow {
			rows := make([]RegionRow, 0, len(names))
			for i, name := range names {
				r := regions.Region(name)
				rows = append(rows, RegionRow{Region: name, Primary: i == 0, Down: i == 0 && o.regionOutage,
					Requests: r.Calls("GetSecretValue"), Answered: r.Answered("GetSecretValue")})
			}
			return rows
		}
	}
	if o.source == "agent" {
		agent, closeAgent, err := agentSetup(sm)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, closeAgent)
		dsn, opts = arn+"?source=agent", []rotatingmysql.Option{rotatingmysql.WithLogger(o.logger), rotatingmysql.WithTracer(o.tracer)}
		calls = func() int { return sm.TotalCalls() + agent.StoreReads() }
		callsFrom = "GetSecretValue calls the emulated agent made for rotatingmysql (its reads of the secret store)"
	}
	// The plain driver's application reads the secret once, at start.
	read := &credsource.SecretsManager{SecretID: arn, AWSConfig: &awsCfg}
	first, err := read.Fetch(ctx, credsource.Request{Stage: credsource.Current})
	read.Close()
	if err != nil {
		return nil, fmt.Errorf("read the secret: %w", err)
	}
	plain, err := plainConfig(first.Creds)
	if err != nil {
		return nil, err
	}
	startCalls := calls()
	if o.regionOutage {
		// From here to the end: the application's fetches meet the
		// outage, the rotation (which writes in the primary) does not.
		sm.Fail("GetSecretValue", rotatingmysqltest.Fault{Status: 503, Type: "ServiceUnavailable", Message: "region outage (rotation-drill -region-outage)"})
	}

	strategy := rotatingmysqltest.SingleUser
	if o.strategy == "multi" {
		strategy = rotatingmysqltest.MultiUser
	}
	rot := rotatingmysqltest.NewRotator(sm.Store(), arn, admin, strategy)
	return &target{
		describe: describe + ", emulated Secrets Manager",
		secretID: arn,
		connector: func() (*rotatingmysql.Connector, error) {
			cfg, err := rotatingmysql.ParseDSN(dsn)
			if err != nil {
				return nil, err
			}
			if err := cfg.Apply(opts...); err != nil {
				return nil, err
			}
			return rotatingmysql.NewConnector(cfg)
		},
		plain:        plain,
		rotation:     &emulatedRotation{r: rot, window: o.window},
		apiCalls:     func(*rotatingmysql.Connector) int { return calls() - startCalls },
		apiCallsFrom: callsFrom,
		close:        cleanup,
		fleet:        &fleetTarget{sm: sm, arn: arn},
		regions:      regionRows,
	}, nil
}

// agentSetup starts the fake Secrets Manager Agent on the emulator's store
// and sets the variables with which clients find it and its token, as the
// Lambda extension's environment has them: the DSN is then
// "ARN?source=agent". The variables are restored by the returned cleanup.
func agentSetup(sm *rotatingmysqltest.SecretsManager) (*rotatingmysqltest.Agent, func() error, error) {
	agent, err := rotatingmysqltest.NewAgent(sm.Store(), rand.Text())
	if err != nil {
		return nil, nil, fmt.Errorf("start the fake agent: %w", err)
	}
	restore := setenv(agent.Env())
	return agent, func() error { restore(); return agent.Close() }, nil
}

// setenv sets the variables (an empty value unsets one) and returns a
// function that puts back what was there.
func setenv(vars map[string]string) func() {
	type old struct {
		value string
		set   bool
	}
	saved := map[string]old{}
	for k, v := range vars {
		value, set := os.LookupEnv(k)
		saved[k] = old{value, set}
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	return func() {
		for k, o := range saved {
			if o.set {
				os.Setenv(k, o.value)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

// emulatedRotation runs the steps of AWS's managed rotation with the
// project's Rotator, pausing between testSecret and finishSecret.
type emulatedRotation struct {
	r      *rotatingmysqltest.Rotator
	window time.Duration
}

func (e *emulatedRotation) rotate(ctx context.Context, mark func(string)) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{stepCreateSecret, e.r.CreateSecret},
		{stepSetSecret, e.r.SetSecret},
		{stepTestSecret, e.r.TestSecret},
		{stepWindow, func(ctx context.Context) error { return sleep(ctx, e.window) }},
		{stepFinishSecret, e.r.FinishSecret},
	}
	for _, s := range steps {
		mark(s.name)
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// createAccount creates the application's database and user, with every
// privilege on the database. The password is generated by newPassword and
// holds only letters and digits, so it needs no escaping.
func createAccount(ctx context.Context, admin *sql.DB, a account) error {
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteIdent(a.db),
		"CREATE USER " + quoteAccount(a.user) + " IDENTIFIED BY '" + a.password + "'",
		"GRANT ALL ON " + quoteIdent(a.db) + ".* TO " + quoteAccount(a.user),
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// dropAccountOn removes what createAccount and a multi-user rotation made.
func dropAccountOn(ctx context.Context, admin *sql.DB, a account) error {
	var errs []error
	for _, q := range []string{
		"DROP USER IF EXISTS " + quoteAccount(a.user),
		"DROP USER IF EXISTS " + quoteAccount(a.user+"_clone"),
		"DROP DATABASE IF EXISTS " + quoteIdent(a.db),
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q, err))
		}
	}
	return errors.Join(errs...)
}

// quoteIdent quotes a generated name (letters, digits, underscores).
func quoteIdent(s string) string { return "`" + s + "`" }

// quoteAccount names user@'%'.
func quoteAccount(user string) string { return "'" + user + "'@'%'" }

// newPassword returns a random password of letters and digits
// (crypto/rand.Text: 26 base32 characters, 130 bits).
func newPassword() string { return rand.Text() }
