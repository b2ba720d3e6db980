package rotatingmysql

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// tlsHelp says how to give source=iam the TLS it needs.
const tlsHelp = "RDS accepts an IAM token only over TLS, and the driver sends it in clear text inside the TLS session. " +
	"Download the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), put it in a " +
	"tls.Config's RootCAs, and pass it with rotatingmysql.WithTLSConfig, or register it with " +
	"mysql.RegisterTLSConfig(\"rds\", cfg) and add tls=rds to the DSN (tls=true uses the system roots). " +
	"For a local test server only, allowInsecureIAM=true (WithAllowInsecureIAM) lifts this check"

// validateIAM fills User, Host, Port and DBName from SecretID
// (USER@HOST[:PORT][/DBNAME]) and checks what source=iam needs: one source,
// a region that agrees with an RDS host name, TLS with a verified
// certificate, a TTL shorter than a token's life. It enables the clear-text
// password the token is sent as.
func (c *Config) validateIAM() error {
	if strings.Contains(c.Source, ",") {
		return fmt.Errorf("iam cannot be chained with other sources (source=%q): tokens are signed locally, there is nothing to fall back to", c.Source)
	}
	if c.Keys != (credsource.Keys{}) {
		return errors.New("usernameKey, passwordKey, hostKey, portKey and dbnameKey apply to sources that read a secret JSON, not to iam")
	}
	user, host, port, db, err := parseIAMTarget(c.SecretID)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name   string
		dst    *string
		val    string
		differ bool
	}{
		{"host", &c.Host, host, c.Host != "" && host != "" && c.Host != host},
		{"dbname", &c.DBName, db, c.DBName != "" && db != "" && c.DBName != db},
	} {
		if f.differ {
			return fmt.Errorf("parameter %q (%q) disagrees with %q in %s: give it once", f.name, *f.dst, f.val, c.SecretID)
		}
		if f.val != "" {
			*f.dst = f.val
		}
	}
	if c.Port != 0 && port != 0 && c.Port != port {
		return fmt.Errorf("parameter \"port\" (%d) disagrees with port %d in %s: give it once", c.Port, port, c.SecretID)
	}
	if port != 0 {
		c.Port = port
	}
	if c.Port == 0 {
		c.Port = 3306
	}
	c.User = user
	if hostRegion := credsource.RegionFromRDSHost(c.Host); hostRegion != "" && c.Region != "" && c.Region != hostRegion {
		return fmt.Errorf("region=%s, but %s is an RDS endpoint in %s: a token signed for another region is refused; remove region= or fix it", c.Region, c.Host, hostRegion)
	}
	return c.iamTokenRules("")
}

// parseIAMTarget splits USER@HOST[:PORT][/DBNAME]. port is 0 when absent.
func parseIAMTarget(id string) (user, host string, port int, db string, err error) {
	const want = "the DSN must start with USER@HOST[:PORT][/DBNAME], e.g. app_user@mydb.cluster-abc.us-east-1.rds.amazonaws.com:3306/appdb?source=iam&tls=rds"
	at := strings.LastIndexByte(id, '@')
	if at <= 0 {
		return "", "", 0, "", fmt.Errorf("no database user in %q: %s", id, want)
	}
	if user, err = url.PathUnescape(id[:at]); err != nil {
		return "", "", 0, "", fmt.Errorf("user %q: bad escaping: %s", id[:at], want)
	}
	hostport, db, _ := strings.Cut(id[at+1:], "/")
	if hostport == "" {
		return "", "", 0, "", fmt.Errorf("no host in %q: %s", id, want)
	}
	host = hostport
	if h, p, serr := net.SplitHostPort(hostport); serr == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return "", "", 0, "", fmt.Errorf("port %q in %q must be a whole number from 1 to 65535", p, id)
		}
		host, port = h, n
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return "", "", 0, "", fmt.Errorf("host %q in %q: %v", hostport, id, serr)
	}
	if host == "" || strings.ContainsAny(host, " /?#@") {
		return "", "", 0, "", fmt.Errorf("host %q in %q is not a host name: %s", host, id, want)
	}
	if strings.ContainsAny(db, "/?#") {
		return "", "", 0, "", fmt.Errorf("database name %q in %q holds / ? or #", db, id)
	}
	return user, host, port, db, nil
}

