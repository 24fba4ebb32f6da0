# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Which PCI functions cannot be isolated from each other: the sets a guest must take whole.

Where Linux drives the IOMMU it has already worked this out: its IOMMU groups
(``/sys/kernel/iommu_groups``) are the sets. In a Xen dom0 Linux drives no IOMMU (Xen does), so
there are no groups, and ``coassignment_sets`` computes them from the topology the way Linux's
``pci_device_group()`` (``drivers/iommu/iommu.c``) does, reading config space through sysfs:

- DMA aliases from the topology (``pci_for_each_dma_alias``): a conventional PCI bridge, or a
  PCIe-to-PCI bridge, issues the DMA of everything behind it under its own requester ID, so it
  and everything behind it are one set;
- then the port directly above: unless it and every port up to the root complex enforce ACS
  source validation, request redirect, completion redirect and upstream forwarding
  (``pci_acs_path_enabled``), the device joins that port's set;
- DMA alias quirks that Linux applies to a few devices (``quirk_dma_func0_alias``,
  ``quirk_dma_func1_alias`` in ``drivers/pci/quirks.c``);
- functions of one multi-function device that lack ACS go together
  (``get_pci_function_alias_group``), with ``pci_acs_enabled``'s rules per PCIe device type.

Xen enables ACS on the ports that have it when its IOMMU is on (``pci_enable_acs`` in
``xen/drivers/passthrough/pci.c``), as Linux does with its own IOMMU: the control bits read
here are the ones in effect. Linux's device-specific ACS quirks
(``pci_dev_specific_acs_enabled``) are not mirrored: without them the sets can only be larger
than Linux's, never smaller.

