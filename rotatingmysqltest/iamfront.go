package rotatingmysqltest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// IAMFront is a MySQL-protocol endpoint on 127.0.0.1 that logs clients in
// with RDS IAM database authentication tokens, checking each token as RDS
// does, and then serves them from a real MySQL or MariaDB server.
//
// A client connects with TLS (the front's certificate is generated in
// process; ClientTLSConfig trusts it) and is asked, as RDS asks, to switch
// to the mysql_clear_password plugin and send its token. The front checks
// that the token is a SigV4 presigned "connect" request for the service
// rds-db that names the login's user (DBUser), the endpoint the client
// dialed (host:port), the front's region, and a known access key; that it is
// neither expired (X-Amz-Date plus X-Amz-Expires, or the shorter
// TokenLifetime, against the front's clock) nor signed more than five minutes
// in the future; that the credentials that signed it have not expired
// (AddCredentials with CanExpire); and it recomputes the signature with the access key's
// secret. A token that fails is refused with ERR 1045 (SQLSTATE 28000)
// whose message says why (never the token).
//
// A token that passes logs the front into the backend server as the
// database user mapped to the IAM user (AddUser), with the client's own
// capability flags, and from then on the front relays the command phase byte
// for byte, so that queries, errors and results are the real server's.
//
// The front counts accepted and refused logins (Stats). Close stops it and
// every connection it relays.
type IAMFront struct {
	backend  string
	region   string
	ln       net.Listener
	endpoint string // host:port tokens must name: the listener's address
	srvTLS   *tls.Config
	pool     *x509.CertPool
	certPEM  []byte

	mu       sync.Mutex
	keys     map[string]aws.Credentials // by access key id
	users    map[string]iamBackendUser  // by IAM (DBUser) name
	now      func() time.Time
	lifetime time.Duration
	stats    IAMFrontStats
	tokens   map[string]struct{} // signatures of the tokens accepted
	received []string            // every token received, for Tokens (bounded)
	conns    map[net.Conn]struct{}
	closed   bool

	wg sync.WaitGroup
}

type iamBackendUser struct{ user, password string }

// IAMFrontStats counts what an IAMFront has done since it started.
type IAMFrontStats struct {
	// Accepted and Refused count logins whose token was accepted (then
	// logged into the backend; see BackendErrors) and refused with 1045.
	Accepted, Refused int
	// DistinctTokens counts the different tokens among those accepted.
	DistinctTokens int
	// ByAccessKey counts accepted logins by the access key id that signed
	// the token.
	ByAccessKey map[string]int
	// LastRefusal is why the last refused login was refused ("" if none).
	LastRefusal string
	// BackendErrors counts logins the token allowed but the backend
	// server refused (a wrong mapping in AddUser).
	BackendErrors int
}

// The front's handshake limits.
const (
	// iamHandshakeTimeout bounds a login, TLS and backend login included.
	iamHandshakeTimeout = 10 * time.Second
	// maxClockAhead is how far in the future a token's signing time may be:
	// a client clock that runs a little fast still logs in.
	maxClockAhead = 5 * time.Minute
	// maxTokenExpires is the longest X-Amz-Expires RDS takes (900 s).
	maxTokenExpires = 900
	// emptyPayloadHash is the SHA-256 of an empty body, which presigned
	// tokens sign.
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// NewIAMFront starts a front on 127.0.0.1 (a free port) that serves the
// MySQL or MariaDB server at backend (host:port) and accepts tokens signed
// for region. Give it access keys (AddCredentials) and users (AddUser).
func NewIAMFront(backend, region string) (*IAMFront, error) {
	if _, _, err := net.SplitHostPort(backend); err != nil {
		return nil, fmt.Errorf("rotatingmysqltest: IAMFront backend %q: %w", backend, err)
	}
	if region == "" {
		return nil, errors.New("rotatingmysqltest: IAMFront needs a region")
	}
	cert, certPEM, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("rotatingmysqltest: IAMFront certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &IAMFront{
		backend:  backend,
		region:   region,
		ln:       ln,
		endpoint: ln.Addr().String(),
		srvTLS:   &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		pool:     pool,
		certPEM:  certPEM,
		keys:     make(map[string]aws.Credentials),
		users:    make(map[string]iamBackendUser),
		now:      time.Now,
		lifetime: maxTokenExpires * time.Second,
		tokens:   make(map[string]struct{}),
		conns:    make(map[net.Conn]struct{}),
	}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr returns the front's address, 127.0.0.1:PORT.
func (f *IAMFront) Addr() string { return f.endpoint }

// Host returns the front's host, 127.0.0.1.
func (f *IAMFront) Host() string { h, _, _ := net.SplitHostPort(f.endpoint); return h }

// Port returns the front's port.
func (f *IAMFront) Port() int {
	_, p, _ := net.SplitHostPort(f.endpoint)
	n, _ := strconv.Atoi(p)
	return n
}

// Region returns the region tokens must be signed for.
func (f *IAMFront) Region() string { return f.region }

// ClientTLSConfig returns a TLS configuration that trusts the front's
// certificate (valid for 127.0.0.1, ::1 and localhost), as a program trusts
// the RDS CA bundle. Pass it to rotatingmysql.WithTLSConfig or
// mysql.RegisterTLSConfig.
func (f *IAMFront) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12}
}

