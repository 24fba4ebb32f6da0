# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""SR-IOV: the virtual functions (VFs) of a physical function (PF), now and at every boot.

What the kernel does (drivers/pci/iov.c, drivers/pci/pci-driver.c, drivers/base/dd.c):

- Only a PF shows ``sriov_totalvfs``, ``sriov_numvfs``, ``sriov_drivers_autoprobe``, ``sriov_offset``,
  ``sriov_stride`` and ``sriov_vf_device`` (``sriov_pf_attrs_are_visible``); a VF has a ``physfn`` link,
  its PF one ``virtfnN`` link per VF, N being the VF's index (``pci_iov_sysfs_link``).
- ``sriov_numvfs_store``: a value that is not a u16 is EINVAL, more than ``sriov_totalvfs`` ERANGE; the
  current number succeeds and changes nothing (even without a driver); else a PF without a driver, or
  whose driver has no ``sriov_configure`` (xen-pciback has none), is ENOENT; 0 disables every VF; any
  other number while VFs are enabled is EBUSY: a change goes through 0 (the spec has no partial
  disable), and every VF is removed and created anew, new address-wise the same, without its driver.
- A new VF is probed only when its PF's ``sriov_drivers_autoprobe`` is 1, or it has a ``driver_override``
  (``pci_device_can_probe``): with 0 the VFs appear without a dom0 driver, ready for pciback.
- A PF driver's ``remove`` disables SR-IOV: unbinding or re-probing the PF loses its VFs. The kernel
  sends ``bind`` when a driver takes a device (``driver_bound``), which is when ``sriov_numvfs`` can be
  written; udev's coldplug at boot replays only ``add``, for devices whose driver is already bound.

Persistence is a udev rule file of the collection's own, one line per PF, keyed on its address and
its vendor and device ids, that writes ``sriov_drivers_autoprobe`` (when given) then ``sriov_numvfs`` on
``add`` and ``bind`` while a driver other than pciback holds the PF. xen-pciback's ``hide=`` cannot
name a VF: it is parsed when pciback loads, long before the PF's driver creates the VF. The VFs meant for
guests (``hold_vfs``) get a line each, on their own ``add`` event: ``driver_override`` pciback (with
autoprobe off the kernel probes a VF, even on an explicit bind, only through one: ``pci_device_can_probe``), a
pciback slot and a bind, through the VF's ``subsystem`` link; autoprobe off keeps dom0's drivers away first.