Config space is read only where a decision needs it (bridges on a path, functions of a
multi-function slot), a few ``pread`` calls per device (``config_space.ConfigSpace``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import slot_of
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.config_space import (
    ACS_CR,
    ACS_RR,
    ACS_SV,
    ACS_UF,
    PCI_TO_PCIE_BRIDGE,
    PCIE_DOWNSTREAM,
    PCIE_ENDPOINT,
    PCIE_LEGACY_ENDPOINT,
    PCIE_RC_ENDPOINT,
    PCIE_RC_EVENT_COLLECTOR,
    PCIE_ROOT_PORT,
    PCIE_TO_PCI_BRIDGE,
    PCIE_UPSTREAM,
    REQUIRED_ACS,
    ConfigSpace,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import iommu_groups

SOURCE_LINUX = 'linux_iommu_groups'
SOURCE_TOPOLOGY = 'topology'

_ACS_NAMES = ((ACS_SV, 'source validation'), (ACS_RR, 'request redirect'), (ACS_CR, 'completion redirect'),
              (ACS_UF, 'upstream forwarding'))
_PORT_NAMES = {
    PCIE_ROOT_PORT: 'PCIe root port',
    PCIE_UPSTREAM: 'PCIe switch upstream port',
    PCIE_DOWNSTREAM: 'PCIe switch downstream port',
    PCIE_TO_PCI_BRIDGE: 'PCIe-to-PCI bridge',
    PCI_TO_PCIE_BRIDGE: 'PCI-to-PCIe bridge',
}

# Devices that issue DMA with the requester ID of another function of their slot
# (drivers/pci/quirks.c): (vendor, device) -> the function they alias.
DMA_ALIAS_QUIRKS = dict(
    [(('1180', device), 0) for device in ('e832', 'e476')]                      # Ricoh card readers
    + [(('1b4b', device), 1) for device in ('9120', '9123', '9125', '9128', '9130', '9170', '9172', '917a',
                                            '9182', '9183', '91a0', '9215', '9220', '9230', '9235')]  # Marvell SATA
    + [(('1103', device), 1) for device in ('0642', '0645')]                    # HighPoint (TTI)
    + [(('197b', '2392'), 1),                                                   # JMicron JMB388 (ESD)
       (('1c28', '0122'), 1)]                                                   # Plextor M6E (Marvell 88SS9183)
)


def _missing_names(flags):
    return ', '.join(name for bit, name in _ACS_NAMES if flags & bit)


class _Topology:
    """The PCI tree from sysfs paths, with config space read on demand."""

    def __init__(self, sysfs, addresses):
        self.sysfs = sysfs
        self.addresses = set(addresses)
        self._config = {}
        self._acs_missing = {}
        self.parent = {}
        for address in addresses:
            # /sys/bus/pci/devices/ADDRESS -> ../../../devices/pci0000:00/0000:00:08.0/ADDRESS: one readlink.
            try:
                up = os.readlink(sysfs.device_dir(address)).rstrip('/').split('/')[-2]
            except (OSError, IndexError):
                up = None
            self.parent[address] = up if up in self.addresses else None
        self.slots = {}
        for address in sorted(addresses):
            self.slots.setdefault(slot_of(address), []).append(address)

    def config(self, address):
        if address not in self._config:
            self._config[address] = ConfigSpace.read(os.path.join(self.sysfs.device_dir(address), 'config'))
        return self._config[address]

    def acs_missing(self, address):
        """The required ACS flags ``address`` lacks as pci_acs_enabled() sees it (0: isolated)."""
        if address not in self._acs_missing:
            self._acs_missing[address] = self._read_acs_missing(address)
        return self._acs_missing[address]

    def _read_acs_missing(self, address):
        config = self.config(address)
        if not config.is_pcie():
            return REQUIRED_ACS
        if config.pcie_type in (PCI_TO_PCIE_BRIDGE, PCIE_TO_PCI_BRIDGE, PCIE_RC_EVENT_COLLECTOR):
            return REQUIRED_ACS
        if config.pcie_type in (PCIE_DOWNSTREAM, PCIE_ROOT_PORT):
            return config.acs_missing(REQUIRED_ACS)
        if config.pcie_type in (PCIE_ENDPOINT, PCIE_UPSTREAM, PCIE_LEGACY_ENDPOINT, PCIE_RC_ENDPOINT) \
                and config.multifunction:
            return config.acs_missing(REQUIRED_ACS)
        return 0

    def acs_path_gap(self, address):
        """The first function from ``address`` up to the root whose ACS falls short: (address, missing) or None."""
        current = address
        while current is not None:
            missing = self.acs_missing(current)
            if missing:
                return current, missing
            current = self.parent[current]
        return None

    def kind(self, address):
        config = self.config(address)
        if not config.is_pcie():
            return 'conventional PCI bridge' if config.readable else 'bridge (config space unreadable)'
        return _PORT_NAMES.get(config.pcie_type, 'PCIe device')


class _Sets:
    """Union-find over addresses, with the reasons that joined them (each once, in the order found)."""

    def __init__(self, addresses):
        self.leader = dict((address, address) for address in addresses)
        self.reasons = {}

    def find(self, address):
        while self.leader[address] != address:
            self.leader[address] = self.leader[self.leader[address]]
            address = self.leader[address]
        return address

    def join(self, first, second, reason):
        a, b = self.find(first), self.find(second)
        reasons = self.reasons.setdefault(a, {})
        if a != b:
            self.leader[b] = a
            reasons.update(self.reasons.pop(b, {}))
        reasons[reason] = None


def _dma_alias_start(topology, sets, address):
    """Walk up like pci_for_each_dma_alias: the topmost bridge that takes over the requester ID, or ``address``."""
    start = address
    bridge = topology.parent[address]
    while bridge is not None:
        config = topology.config(bridge)
        if not config.is_pcie() or config.pcie_type in (PCIE_TO_PCI_BRIDGE, PCI_TO_PCIE_BRIDGE):
            sets.join(bridge, address, '%s (%s) issues the DMA of everything behind it under its own requester ID'
                      % (bridge, topology.kind(bridge)))
            start = bridge
        bridge = topology.parent[bridge]
    return start


def _topology_sets(sysfs, devices):
    addresses = sorted(devices)
    topology = _Topology(sysfs, addresses)
    sets = _Sets(addresses)
    for address in addresses:
        start = _dma_alias_start(topology, sets, address)
        # The port above: unless its whole path to the root complex enforces ACS, the device joins its set.
        bridge = topology.parent[start]
        gap = topology.acs_path_gap(bridge) if bridge is not None else None
        if gap is not None:
            port, missing = gap
            if port == bridge:
                reason = 'what is below %s (%s) is not isolated: it lacks ACS %s' % (
                    bridge, topology.kind(bridge), _missing_names(missing))
            else:
                reason = 'what is below %s is not isolated: %s (%s) on its path to the root complex lacks ACS %s' % (
                    bridge, port, topology.kind(port), _missing_names(missing))
            sets.join(bridge, address, reason)
            continue
        record = devices[start]
        aliased = DMA_ALIAS_QUIRKS.get((record['vendor_id'], record['device_id']))
        if aliased is not None:
            target = '%s.%d' % (slot_of(start), aliased)
            if target != start and target in devices:
                sets.join(target, start, '%s issues DMA as %s (a quirk Linux knows for %s:%s)' % (
                    start, target, record['vendor_id'], record['device_id']))
        peers = topology.slots.get(slot_of(start), [])
        start_config = topology.config(start)
        if len(peers) > 1 and (start_config.multifunction or not start_config.readable) and topology.acs_missing(start):
            exposed = [peer for peer in peers if topology.acs_missing(peer)]
            reason = '%s are functions of one multi-function device without ACS isolation' % ', '.join(exposed)
            for peer in exposed:
                if peer != start:
                    sets.join(start, peer, reason)
    return sets


def coassignment_sets(sysfs, devices):
    """{address: {'devices': [other members], 'reasons': [...], 'source': ...}} for every device in ``devices``.

    ``devices`` are the records of every function on the host (``inventory.read_devices``).
    """
    result = {}
    linux_groups = iommu_groups(devices)
    if linux_groups:
        for group, members in linux_groups.items():
            for address in members:
                others = [member for member in members if member != address]
                result[address] = {'devices': others, 'source': SOURCE_LINUX,
                                   'reasons': ['IOMMU group %s (Linux)' % group] if others else []}
        for address in devices:
            result.setdefault(address, {'devices': [], 'reasons': [], 'source': SOURCE_LINUX})
        return result
    sets = _topology_sets(sysfs, devices)
    members = {}
    for address in sorted(devices):
        members.setdefault(sets.find(address), []).append(address)
    for leader, group in members.items():
        reasons = list(sets.reasons.get(leader, {})) if len(group) > 1 else []
        for address in group:
            result[address] = {'devices': [member for member in group if member != address], 'reasons': list(reasons),
                               'source': SOURCE_TOPOLOGY}
    return result
