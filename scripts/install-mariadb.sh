#!/usr/bin/env bash
# install-mariadb.sh makes sure the MariaDB server binaries that internal/testdb
# runs are installed: mariadbd, mariadb-install-db and my_print_defaults (which
# mariadb-install-db calls). It does nothing when they are already there.
#
# On Debian and Ubuntu, as root, it installs them with apt-get. It installs
# mariadb-server-core (mariadbd, mariadb-install-db) and mariadb-client
# (my_print_defaults through mariadb-client-core, plus mariadb and
# mariadb-admin for debugging), not mariadb-server: that package only adds the
# system service, and its postinst would start a server on port 3306 on a host
# with systemd. mariadb-server-core has no maintainer scripts, so nothing is
# started and no policy-rc.d is needed. Tests run their own private server.
set -euo pipefail

# mariadbd lives in /usr/sbin, which is not on PATH for every user.
PATH="$PATH:/usr/sbin:/usr/local/sbin"

missing=()
for bin in mariadbd mariadb-install-db my_print_defaults; do
	command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-mariadb: MariaDB found: $(command -v mariadbd) ($(mariadbd --version 2>/dev/null | head -n 1))"
	exit 0
fi

echo "install-mariadb: missing: ${missing[*]}"

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<'MSG'
install-mariadb: cannot install MariaDB automatically (needs root and apt-get).
Install it yourself, then run the tests again:
  Debian/Ubuntu: sudo apt-get install --no-install-recommends mariadb-server-core mariadb-client
  Fedora:        sudo dnf install mariadb-server
  macOS:         brew install mariadb
Or point the tests at an existing server (root privileges needed):
  export ROTATINGMYSQL_TEST_MYSQL_ROOT_DSN='root:PASSWORD@tcp(127.0.0.1:3306)/'
MSG
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends mariadb-server-core mariadb-client

for bin in mariadbd mariadb-install-db my_print_defaults; do
	if ! command -v "$bin" >/dev/null 2>&1; then
		echo "install-mariadb: $bin still missing after apt-get install" >&2
		exit 1
	fi
done
echo "install-mariadb: installed $(mariadbd --version | head -n 1)"
