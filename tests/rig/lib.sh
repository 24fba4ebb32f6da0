# Shared settings and helpers for the Xen test rig scripts (build-image, boot,
# stop, ssh-dom0). Sourced, never executed.
#
# Layout outside the work tree (override the root with RIG_CACHE_DIR):
#   $RIG_CACHE_DIR/
#     debs/                 .deb download cache shared by all builds
#     image-<hash>/         one finished image per version of the build scripts
#       image.raw           ext4 root filesystem (label "root"), kept pristine
#       xen                 the hypervisor, gunzipped (multiboot kernel)
#       vmlinuz, initrd.img dom0 kernel and initramfs
#       config              the dom0 kernel's /boot/config-*
#       id_ed25519{,.pub}   SSH key pair authorised for root in the image
#       manifest.txt        package versions, build date, mirror
#       DONE                written last: the image is complete
#     run/                  state of the running rig (override with RIG_RUN_DIR)
#       overlay.qcow2       copy-on-write disk backed by image.raw
#       qemu.pid serial.log qemu.log monitor.sock
#       inventory.ini rig.env

# shellcheck shell=bash

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_CACHE_DIR=${RIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xenpci-rig}
RIG_RUN_DIR=${RIG_RUN_DIR:-$RIG_CACHE_DIR/run}

log() { printf '[rig %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[rig] ERROR: %s\n' "$*" >&2; exit 1; }

# The image is keyed by a hash of the files that decide its content: editing
# build-image (or this file) gives a new image directory; anything else reuses
# the cached one.
rig_image_hash() {
    cat "$RIG_DIR/build-image" "$RIG_DIR/lib.sh" | sha256sum | cut -c1-16
}

rig_image_dir() {
    printf '%s/image-%s\n' "$RIG_CACHE_DIR" "$(rig_image_hash)"
}

# Install Debian packages on the host, only those that are missing.
# Usage: rig_need_packages pkg...
rig_need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing host packages (${missing[*]}); install them as root"
    log "installing host packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends "${missing[@]}" >&2; } \
        || die "could not install: ${missing[*]}"
}

# SSH options used for every connection to the rig: throw-away host keys.
rig_ssh_opts() {
    printf '%s\n' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes
}

# Is the QEMU whose pid is in $1 (a pid file) still running? Checks that the
# pid really is a qemu-system process, so a recycled pid is never touched.
rig_qemu_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'qemu-system'
}
