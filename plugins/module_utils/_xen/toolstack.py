# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The Xen toolstack as seen from dom0: libxl's xenstore records and the ``xl`` commands.

libxl keeps one record per assignable device under ``/libxl/pci/DDDD-BB-DD-F/`` (Xen 4.15 and
later; ``/libxl/pciback/`` before): ``driver_path`` is the sysfs path of the driver the device
had, ``domid`` is set while a guest has it. Writing ``driver_path`` ourselves is what lets
``xl pci-assignable-remove -r`` give back a device this collection assigned, and reading it is
how this collection gives back a device that ``xl pci-assignable-add`` assigned.

A guest's devices are what ``xl pci-list`` shows (libxl reads them from the guest's PV PCI
backend, ``/local/domain/0/backend/pci/<domid>/0``); ``xl pci-attach`` and ``xl pci-detach``
change them, and ``xl list`` names the domains that run.

Xen's quarantine (``xl pci-assignable-add``'s and ``-remove``'s hypercalls) and ``xl info``'s virt_caps are
asked for in this process through libxenctrl (``_xen.xenctrl``) where it can be loaded, else through xl; xenstore
is read and written through libxenstore (``_xen.xenstore``) the same way, else through the xenstore-* commands.

Commands are run through ``commands``, a ``_host.commands.Commands`` (argument lists only, never a shell string).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.symbols import parse_kernel_version
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    PciAddressError,
    parse_pci_address,
    parse_xenstore_key,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import is_x86
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xenctrl import XenControlError, load_xenctrl
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xenstore import XenStoreError, load_xenstore

_LS_LINE_RE = re.compile(r'^(/\S*) = "(.*)"\s*$')
# xl pci-list (tools/xl/xl_pci.c, pcilist): a "Vdev Device" header, then "%02x.%01x %04x:%02x:%02x.%01x" per device.
_PCI_LIST_RE = re.compile(r'^([0-9a-fA-F]{2})\.([0-7])\s+([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s*$')
_ESCAPE_RE = re.compile(r'\\(\\|"|[0-7]{3}|x[0-9a-fA-F]{2})')
_DRIVERS_PREFIX = '/sys/bus/pci/drivers/'
_LOCAL_DOMAIN = '/local/domain'
_PCI_BACKENDS = '/local/domain/0/backend/pci'


# Xen on Arm passes no PCI device through before 4.21 (Arm's vPCI is off; 4.21 brings it as an
# experimental build option), whatever ``xl info`` says about an IOMMU.
ARM_PCI_PASSTHROUGH_SINCE = (4, 21)
# xen-pciback asks Xen to reset every device it takes (PHYSDEVOP_pci_device_reset) when dom0 is
# not PV, as an Arm dom0 never is: Linux 6.12 does, 6.1 did not. A Xen without PCI support answers
# ENOSYS, and then pciback cannot hold any device.
PCIBACK_ASKS_XEN_RESET_SINCE = (6, 12)
_QUARANTINE_FAILED = 'failed to quarantine'
# What XEN_DOMCTL_assign_device answers where Xen has no PCI passthrough: no IOMMU (EOPNOTSUPP), no PCI support in
# the build (ENOSYS), or on Arm only device-tree devices (ENODEV). Any other errno is a real failure.
_NO_PCI_PASSTHROUGH_ERRNOS = (errno.EOPNOTSUPP, errno.ENOSYS, errno.ENODEV)


def no_pci_device_reset(xen_version, arch):
    """What a Xen without PCI support denies a dom0 whose xen-pciback asks Xen to reset each device."""
    return ("Xen%s on %s has no PCI passthrough support and answers ENOSYS to the PCI device reset that this dom0's "
            "xen-pciback asks for on every device it takes (Linux 6.12's does, on a dom0 that is not PV): pciback "
            'can hold no device on this host, and Xen cannot give any to a guest'
            % (' %d.%d' % tuple(xen_version) if xen_version else '', arch or 'this host'))


class ToolstackError(Exception):
    """A toolstack command failed; the message carries its output."""


class QuarantineRefused(ToolstackError):
    """``xl pci-assignable-add`` did dom0's part but Xen, built without PCI passthrough, refused to quarantine."""


