package testdb

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

var (
	nameSeq atomic.Uint64
	// nameRun tells apart names made by different test binaries, which
	// share a server when EnvRootDSN points them at the same one.
	nameRun = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b) // never fails on supported platforms
		return hex.EncodeToString(b)
	}()
)

// maxPrefix keeps names within MariaDB's 64-character limit for database
// names (user names may be longer).
const maxPrefix = 40

// UniqueName returns a name such as "u_3fa9c1_7" for users and databases:
// unique within the test binary, and across binaries with high probability. The prefix should be short
// and made of letters, digits and underscores; it is cut to 40 bytes.
func UniqueName(prefix string) string {
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	return prefix + "_" + nameRun + "_" + strconv.FormatUint(nameSeq.Add(1), 10)
}