// CertificatePEM returns the front's certificate, PEM-encoded (the file a
// program would load like the RDS CA bundle).
func (f *IAMFront) CertificatePEM() []byte { return append([]byte(nil), f.certPEM...) }

// AddCredentials lets tokens signed with c log in: c.AccessKeyID and
// c.SecretAccessKey, and c.SessionToken when it is not empty (the token
// must then carry the same X-Amz-Security-Token). When c.CanExpire, tokens
// it signed are refused from c.Expires on (by the front's clock), as RDS
// refuses a token whose signing session credentials have expired, however
// young the token.
func (f *IAMFront) AddCredentials(c aws.Credentials) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[c.AccessKeyID] = c
}

// RemoveCredentials makes tokens signed with the access key id refused from
// now on, as when a role's session credentials are revoked.
func (f *IAMFront) RemoveCredentials(accessKeyID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, accessKeyID)
}

// AddUser maps the IAM database user iamUser (the DBUser of tokens) to an
// account of the backend server, which the front logs in as.
func (f *IAMFront) AddUser(iamUser, backendUser, backendPassword string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[iamUser] = iamBackendUser{backendUser, backendPassword}
}

// SetClock sets the clock the front checks tokens against (time.Now by
// default); a clock ahead of the clients' makes their tokens expire early.
func (f *IAMFront) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// SetTokenLifetime makes tokens expire d after they were signed, when that
// is shorter than their X-Amz-Expires (900 s): a test can then outlive
// several token lifetimes in seconds.
func (f *IAMFront) SetTokenLifetime(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lifetime = d
}

// maxReceived bounds the tokens Tokens keeps.
const maxReceived = 10000

// Tokens returns the tokens clients sent (the first 10,000), accepted or
// not, so that a test can check that none of them shows in a log or an
// error.
func (f *IAMFront) Tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

// Stats returns a snapshot of the front's counters.
func (f *IAMFront) Stats() IAMFrontStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.DistinctTokens = len(f.tokens)
	s.ByAccessKey = make(map[string]int, len(f.stats.ByAccessKey))
	for k, v := range f.stats.ByAccessKey {
		s.ByAccessKey[k] = v
	}
	return s
}

// Close stops the front and closes every connection it serves.
func (f *IAMFront) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	err := f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

func (f *IAMFront) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.serve(c)
		}()
	}
}

// track registers a connection for Close; false when the front is closed
// (the connection is then closed).
func (f *IAMFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *IAMFront) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// Capability flags of the client/server protocol that the front looks at.
const (
	capLongPassword   = 1 << 0 // CLIENT_MYSQL on MariaDB
	capConnectWithDB  = 1 << 3
	capCompress       = 1 << 5
	capProtocol41     = 1 << 9
	capSSL            = 1 << 11
	capSecureConn     = 1 << 15
	capPluginAuth     = 1 << 19
	capConnectAttrs   = 1 << 20
	capPluginAuthLenc = 1 << 21
)

