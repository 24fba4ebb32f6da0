# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Reading and writing the kernel's PCI sysfs: one small method per kernel file.

Everything here is a single read or a single write of one sysfs file; the decisions live in
``_xen.binding`` and ``_pci.inventory``. A write raises the ``OSError`` the kernel returned
(``ENODEV`` when a driver will not take a device, ``EBUSY``, ``ENOENT`` ...).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import is_canonical_address

PCIBACK = 'pciback'
_O_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)


def read_text(path):
    """The stripped text of a small file, or None when it does not exist (or cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode('utf-8', 'replace').strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def link_name(path):
    """The last component of a symlink's target (a driver or IOMMU group), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


class PciSysfs:
    """The PCI part of sysfs under ``paths.sys``."""

    def __init__(self, paths):
        self.paths = paths
        self.devices_dir = paths.pci_devices
        self.drivers_dir = paths.pci_drivers
        self.pciback_dir = paths.pciback_driver

    # ---- reading ---------------------------------------------------------------------------
    def addresses(self):
        """Every PCI function the kernel knows, canonical addresses, sorted."""
        try:
            names = os.listdir(self.devices_dir)
        except OSError:
            return []
        return sorted(name for name in names if is_canonical_address(name))

    def device_dir(self, address):
        return os.path.join(self.devices_dir, address)

    def exists(self, address):
        return os.path.isdir(self.device_dir(address))

    def attribute(self, address, name):
        return read_text(os.path.join(self.devices_dir, address, name))

    def driver(self, address):
        """Name of the driver bound to ``address`` (as in ``/sys/bus/pci/drivers/``), or None."""
        return link_name(os.path.join(self.devices_dir, address, 'driver'))

    def driver_override(self, address):
        """The device's ``driver_override``, or None when unset (the kernel shows ``(null)``)."""
        value = self.attribute(address, 'driver_override')
        if value in (None, '', '(null)'):
            return None
        return value

    def driver_loaded(self, driver):
        return os.path.isdir(os.path.join(self.drivers_dir, driver))

    def pciback_loaded(self):
        return os.path.isdir(self.pciback_dir)

    def pciback_slots(self):
        """Addresses in pciback's ``slots`` file (the devices it is willing to bind)."""
        text = read_text(os.path.join(self.pciback_dir, 'slots')) or ''
        return set(line.strip() for line in text.splitlines() if is_canonical_address(line.strip()))

    def pciback_bound(self):
        """Addresses bound to pciback: its sysfs directory has one link per bound device."""
        try:
            names = os.listdir(self.pciback_dir)
        except OSError:
            return set()
        return set(name for name in names if is_canonical_address(name))

    # ---- writing ---------------------------------------------------------------------------
    def write(self, path, text):
        """Write ``text`` to the kernel file ``path`` in one ``write()``; never creates a file."""
        fd = os.open(path, os.O_WRONLY | _O_CLOEXEC)
        try:
            data = text.encode('ascii')
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.EIO, 'short write to %s' % path)
        finally:
            os.close(fd)

    def unbind(self, address, driver):
        self.write(os.path.join(self.drivers_dir, driver, 'unbind'), address)

    def bind(self, address, driver):
        self.write(os.path.join(self.drivers_dir, driver, 'bind'), address)

    def probe(self, address):
        """Ask the kernel to find a driver for ``address`` itself (``drivers_probe``)."""
        self.write(os.path.join(os.path.dirname(self.drivers_dir), 'drivers_probe'), address)

    def probed_only_with_override(self, address):
        """Whether the kernel probes the device only through a ``driver_override`` (``pci_device_can_probe``): a VF
        whose PF has ``sriov_drivers_autoprobe`` 0, for which even an explicit bind fails with ENODEV without one."""
        physfn = os.path.join(self.devices_dir, address, 'physfn')
        if not os.path.islink(physfn):
            return False
        return (self.attribute(os.path.basename(os.readlink(physfn)), 'sriov_drivers_autoprobe') or '1').strip() == '0'

    def vf_reference(self, address):
        """``PF/vfN`` for a virtual function (its ``physfn`` link, and the PF's ``virtfnN`` link back to it), else None."""
        physfn = os.path.join(self.devices_dir, address, 'physfn')
        if not os.path.islink(physfn):
            return None
        pf = os.path.basename(os.readlink(physfn))
        for name in os.listdir(os.path.join(self.devices_dir, pf)):
            if name.startswith('virtfn') and link_name(os.path.join(self.devices_dir, pf, name)) == address:
                return '%s/vf%s' % (pf, name[len('virtfn'):])
        return None

    def set_driver_override(self, address, driver):
        """Set ``driver_override``; None clears it."""
        self.write(os.path.join(self.devices_dir, address, 'driver_override'), (driver or '') + '\n')

    def reset(self, address):
        self.write(os.path.join(self.devices_dir, address, 'reset'), '1')

    def reset_methods(self, address):
        """The reset methods the kernel has enabled for ``address``, in its order (``reset_method``, Linux 5.15+);
        None when the device has no such file."""
        text = self.attribute(address, 'reset_method')
        return None if text is None else text.split()

    def set_reset_method(self, address, text):
        """Write ``reset_method``: space-separated method names, ``default``, or '' (every reset disabled)."""
        self.write(os.path.join(self.devices_dir, address, 'reset_method'), text + '\n')

    def pciback_new_slot(self, address):
        self.write(os.path.join(self.pciback_dir, 'new_slot'), address)

    def pciback_remove_slot(self, address):
        self.write(os.path.join(self.pciback_dir, 'remove_slot'), address)
