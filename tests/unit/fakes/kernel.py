# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A Xen dom0 in a temporary directory: sysfs, procfs and /boot laid out like the kernel's, plus
the kernel's reactions to sysfs writes.

The tree is real (files, directories and symlinks under ``root``), so the collection's readers
run unchanged on it. Writes go through ``KernelSysfs``, the collection's own ``PciSysfs`` with
the kernel's behaviour added after the real write: writing an address to ``drivers/X/unbind``
removes the ``driver`` link, pciback's ``bind`` only takes a device in ``slots`` (or with
``driver_override`` = pciback), ``remove_slot`` of an unknown address fails with ENOENT,
``reset_method`` takes what Linux 5.15+ takes (see ``_reset_method``), ``sriov_numvfs`` creates and
removes virtual functions as ``sriov_numvfs_store`` does (see ``add_sriov``), and any write can be made
to fail with an errno on demand.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import shutil

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs

PCIBACK = 'pciback'
# drivers/pci/pci.c pci_reset_fn_methods[] (PCI_NUM_RESET_METHODS is one more: index 0 ends the list)
RESET_METHODS = ('device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus', 'cxl_bus')
DEFAULT_RESET = 'default'
_HIDE_LIST_RE = re.compile(r'^(?:\((?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]\))+$')
_SLOT_RE = re.compile(r'^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$')


def _write_file(path, text=''):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with open(path, 'w') as handle:
        handle.write(text)


def _read_file(path):
    with open(path) as handle:
        return handle.read()


def _symlink(target, link):
    directory = os.path.dirname(link)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.relpath(target, directory), link)