// serve runs one client: handshake with the backend, handshake with the
// client, token check, backend login, relay.
func (f *IAMFront) serve(client net.Conn) {
	deadline := time.Now().Add(iamHandshakeTimeout)
	client.SetDeadline(deadline)
	backend, err := net.DialTimeout("tcp", f.backend, iamHandshakeTimeout)
	if err != nil {
		writeERR(client, 0, 2003, "HY000", "IAMFront: cannot reach the backend server")
		return
	}
	if !f.track(backend) {
		return
	}
	defer f.untrack(backend)
	backend.SetDeadline(deadline)

	// The backend's greeting gives the capabilities, version and
	// connection id that the client will see: the command phase is then
	// relayed between two ends that agree on them.
	greet, _, err := readPacket(backend)
	if err != nil {
		return
	}
	if greet[0] == 0xff {
		writePacket(client, 0, greet) // too many connections, host blocked...
		return
	}
	bh, err := parseGreeting(greet)
	if err != nil {
		writeERR(client, 0, 2027, "HY000", "IAMFront: "+err.Error())
		return
	}
	scramble := make([]byte, 20)
	rand.Read(scramble)
	for i := range scramble {
		scramble[i] = scramble[i]%94 + 33 // printable, no NUL
	}
	// Compression and connection attributes are not relayed; TLS is the
	// front's own.
	caps := bh.caps&^(capCompress|capConnectAttrs) | capSSL | capSecureConn | capPluginAuth
	if err := writePacket(client, 0, greeting(bh, caps, scramble)); err != nil {
		return
	}

	resp, seq, err := readPacket(client)
	if err != nil {
		return
	}
	if len(resp) < 32 {
		writeERR(client, seq+1, 1043, "08S01", "Bad handshake")
		return
	}
	clientCaps := binary.LittleEndian.Uint32(resp)
	if clientCaps&capSSL == 0 || len(resp) != 32 {
		f.refuse(client, seq+1, "", "the client did not ask for TLS: IAM authentication requires TLS")
		return
	}
	// An SSLRequest (the 32-byte header alone): switch to TLS, then the
	// full response follows.
	tc := tls.Server(client, f.srvTLS)
	if err := tc.Handshake(); err != nil {
		return
	}
	client = tc
	if resp, seq, err = readPacket(client); err != nil {
		return
	}
	hr, err := parseHandshakeResponse(resp)
	if err != nil {
		writeERR(client, seq+1, 1043, "08S01", "Bad handshake: "+err.Error())
		return
	}

	// As RDS does: whatever plugin the client started with, switch it to
	// mysql_clear_password and take the token.
	if err := writePacket(client, seq+1, append(append([]byte{0xfe}, "mysql_clear_password"...), 0)); err != nil {
		return
	}
	tokPkt, seq, err := readPacket(client)
	if err != nil {
		return
	}
	token := strings.TrimSuffix(string(tokPkt), "\x00")
	f.mu.Lock()
	if len(f.received) < maxReceived {
		f.received = append(f.received, token)
	}
	f.mu.Unlock()
	bu, reason := f.check(token, hr.user)
	if reason != "" {
		f.refuse(client, seq+1, hr.user, reason)
		return
	}

	ok, err := loginBackend(backend, bh, hr, clientCaps, bu)
	if err != nil {
		f.mu.Lock()
		f.stats.BackendErrors++
		f.mu.Unlock()
		var be backendERR
		if errors.As(err, &be) {
			writePacket(client, seq+1, be)
		} else {
			writeERR(client, seq+1, 2013, "HY000", "IAMFront: backend login: "+err.Error())
		}
		return
	}
	if err := writePacket(client, seq+1, ok); err != nil {
		return
	}
	client.SetDeadline(time.Time{})
	backend.SetDeadline(time.Time{})
	relay(client, backend)
}

// refuse answers 1045 and records why.
func (f *IAMFront) refuse(c net.Conn, seq byte, user, reason string) {
	f.mu.Lock()
	f.stats.Refused++
	f.stats.LastRefusal = reason
	f.mu.Unlock()
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	writeERR(c, seq, 1045, "28000", fmt.Sprintf("Access denied for user '%s'@'%s' (using password: YES): %s", user, host, reason))
}

