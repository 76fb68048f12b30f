// Package repos builds signed package repositories for tests of host
// installers: GPG keys, .deb and .rpm packages made from given payload files,
// apt and rpm-md repositories signed with those keys, and a loopback HTTP
// server for them. It drives the real tools (gpg, dpkg-deb, apt-ftparchive,
// rpmbuild, rpmsign, createrepo_c); e2e/hostdeps/debian-packages.txt lists
// the Debian packages that provide them.
package repos