// insecureTLS says why mc would let the token travel without a verified TLS
// session, or returns "" when it would not.
func insecureTLS(mc *mysql.Config) string {
	if mc.AllowFallbackToPlaintext {
		if mc.TLSConfig == "preferred" {
			return "tls=preferred falls back to plain TCP without a word, which would send the IAM token in clear text"
		}
		return "allowFallbackToPlaintext=true could send the IAM token in clear text over plain TCP"
	}
	t := mc.TLS
	switch name := mc.TLSConfig; {
	case t != nil:
	case name == "" || name == "false":
		return "no TLS (the DSN has no tls= parameter and no WithTLSConfig was given)"
	case name == "true":
		return ""
	case name == "skip-verify":
		return "tls=skip-verify does not verify the server's certificate, so anyone on the path could take the IAM token"
	default:
		// A name registered with mysql.RegisterTLSConfig: look at it.
		parsed, err := mysql.ParseDSN("/?tls=" + url.QueryEscape(name))
		if err != nil || parsed.TLS == nil {
			return fmt.Sprintf("tls=%s is not a registered TLS configuration", name)
		}
		t = parsed.TLS
	}
	if t.InsecureSkipVerify && t.VerifyConnection == nil && t.VerifyPeerCertificate == nil {
		return "the TLS configuration skips certificate verification (InsecureSkipVerify without a VerifyConnection or VerifyPeerCertificate of its own), so anyone on the path could take the IAM token"
	}
	return ""
}

// loginHint explains a refused login for the source, or returns "".
func (c *Config) loginHint() string {
	if c.CredentialSource != nil || !usesSource(c.Source, "iam") {
		return ""
	}
	region := c.Region
	if region == "" {
		region = credsource.RegionFromRDSHost(c.Host)
	}
	if region == "" {
		region = "the AWS configuration's region"
	}
	return fmt.Sprintf("the server refused the IAM authentication token for user %s: check that the user exists "+
		"IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', that the AWS identity signing the token may rds-db:connect "+
		"to arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/%s, that the token's region (%s) is the database's, "+
		"that the host name is the endpoint the token must name, and that this machine's clock is right "+
		"(a token expires %v after it is signed, by the server's clock)",
		c.User, c.User, region, credsource.IAMTokenLifetime)
}

// checkIAMSource holds a Source the program gave (WithSource) to
// source=iam's rules when it is, or a credsource.Chain holds, a
// *credsource.IAM: verified TLS unless AllowInsecureIAM, a TTL shorter than
// a token's life (the default TTL becomes DefaultIAMTokenTTL), and the
// clear-text password the token is sent as. It does nothing for other
// sources. validate calls it when CredentialSource is set, so that the rule
// holds however IAM is configured: the DSN, NewIAMConfig or WithSource.
func (c *Config) checkIAMSource() error {
	if !hasIAMSource(c.CredentialSource) {
		return nil
	}
	return c.iamTokenRules("the source signs IAM authentication tokens, and ")
}

// iamTokenRules applies the rules of a source that signs IAM tokens: a
// TTL shorter than a token's life (the default TTL becomes
// DefaultIAMTokenTTL), verified TLS unless AllowInsecureIAM (the error
// begins with prefix), and the clear-text password the token is sent as.
func (c *Config) iamTokenRules(prefix string) error {
	switch {
	case c.TTL == 0 || c.TTL == credsource.DefaultTTL:
		c.TTL = credsource.DefaultIAMTokenTTL
	case c.TTL >= credsource.IAMTokenLifetime:
		return fmt.Errorf("ttl=%v: a token is reused for the TTL, and RDS refuses it %v after it is signed; use less (default %v)", c.TTL, credsource.IAMTokenLifetime, credsource.DefaultIAMTokenTTL)
	}
	if c.MySQL == nil {
		c.MySQL = mysql.NewConfig()
	}
	if !c.AllowInsecureIAM {
		if why := insecureTLS(c.MySQL); why != "" {
			return fmt.Errorf("%s%s. %s", prefix, why, tlsHelp)
		}
	}
	c.MySQL.AllowCleartextPasswords = true
	return nil
}

// hasIAMSource reports whether src is, or a Chain holds, an IAM source.
func hasIAMSource(src credsource.Source) bool {
	switch s := src.(type) {
	case *credsource.IAM:
		return true
	case *credsource.Chain:
		for _, m := range s.Sources() {
			if hasIAMSource(m) {
				return true
			}
		}
	}
	return false
}

// cleartextHelp replaces go-sql-driver's advice for a server that asks for a
// clear-text password, which is to allow clear-text passwords whatever the
// transport.
const cleartextHelp = "rotatingmysql: the server asks for the password in clear text (the mysql_clear_password plugin, as RDS IAM authentication does), " +
	"and rotatingmysql sends one only for RDS IAM authentication over verified TLS: for IAM, use source=iam (Go: NewIAMConfig, or a credsource.IAM source) " +
	"with tls=... or WithTLSConfig; do not set allowCleartextPasswords, which would send the password to any server that asks, with or without TLS"

// explainDialError replaces the text of go-sql-driver's ErrCleartextPassword,
// which suggests allowCleartextPasswords=1, with ours; errors.Is still finds
// mysql.ErrCleartextPassword. Other errors are returned as they are (a 1045
// stays a bare *mysql.MySQLError).
func explainDialError(err error) error {
	if err != nil && errors.Is(err, mysql.ErrCleartextPassword) {
		return credsource.WithText(cleartextHelp, err)
	}
	return err
}