// check verifies a token for the login user as RDS does and returns the
// backend account to use, or why the token is refused.
func (f *IAMFront) check(token, user string) (iamBackendUser, string) {
	f.mu.Lock()
	now, lifetime := f.now(), f.lifetime
	bu, known := f.users[user]
	f.mu.Unlock()

	u, err := url.Parse("https://" + token)
	if err != nil || u.Host == "" || u.RawQuery == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return bu, "the password is not an IAM authentication token (a SigV4-presigned rds-db connect request)"
	}
	q := u.Query()
	if a := q.Get("Action"); a != "connect" {
		return bu, fmt.Sprintf("token Action is %q, want connect", a)
	}
	if db := q.Get("DBUser"); db != user {
		return bu, fmt.Sprintf("token is for DBUser %q, the login is for user %q", db, user)
	}
	if !known {
		return bu, fmt.Sprintf("user %q is not identified by IAM authentication on this server", user)
	}
	if alg := q.Get("X-Amz-Algorithm"); alg != "AWS4-HMAC-SHA256" {
		return bu, fmt.Sprintf("token algorithm %q, want AWS4-HMAC-SHA256", alg)
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return bu, "token X-Amz-Credential is not KEY/DATE/REGION/SERVICE/aws4_request"
	}
	keyID, day, region, service := scope[0], scope[1], scope[2], scope[3]
	if service != "rds-db" {
		return bu, fmt.Sprintf("token signed for service %q, want rds-db", service)
	}
	if region != f.region {
		return bu, fmt.Sprintf("token signed for region %s, this database is in %s", region, f.region)
	}
	if u.Host != f.endpoint {
		return bu, fmt.Sprintf("token names endpoint %s, this database is %s", u.Host, f.endpoint)
	}
	signedAt, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil || signedAt.Format("20060102") != day {
		return bu, "token X-Amz-Date is missing, malformed or not the day of its credential scope"
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires < 1 || expires > maxTokenExpires {
		return bu, fmt.Sprintf("token X-Amz-Expires must be 1 to %d seconds", maxTokenExpires)
	}
	valid := min(time.Duration(expires)*time.Second, lifetime)
	if signedAt.After(now.Add(maxClockAhead)) {
		return bu, fmt.Sprintf("token signed at %s, in the future by this server's clock (%s): clock skew", signedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(signedAt.Add(valid)) {
		return bu, fmt.Sprintf("token expired: signed at %s, valid %v, server clock %s", signedAt.Format(time.RFC3339), valid, now.UTC().Format(time.RFC3339))
	}
	f.mu.Lock()
	creds, ok := f.keys[keyID]
	f.mu.Unlock()
	if !ok {
		return bu, fmt.Sprintf("token signed with access key id %s, which is unknown or revoked", keyID)
	}
	if creds.CanExpire && !now.Before(creds.Expires) {
		return bu, fmt.Sprintf("token signed with access key id %s, whose credentials expired at %s (server clock %s)",
			keyID, creds.Expires.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	if creds.SessionToken != "" && subtle.ConstantTimeCompare([]byte(creds.SessionToken), []byte(q.Get("X-Amz-Security-Token"))) != 1 {
		return bu, fmt.Sprintf("token's session token is not the one of access key id %s", keyID)
	}
	// Recompute the presigned request from what the token claims and the
	// key's secret: any other value anywhere changes the signature.
	req, err := http.NewRequest(http.MethodGet, "https://"+f.endpoint, nil)
	if err != nil {
		return bu, "cannot rebuild the signed request"
	}
	v := url.Values{}
	v.Set("Action", "connect")
	v.Set("DBUser", user)
	v.Set("X-Amz-Expires", strconv.Itoa(expires))
	req.URL.RawQuery = v.Encode()
	signer := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: q.Get("X-Amz-Security-Token")}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), signer, req, emptyPayloadHash, "rds-db", f.region, signedAt)
	if err != nil {
		return bu, "cannot recompute the signature"
	}
	su, err := url.Parse(signed)
	if err != nil {
		return bu, "cannot recompute the signature"
	}
	want, got := su.Query().Get("X-Amz-Signature"), q.Get("X-Amz-Signature")
	if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 || len(u.Query()) != len(su.Query()) {
		return bu, fmt.Sprintf("token signature does not match (wrong secret access key for %s, or the token was altered)", keyID)
	}
	f.mu.Lock()
	f.stats.Accepted++
	if f.stats.ByAccessKey == nil {
		f.stats.ByAccessKey = make(map[string]int)
	}
	f.stats.ByAccessKey[keyID]++
	f.tokens[got] = struct{}{}
	f.mu.Unlock()
	return bu, ""
}

// backendGreeting is what the front keeps of the backend's HandshakeV10.
type backendGreeting struct {
	version  []byte // server version, without its NUL
	connID   []byte // 4 bytes
	caps     uint32
	charset  byte
	status   []byte // 2 bytes
	extCaps  []byte // 4 bytes: MariaDB's extended capabilities
	scramble []byte // 20 bytes
}

// parseGreeting reads a HandshakeV10 packet.
func parseGreeting(p []byte) (backendGreeting, error) {
	var g backendGreeting
	if len(p) < 1 || p[0] != 10 {
		return g, errors.New("backend speaks an unknown protocol version")
	}
	end := 1 + indexNUL(p[1:])
	if end <= 0 || len(p) < end+1+4+8+1+2+1+2+2+1+10+13 {
		return g, errors.New("backend greeting is too short")
	}
	g.version = p[1:end]
	pos := end + 1
	g.connID = p[pos : pos+4]
	pos += 4
	g.scramble = append([]byte(nil), p[pos:pos+8]...)
	pos += 8 + 1
	g.caps = uint32(binary.LittleEndian.Uint16(p[pos:]))
	pos += 2
	g.charset = p[pos]
	g.status = p[pos+1 : pos+3]
	pos += 3
	g.caps |= uint32(binary.LittleEndian.Uint16(p[pos:])) << 16
	pos += 2 + 1 + 6
	g.extCaps = p[pos : pos+4]
	pos += 4
	g.scramble = append(g.scramble, p[pos:pos+12]...)
	if g.caps&capProtocol41 == 0 || g.caps&capSecureConn == 0 || g.caps&capPluginAuth == 0 {
		return g, errors.New("backend lacks protocol 4.1, secure connection or plugin auth")
	}
	return g, nil
}

// greeting builds the HandshakeV10 the front sends: the backend's version,
// connection id, character set and status, the given capabilities and the
// front's own scramble, announcing mysql_native_password (the client is
// switched to mysql_clear_password after its first answer, as RDS does).
func greeting(g backendGreeting, caps uint32, scramble []byte) []byte {
	p := []byte{10}
	p = append(append(p, g.version...), 0)
	p = append(p, g.connID...)
	p = append(p, scramble[:8]...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, g.charset)
	p = append(p, g.status...)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)
	p = append(p, make([]byte, 6)...)
	p = append(p, g.extCaps...)
	p = append(p, scramble[8:20]...)
	p = append(p, 0)
	return append(append(p, "mysql_native_password"...), 0)
}

