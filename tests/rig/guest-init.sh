#!/bin/sh
# /init of the x86_64 rig's PV guest (busybox sh; build-image packs it with busybox-static,
# xen-pcifront.ko and the devices' drivers into the guest's initramfs).
#
# It loads the modules, then reports on its console every change in the PCI devices it sees
# (vendor, device, bound driver), until it is asked to power off (xl shutdown: the kernel runs
# /sbin/poweroff, busybox's poweroff signals init, and init powers the guest off). The rig's
# dom0 logs guest consoles (xenconsoled --log=guest); tests/rig/guest reads the last report there.
#
# Console lines, each prefixed "xenpci-guest: ":
#   boot BOOT-ID                     once, first
#   snapshot N begin                 N counts the reports of this boot
#   pci ADDRESS VENDOR DEVICE DRIVER one per device, DRIVER "-" when none is bound
#   snapshot N end
#   power off                        last
PATH=/bin:/sbin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1

say() {
    echo "xenpci-guest: $*"
}

say "boot $(cat /proc/sys/kernel/random/boot_id)"
while read -r module; do
    insmod "/lib/modules/$module" || say "insmod $module failed"
done </lib/modules/order

trap 'say "power off"; poweroff -f' USR2 TERM

devices() {
    for dev in /sys/bus/pci/devices/*; do
        [ -e "$dev/vendor" ] || continue
        driver=-
        if [ -e "$dev/driver" ]; then
            driver=$(basename "$(readlink "$dev/driver")")
        fi
        echo "pci ${dev##*/} $(cat "$dev/vendor") $(cat "$dev/device") $driver"
    done
}

seq=0
last=none
while :; do
    now=$(devices)
    if [ "$now" != "$last" ]; then
        seq=$((seq + 1))
        say "snapshot $seq begin"
        if [ -n "$now" ]; then
            echo "$now" | while read -r line; do say "$line"; done
        fi
        say "snapshot $seq end"
        last=$now
    fi
    sleep 1
done
