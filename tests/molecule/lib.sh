# Shared settings for the molecule helper scripts (build-images, run). Sourced, never
# executed.
#
# Everything lives outside the work tree, under $MOLECULE_CACHE_DIR
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/xenpci-molecule):
#   debs/                         .deb download cache shared by the image builds
#   rootfs-<suite>-<hash>.tar     root filesystem of an image, re-imported in seconds
#                                 when podman's store lost the image
#   collections-ansible-<ver>-<hash>/  collections unpacked from the "ansible" package
#                                 (tests/tools/install-collections)
# The images themselves are in podman's store: localhost/xenpci-molecule/debian:12
# and :13, labelled with the hash of build-images.

# shellcheck shell=bash

MOLECULE_HELPERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# rig_need_packages: install missing Debian packages on the host.
# shellcheck source=../rig/lib.sh
. "$MOLECULE_HELPERS_DIR/../rig/lib.sh"

MOLECULE_CACHE_DIR=${MOLECULE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xenpci-molecule}
# shellcheck disable=SC2034  # used by the scripts that source this file
MOLECULE_IMAGE_REPO=localhost/xenpci-molecule/debian
export CONTAINERS_CONF=${CONTAINERS_CONF:-$MOLECULE_HELPERS_DIR/containers.conf}

log() { printf '[molecule %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[molecule] ERROR: %s\n' "$*" >&2; exit 1; }

# The URI of the Debian archive in the host's apt sources (the one that serves
# $1, e.g. bookworm), as apt itself reads them (one-line and deb822 files alike).
molecule_host_mirror() {
    # shellcheck disable=SC2016  # apt's own $(FIELD) placeholders
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
        awk -v suite="$1" '$1 == suite { sub("/$", "", $2); print $2; exit }'
}