// handshakeResponse is what the front keeps of the client's
// HandshakeResponse41.
type handshakeResponse struct {
	header []byte // capabilities, max packet, collation, filler (32 bytes)
	user   string
	db     string
	withDB bool
}

func parseHandshakeResponse(p []byte) (handshakeResponse, error) {
	var h handshakeResponse
	caps := binary.LittleEndian.Uint32(p)
	h.header = append([]byte(nil), p[:32]...)
	rest := p[32:]
	i := indexNUL(rest)
	if i < 0 {
		return h, errors.New("no user name")
	}
	h.user, rest = string(rest[:i]), rest[i+1:]
	// Skip the auth response: the token comes after the plugin switch.
	switch {
	case caps&capPluginAuthLenc != 0:
		n, w := readLenEnc(rest)
		if w == 0 || uint64(len(rest)-w) < n {
			return h, errors.New("bad auth response length")
		}
		rest = rest[w+int(n):]
	case caps&capSecureConn != 0:
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return h, errors.New("bad auth response length")
		}
		rest = rest[1+int(rest[0]):]
	default:
		i := indexNUL(rest)
		if i < 0 {
			return h, errors.New("bad auth response")
		}
		rest = rest[i+1:]
	}
	if caps&capConnectWithDB != 0 {
		i := indexNUL(rest)
		if i < 0 {
			return h, errors.New("bad database name")
		}
		h.db, h.withDB = string(rest[:i]), true
	}
	return h, nil
}

