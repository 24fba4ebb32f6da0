# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xenstored, xl and modprobe for a FakeKernel, following libxl 4.17 (tools/libs/light/libxl_pci.c).

``FakeXen.commands`` is a Commands object for the collection: ``xenstore-ls -f``,
``xenstore-list``, ``xenstore-write``, ``xenstore-rm``, ``xl pci-assignable-add/-remove [-r]/-list``,
``xl info`` and ``modprobe`` act on the fake host as the real tools act on a dom0, sysfs writes
included (through the same KernelSysfs, so injected failures apply to them too). ``attach`` and
``destroy`` leave in xenstore what a guest given a device, then destroyed, leaves there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.xenpci.passthrough.plugins.module_utils.xen_toolstack import Commands
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import PCIBACK, KernelSysfs

DOMID_IO = 0x7ff1
XENBUS_CONNECTED = 4
XENBUS_CLOSED = 6


class FakeXen:
    """A dom0's toolstack. ``quarantine=False`` is a Xen that refuses to quarantine (xl fails after
    dom0's part), by default without ``directio`` in ``xl info``: an x86 Xen without an IOMMU, or
    Debian 12's arm64 Xen 4.17 (built without PCI support). ``directio=True`` with it is a Xen that
    claims an IOMMU and still refuses, as Arm Xen 4.17-4.20 does on a board with an SMMU.
    """

    def __init__(self, kernel, quarantine=True, running=True, tools=True, directio=None):
        self.kernel = kernel
        self.sysfs = KernelSysfs(kernel)
        self.store = {}                   # xenstore path -> value
        self.owner = {}                   # address -> Xen owner domid (absent: dom0)
        self.can_quarantine = quarantine
        self.directio = quarantine if directio is None else directio
        self.tools = tools
        self.calls = []
        self.fail_commands = {}           # 'xl pci-assignable-add' -> [rc or None (run it), ...]
        self.driver_path_at_add = {}      # address -> libxl driver_path when xl pci-assignable-add ran
        if running:
            kernel.start_xenstored()
        self.commands = Commands(self.find, self.run)

    # ---- Commands interface ----------------------------------------------------------------
    def find(self, name):
        if name == 'modprobe' or (self.tools and name in ('xl', 'xenstore-ls', 'xenstore-list', 'xenstore-write',
                                                          'xenstore-rm')):
            return '/usr/sbin/' + name
        return None

    def run(self, argv):
        if not isinstance(argv, (list, tuple)) or not all(isinstance(arg, str) for arg in argv):
            raise TypeError('a command is a list of arguments, never a string for a shell: %r' % (argv,))
        argv = [os.path.basename(argv[0])] + list(argv[1:])
        self.calls.append(argv)
        key = ' '.join(argv[:2])
        pending = self.fail_commands.get(key)
        if pending and pending.pop(0) is not None:
            return 1, '', '%s: injected failure\n' % key
        handler = {'xenstore-ls': self._ls, 'xenstore-list': self._list, 'xenstore-write': self._write,
                   'xenstore-rm': self._rm, 'xl': self._xl, 'modprobe': self._modprobe}[argv[0]]
        return handler(argv[1:])

    # ---- xenstore --------------------------------------------------------------------------
    def _ls(self, args):
        path = args[-1].rstrip('/')
        if path not in self.store and not any(key.startswith(path + '/') for key in self.store):
            return 1, '', 'xenstore-ls: xs_directory (%s): No such file or directory\n' % path
        lines = ['%s = "%s"' % (key, value.replace('\\', '\\\\').replace('"', '\\"'))
                 for key, value in sorted(self.store.items()) if key.startswith(path + '/')]
        return 0, ''.join(line + '\n' for line in lines), ''

    def _list(self, args):
        path = args[-1].rstrip('/')
        below = [key[len(path) + 1:] for key in self.store if key.startswith(path + '/')]
        if path not in self.store and not below:
            return 1, '', 'xenstore-list: could not list path %s\n' % path
        return 0, ''.join('%s\n' % name for name in sorted(set(key.split('/')[0] for key in below))), ''

    def _write(self, args):
        for index in range(0, len(args), 2):
            self.set(args[index], args[index + 1])
        return 0, '', ''

    def _rm(self, args):
        for path in args:
            if path not in self.store:
                return 1, '', 'xenstore-rm: could not remove path %s\n' % path
            for key in [key for key in self.store if key == path or key.startswith(path + '/')]:
                del self.store[key]
        return 0, '', ''

    def set(self, path, value):
        parts = path.strip('/').split('/')
        for depth in range(1, len(parts)):
            self.store.setdefault('/' + '/'.join(parts[:depth]), '')
        self.store[path] = value

    def record(self, address, key):
        return self.store.get('/libxl/pci/%s/%s' % (address.replace(':', '-').replace('.', '-'), key))

    def attach(self, address, domid):
        """What ``xl pci-attach`` leaves while guest ``domid`` has the device: the guest's own directory
        ``/local/domain/<domid>``, libxl's ``domid`` in the device's record (libxl__device_pci_add), the
        next ``dev-<n>`` of the guest's PV PCI backend, connected (libxl__device_pci_add_xenstore), and
        Xen's owner."""
        self.set('/local/domain/%d/domid' % domid, str(domid))
        self.set('/local/domain/%d/name' % domid, 'guest%d' % domid)
        self.set(self._xs_key(address, 'domid'), str(domid))
        backend = '/local/domain/0/backend/pci/%d/0' % domid
        index = int(self.store.get(backend + '/num_devs', '0'))
        self.set(backend + '/frontend-id', str(domid))
        self.set(backend + '/dev-%d' % index, address)
        self.set(backend + '/state-%d' % index, str(XENBUS_CONNECTED))
        self.set(backend + '/num_devs', str(index + 1))
        self.set(backend + '/state', str(XENBUS_CONNECTED))
        self.owner[address] = domid

    def destroy(self, domid):
        """Guest ``domid`` is gone (it powered itself off with ``on_poweroff="destroy"``, or ``xl destroy``), as
        libxl 4.17 tears it down: libxl__device_pci_destroy_all deassigns each of its devices (Xen puts a
        device that was quarantined back in quarantine, others go back to dom0) and drops the ``domid`` of
        its record, but the PV PCI backend ``backend/pci/<domid>`` stays behind, closed (state 6), because
        libxl__device_pci_remove_xenstore waits for a connected backend and gives up; the guest's
        ``/local/domain/<domid>`` is removed."""
        for address, owner in list(self.owner.items()):
            if owner == domid:
                if self.can_quarantine:
                    self.owner[address] = DOMID_IO
                else:
                    del self.owner[address]
                self.store.pop(self._xs_key(address, 'domid'), None)
        backend = '/local/domain/0/backend/pci/%d/' % domid
        for key in self.store:
            if key.startswith(backend) and key.rsplit('/', 1)[-1].split('-')[0] == 'state':
                self.store[key] = str(XENBUS_CLOSED)
        guest = '/local/domain/%d' % domid
        for key in [key for key in self.store if key == guest or key.startswith(guest + '/')]:
            del self.store[key]

    # ---- xl (libxl 4.17 semantics) -----------------------------------------------------------
    def _xl(self, args):
        command, rest = args[0], args[1:]
        if command == 'info':
            if self.kernel.arch == 'x86_64':
                caps = 'pv hvm hvm_directio pv_directio hap shadow' if self.directio else 'pv hvm hap shadow'
            else:       # what Xen 4.17 on arm64 prints (hvm_directio with an IOMMU)
                caps = 'hvm hvm_directio hap vpmu iommu_hap_pt_share gnttab-v1' if self.directio else 'hvm hap vpmu gnttab-v1'
            return 0, 'host : dom0\nrelease : %s\nvirt_caps : %s\nxen_major : 4\n' % (self.kernel.release, caps), ''
        if command == 'pci-assignable-list':
            if not self.kernel.pciback_loaded():
                return 0, '', 'Looks like pciback driver not loaded\n'
            bound = sorted(self.sysfs.pciback_bound())
            return 0, ''.join('%s \n' % address for address in bound if self.record(address, 'domid') is None), ''
        if command == 'pci-assignable-add':
            return self._assignable_add(rest[-1])
        if command == 'pci-assignable-remove':
            return self._assignable_remove(rest[-1], '-r' in rest)
        return 1, '', 'unknown xl command %s\n' % command

    def _xs_key(self, address, key):
        return '/libxl/pci/%s/%s' % (address.replace(':', '-').replace('.', '-'), key)

    def _assignable_add(self, address):
        kernel, sysfs = self.kernel, self.sysfs
        if not kernel.exists(address):
            return 1, '', "Couldn't lstat %s/%s\n" % (sysfs.devices_dir, address)
        if not kernel.pciback_loaded():
            return 1, '', 'Looks like pciback driver is not loaded\n'
        warning = ''
        driver = kernel.driver(address)
        self.driver_path_at_add[address] = self.store.get(self._xs_key(address, 'driver_path'))
        try:
            if driver == PCIBACK:
                warning = '%s already assigned to pciback\n' % address
            else:
                if driver is not None:
                    sysfs.unbind(address, driver)
                    self.set(self._xs_key(address, 'driver_path'), '/sys/bus/pci/drivers/' + driver)
                elif self.store.get(self._xs_key(address, 'driver_path')) is None:
                    warning = '%s not bound to a driver, will not be rebound.\n' % address
                if address not in sysfs.pciback_slots():
                    sysfs.pciback_new_slot(address)
                sysfs.bind(address, PCIBACK)
        except OSError as exc:
            return 1, '', 'Couldn\'t bind device to pciback!: %s\n' % os.strerror(exc.errno)
        self.store.pop(self._xs_key(address, 'name'), None)
        if not self.can_quarantine:
            return 1, '', warning + 'libxl: error: libxl_pci.c:837:libxl__device_pci_assignable_add: ' \
                'failed to quarantine %s\n' % address
        self.owner[address] = DOMID_IO
        return 0, '', warning

    def _assignable_remove(self, address, rebind):
        kernel, sysfs = self.kernel, self.sysfs
        if not kernel.pciback_loaded():
            return 1, '', 'Looks like pciback driver is not loaded\n'
        if self.owner.get(address) != DOMID_IO:
            return 1, '', 'failed to de-quarantine %s\n' % address
        del self.owner[address]
        if kernel.driver(address) == PCIBACK:
            for step in (lambda: sysfs.unbind(address, PCIBACK), lambda: sysfs.pciback_remove_slot(address)):
                try:
                    step()
                except OSError:
                    pass
        warning = ''
        if rebind:
            path = self.store.get(self._xs_key(address, 'driver_path'))
            if path:
                try:
                    sysfs.write(os.path.join(kernel.root, path.lstrip('/'), 'bind'), address)
                except OSError as exc:
                    warning = "Couldn't bind device to %s: %s\n" % (path, os.strerror(exc.errno))
                del self.store[self._xs_key(address, 'driver_path')]
            else:
                warning = "Couldn't find path for original driver; not rebinding\n"
        self.store.pop(self._xs_key(address, 'name'), None)
        return 0, '', warning

    # ---- modprobe ------------------------------------------------------------------------------
    def _modprobe(self, args):
        names = [arg for arg in args if not arg.startswith('-')]
        name = names[0]
        if name in ('xen-pciback', 'xen_pciback'):
            if self.kernel.pciback_loaded():
                return 0, '', ''
            try:
                self.kernel.load_pciback()
            except OSError as exc:
                return 1, '', 'modprobe: ERROR: could not insert xen_pciback: %s\n' % os.strerror(exc.errno)
            return 0, '', ''
        if name.startswith('pci:'):
            for address in self.kernel._devices:
                if self.sysfs.attribute(address, 'modalias') == name:
                    self.kernel.load_module_for(address)
            return 0, '', ''
        return 1, '', 'modprobe: FATAL: Module %s not found.\n' % name


def errno_name(code):
    return errno.errorcode.get(code, str(code))