``plan_sriov`` reads and decides everything (refusals included) before anything is written;
``SriovPlan.apply`` writes sysfs and the rule file. ``resolve_vf_references`` turns ``PF/vfN`` into
the VF's address through the PF's ``virtfnN`` link.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._host import udev_rules
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import (
    FileEditError,
    PlannedFile,
    write_planned,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.udev_rules import describe_errno, read_own_rules, rule_lines
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    PciAddressError,
    is_canonical_address,
    parse_pci_address,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import (
    find_host_needs,
    read_devices,
    sriov_state,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PCIBACK, link_name
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import (
    HALF_DONE_PHASES,
    PHASE_HELD,
    DriverJournal,
    JournalError,
)

RULES_NAME = '70-xenpci-passthrough-sriov.rules'
RULES_HEADER = ('# Managed by the xenpci.passthrough collection (xenpci.passthrough.pci_sriov): change the values\n'
                '# through it. A line added here by hand makes its next run fail and leave this file as it is.\n')
_RULE_RE = re.compile(r'^ACTION=="add\|bind", SUBSYSTEM=="pci", KERNEL=="([^"]*)", ATTR\{vendor\}=="0x([0-9a-f]{4})", '
                      r'ATTR\{device\}=="0x([0-9a-f]{4})", DRIVER=="\?\*", DRIVER!="pciback", '
                      r'(?:ATTR\{sriov_drivers_autoprobe\}="([01])", )?ATTR\{sriov_numvfs\}="(\d+)"\Z')
# A VF held for guests at every boot: xen-pciback takes it as it appears (its driver_override, without which the kernel
# probes no VF of a PF with autoprobe off, a pciback slot, then bind, through the VF's "subsystem" link, /sys/bus/pci);
# autoprobe off keeps every dom0 driver from it until then.
_HOLD_RE = re.compile(r'^ACTION=="add", SUBSYSTEM=="pci", KERNEL=="([^"]*)", TEST=="physfn", DRIVER!="\?\*", '
                      r'ENV\{XENPCI_PASSTHROUGH_VF\}="([^"/]*)/vf(\d+)", ATTR\{driver_override\}="pciback", '
                      r'ATTR\{subsystem/drivers/pciback/new_slot\}="\$kernel", ATTR\{subsystem/drivers/pciback/bind\}="\$kernel"\Z')
_VF_REF_RE = re.compile(r'^(?P<pf>[^/\s]+)/vf(?P<index>\d+)\Z')
_VIRTFN_RE = re.compile(r'^virtfn(\d+)\Z')


class SriovError(Exception):
    """A request, a device or a file that cannot be used; nothing was changed (unless the message says so)."""


def rules_path(paths):
    return udev_rules.rules_path(paths, RULES_NAME)


# ---- reading ---------------------------------------------------------------------------------
def virtfns(sysfs, pf):
    """``{index: VF address}`` from the PF's ``virtfnN`` links."""
    base = sysfs.device_dir(pf)
    try:
        names = os.listdir(base)
    except OSError:
        return {}
    links = {}
    for name in names:
        match = _VIRTFN_RE.match(name)
        if match:
            address = link_name(os.path.join(base, name))
            if address is not None:
                links[int(match.group(1))] = address
    return links


def read_pf(sysfs, pf):
    """What sysfs says of the PF ``pf`` (``pci_info``'s ``sriov``): None when it has no SR-IOV capability."""
    base = sysfs.device_dir(pf)
    try:
        entries = set(os.listdir(base))
    except OSError:
        return None
    if 'sriov_totalvfs' not in entries:
        return None
    state = sriov_state(base, entries)
    if state['totalvfs'] is None:
        return None
    state['numvfs'] = state['numvfs'] or 0
    return state


def _pf_address(text, what):
    try:
        return str(parse_pci_address(text))
    except PciAddressError as exc:
        raise SriovError('%s: %s; nothing was changed' % (what, exc))


# ---- VFs named by their PF and index --------------------------------------------------------
def parse_vf_reference(text):
    """``(PF address, index)`` for ``PF/vfN`` (such as ``0000:03:00.0/vf1`` or ``03:00.0/vf1``); None for
    anything else (a plain address is left to the caller). A bad PF address raises SriovError."""
    if not isinstance(text, str):
        return None
    match = _VF_REF_RE.match(text.strip())
    if match is None:
        return None
    return _pf_address(match.group('pf'), 'the PF of %r' % text), int(match.group('index'))


def resolve_vf_references(sysfs, devices):
    """``(devices, names)``: ``devices`` with each ``PF/vfN`` replaced by the VF's address, read from the PF's
    ``virtfnN`` link now, and ``{VF address: 'PF/vfN'}``. Every bad reference is named in one SriovError."""
    resolved = []
    names = {}
    errors = []
    for item in devices:
        try:
            reference = parse_vf_reference(item)
        except SriovError as exc:
            errors.append(str(exc).replace('; nothing was changed', ''))
            continue
        if reference is None:
            resolved.append(item)
            continue
        pf, index = reference
        problem = None
        if not sysfs.exists(pf):
            problem = 'there is no PCI function %s' % pf
        else:
            state = read_pf(sysfs, pf)
            if state is None:
                problem = '%s has no SR-IOV capability (no sriov_totalvfs in sysfs), so it has no VFs' % pf
            else:
                address = virtfns(sysfs, pf).get(index)
                if address is None:
                    problem = ('VF index %d is out of range: %s has %d VF%s enabled (sriov_numvfs; indexes 0-%d), '
                               'sriov_totalvfs %d; pci_sriov sets the number'
                               % (index, pf, state['numvfs'], '' if state['numvfs'] == 1 else 's',
                                  state['numvfs'] - 1, state['totalvfs'])
                               if state['numvfs'] else
                               'VF index %d is out of range: %s has no VF enabled (sriov_numvfs 0, sriov_totalvfs '
                               '%d); pci_sriov sets the number' % (index, pf, state['totalvfs']))
                else:
                    resolved.append(address)
                    names[address] = '%s/vf%d' % (pf, index)
        if problem:
            errors.append('%s: %s' % (item, problem))
    if errors:
        raise SriovError('invalid VF reference: %s; nothing was changed' % '; '.join(errors))
    return resolved, names


# ---- VFs in use -------------------------------------------------------------------------------
def domain_records(toolstack):
    """``{address: domid}`` of the devices a domain uses: libxl's records, and the PV backends of live domains."""
    if toolstack is None:
        return {}
    records = toolstack.libxl_records()
    users = dict((address, record['domid']) for address, record in records.items() if record.get('domid') not in (None, ''))
    for address, domid in toolstack.backend_devices().items():
        users.setdefault(address, domid)
    return users


def vfs_in_use(paths, sysfs, vfs, domains, controller_address=None):
    """``{VF address: [reasons]}`` for the VFs (addresses) that something uses: pciback holds it, this collection's
    journal records it as held (or half-moved), a domain uses it, or the host needs it (route, file system)."""
    if not vfs:
        return {}
    try:
        journal = DriverJournal(paths).load()
    except JournalError as exc:
        raise SriovError('%s; nothing was changed' % exc)
    needs = find_host_needs(paths, read_devices(sysfs), controller_address)
    in_use = {}
    for address in vfs:
        reasons = []
        if sysfs.driver(address) == PCIBACK:
            reasons.append('bound to pciback')
        phase = (journal.get(address) or {}).get('phase')
        if phase == PHASE_HELD or phase in HALF_DONE_PHASES:
            reasons.append('recorded as %s in the journal %s' % (phase, paths.journal))
        if address in domains:
            reasons.append('assigned to domain %s' % domains[address])
        reasons.extend(needs.get(address, []))
        if reasons:
            in_use[address] = reasons
    return in_use


# ---- the rule file ----------------------------------------------------------------------------
def parse_rules(text, path):
    """``{PF address: {vendor, device, autoprobe, numvfs, hold}}`` of the collection's rule file (``hold``: the
    indexes of the VFs held for guests, each a line after its PF's); any other line is refused."""
    entries = {}
    for number, stripped in rule_lines(text):
        match = _RULE_RE.match(stripped)
        hold = _HOLD_RE.match(stripped)
        if hold is not None and hold.group(2) in entries:
            entries[hold.group(2)]['hold'].append(int(hold.group(3)))
            continue
        if match is None or not is_canonical_address(match.group(1)):
            raise SriovError('%s line %d is not an SR-IOV rule this collection writes: %r; this file is managed by '
                             'the collection, move that line to another file; %s was left as it was and nothing was '
                             'changed' % (path, number, stripped[:100], path))
        autoprobe = match.group(4)
        entries[match.group(1)] = {'vendor': match.group(2), 'device': match.group(3),
                                   'autoprobe': None if autoprobe is None else autoprobe == '1',
                                   'numvfs': int(match.group(5)), 'hold': []}
    return entries


def render_rule(address, entry):
    autoprobe = '' if entry['autoprobe'] is None else 'ATTR{sriov_drivers_autoprobe}="%d", ' % int(entry['autoprobe'])
    return ('ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{vendor}=="0x%s", ATTR{device}=="0x%s", '
            'DRIVER=="?*", DRIVER!="pciback", %sATTR{sriov_numvfs}="%d"\n'
            % (address, entry['vendor'], entry['device'], autoprobe, entry['numvfs']))


def render_hold(vf, pf, index):
    return ('ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", TEST=="physfn", DRIVER!="?*", ENV{XENPCI_PASSTHROUGH_VF}="%s/vf%d", '
            'ATTR{driver_override}="pciback", ATTR{subsystem/drivers/pciback/new_slot}="$kernel", ATTR{subsystem/drivers/pciback/bind}="$kernel"\n'
            % (vf, pf, index))


def render_rules(entries, vf_address):
    """The rule file's text for ``entries``, or None when there is none; ``vf_address(pf, index)`` gives a VF's address."""
    if not entries:
        return None
    return RULES_HEADER + ''.join(
        render_rule(pf, entries[pf]) + ''.join(render_hold(vf_address(pf, index), pf, index) for index in entries[pf]['hold'])
        for pf in sorted(entries))


def vf_address(sysfs, pf, index):
    """The address VF ``index`` of ``pf`` has (or will have): the PF's routing ID plus ``sriov_offset`` and ``index``
    times ``sriov_stride`` (``pci_iov_virtfn_bus``, ``pci_iov_virtfn_devfn``)."""
    address = parse_pci_address(pf)
    offset = int(sysfs.attribute(pf, 'sriov_offset') or 0)
    stride = int(sysfs.attribute(pf, 'sriov_stride') or 0)
    routing_id = (address.bus << 8 | address.slot << 3 | address.function) + offset + stride * index
    return '%04x:%02x:%02x.%x' % (address.domain, routing_id >> 8 & 0xff, routing_id >> 3 & 0x1f, routing_id & 7)


# ---- the plan ---------------------------------------------------------------------------------
class SriovPlan:
    """What the task does to one PF: ``sriov_drivers_autoprobe``, ``sriov_numvfs`` and the rule file."""

    def __init__(self, sysfs, pf, driver, before, numvfs, autoprobe, planned, in_use):
        self.sysfs = sysfs
        self.pf = pf
        self.driver = driver
        self.before = before              # read_pf() before the task
        self.numvfs = numvfs              # wanted
        self.autoprobe = autoprobe        # wanted, or None: left as it is
        self.planned = planned
        self.in_use = in_use              # {VF address: [reasons]} of the VFs a change removes
        self.after = None                 # read_pf() after apply()

    @property
    def numvfs_changed(self):
        return self.before['numvfs'] != self.numvfs

    @property
    def autoprobe_changed(self):
        return self.autoprobe is not None and self.before['drivers_autoprobe'] != self.autoprobe

    @property
    def changed(self):
        return self.numvfs_changed or self.autoprobe_changed or self.planned.changed

    def diff(self):
        state = '%s: sriov_numvfs %d, sriov_drivers_autoprobe %s\n'
        before_autoprobe = self.before['drivers_autoprobe']
        after_autoprobe = before_autoprobe if self.autoprobe is None else self.autoprobe
        return [
            {'before_header': '%s (sysfs)' % self.pf, 'after_header': '%s (sysfs)' % self.pf,
             'before': state % (self.pf, self.before['numvfs'], int(bool(before_autoprobe))),
             'after': state % (self.pf, self.numvfs, int(bool(after_autoprobe)))},
            self.planned.diff(),
        ]

    def result(self, check_mode=False):
        after = self.after or self.before
        autoprobe = after['drivers_autoprobe']
        if self.after is None and self.autoprobe is not None:
            autoprobe = self.autoprobe
        return {
            'pf': self.pf,
            'driver': self.driver,
            'totalvfs': self.before['totalvfs'],
            'numvfs_before': self.before['numvfs'],
            'numvfs': self.numvfs if check_mode or self.after is None else after['numvfs'],
            'drivers_autoprobe_before': self.before['drivers_autoprobe'],
            'drivers_autoprobe': autoprobe,
            'vfs': [] if (check_mode and self.numvfs_changed) else after['vfs'],
            'in_use': dict((address, list(reasons)) for address, reasons in self.in_use.items()),
            'rules_file': self.planned.path,
        }

    def _write(self, name, value):
        self.sysfs.write(os.path.join(self.sysfs.device_dir(self.pf), name), '%s\n' % value)

    def apply(self, labels=None):
        """Write sysfs (autoprobe first, so that new VFs follow it; a count change through 0), then the rule file.

        A write the kernel refuses puts back what this run changed, as far as it can, and raises SriovError.
        """
        done = []
        step = None
        try:
            if self.autoprobe_changed:
                step = 'sriov_drivers_autoprobe to %d' % int(self.autoprobe)
                self._write('sriov_drivers_autoprobe', int(self.autoprobe))
                done.append('autoprobe')
            if self.numvfs_changed:
                if self.before['numvfs'] and self.numvfs:
                    step = 'sriov_numvfs to 0 (on the way from %d to %d)' % (self.before['numvfs'], self.numvfs)
                    self._write('sriov_numvfs', 0)
                    done.append('numvfs')
                step = 'sriov_numvfs to %d' % self.numvfs
                self._write('sriov_numvfs', self.numvfs)
                done.append('numvfs')
        except OSError as exc:
            raise SriovError('%s: the kernel refused to set %s (%s)%s%s'
                             % (self.pf, step, describe_errno(exc), _kernel_hint(exc, self.driver), self._undo(done)))
        try:
            write_planned(self.planned, labels=labels)
        except FileEditError as exc:
            self.after = read_pf(self.sysfs, self.pf)
            raise SriovError('%s; sysfs was set (sriov_numvfs %d), only the rule file was not written'
                             % (exc, self.after['numvfs']))
        self.after = read_pf(self.sysfs, self.pf)

    def _undo(self, done):
        if not done:
            return '; nothing was changed'
        failed = []
        if 'numvfs' in done:
            try:
                if read_pf(self.sysfs, self.pf)['numvfs'] != self.before['numvfs']:
                    self._write('sriov_numvfs', 0)
                    if self.before['numvfs']:
                        self._write('sriov_numvfs', self.before['numvfs'])
            except OSError as exc:
                failed.append('sriov_numvfs %d (%s)' % (self.before['numvfs'], describe_errno(exc)))
        if 'autoprobe' in done:
            try:
                self._write('sriov_drivers_autoprobe', int(bool(self.before['drivers_autoprobe'])))
            except OSError as exc:
                failed.append('sriov_drivers_autoprobe (%s)' % describe_errno(exc))
        if failed:
            return '; could not put back %s' % ', '.join(failed)
        return ('; sriov_numvfs and sriov_drivers_autoprobe were put back as they were (VFs that were removed come '
                'back new, without the driver they had)' if 'numvfs' in done
                else '; sriov_drivers_autoprobe was put back as it was')


def _kernel_hint(exc, driver):
    if exc.errno == errno.ENOENT:
        return ': the PF\'s driver %s cannot configure VFs through sysfs (it has no sriov_configure)' % driver
    if exc.errno == errno.ENOMEM:
        return (': the PF has too little MMIO space or too few bus numbers for that many VFs (dmesg says which; '
                'pci=realloc or pci=assign-busses on the kernel command line may help)')
    if exc.errno == errno.EBUSY:
        return ': VFs were enabled already (the kernel takes a new number only from 0)'
    return ''


def plan_sriov(paths, sysfs, pf_text, numvfs, autoprobe=None, persistent=True, force=False, domains=None,
               controller_address=None, hold_vfs=None):
    """Decide what to do with the PF ``pf_text``; raise SriovError, before anything is written, for a bad address,
    a function without SR-IOV or that is itself a VF, a number out of range, a PF held by pciback or without a
    driver when the number changes, VFs in use that a change would remove (unless ``force``), or a rule file
    that is a symbolic link, not the collection's, or in a linked directory.

    ``domains``: a callable giving ``{address: domid}`` of the devices domains use (``domain_records``), called
    only when VFs would be removed."""
    pf = _pf_address(pf_text, 'pf')
    if not sysfs.exists(pf):
        raise SriovError('pf: there is no PCI function %s; nothing was changed' % pf)
    physfn = link_name(os.path.join(sysfs.device_dir(pf), 'physfn'))
    if physfn is not None:
        raise SriovError('pf: %s is a virtual function of %s; give its PF; nothing was changed' % (pf, physfn))
    before = read_pf(sysfs, pf)
    if before is None:
        raise SriovError('pf: %s has no SR-IOV capability (no sriov_totalvfs in sysfs): it cannot have virtual '
                         'functions; nothing was changed' % pf)
    if numvfs is None or numvfs < 0 or numvfs > before['totalvfs']:
        raise SriovError('numvfs %s is out of range for %s: its sriov_totalvfs is %d (0-%d); nothing was changed'
                         % (numvfs, pf, before['totalvfs'], before['totalvfs']))
    driver = sysfs.driver(pf)
    changing = before['numvfs'] != numvfs
    if driver == PCIBACK and (changing or numvfs):
        raise SriovError('pf: %s is bound to pciback (held for guests): its VFs are configured through the PF\'s own '
                         'driver, which pciback is not (it has no sriov_configure); give the PF back first '
                         '(pci_assignable state=absent); nothing was changed' % pf)
    if driver is None and changing:
        raise SriovError('pf: %s has no driver: the kernel configures VFs through the PF\'s driver (writing '
                         'sriov_numvfs fails with ENOENT); bind its driver first; nothing was changed' % pf)
    hold_vfs = _check_hold(pf, numvfs, before, autoprobe, persistent, hold_vfs)
    in_use = {}
    if changing and before['numvfs']:
        in_use = vfs_in_use(paths, sysfs, [vf['address'] for vf in before['vfs']], domains() if domains else {},
                            controller_address)
        if in_use and not force:
            raise SriovError('refusing to change the VFs of %s from %d to %d: every VF is removed first, and %s; '
                             'nothing was changed (force: true overrides)'
                             % (pf, before['numvfs'], numvfs,
                                '; '.join('%s (%s/vf%d) is %s' % (address, pf, _index(before, address),
                                                                  ', '.join(reasons))
                                          for address, reasons in sorted(in_use.items()))))
    path, text = read_own_rules(paths, RULES_NAME, SriovError)
    entries = parse_rules(text, path)
    if persistent and numvfs:
        kept = entries.get(pf) or {}        # autoprobe and hold_vfs omitted: its lines keep what they had
        entries[pf] = {'vendor': _hex(sysfs.attribute(pf, 'vendor')), 'device': _hex(sysfs.attribute(pf, 'device')),
                       'autoprobe': kept.get('autoprobe') if autoprobe is None else autoprobe, 'numvfs': numvfs,
                       'hold': [index for index in (kept.get('hold', []) if hold_vfs is None else hold_vfs)
                                if index < numvfs]}
    else:
        entries.pop(pf, None)
    planned = PlannedFile(path, text, render_rules(entries, lambda pf, index: vf_address(sysfs, pf, index)),
                          mode=0o644, own_file=True)
    return SriovPlan(sysfs, pf, driver, before, numvfs, autoprobe, planned, in_use)


def _check_hold(pf, numvfs, before, autoprobe, persistent, hold_vfs):
    """``hold_vfs`` sorted, or SriovError: an index out of range, or VFs to hold with autoprobe on or no rule file."""
    if not hold_vfs:
        return hold_vfs
    wrong = [index for index in hold_vfs if index < 0 or index >= numvfs]
    if wrong:
        raise SriovError('hold_vfs: %s out of range for %s with numvfs %d (indexes 0-%d); nothing was changed'
                         % (', '.join('vf%d' % index for index in wrong), pf, numvfs, numvfs - 1))
    if not persistent:
        raise SriovError('hold_vfs keeps VFs on pciback at every boot through the rule file: it needs persistent: '
                         'true; nothing was changed')
    if (before['drivers_autoprobe'] if autoprobe is None else autoprobe):
        raise SriovError('hold_vfs needs autoprobe: false: with sriov_drivers_autoprobe on, a dom0 driver takes each '
                         'new VF of %s before udev can hand it to pciback; nothing was changed' % pf)
    return sorted(set(hold_vfs))


def _index(state, address):
    for vf in state['vfs']:
        if vf['address'] == address:
            return vf['index']
    return -1


def _hex(text):
    value = (text or '').lower()
    return value[2:] if value.startswith('0x') else value
