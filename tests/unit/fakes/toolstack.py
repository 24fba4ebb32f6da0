# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xenstored, xl and modprobe for a FakeKernel, following libxl 4.17 (tools/libs/light/libxl_pci.c).

``FakeXen.commands`` is a Commands object for the collection: ``xenstore-ls -f``,
``xenstore-write``, ``xenstore-rm``, ``xl pci-assignable-add/-remove [-r]/-list``, ``xl info``
and ``modprobe`` act on the fake host as the real tools act on a dom0, sysfs writes included
(through the same KernelSysfs, so injected failures apply to them too).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.xenpci.passthrough.plugins.module_utils.xen_toolstack import Commands
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import PCIBACK, KernelSysfs

DOMID_IO = 0x7ff1


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
        if name == 'modprobe' or (self.tools and name in ('xl', 'xenstore-ls', 'xenstore-write', 'xenstore-rm')):
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
        handler = {'xenstore-ls': self._ls, 'xenstore-write': self._write, 'xenstore-rm': self._rm,
                   'xl': self._xl, 'modprobe': self._modprobe}[argv[0]]
        return handler(argv[1:])

    # ---- xenstore --------------------------------------------------------------------------
    def _ls(self, args):
        path = args[-1].rstrip('/')
        if path not in self.store and not any(key.startswith(path + '/') for key in self.store):
            return 1, '', 'xenstore-ls: xs_directory (%s): No such file or directory\n' % path
        lines = ['%s = "%s"' % (key, value.replace('\\', '\\\\').replace('"', '\\"'))
                 for key, value in sorted(self.store.items()) if key.startswith(path + '/')]
        return 0, ''.join(line + '\n' for line in lines), ''

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
        """What ``xl pci-attach`` leaves in xenstore while a guest has the device."""
        self.set('/libxl/pci/%s/domid' % address.replace(':', '-').replace('.', '-'), str(domid))
        self.set('/local/domain/0/backend/pci/%d/0/dev-0' % domid, address)
        self.owner[address] = domid

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