// backendERR is an ERR packet of the backend, relayed to the client as is.
type backendERR []byte

func (e backendERR) Error() string { return "backend refused the login" }

// loginBackend logs into the backend as bu with the client's capabilities
// (but TLS, compression and attributes) and returns the backend's OK packet.
func loginBackend(c net.Conn, g backendGreeting, hr handshakeResponse, clientCaps uint32, bu iamBackendUser) ([]byte, error) {
	caps := clientCaps&^(capSSL|capCompress|capConnectAttrs) | capSecureConn | capPluginAuth | capProtocol41
	caps &= g.caps | capLongPassword
	p := append([]byte(nil), hr.header...)
	binary.LittleEndian.PutUint32(p, caps)
	p = append(append(p, bu.user...), 0)
	auth := nativePassword(g.scramble, bu.password)
	// 20 bytes or none: the same single length byte whether the length is
	// length-encoded (capPluginAuthLenc) or not.
	p = append(p, byte(len(auth)))
	p = append(p, auth...)
	if caps&capConnectWithDB != 0 {
		p = append(append(p, hr.db...), 0)
	}
	p = append(append(p, "mysql_native_password"...), 0)
	if err := writePacket(c, 1, p); err != nil {
		return nil, err
	}
	for range 2 {
		r, seq, err := readPacket(c)
		if err != nil {
			return nil, err
		}
		switch r[0] {
		case 0x00:
			return r, nil
		case 0xff:
			return nil, backendERR(r)
		case 0xfe: // auth switch: only to mysql_native_password, with a new scramble
			i := indexNUL(r[1:])
			if i < 0 || string(r[1:1+i]) != "mysql_native_password" || len(r) < 1+i+1+20 {
				return nil, errors.New("backend asks for an auth plugin the front does not speak")
			}
			if err := writePacket(c, seq+1, nativePassword(r[2+i:2+i+20], bu.password)); err != nil {
				return nil, err
			}
		default:
			return nil, errors.New("unexpected backend answer to the login")
		}
	}
	return nil, errors.New("backend login did not end")
}

// nativePassword is mysql_native_password's answer:
// SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))).
func nativePassword(scramble []byte, pw string) []byte {
	if pw == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(pw))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble[:20])
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// relay copies bytes both ways until either side closes.
func relay(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}

// readPacket reads one protocol packet: a 3-byte little-endian length, a
// sequence id, the payload. Handshake packets are small; larger ones are
// refused.
func readPacket(r io.Reader) ([]byte, byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n == 0 || n > 1<<16 {
		return nil, 0, fmt.Errorf("handshake packet of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, 0, err
	}
	return p, hdr[3], nil
}

func writePacket(w io.Writer, seq byte, p []byte) error {
	hdr := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), seq}
	_, err := w.Write(append(hdr, p...))
	return err
}

// writeERR sends an ERR packet with the error number, SQLSTATE and message.
func writeERR(w io.Writer, seq byte, code uint16, state, msg string) error {
	p := []byte{0xff}
	p = binary.LittleEndian.AppendUint16(p, code)
	p = append(p, '#')
	p = append(p, state...)
	return writePacket(w, seq, append(p, msg...))
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// readLenEnc reads a length-encoded integer; w is its width, 0 if malformed.
func readLenEnc(b []byte) (n uint64, w int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch b[0] {
	case 0xfc:
		if len(b) < 3 {
			return 0, 0
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3
	case 0xfd:
		if len(b) < 4 {
			return 0, 0
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4
	case 0xfe:
		if len(b) < 9 {
			return 0, 0
		}
		return binary.LittleEndian.Uint64(b[1:]), 9
	case 0xfb, 0xff:
		return 0, 0
	}
	return uint64(b[0]), 1
}

// selfSignedCert makes an ECDSA certificate for 127.0.0.1, ::1 and
// localhost that is its own root, valid for a day.
func selfSignedCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rotatingmysqltest IAMFront"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}
