# Shared by images/base/bootstrap.sh and images/debian/build.sh (sourced, not run).
# Writes Debian's deb822 apt sources (release, updates, security) into a root file system,
# the same sources the official images use.
#   write_debian_sources ROOTFS MIRROR SUITE
write_debian_sources() {
  local rootfs=$1 mirror=$2 suite=$3
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
}
