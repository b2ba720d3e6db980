package rotatingmysql_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// TestDSNFIPSPseudoRegion: region=us-east-1-fips, or a secret ARN with a
// -fips region, is refused at parse time with an error naming the region to
// use and AWS_USE_FIPS_ENDPOINT=true.
func TestDSNFIPSPseudoRegion(t *testing.T) {
	for _, dsn := range []string{
		"app/db?region=us-east-1-fips",
		"app/db?region=fips-us-gov-west-1",
		"arn:aws:secretsmanager:us-east-1-fips:123456789012:secret:app/db-AbCdEf",
	} {
		_, err := rotatingmysql.ParseDSN(dsn)
		if !errors.Is(err, rotatingmysql.ErrInvalidDSN) || !errors.Is(err, credsource.ErrFIPSRegion) || !strings.Contains(err.Error(), "AWS_USE_FIPS_ENDPOINT=true") {
			t.Errorf("ParseDSN(%q) = %v, want ErrInvalidDSN naming AWS_USE_FIPS_ENDPOINT=true", dsn, err)
		}
	}
	if _, err := rotatingmysql.ParseDSN("app/db?region=us-gov-west-1"); err != nil {
		t.Errorf("region=us-gov-west-1: %v", err)
	}
}
