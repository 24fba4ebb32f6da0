# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The x86_64 rig's PV guest, seen from the controller: its xl config, xl create, and what the guest reports.

The guest (built with the image: dom0's kernel, an initramfs of busybox, xen-pcifront and e1000, see
build-image and guest-init.sh) reports on its console every change in the PCI devices it sees, with
their vendor and device ids and bound driver. Dom0's xenconsoled logs the console to
``/var/log/xen/console/guest-NAME.log``; ``Guest.report`` reads the guest's last complete report of
its current boot there, and maps each guest address to the dom0 address through pciback's entries
in xenstore (``backend/pci/DOMID/0``: ``vdev-N`` is the guest's address of ``dev-N``).

Why the console and not xenstore: the guest would need xenstore tools and a writable path granted by
dom0; its console is already there, and the log keeps the whole story (boots, reports, power-off)
for a post-mortem.

Used by the rig tests (``Guest``) and by hand: ``tests/rig/guest start NAME DEVICE...``,
``tests/rig/guest report NAME``, ``tests/rig/guest stop NAME`` (run ``tests/rig/guest -h``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

RIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST_DIR = '/var/lib/xenpci-rig/guest'
CONFIG_DIR = '/etc/xen'
CONSOLE_LOG = '/var/log/xen/console/guest-%s.log'
PREFIX = 'xenpci-guest: '
SEPARATOR = '==== xenstore ===='


def config_text(name, devices=(), passthrough=False):
    """The guest's xl config: a PV guest of dom0's kernel and the rig's initramfs; ``pci`` when devices are given.

    ``passthrough``: ``passthrough = "enabled"``, which a guest started without devices needs to be given some while
    it runs (xl gives the domain an IOMMU context only with a ``pci`` list or this setting).
    """
    lines = [
        '# The rig\'s PV guest: it reports on its console the PCI devices it sees (tests/rig/guest).',
        'name = "%s"' % name,
        'type = "pv"',
        'kernel = "%s/vmlinuz"' % GUEST_DIR,
        'ramdisk = "%s/initrd.img"' % GUEST_DIR,
        'memory = 256',
        'vcpus = 1',
        'extra = "console=hvc0 quiet"',
        'on_poweroff = "destroy"',
        'on_reboot = "destroy"',
        'on_crash = "destroy"',
    ]
    if passthrough:
        lines.append('passthrough = "enabled"')
    if devices:
        lines.append('pci = [ %s ]' % ', '.join("'%s'" % address for address in devices))
    return '\n'.join(lines) + '\n'


class Report:
    """The guest's last complete report of its current boot.

    ``devices``: one dict per device the guest sees: ``guest_address``, ``address`` (dom0's, from
    xenstore; None when xenstore has no entry for it), ``vendor_id`` and ``device_id`` (hex, as
    pci_info gives them), ``driver`` (None when none is bound). ``boot`` is the guest's boot id,
    ``number`` counts the reports of that boot, ``powered_off`` says the guest logged its power-off.
    """

    def __init__(self, boot, number, devices, powered_off):
        self.boot = boot
        self.number = number
        self.devices = devices
        self.powered_off = powered_off

    def by_address(self):
        return dict((device['address'], device) for device in self.devices)

    def __repr__(self):
        return 'Report(boot=%r, number=%r, powered_off=%r, devices=%r)' % (
            self.boot, self.number, self.powered_off, self.devices)


def parse_console(text):
    """(boot id, report number, [(guest address, vendor, device, driver)], powered off) from a console log.

    Only the last boot counts; a report counts once its end line is there. (None, 0, [], False) before any boot.
    """
    boot, number, devices, powered_off = None, 0, [], False
    pending_number, pending = None, None          # the report being read: its number, its devices so far
    for raw in text.splitlines():
        line = raw.strip('\r')
        at = line.find(PREFIX)
        if at < 0:
            continue
        words = line[at + len(PREFIX):].split()
        if words[:1] == ['boot'] and len(words) == 2:
            boot, number, devices, powered_off, pending_number, pending = words[1], 0, [], False, None, None
        elif words[:1] == ['snapshot'] and len(words) == 3 and words[2] == 'begin':
            pending_number, pending = int(words[1]), []
        elif words[:1] == ['snapshot'] and len(words) == 3 and words[2] == 'end':
            if pending is not None and pending_number == int(words[1]):
                number, devices = pending_number, pending
            pending_number, pending = None, None
        elif words[:1] == ['pci'] and len(words) == 5 and pending is not None:
            address, vendor, device, driver = words[1:]
            pending.append((address, _hex(vendor), _hex(device), None if driver == '-' else driver))
        elif words == ['power', 'off']:
            powered_off = True
    return boot, number, devices, powered_off


def _hex(value):
    return value[2:] if value.startswith('0x') else value


def parse_backend(text):
    """{guest address: dom0 address} from ``xenstore-ls -f`` of pciback's entry for the domain."""
    entries = dict(re.findall(r'^\S+/((?:v?dev)-\d+) = "([^"]*)"', text, re.M))
    mapping = {}
    for key, value in entries.items():
        if key.startswith('vdev-') and 'dev-' + key[5:] in entries:
            mapping[_canonical(value)] = _canonical(entries['dev-' + key[5:]])
    return mapping


def _canonical(address):
    """DDDD:BB:DD.F, as sysfs writes it, from pciback's xenstore spelling too (``vdev-N`` is ``0000:00:00.00``)."""
    match = re.match(r'^([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-9a-fA-F]{1,2})$', address.strip())
    if not match:
        return address
    domain, bus, slot, function = match.groups()
    return '%04x:%02x:%02x.%x' % (int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16))


class Guest:
    """One guest on the rig, by name; ``ssh(command, check=True)`` runs a shell command in dom0."""

    def __init__(self, ssh, name='xenpci-guest'):
        self.ssh = ssh
        self.name = name
        self.config = '%s/%s.cfg' % (CONFIG_DIR, name)

    def write_config(self, devices=(), passthrough=False):
        """Write the guest's xl config (config_text), replacing any."""
        self.ssh("cat > %s <<'EOF'\n%sEOF" % (shlex.quote(self.config), config_text(self.name, devices, passthrough)))

    def create(self):
        """xl create from the config; the guest's console log starts afresh."""
        self.ssh('rm -f %s && xl create %s' % (shlex.quote(CONSOLE_LOG % self.name), shlex.quote(self.config)))

    def domid(self):
        """The guest's domain id, or None when no domain of that name exists (xl domid)."""
        result = self.ssh('xl domid %s' % shlex.quote(self.name), check=False)
        return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip().isdigit() else None

    def state(self):
        """The guest's state letters as xl list shows them (``r-----``, ``---s--``...), or None when it is gone."""
        result = self.ssh('xl list %s' % shlex.quote(self.name), check=False)
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == self.name and len(fields) >= 5:
                return fields[4]
        return None

    def report(self):
        """The guest's last complete report (Report), with dom0's address of each device."""
        command = ('tail -c 262144 {log} 2>/dev/null; echo {sep}; '
                   'domid=$(xl domid {name} 2>/dev/null) && '
                   'xenstore-ls -f /local/domain/0/backend/pci/$domid/0 2>/dev/null; true').format(
                       log=shlex.quote(CONSOLE_LOG % self.name), sep=SEPARATOR, name=shlex.quote(self.name))
        out = self.ssh(command).stdout
        console, _sep, backend = out.partition(SEPARATOR)
        boot, number, seen, powered_off = parse_console(console)
        mapping = parse_backend(backend)
        devices = [{'guest_address': address, 'address': mapping.get(_canonical(address)), 'vendor_id': vendor,
                    'device_id': device, 'driver': driver} for address, vendor, device, driver in seen]
        return Report(boot, number, devices, powered_off)

    def wait_for(self, condition, timeout=240, what='the guest'):
        """Poll the report until ``condition(report)`` holds; AssertionError with the last report after ``timeout``."""
        deadline = time.time() + timeout
        report = None
        while True:
            report = self.report()
            if report.boot is not None and condition(report):
                return report
            if time.time() > deadline:
                tail = self.ssh('tail -n 30 %s' % shlex.quote(CONSOLE_LOG % self.name), check=False).stdout
                raise AssertionError('%s: not seen within %d s; last report %r; console:\n%s'
                                     % (what, timeout, report, tail))
            time.sleep(2)

    def wait_gone(self, timeout=120):
        """Wait until no domain of the guest's name exists; return the last state seen (None when it went)."""
        deadline = time.time() + timeout
        state = self.state()
        while state is not None and time.time() < deadline:
            time.sleep(2)
            state = self.state()
        return state

    def shutdown(self):
        """Ask the guest to power off (xl shutdown: the guest's kernel runs its poweroff); do not wait."""
        self.ssh('xl shutdown %s' % shlex.quote(self.name))

    def destroy(self):
        """xl destroy when the guest exists."""
        self.ssh('xl destroy %s 2>/dev/null || true' % shlex.quote(self.name))

    def remove_config(self):
        self.ssh('rm -f %s' % shlex.quote(self.config))


def _ssh_dom0(command, check=True):
    result = subprocess.run([os.path.join(RIG_DIR, 'ssh-dom0'), command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit('dom0: %s failed (rc=%d): %s%s' % (command, result.returncode, result.stdout, result.stderr))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='tests/rig/guest',
        description="The x86_64 rig's PV guest: it reports the PCI devices it sees on its console.")
    commands = parser.add_subparsers(dest='command')
    start = commands.add_parser('start', help='write /etc/xen/NAME.cfg with these devices and xl create it')
    start.add_argument('name')
    start.add_argument('devices', nargs='*', help='dom0 PCI addresses (assignable already)')
    report = commands.add_parser('report', help="print the guest's last report as JSON (waits for its first)")
    report.add_argument('name')
    report.add_argument('--timeout', type=int, default=240)
    stop = commands.add_parser('stop', help='xl destroy the guest')
    stop.add_argument('name')
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    guest = Guest(_ssh_dom0, args.name)
    if args.command == 'start':
        guest.write_config(args.devices)
        guest.create()
    elif args.command == 'report':
        found = guest.wait_for(lambda found: found.number > 0, timeout=args.timeout)
        json.dump({'boot': found.boot, 'report': found.number, 'powered_off': found.powered_off,
                   'devices': found.devices}, sys.stdout, indent=2)
        sys.stdout.write('\n')
    else:
        guest.destroy()
    return 0


if __name__ == '__main__':
    sys.exit(main())
