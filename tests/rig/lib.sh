# Shared settings and helpers for the Xen test rig scripts (build-image, boot,
# stop, ssh-dom0). Sourced, never executed.
#
# One rig per architecture and Debian suite, chosen by RIG_ARCH (x86_64, the
# default, or aarch64) and RIG_SUITE (bookworm, the default: Debian 12, Xen 4.17,
# Linux 6.1; or trixie: Debian 13, Xen 4.20, Linux 6.12).
# Layout outside the work tree (override the root with RIG_CACHE_DIR):
#   $RIG_CACHE_DIR/
#     debs/                 .deb download cache shared by all builds (names carry the arch)
#     collections-ansible-<version>-<hash>/  community.general (its chroot connection) for
#                           build-image, unpacked by tests/tools/install-collections
#     image-<hash>/         x86_64: one finished image per version of the build scripts
#     image-aarch64-<hash>/ aarch64: the same for the arm64 rig
#     image-aarch64-trixie-<hash>/, image-trixie-<hash>/: the same for Debian 13
#       image.raw           ext4 root filesystem (label "root"), kept pristine
#       xen                 the hypervisor (x86_64: gunzipped, a multiboot kernel)
#       vmlinuz, initrd.img dom0 kernel and initramfs
#       config              the dom0 kernel's /boot/config-*
#       id_ed25519{,.pub}   SSH key pair authorised for root in the image
#       manifest.txt        package versions, build date, mirror
#       DONE                written last: the image is complete
#     run/                  x86_64: state of the running rig (override with RIG_RUN_DIR)
#     run-aarch64/          aarch64: the same for the arm64 rig
#     run-aarch64-trixie/, run-trixie/: the same for Debian 13
#       overlay.qcow2       copy-on-write disk backed by image.raw
#       qemu.pid serial.log qemu.log monitor.sock
#       inventory.ini rig.env

# shellcheck shell=bash

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_CACHE_DIR=${RIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xenpci-rig}
RIG_ARCH=${RIG_ARCH:-x86_64}
RIG_SUITE=${RIG_SUITE:-bookworm}

log() { printf '[rig %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# timing_note TEXT: a note for make test's timing table (image built or cached, boot time,
# boots retried), on the phase make test is running (XENPCI_PHASE, see tests/tools/make-test);
# nothing when the script runs outside make test.
timing_note() {
    if [ -n "${XENPCI_TIMINGS:-}" ] && [ -n "${XENPCI_PHASE:-}" ]; then
        printf 'note\t%s\t%s\n' "$XENPCI_PHASE" "$1" >> "$XENPCI_TIMINGS"
    fi
}

# Per architecture: Debian's name for it, and the suffix of the cache entries
# (none for x86_64, so its image and run directories keep their names).
case "$RIG_ARCH" in
    x86_64)  RIG_DEB_ARCH=amd64 RIG_SUFFIX= ;;
    aarch64) RIG_DEB_ARCH=arm64 RIG_SUFFIX=-aarch64 ;;
    *) die "RIG_ARCH must be x86_64 or aarch64, not '$RIG_ARCH'" ;;
esac
# Per suite: the Xen and Python versions Debian ships in it, and one more suffix (none for
# bookworm, so its directories keep their names): a trixie rig and a bookworm
# rig never share, nor replace, each other's images.
case "$RIG_SUITE" in
    bookworm) RIG_XEN_VERSION=4.17 RIG_PYTHON_VERSION=3.11 ;;
    trixie)   RIG_XEN_VERSION=4.20 RIG_PYTHON_VERSION=3.13 RIG_SUFFIX=$RIG_SUFFIX-trixie ;;
    *) die "RIG_SUITE must be bookworm or trixie, not '$RIG_SUITE'" ;;
esac
RIG_RUN_DIR=${RIG_RUN_DIR:-$RIG_CACHE_DIR/run$RIG_SUFFIX}
export RIG_ARCH RIG_DEB_ARCH RIG_SUITE RIG_XEN_VERSION RIG_PYTHON_VERSION

# The collection's root (the work tree, or the build tree when the scripts run from there).
RIG_COLLECTION_DIR=$(cd "$RIG_DIR/../.." && pwd)