class FakeKernel:
    """The tree and the rules. ``paths`` is the HostPaths the collection code is given."""

    def __init__(self, root, arch='x86_64', release='6.1.0-test-amd64', xen=True, dom0=True,
                 pciback_build='module', xen_version=(4, 17)):
        self.root = str(root)
        self.paths = HostPaths(self.root)
        self.arch = arch
        self.release = release
        self.xen_version = xen_version
        self.uname = ('Linux', 'dom0', release, '#1 SMP', arch)
        self.pciback_build = pciback_build
        self.failures = {}          # path relative to root -> [errno, ...] for the next writes
        self.refuse = {}            # driver -> set of addresses whose probe fails (ENODEV/EBUSY)
        self.resets = {}            # address -> number of function resets
        self.writes = []            # (path relative to root, text): what the collection wrote
        self.module_drivers = {}    # modalias-loadable driver name -> ids it claims
        self.driver_ids = {}        # loaded driver -> set of (vendor, device)
        self._devices = {}          # address -> dict(vendor, device, dir)
        self._unplugged = {}        # address -> what add_device recorded, for rescan()
        self._after_writes = {}     # path relative to root -> [callable, ...] to run after the next write
        self.sriov_configure = set()    # drivers that implement sriov_configure (can set sriov_numvfs)
        os.makedirs(os.path.join(self.root, 'sys', 'devices', 'pci0000:00'))
        os.makedirs(self.paths.pci_devices)
        os.makedirs(self.paths.pci_drivers)
        _write_file(os.path.join(self.paths.sys, 'bus', 'pci', 'drivers_probe'))
        _write_file(os.path.join(self.paths.proc, 'sys', 'kernel', 'random', 'boot_id'),
                    '0f0e0d0c-0000-4000-8000-000000000001\n')
        _write_file(os.path.join(self.paths.proc, 'net', 'route'),
                    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n')
        _write_file(os.path.join(self.paths.proc, 'net', 'ipv6_route'))
        _write_file(os.path.join(self.paths.proc, 'self', 'mountinfo'))
        _write_file(os.path.join(self.paths.proc, '1', 'comm'), 'systemd\n')
        symbol = 'CONFIG_XEN_PCIDEV_BACKEND' if arch == 'x86_64' else 'CONFIG_XEN_PCIDEV_STUB'
        value = {'module': 'm', 'builtin': 'y'}.get(pciback_build)
        config = '# Linux kernel config\nCONFIG_XEN=y\n'
        config += ('%s=%s\nCONFIG_XEN_PCI_STUB=y\n' % (symbol, value)) if value else '# %s is not set\n' % symbol
        _write_file(os.path.join(self.paths.boot, 'config-' + release), config)
        if xen:
            _write_file(os.path.join(self.paths.sys, 'hypervisor', 'type'), 'xen\n')
            for name, part in zip(('major', 'minor', 'extra'), (str(xen_version[0]), str(xen_version[1]), '.5')):
                _write_file(os.path.join(self.paths.sys, 'hypervisor', 'version', name), part + '\n')
            _write_file(os.path.join(self.paths.proc, 'xen', 'capabilities'), 'control_d\n' if dom0 else '')

    # ---- building the host ---------------------------------------------------------------
    def rel(self, path):
        return os.path.relpath(path, self.root)

    def set_boot_id(self, boot_id):
        _write_file(os.path.join(self.paths.proc, 'sys', 'kernel', 'random', 'boot_id'), boot_id + '\n')

    def start_xenstored(self):
        _write_file(os.path.join(self.paths.proc, '412', 'comm'), 'xenstored\n')

    def add_driver(self, name, ids=(), module=None):
        """Register a PCI driver that claims the (vendor, device) ``ids``."""
        base = os.path.join(self.paths.pci_drivers, name)
        for attribute in ('bind', 'unbind', 'new_id', 'remove_id'):
            _write_file(os.path.join(base, attribute))
        if module:
            os.makedirs(os.path.join(self.paths.sys, 'module', module), exist_ok=True)
            _symlink(os.path.join(self.paths.sys, 'module', module), os.path.join(base, 'module'))
        self.driver_ids[name] = set(ids)
        return base

    def load_pciback(self, hide=''):
        """Load xen-pciback (or boot with it built in) with ``hide``. A list pcistub_init rejects (an entry that is
        not ``(DDDD:BB:DD.F)`` or ``(BB:DD.F)``) fails the module's load (EINVAL, nothing left in sysfs); built in,
        the parameter shows the text but the PCI driver never registers."""
        if self.pciback_build == 'absent':
            raise OSError(errno.ENODEV, 'xen-pciback is not in this kernel')
        if hide and not _HIDE_LIST_RE.match(hide):
            if self.pciback_build == 'module':
                raise OSError(errno.EINVAL, 'Invalid argument')
            _write_file(os.path.join(self.paths.pciback_module, 'parameters', 'hide'), hide + '\n')
            return
        base = self.add_driver(PCIBACK, module='xen_pciback' if self.pciback_build == 'module' else None)
        for attribute in ('new_slot', 'remove_slot', 'slots', 'permissive', 'quirks', 'irq_handlers',
                          'irq_handler_state', 'allow_interrupt_control'):
            _write_file(os.path.join(base, attribute))
        parameters = os.path.join(self.paths.pciback_module, 'parameters')
        _write_file(os.path.join(parameters, 'hide'), hide + '\n')
        _write_file(os.path.join(parameters, 'permissive'), 'N\n')
        _write_file(os.path.join(parameters, 'passthrough'), '0\n')
        if self.pciback_build == 'module':
            _write_file(os.path.join(self.paths.pciback_module, 'initstate'), 'live\n')
        for address in re.findall(r'\(([^)]*)\)', hide):
            self._add_slot(address)
            if address in self._devices and self.driver(address) is None:
                self._bind(address, PCIBACK)

    def add_device(self, address, vendor='8086', device='100e', class_code='020000', driver=None,
                   parent=None, iommu_group=None, net=(), block=(), boot_vga=None, reset_methods='flr bus',
                   modalias=None, config=None, reset_enabled=None):
        """Add a PCI function (under the bridge ``parent`` if given) and bind ``driver`` to it.

        ``reset_methods``: the resets the kernel finds the function supports, space-separated in
        its order (None: none, and no ``reset``/``reset_method`` file); ``reset_enabled``: what
        ``reset_method`` shows, when an earlier write narrowed it (by default all of them).

        ``config``: the bytes of its config space (``fakes.config_space.config_space`` builds them);
        by default the file is empty, as an unprivileged reader of a real one would find it short.
        """
        parent_dir = self._devices[parent]['dir'] if parent else os.path.join(self.root, 'sys', 'devices', 'pci0000:00')
        directory = os.path.join(parent_dir, address)
        os.makedirs(directory)
        files = {
            'vendor': '0x%s' % vendor, 'device': '0x%s' % device, 'class': '0x%s' % class_code,
            'subsystem_vendor': '0x%s' % vendor, 'subsystem_device': '0x0001', 'driver_override': '(null)',
            'modalias': modalias or 'pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X' % (
                int(vendor, 16), int(device, 16), int(vendor, 16), 1,
                int(class_code[:2], 16), int(class_code[2:4], 16), int(class_code[4:], 16)),
            'enable': '0', 'irq': '11', 'config': '',
        }
        if reset_methods is not None:
            files['reset'] = ''
            files['reset_method'] = reset_methods if reset_enabled is None else reset_enabled
        if boot_vga is not None:
            files['boot_vga'] = '1' if boot_vga else '0'
        for name, text in files.items():
            _write_file(os.path.join(directory, name), text + '\n')
        if config is not None:
            with open(os.path.join(directory, 'config'), 'wb') as handle:
                handle.write(config)
        _symlink(directory, os.path.join(self.paths.pci_devices, address))
        self._devices[address] = {'vendor': vendor, 'device': device, 'dir': directory,
                                  'reset_supported': (reset_methods or '').split()}
        if iommu_group is not None:
            group = os.path.join(self.paths.sys, 'kernel', 'iommu_groups', str(iommu_group))
            _symlink(directory, os.path.join(group, 'devices', address))
            _symlink(group, os.path.join(directory, 'iommu_group'))
        for interface in net:
            self.add_interface(interface, address)
        for disk in block:
            disk_dir = os.path.join(directory, 'host0', 'block', disk)
            _write_file(os.path.join(disk_dir, 'dev'), '%s\n' % self._next_block_number())
            _symlink(disk_dir, os.path.join(self.paths.sys, 'block', disk))
            _symlink(disk_dir, os.path.join(self.paths.sys, 'dev', 'block', _read_file(os.path.join(disk_dir, 'dev')).strip()))
        if driver:
            if driver not in self.driver_ids:
                self.add_driver(driver, ids=[(vendor, device)])
            self.driver_ids[driver].add((vendor, device))
            self._bind(address, driver)
        return directory

    def add_sriov(self, address, totalvfs=7, vf_device='10ca', vf_driver='igbvf', offset=0x80, stride=2,
                  configurable=True):
        """Give the function ``address`` (a PF) an SR-IOV capability, as ``sriov_pf_dev_attr_group`` shows it.

        ``vf_driver``: the dom0 driver that claims its VFs (``vendor``:``vf_device``), or None;
        ``configurable``: the PF's driver implements ``sriov_configure`` (needed to write ``sriov_numvfs``).
        A VF's address is the PF's routing id plus ``offset`` + ``stride`` * index (pci_iov_virtfn_bus/devfn).
        """
        info = self._devices[address]
        info['sriov'] = {'totalvfs': totalvfs, 'vf_device': vf_device, 'offset': offset, 'stride': stride,
                         'numvfs': 0, 'autoprobe': True}
        for name, text in (('sriov_totalvfs', str(totalvfs)), ('sriov_numvfs', '0'), ('sriov_drivers_autoprobe', '1'),
                           ('sriov_offset', str(offset)), ('sriov_stride', str(stride)), ('sriov_vf_device', vf_device)):
            _write_file(os.path.join(info['dir'], name), text + '\n')
        if vf_driver:
            if vf_driver not in self.driver_ids:
                self.add_driver(vf_driver)
            self.driver_ids[vf_driver].add((info['vendor'], vf_device))
        if configurable and self.driver(address) is not None:
            self.sriov_configure.add(self.driver(address))

    def vf_address(self, pf, index):
        """The address of VF ``index`` of ``pf`` (pci_iov_virtfn_bus and pci_iov_virtfn_devfn)."""
        match = _SLOT_RE.match(pf)
        sriov = self._devices[pf]['sriov']
        rid = (int(match.group(2), 16) << 8 | int(match.group(3), 16) << 3 | int(match.group(4))) \
            + sriov['offset'] + sriov['stride'] * index
        return '%s:%02x:%02x.%d' % (match.group(1), rid >> 8, (rid & 0xff) >> 3, rid & 7)

    def numvfs(self, pf):
        return self._devices[pf]['sriov']['numvfs']

    def autoprobe(self, pf):
        return self._devices[pf]['sriov']['autoprobe']

    def add_interface(self, interface, address=None, lower=()):
        """A network interface on the device ``address``, or a virtual one over ``lower`` interfaces."""
        if address:
            directory = os.path.join(self._devices[address]['dir'], 'net', interface)
        else:
            directory = os.path.join(self.root, 'sys', 'devices', 'virtual', 'net', interface)
        os.makedirs(directory)
        _symlink(directory, os.path.join(self.paths.sys, 'class', 'net', interface))
        for name in lower:
            _symlink(os.path.join(self.paths.sys, 'class', 'net', name), os.path.join(directory, 'lower_' + name))

    def add_route(self, interface, destination='0.0.0.0', prefix=0):
        import socket
        import struct
        dest = struct.unpack('=I', socket.inet_aton(destination))[0]
        mask = struct.unpack('=I', struct.pack('>I', (0xffffffff << (32 - prefix)) & 0xffffffff if prefix else 0))[0]
        with open(os.path.join(self.paths.proc, 'net', 'route'), 'a') as handle:
            handle.write('%s\t%08X\t00000000\t0003\t0\t0\t0\t%08X\t0\t0\t0\n' % (interface, dest, mask))

    def add_mount(self, mount_point, disk):
        number = _read_file(os.path.join(self.paths.sys, 'block', disk, 'dev')).strip()
        with open(os.path.join(self.paths.proc, 'self', 'mountinfo'), 'a') as handle:
            handle.write('%d 1 %s / %s rw,relatime shared:1 - ext4 /dev/%s rw\n'
                         % (20 + len(self.writes), number, mount_point, disk))

    def _next_block_number(self):
        base = os.path.join(self.paths.sys, 'dev', 'block')
        count = len(os.listdir(base)) if os.path.isdir(base) else 0
        return '8:%d' % (count * 16)

    # ---- what the kernel shows -----------------------------------------------------------
    def exists(self, address):
        return address in self._devices

    def driver(self, address):
        link = os.path.join(self._devices[address]['dir'], 'driver')
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def override(self, address):
        value = _read_file(os.path.join(self._devices[address]['dir'], 'driver_override')).strip()
        return None if value == '(null)' else value

    def slots(self):
        path = os.path.join(self.paths.pciback_driver, 'slots')
        return _read_file(path).split() if os.path.exists(path) else []

    def pciback_loaded(self):
        return os.path.isdir(self.paths.pciback_driver)

    def reset_enabled(self, address):
        """What ``reset_method`` shows (the enabled methods), or None without the file."""
        path = os.path.join(self._devices[address]['dir'], 'reset_method')
        return _read_file(path).split() if os.path.exists(path) else None

    # ---- the kernel's reactions ------------------------------------------------------------
    def fail_write(self, relative_path, error=errno.EBUSY, times=1):
        """Make the next ``times`` writes to ``relative_path`` (from the root) fail with ``error``."""
        self.failures.setdefault(relative_path, []).extend([error] * times)

    def after_next_write(self, relative_path, action):
        """Run ``action()`` once, right after the next successful write to ``relative_path``."""
        self._after_writes.setdefault(relative_path, []).append(action)

    def run_after_write(self, path):
        for action in self._after_writes.pop(self.rel(path), []):
            action()

    def unplug(self, address):
        """What ``echo 1 > .../remove`` (or a hot unplug) does: the driver lets go, the function leaves the bus."""
        driver = self.driver(address)
        if driver is not None:
            self._unbind(address, driver)
        info = self._devices.pop(address)
        os.unlink(os.path.join(self.paths.pci_devices, address))
        stash = os.path.join(self.root, 'unplugged', address)
        os.makedirs(os.path.dirname(stash), exist_ok=True)
        os.rename(info['dir'], stash)
        self._unplugged[address] = info

    def replace_device(self, address, **device):
        """Another device at ``address`` (a card added shifted the buses): the old one leaves, ``device`` (add_device's
        arguments) comes."""
        self.unplug(address)
        shutil.rmtree(os.path.join(self.root, 'unplugged', address))
        del self._unplugged[address]
        return self.add_device(address, **device)

    def set_cmdline(self, text):
        _write_file(os.path.join(self.paths.proc, 'cmdline'), text + '\n')

    def rescan(self):
        """What ``echo 1 > /sys/bus/pci/rescan`` does: unplugged functions come back, new, and are probed."""
        for address, info in sorted(self._unplugged.items()):
            os.rename(os.path.join(self.root, 'unplugged', address), info['dir'])
            _write_file(os.path.join(info['dir'], 'driver_override'), '(null)\n')
            _symlink(info['dir'], os.path.join(self.paths.pci_devices, address))
            self._devices[address] = info
            self._probe(address)
        self._unplugged.clear()

    def before_write(self, path, text):
        relative = self.rel(path)
        self.writes.append((relative, text))
        pending = self.failures.get(relative)
        if pending:
            error = pending.pop(0)
            raise OSError(error, os.strerror(error))
        if os.path.basename(path) == 'reset_method':
            # The kernel refuses before it changes anything: the file keeps what it showed.
            self._reset_method(os.path.basename(os.path.dirname(path)), text)
        if os.path.basename(path) == 'sriov_numvfs':
            self._sriov_numvfs(os.path.basename(os.path.dirname(path)), text)
        if os.path.basename(path) == 'sriov_drivers_autoprobe':
            _kstrtobool(text)

    def after_write(self, path, text):
        """Apply the kernel's meaning of a write; raise OSError as the kernel's write() would."""
        value = text.strip()
        _write_file(path, '')        # write-only attributes read back empty
        directory, name = os.path.split(path)
        parent = os.path.basename(directory)
        if os.path.dirname(directory) == self.paths.pci_drivers and name in ('bind', 'unbind'):
            self._require_device(value)
            return self._bind(value, parent) if name == 'bind' else self._unbind(value, parent)
        if directory == self.paths.pciback_driver and name in ('new_slot', 'remove_slot'):
            match = _SLOT_RE.match(value)
            if match is None:
                raise OSError(errno.EINVAL, 'bad slot')
            address = '%04x:%02x:%02x.%s' % (int(match.group(1) or '0', 16), int(match.group(2), 16),
                                             int(match.group(3), 16), match.group(4))
            return self._add_slot(address) if name == 'new_slot' else self._remove_slot(address)
        if directory == self.paths.pciback_driver and name == 'permissive':
            if self.driver(value) != PCIBACK:
                raise OSError(errno.ENXIO, 'not bound to pciback')
            return _write_file(path, value + '\n')
        if path == os.path.join(self.paths.sys, 'bus', 'pci', 'drivers_probe'):
            self._require_device(value)
            return self._probe(value)
        if name == 'driver_override':
            return _write_file(path, (value or '(null)') + '\n')
        if name == 'reset_method':
            methods = self._reset_method(os.path.basename(directory), text)
            return _write_file(path, ' '.join(methods) + '\n' if methods else '')
        if name == 'reset':
            address = os.path.basename(directory)
            self.resets[address] = self.resets.get(address, 0) + 1
            return None
        if name == 'sriov_drivers_autoprobe':
            self._devices[parent]['sriov']['autoprobe'] = _kstrtobool(text)
            return _write_file(path, '1\n' if _kstrtobool(text) else '0\n')
        if name == 'sriov_numvfs':
            return self._set_numvfs(os.path.basename(directory), self._sriov_numvfs(os.path.basename(directory), text))
        return None

    def _sriov_numvfs(self, address, text):
        """The number of VFs a ``sriov_numvfs`` write asks for, or the OSError sriov_numvfs_store returns.

        drivers/pci/iov.c: not a u16 is EINVAL; more than sriov_totalvfs is ERANGE; the current
        number is a success that changes nothing (even without a driver); a PF without a driver, or
        whose driver has no ``sriov_configure``, is ENOENT; 0 disables every VF; any other number
        while VFs are enabled is EBUSY (the spec allows no partial change: through 0).
        """
        try:
            wanted = int(text.strip(), 0)
        except ValueError:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if not 0 <= wanted <= 0xffff:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if wanted > self._devices[address]['sriov']['totalvfs']:
            raise OSError(errno.ERANGE, os.strerror(errno.ERANGE))
        current = self.numvfs(address)
        if wanted == current:
            return wanted
        driver = self.driver(address)
        if driver is None or driver not in self.sriov_configure:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if wanted and current:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return wanted

    def _set_numvfs(self, pf, wanted):
        """sriov_enable / sriov_disable: add the VFs (probed only when ``sriov_drivers_autoprobe`` is 1), or remove them."""
        info = self._devices[pf]
        current = self.numvfs(pf)
        if wanted == current:
            return _write_file(os.path.join(info['dir'], 'sriov_numvfs'), '%d\n' % current)
        if wanted == 0:
            for index in reversed(range(current)):
                self._remove_vf(pf, index)
        else:
            parent_dir = os.path.dirname(info['dir'])
            parent = os.path.basename(parent_dir) if parent_dir != os.path.join(self.root, 'sys', 'devices', 'pci0000:00') else None
            class_code = _read_file(os.path.join(info['dir'], 'class')).strip()[2:]
            for index in range(wanted):
                vf = self.vf_address(pf, index)
                directory = self.add_device(vf, vendor=info['vendor'], device=info['sriov']['vf_device'],
                                            class_code=class_code, parent=parent, reset_methods='flr')
                _symlink(directory, os.path.join(info['dir'], 'virtfn%d' % index))
                _symlink(info['dir'], os.path.join(directory, 'physfn'))
                if self.autoprobe(pf):
                    self._probe(vf)
        info['sriov']['numvfs'] = wanted
        return _write_file(os.path.join(info['dir'], 'sriov_numvfs'), '%d\n' % wanted)

    def _remove_vf(self, pf, index):
        """pci_iov_remove_virtfn: the links go, the VF's driver (pciback too) lets go, the function leaves the bus."""
        link = os.path.join(self._devices[pf]['dir'], 'virtfn%d' % index)
        vf = os.path.basename(os.readlink(link))
        os.unlink(link)
        driver = self.driver(vf)
        if driver is not None:
            self._unbind(vf, driver)
        os.unlink(os.path.join(self.paths.pci_devices, vf))
        shutil.rmtree(self._devices.pop(vf)['dir'])

    def _reset_method(self, address, text):
        """The methods a ``reset_method`` write enables (reset_method_store, Linux 5.15+), or OSError(EINVAL).

        '' (or a lone newline) disables every method; ``default`` enables every supported one in the
        kernel's order; else names separated by single blanks (empty words skipped, each stripped):
        an unknown name, one the device does not support, or more than 7 is EINVAL.
        """
        supported = self._devices[address]['reset_supported']
        if text in ('', '\n'):
            return []
        if text in (DEFAULT_RESET, DEFAULT_RESET + '\n'):
            return list(supported)
        methods = []
        for word in text.split(' '):
            if word in ('', '\n'):
                continue
            word = word.strip()
            if word not in RESET_METHODS or word not in supported or len(methods) == len(RESET_METHODS):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            methods.append(word)
        return methods

    def _require_device(self, address):
        if address not in self._devices:
            raise OSError(errno.ENODEV, 'No such device')

    def _add_slot(self, address):
        if address not in self.slots():
            _write_file(os.path.join(self.paths.pciback_driver, 'slots'),
                        ''.join(slot + '\n' for slot in self.slots() + [address]))

    def _remove_slot(self, address):
        slots = self.slots()
        if address not in slots:
            raise OSError(errno.ENOENT, 'No such file or directory')
        slots.remove(address)
        _write_file(os.path.join(self.paths.pciback_driver, 'slots'), ''.join(slot + '\n' for slot in slots))

    def _matches(self, address, driver):
        override = self.override(address)
        if override is not None:
            return override == driver
        if driver == PCIBACK:
            return address in self.slots()
        info = self._devices[address]
        return (info['vendor'], info['device']) in self.driver_ids.get(driver, set())

    def _bind(self, address, driver):
        if self.driver(address) is not None:
            raise OSError(errno.EBUSY, 'Device or resource busy')
        if driver == PCIBACK and self.override(address) == PCIBACK:
            self._add_slot(address)     # pciback adds an overridden device to its slots
        if not self._matches(address, driver):
            raise OSError(errno.ENODEV, 'No such device')
        physfn = os.path.join(self._devices[address]['dir'], 'physfn')
        if os.path.islink(physfn) and not self.autoprobe(os.path.basename(os.readlink(physfn))) \
                and self.override(address) is None:
            # pci_device_can_probe: a VF of a PF with sriov_drivers_autoprobe 0 is probed only with a driver_override,
            # an explicit bind included (pci_device_probe answers ENODEV)
            raise OSError(errno.ENODEV, 'No such device')
        if address in self.refuse.get(driver, set()):
            raise OSError(errno.ENODEV, 'probe failed')
        device_dir = self._devices[address]['dir']
        driver_dir = os.path.join(self.paths.pci_drivers, driver)
        _symlink(driver_dir, os.path.join(device_dir, 'driver'))
        _symlink(device_dir, os.path.join(driver_dir, address))
        if driver == PCIBACK:
            self.resets[address] = self.resets.get(address, 0) + 1    # pciback resets what it takes
        return None

    def _unbind(self, address, driver):
        if self.driver(address) != driver:
            raise OSError(errno.ENODEV, 'No such device')
        if 'sriov' in self._devices[address] and driver in self.sriov_configure:
            # A PF driver's remove() disables SR-IOV: its VFs go with it (and come back only if configured again).
            self._set_numvfs(address, 0)
        os.unlink(os.path.join(self._devices[address]['dir'], 'driver'))
        os.unlink(os.path.join(self.paths.pci_drivers, driver, address))
        if driver == PCIBACK:
            self.resets[address] = self.resets.get(address, 0) + 1
        return None

    def _probe(self, address):
        if self.driver(address) is not None:
            return None
        candidates = [PCIBACK] if self.pciback_loaded() else []
        candidates += sorted(name for name in self.driver_ids if name != PCIBACK)
        for driver in candidates:
            if self._matches(address, driver) and address not in self.refuse.get(driver, set()):
                try:
                    return self._bind(address, driver)
                except OSError as exc:
                    if exc.errno != errno.ENODEV:   # __device_attach_driver takes ENODEV as "not this driver"
                        raise
        return None

    def load_module_for(self, address):
        """What ``modprobe <modalias>`` does: load the driver whose module claims the device."""
        info = self._devices[address]
        for driver, ids in self.module_drivers.items():
            if (info['vendor'], info['device']) in ids and driver not in self.driver_ids:
                self.add_driver(driver, ids=ids)
                self._probe(address)
                return True
        return False


def _kstrtobool(text):
    """lib/kstrtox.c kstrtobool: y/Y/1/on true, n/N/0/off false, anything else EINVAL."""
    value = text.strip('\n')
    if value[:1] in ('y', 'Y', '1') or value[:2].lower() == 'on':
        return True
    if value[:1] in ('n', 'N', '0') or value[:2].lower() == 'of':
        return False
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


class KernelSysfs(PciSysfs):
    """The collection's PciSysfs on a FakeKernel tree: every write really happens, then the kernel reacts."""

    def __init__(self, kernel):
        super(KernelSysfs, self).__init__(kernel.paths)
        self.kernel = kernel

    def write(self, path, text):
        self.kernel.before_write(path, text)
        super(KernelSysfs, self).write(path, text)
        self.kernel.after_write(path, text)
        self.kernel.run_after_write(path)
