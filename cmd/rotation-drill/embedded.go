package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gmssql "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"
	"github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
)

// embeddedVersion is the go-mysql-server release the drill embeds.
const embeddedVersion = "v0.20.0"

// embeddedServer is an in-process MySQL-compatible server
// (go-mysql-server) with user accounts enabled, listening on 127.0.0.1.
type embeddedServer struct {
	srv  *server.Server
	addr string
	done chan struct{}
}

// startEmbedded starts the embedded server with a root@localhost account
// without a password.
func startEmbedded() (*embeddedServer, error) {
	// go-mysql-server logs every connection through logrus.
	logrus.SetOutput(io.Discard)
	pro := memory.NewDBProvider()
	engine := sqle.NewDefault(pro)
	users := engine.Analyzer.Catalog.MySQLDb
	// Without a persister, GRANT and ALTER USER crash the handler; the
	// drill's accounts live only as long as the process.
	users.SetPersister(&mysql_db.NoopPersister{})
	users.AddRootAccount()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := server.Config{Protocol: "tcp", Address: ln.Addr().String(), Listener: ln, ConnReadTimeout: time.Minute}
	srv, err := server.NewServer(cfg, engine, gmssql.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	e := &embeddedServer{srv: srv, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		srv.Start()
	}()
	return e, nil
}

// rootConfig returns the mysql.Config of the embedded server's root account.
func (e *embeddedServer) rootConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", e.addr
	cfg.Timeout = 5 * time.Second
	return cfg
}

// embeddedTarget starts the embedded server and sets up the drill on it.
func embeddedTarget(ctx context.Context, o *options) (*target, error) {
	e, err := startEmbedded()
	if err != nil {
		return nil, err
	}
	admin, err := openDB(ctx, e.rootConfig())
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded server: log in as root: %w", err)
	}
	acct := account{user: "app", password: newPassword(), db: "appdb"}
	return emulatedTarget(ctx, o, admin, e.addr, "embedded go-mysql-server "+embeddedVersion, acct, false, e.Close)
}

// Close stops the server.
func (e *embeddedServer) Close() error {
	err := e.srv.Close()
	<-e.done
	return err
}