# The collection's files that make the image's Xen part, through the play
# provision-xen.yml: the xen_host role (its documentation aside), the collection's modules its tasks and
# handlers call, and the module_utils those import, transitively (each with its package's
# __init__.py). Paths relative to the collection's root, sorted.
rig_provision_files() {
    python3 "$RIG_DIR/image_files.py" "$RIG_COLLECTION_DIR"
}

# The image is keyed by a hash of the files that decide its content: editing
# build-image, this file, the play provision-xen.yml, guest-init.sh,
# zip_bytecode_cache.py, image_files.py, the xen_host role or the
# modules it runs (rig_provision_files) gives a new image directory; anything else
# reuses the cached one.
rig_image_hash() {
    local file files
    files=$(rig_provision_files) || die "could not list the collection's files of the image (image_files.py)"
    {
        cat "$RIG_DIR/build-image" "$RIG_DIR/lib.sh" "$RIG_DIR/provision-xen.yml" "$RIG_DIR/guest-init.sh" \
            "$RIG_DIR/zip_bytecode_cache.py" "$RIG_DIR/image_files.py"
        while read -r file; do
            echo "== $file"
            cat "$RIG_COLLECTION_DIR/$file"
        done <<< "$files"
        echo "$RIG_ARCH $RIG_SUITE"
    } | sha256sum | cut -c1-16
}

rig_image_dir() {
    printf '%s/image%s-%s\n' "$RIG_CACHE_DIR" "$RIG_SUFFIX" "$(rig_image_hash)"
}

# The image directories of this architecture and suite only (x86_64: image-<16 hex
# digits>; aarch64: image-aarch64-<16 hex digits>; trixie: image-aarch64-trixie-<16
# hex digits>, ...): what a build may replace.
rig_arch_images() {
    local dir name
    for dir in "$RIG_CACHE_DIR"/image"$RIG_SUFFIX"-*; do
        [ -d "$dir" ] || continue
        name=${dir##*/image"$RIG_SUFFIX"-}
        [[ $name =~ ^[0-9a-f]{16}$ ]] && echo "$dir"
    done
}

# Is a running QEMU using the image directory $1 (its kernel or disk is on the
# command line)? Such an image is never removed.
rig_image_in_use() {
    local cmdline
    for cmdline in /proc/[0-9]*/cmdline; do
        # (a process may be gone between the glob and the read)
        { tr '\0' ' ' < "$cmdline"; } 2>/dev/null | grep -q "qemu-system.*$1/" && return 0
    done
    return 1
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
    # make test builds the images in the background while other scripts may install packages too:
    # wait for dpkg's lock instead of failing at once.
    local apt=(apt-get -o DPkg::Lock::Timeout=900)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 \
        || { "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive \
             "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2; } \
        || die "could not install: ${missing[*]}"
}

# SSH options used for every connection to the rig: throw-away host keys, and one master
# connection that later commands share (a new SSH session costs about 2 s of the emulated dom0's
# time, a command through the master a tenth of that). `rig_ssh_opts direct` gives a connection
# of its own, for waiting on a dom0 that is going down or coming up. The master lives as long as
# the rig's connection does; rig_ssh_close ends it before a reboot.
rig_ssh_control_path() {
    printf '%s\n' "$RIG_RUN_DIR/ssh-master"
}

rig_ssh_opts() {
    printf '%s\n' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes
    local control
    control=$(rig_ssh_control_path)
    # A Unix socket's path has room for about 100 bytes, and ssh adds a suffix while it creates one.
    if [ "${1:-}" = direct ] || [ "${#control}" -gt 80 ]; then
        printf '%s\n' -o ControlMaster=no -o ControlPath=none
    else
        # A busy emulated dom0 can leave SSH unanswered for a minute (a guest starting, a playbook): the master
        # gives up on it only after 10 minutes of silence, as the tests' own timeouts would.
        printf '%s\n' -o ControlMaster=auto -o "ControlPath=$control" -o ControlPersist=600 \
            -o ServerAliveInterval=30 -o ServerAliveCountMax=20
    fi
}

# End the shared master connection, if there is one (before dom0 goes down).
rig_ssh_close() {
    local control
    control=$(rig_ssh_control_path)
    [ -S "$control" ] || return 0
    ssh -o ControlPath="$control" -O exit -p "${RIG_SSH_PORT:-22}" root@127.0.0.1 >/dev/null 2>&1 || true
    rm -f "$control"
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