def _unescape(value):
    def replace(match):
        token = match.group(1)
        if token in ('\\', '"'):
            return token
        if token[0] == 'x':
            return chr(int(token[1:], 16))
        return chr(int(token, 8))
    return _ESCAPE_RE.sub(replace, value)


def _canonical(address):
    try:
        return str(parse_pci_address(address.strip()))
    except PciAddressError:
        return address.strip()


def _parse_opts(text):
    """libxl's ``opts-<n>`` (``msitranslate=0,power_mgmt=0,permissive=1,rdm_policy=strict``) as {key: value}."""
    options = {}
    for item in text.split(','):
        if '=' in item:
            key, value = item.split('=', 1)
            options[key.strip()] = value.strip()
    return options


def driver_path_for(driver):
    return _DRIVERS_PREFIX + driver


def driver_from_path(path):
    """``/sys/bus/pci/drivers/e1000e`` -> ``e1000e``; None for anything else."""
    if path and path.startswith(_DRIVERS_PREFIX):
        name = path[len(_DRIVERS_PREFIX):].strip('/')
        if name and '/' not in name and name not in ('.', '..'):
            return name
    return None


class XenToolstack:
    """xenstore and xl, for one dom0 whose xenstored is known to run."""

    def __init__(self, commands, xen_version=None, arch=None, kernel_release=None, xenctrl_loader=load_xenctrl,
                 xenstore_loader=load_xenstore):
        self.commands = commands
        self.xen_version = xen_version
        self.arch = arch
        self.kernel_version = parse_kernel_version(kernel_release)
        self.libxl_base = '/libxl/pciback' if xen_version is not None and xen_version < (4, 15) else '/libxl/pci'
        self._paths = {}
        self._xenctrl_loader = xenctrl_loader
        self._xenctrl = None              # a XenControl once loaded, False when it cannot be had
        self.xenctrl_note = None          # why libxenctrl is not used, once tried
        self._xenstore_loader = xenstore_loader
        self._xenstore = None             # a XenStore once connected, False when it cannot be had
        self.xenstore_note = None         # why libxenstore is not used, once tried

    @classmethod
    def for_host(cls, commands, host):
        """The toolstack of the dom0 described by ``host`` (a XenHost): its Xen version, arch and kernel."""
        return cls(commands, host.xen_version_tuple(), host.arch, host.kernel_release)

    def _tool(self, name):
        if name not in self._paths:
            self._paths[name] = self.commands.find(name)
        if self._paths[name] is None:
            raise ToolstackError('%s is not installed on this dom0' % name)
        return self._paths[name]

    def available(self):
        return all(self.commands.find(name) for name in ('xl', 'xenstore-ls', 'xenstore-write', 'xenstore-rm'))

    def _run(self, argv, allow_missing_path=False):
        rc, out, err = self.commands.run([self._tool(argv[0])] + list(argv[1:]))
        if rc != 0:
            if allow_missing_path and 'No such file or directory' in (err + out):
                return ''
            raise ToolstackError('%s failed (rc=%d): %s' % (' '.join(argv), rc, (err or out).strip()))
        return out

    def xenstore(self):
        """The XenStore of this dom0 (libxenstore in this process, connected), or None: then the xenstore-* commands."""
        if self._xenstore is None:
            store, self.xenstore_note = self._xenstore_loader()
            self._xenstore = store or False
        return self._xenstore or None

    def xenstore_through(self):
        """'libxenstore' when xenstore is read and written in this process, 'commands' when through xenstore-*."""
        return 'libxenstore' if self.xenstore() is not None else 'commands'

    def _change_store(self, writes=(), removals=()):
        """Write and remove in one libxenstore transaction; ToolstackError naming the path when xenstored refuses."""
        try:
            self.xenstore().change(writes, removals)
        except XenStoreError as exc:
            raise ToolstackError('xenstore: %s' % exc)

    def list_tree(self, path):
        """``xenstore-ls -f path`` as {full path: value}; {} when the path does not exist."""
        store = self.xenstore()
        if store is not None:
            try:
                return store.tree(path)
            except XenStoreError as exc:
                raise ToolstackError('xenstore: %s' % exc)
        out = self._run(['xenstore-ls', '-f', path], allow_missing_path=True)
        tree = {}
        for line in out.splitlines():
            match = _LS_LINE_RE.match(line)
            if match:
                tree[match.group(1)] = _unescape(match.group(2))
        return tree

    def libxl_records(self):
        """{canonical address: {key: value}} for every libxl PCI record (driver_path, domid, name)."""
        records = {}
        prefix = self.libxl_base + '/'
        for path, value in self.list_tree(self.libxl_base).items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split('/')
            address = parse_xenstore_key(parts[0])
            if address is None:
                continue
            record = records.setdefault(str(address), {})
            if len(parts) == 2:
                record[parts[1]] = value
        return records

    def live_domains(self):
        """The domids that have a ``/local/domain/<domid>`` (dom0 included), in one ``xenstore-list``.

        libxl makes that directory when it builds a domain and removes it when it destroys one.
        """
        store = self.xenstore()
        if store is not None:
            try:
                names = store.directory(_LOCAL_DOMAIN) or []
            except XenStoreError as exc:
                raise ToolstackError('xenstore: %s' % exc)
        else:
            names = self._run(['xenstore-list', _LOCAL_DOMAIN]).splitlines()
        return set(name.strip() for name in names if name.strip().isdigit())

    def backend_devices(self):
        """{canonical address: domid} for devices in the PV PCI backend of a live domain (a PV guest's pcifront).

        A destroyed guest can leave its ``backend/pci/<domid>`` behind, closed (state 6): its devices are not in use.
        As libxl decided before Xen 4.15 (get_all_assigned_devices), only the backends of the domains listed under
        ``/local/domain`` count; that list is read once, and only when there is a backend at all.
        """
        return dict((address, entry['domid']) for address, entry in self.pci_backends().items())

    def pci_backends(self):
        """{canonical address: {'domid': str, 'options': {key: value}}} for the devices in the PV PCI backend of a
        live domain, with the options libxl wrote for each (``opts-<n>``: msitranslate, power_mgmt, permissive,
        rdm_policy); one ``xenstore-ls``, and one ``xenstore-list`` of the live domains when there is a backend.
        """
        devices = {}
        options = {}
        for path, value in self.list_tree(_PCI_BACKENDS).items():
            parts = path.split('/')
            # /local/domain/0/backend/pci/<domid>/<devid>/dev-<n> = DDDD:BB:DD.F, .../opts-<n> = k=v,k=v
            if len(parts) != 9 or '-' not in parts[8]:
                continue
            key, index = parts[8].split('-', 1)
            if key == 'dev' and value:
                devices[(parts[6], parts[7], index)] = _canonical(value)
            elif key == 'opts':
                options[(parts[6], parts[7], index)] = _parse_opts(value)
        used = {}
        if devices:
            live = self.live_domains()
            for slot, address in sorted(devices.items()):
                if slot[0] in live:
                    used[address] = {'domid': slot[0], 'options': options.get(slot, {})}
        return used

    # ---- domains and their devices ---------------------------------------------------------------
    def domains(self):
        """The running domains, as ``xl list`` prints them: [{'name', 'domid' (int), 'state'}], dom0 included.

        xl prints ``%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f`` per domain (name, id, memory, vCPUs, state
        letters r b p s c d, CPU time); a name may hold blanks, so the five last fields are split off the right.
        """
        out = self._run(['xl', 'list'])
        domains = []
        for line in out.splitlines()[1:]:
            fields = line.rsplit(None, 5)
            if len(fields) == 6 and fields[1].isdigit():
                domains.append({'name': fields[0], 'domid': int(fields[1]), 'state': fields[4]})
        return domains

    def pci_list(self, domid):
        """``xl pci-list <domid>``: [{'address': canonical, 'vslot': 'DD.F' as the guest sees it}] in xl's order.

        xl prints nothing at all (not even its header) for a domain without PCI devices.
        """
        out = self._run(['xl', 'pci-list', str(domid)])
        devices = []
        for line in out.splitlines():
            match = _PCI_LIST_RE.match(line.strip())
            if match:
                devices.append({'address': match.group(3).lower(),
                                'vslot': '%s.%s' % (match.group(1).lower(), match.group(2))})
        return devices

    def pci_attach(self, domid, spec):
        """``xl pci-attach <domid> <PCI_SPEC_STRING>`` (xl-pci-configuration(5)): libxl_device_pci_add."""
        self._run(['xl', 'pci-attach', str(domid), spec])

    def pci_detach(self, domid, address):
        """``xl pci-detach <domid> <BDF>``: libxl_device_pci_remove (fails for a device the guest does not have)."""
        self._run(['xl', 'pci-detach', str(domid), str(address)])

    def guest_passthrough_limit(self):
        """Why Xen on this host cannot give a PCI device to a guest, or None when it may (xl has the last word).

        Xen on Arm passes no PCI device to a guest before 4.21 (no vPCI for domUs, and Linux has no PV PCI frontend
        there); from 4.21 it needs an IOMMU (``directio`` in ``xl info``'s virt_caps). On x86 a PV guest can be
        given a device even without an IOMMU, so xl decides.
        """
        if not self._non_x86():
            return None
        if self.xen_version is not None and self.xen_version < ARM_PCI_PASSTHROUGH_SINCE:
            return ('Xen %d.%d on %s has no PCI passthrough to guests (Arm has it from Xen %d.%d on, as an experimental '
                    'build option; before, Xen assigns no PCI device to a domU and Linux has no PV PCI frontend there): '
                    'no device can be attached to a guest on this host'
                    % (self.xen_version + (self.arch,) + ARM_PCI_PASSTHROUGH_SINCE))
        caps = self._virt_caps()
        if 'directio' not in caps:
            return ('Xen%s on %s reports no PCI passthrough support (virt_caps: %s): no IOMMU, or a hypervisor built '
                    'without PCI passthrough; no device can be attached to a guest on this host'
                    % (' %d.%d' % self.xen_version if self.xen_version else '', self.arch, caps or 'none'))
        return None

    def record_path(self, address_key, key):
        return '%s/%s/%s' % (self.libxl_base, address_key, key)

    def write_driver_paths(self, drivers):
        """Write libxl's ``driver_path`` for {PciAddress: driver name} in one libxenstore transaction, or one command."""
        if not drivers:
            return
        if self.xenstore() is not None:
            self._change_store(writes=[(self.record_path(address.xenstore_key, 'driver_path'), driver_path_for(driver))
                                       for address, driver in sorted(drivers.items())])
            return
        argv = ['xenstore-write']
        for address, driver in sorted(drivers.items()):
            argv.extend([self.record_path(address.xenstore_key, 'driver_path'), driver_path_for(driver)])
        self._run(argv)

    def remove_driver_paths(self, addresses):
        """Remove libxl's ``driver_path`` of each PciAddress (what ``xl pci-assignable-remove -r`` does).

        One libxenstore transaction, or one ``xenstore-rm``, for them all (a path that is already gone is passed
        over); should it fail, each path goes on its own, so that one that cannot be removed does not keep the others.
        """
        paths = [self.record_path(address.xenstore_key, 'driver_path') for address in addresses]
        if not paths:
            return
        if self.xenstore() is not None:
            try:
                self._change_store(removals=paths)
                return
            except ToolstackError:
                pass
        else:
            rc, _out, _err = self.commands.run([self._tool('xenstore-rm')] + paths)
            if rc == 0:
                return
        errors = []
        for path in paths:
            try:
                self._remove_path(path)
            except ToolstackError as exc:
                errors.append(str(exc))
        if errors:
            raise ToolstackError('; '.join(errors))

    def _non_x86(self):
        return self.arch is not None and not is_x86(self.arch)

    def no_pci_passthrough(self, detail):
        """What a Xen that cannot pass PCI devices through lacks, and what the task did all the same."""
        return ('Xen%s on %s has no PCI passthrough support (%s): the devices are held by pciback in dom0 and '
                'listed by xl pci-assignable-list, but Xen does not quarantine them and cannot give them to a guest'
                % (' %d.%d' % self.xen_version if self.xen_version else '', self.arch or 'this host', detail))

    def xenctrl(self):
        """The XenControl of this dom0 (libxenctrl in this process, its handle open), or None: then xl does it."""
        if self._xenctrl is None:
            control, self.xenctrl_note = self._xenctrl_loader(self.xen_version)
            self._xenctrl = control or False
        return self._xenctrl or None

    def quarantine_through(self):
        """'libxenctrl' when Xen's quarantine is asked for in this process, 'xl' when through xl's commands."""
        return 'libxenctrl' if self.xenctrl() is not None else 'xl'

    def _virt_caps(self):
        """``xl info``'s virt_caps ('' when it says none): from XEN_SYSCTL_physinfo in this process where libxenctrl
        can be used, else from ``xl info``."""
        control = self.xenctrl()
        if control is not None:
            try:
                return control.virt_caps()
            except XenControlError as exc:
                self.xenctrl_note = 'libxenctrl: %s' % exc
        out = self._run(['xl', 'info'])
        caps = ''
        for line in out.splitlines():
            if line.split(':', 1)[0].strip() == 'virt_caps':
                caps = line.split(':', 1)[1].strip()
        return caps

    def quarantine_capable(self):
        """(capable, reason): whether Xen can quarantine PCI devices, from its virt_caps and the arch."""
        caps = self._virt_caps()
        if self._non_x86() and self.xen_version is not None and self.xen_version < ARM_PCI_PASSTHROUGH_SINCE:
            if self.kernel_version is not None and self.kernel_version >= PCIBACK_ASKS_XEN_RESET_SINCE:
                return False, no_pci_device_reset(self.xen_version, self.arch)
            return False, self.no_pci_passthrough('Arm has it from Xen %d.%d on, as an experimental build option'
                                                  % ARM_PCI_PASSTHROUGH_SINCE)
        if 'directio' in caps:
            return True, None
        return False, ('Xen reports no PCI passthrough support (virt_caps: %s): no IOMMU, or a '
                       'hypervisor built without PCI passthrough; devices are held by pciback but '
                       'not quarantined' % (caps or 'none'))

    def quarantine(self, address, named=False):
        """Have Xen quarantine a device that pciback holds: what ``xl pci-assignable-add`` does to such a device.

        Through libxenctrl where it can be used (one hypercall; libxl's ``name`` record, ``named``, removed as xl
        removes it), else through ``xl pci-assignable-add`` (one process). Off x86, a Xen built without PCI
        passthrough refuses, after dom0's part: that raises QuarantineRefused. On x86 a refused quarantine stays an
        error (ToolstackError).
        """
        control = self.xenctrl()
        if control is None:
            rc, out, err = self.commands.run([self._tool('xl'), 'pci-assignable-add', str(address)])
            if rc == 0:
                return
            text = (err or out).strip()
            refused = _QUARANTINE_FAILED in text
            text = 'xl pci-assignable-add %s failed (rc=%d): %s' % (address, rc, text)
        else:
            try:
                control.quarantine(address)
            except XenControlError as exc:
                refused = exc.errno in _NO_PCI_PASSTHROUGH_ERRNOS
                text = '%s %s (%s)' % (_QUARANTINE_FAILED, address, exc)
            else:
                self._forget_name(address, named)
                return
        if self._non_x86() and refused:
            raise QuarantineRefused(self.no_pci_passthrough(text))
        raise ToolstackError(text)

    def dequarantine(self, address, named=False):
        """Take a device out of Xen's quarantine, back to dom0: libxenctrl's ``xc_deassign_device`` to DOMID_IO (and
        libxl's ``name`` record removed), else ``xl pci-assignable-remove`` without ``-r``, which also unbinds the
        device from pciback and removes its slot. Either way the caller finishes in sysfs."""
        control = self.xenctrl()
        if control is None:
            self._run(['xl', 'pci-assignable-remove', str(address)])
            return
        try:
            control.dequarantine(address)
        except XenControlError as exc:
            raise ToolstackError('failed to de-quarantine %s (%s)' % (address, exc))
        self._forget_name(address, named)

    def _forget_name(self, address, named):
        if named:
            self._remove_path(self.record_path(address.xenstore_key, 'name'))

    def _remove_path(self, path):
        """Remove one xenstore path (passed over when it is not there)."""
        if self.xenstore() is not None:
            self._change_store(removals=[path])
        else:
            self._run(['xenstore-rm', path], allow_missing_path=True)
