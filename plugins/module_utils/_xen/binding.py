# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The binding engine: move PCI devices to xen-pciback and give them back, like xl but in batches.

For each requested device the engine reads what sysfs, the journal and libxl's xenstore record say,
then plans one action from that alone (``_plan`` runs nothing), refuses an unsafe batch before
anything is written (``safety_refusals``, a pure function of the plans and what was read), and asks
Xen whether it can quarantine only at named points: before planning when a held device lost its
quarantine to a reboot (the answer decides whether it is adopted), before applying for the result,
or lazily while applying. The batch is then applied as one transaction (``transaction.py``) whose
steps each have their undo:

1. journal the batch as half done; undo: the entries as they were (a device parked on pciback: held);
2. write libxl's ``driver_path``; undo: remove the records written (not a parked device's);
3. move each device, in turn; undo: put it back to its snapshot (driver, slot, ``driver_override``,
   quarantine), or hold it on pciback (parked) when its driver will not take it back, never leaving
   it without a driver; for a device that left the bus, only drop the slot this run added;
4. quarantine each device assigned; no undo of its own: putting the device back de-quarantines it
   first, so a device Xen still holds is never given to a dom0 driver.

A failure in 1 or 2 undoes nothing: nothing has moved, and the half-done journal is finished by the
next run, as an interruption is. A failure in 3 or 4 undoes every step begun, the failing one
included, newest first, and the error names every cause (the failure, devices that left the bus,
devices parked). After the batch the journal says held, released, or nothing.

Assigning a device (``xl pci-assignable-add`` order): record the original driver (journal, and
libxl's ``driver_path`` in xenstore), unbind it from that driver, add a pciback slot, bind it to
pciback, then have Xen quarantine it (libxenctrl's hypercall in this process, as libxl makes it, or
``xl`` where libxenctrl cannot be loaded). Releasing (``xl pci-assignable-remove -r`` order):
de-quarantine, unbind from pciback, remove the slot, clear a ``driver_override`` left at pciback,
bind the recorded driver.

A hypervisor that cannot pass PCI devices through (no IOMMU; Xen on Arm before 4.21) cannot
quarantine either: then dom0's part is done all the same, nothing is asked of Xen, and the result's
``hypervisor_limit`` says what Xen lacks. A quarantine refused where Xen claimed it could is an
error on x86 (the batch is put back); elsewhere it is taken as that same limit.

Such a Xen may not even let dom0 hold a device: xen-pciback of Linux 6.12 (not yet 6.1's) asks Xen
to reset every device it takes (``PHYSDEVOP_pci_device_reset``) when dom0 is not PV, as an Arm dom0
never is, and a Xen built without PCI support (Debian 13's arm64 Xen 4.20) answers ENOSYS, so the
bind fails. That is a failure (the batch is put back) whose message and ``hypervisor_limit`` say why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
from functools import partial

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    parse_address_list,
    parse_pci_address,
    whole_devices,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import (
    find_host_needs,
    read_devices,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import IdentityError
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.isolation import coassignment_sets
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PCIBACK, read_text
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.drift import (
    JOURNAL,
    current_identities,
    drift_at,
    drift_message,
    follow,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import PCIBACK_MODULE, pciback_symbol
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import (
    HALF_DONE_PHASES,
    PHASE_BINDING,
    PHASE_HELD,
    PHASE_RELEASED,
    PHASE_RELEASING,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import (
    QuarantineRefused,
    ToolstackError,
    driver_from_path,
    no_pci_device_reset,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.transaction import Step, StepFailed, Transaction

# What the engine does with a device: one word each, the word its result reports.
ACTION_BIND = 'assigned'          # to pciback, from another driver or none
ACTION_ADOPT = 'adopted'          # already on pciback: journal, libxl's record and quarantine made whole
ACTION_RELEASE = 'released'       # off pciback (and, with restore, to its original driver)
ACTION_RESTORE = 'restored'       # from no driver to its original one (an interrupted run, or restore: false earlier)
ACTION_FORGET = 'forgotten'       # on a driver again by other means: its stale journal entry dropped
ACTION_NONE = 'unchanged'

# The steps of a batch's transaction (see the module's docstring).
STEP_JOURNAL = 'journal the batch as half done'
STEP_DRIVER_PATHS = "write libxl's driver_path"
STEP_MOVE = 'move'
STEP_QUARANTINE = 'quarantine'

STATE_PRESENT = 'present'         # the states a request asks for (the module's ``state``)
STATE_ABSENT = 'absent'


class PassthroughError(Exception):
    """A refusal or a failure; ``results`` says what happened to each device (nothing, or rolled back)."""

    def __init__(self, message, results=None):
        super(PassthroughError, self).__init__(message)
        self.results = results or []


def parse_devices(requested):
    """The canonical addresses of ``requested``, repeats dropped; PassthroughError naming every bad entry.

    Callers check a request with this before they take the host lock, whose directory and file
    would otherwise be created for a request that is refused.
    """
    addresses, errors = parse_address_list(requested)
    if errors:
        raise PassthroughError('invalid device address: %s; nothing was changed' % '; '.join(errors))
    return addresses


def rollback_message(address, cause, gone=(), parked=()):
    """The message of a batch put back after ``cause`` failed at ``address``: every cause is said, each by name.

    ``gone`` are the devices that left the PCI bus during the run (nothing to put back), ``parked``
    those held by pciback because their own driver would not take them back.
    """
    causes = ['%s: %s' % (address, cause)]
    if gone:
        causes.append('%s left the PCI bus during the run' % ', '.join(gone))
    if parked:
        causes.append('the %s was put back, except %s, held by pciback because its driver would not take it back'
                      % ('rest of the batch' if gone else 'batch', ', '.join(parked)))
    else:
        causes.append('every %s of this batch was put back as it was' % ('other device' if gone else 'device'))
    return '; '.join(causes)


class DevicePlan:
    """What the engine will do with one device, and the snapshot it can be put back to."""

    def __init__(self, address, target, action, restore, snapshot, entry, original, source, recovering=False):
        self.address = address
        self.target = target              # STATE_PRESENT or STATE_ABSENT
        self.action = action
        self.restore = restore            # give the original driver back (absent)
        self.driver_before, self.override_before, self.in_slots_before = snapshot
        self.entry = entry                # journal entry before the run (or None)
        self.original_driver = original
        self.original_source = source     # 'journal', 'xenstore', 'current driver', 'kernel probe' or None
        self.recovering = recovering
        self.followed_from = None         # the address its records named, when they were followed to this one
        self.quarantined = None           # True/False once known
        self.quarantined_here = False     # this run quarantined it (undo: de-quarantine)
        self.dequarantined_here = False   # this run de-quarantined it (undo: quarantine again)
        self.reset_done = False
        self.driver_after = self.driver_before
        self.driver_path_written = False  # this run wrote libxl's driver_path (undo: remove it)
        self.parked = False               # put back on pciback, its driver refusing it (journal: held)

    @property
    def pci_address(self):
        return parse_pci_address(self.address)

    def result(self):
        result = {
            'address': self.address,
            'action': self.action,
            'driver_before': self.driver_before,
            'driver_after': self.driver_after,
            'original_driver': self.original_driver,
            'original_driver_source': self.original_source,
            'quarantined': self.quarantined,
            'reset': self.reset_done,
            'recovered': self.recovering,
        }
        if self.followed_from is not None:
            result['followed_from'] = self.followed_from
        return result


def safety_refusals(plans, requested, records, inventory, force=False, require_reset=False):
    """(refusals, warnings) for ``plans``: what makes the batch unsafe, from what it is given only (no I/O).

    ``requested`` are the addresses the request names, ``records`` libxl's records by address (a
    ``domid`` is a guest using the device), ``inventory`` the host's devices (read_devices), what the
    host needs (find_host_needs) and the co-assignment sets (coassignment_sets): None when no device
    is to be bound, or with ``force``. ``force`` lifts every refusal but one: the release of a device
    a guest uses that the request does not name (one an earlier run left half done).
    """
    refusals, warnings = [], []
    if inventory is not None and not force:
        for plan in plans:
            if plan.action == ACTION_BIND:
                against, warned = _bind_refusals(plan.address, requested, inventory, require_reset)
                refusals.extend(against)
                warnings.extend(warned)
    for plan in plans:
        if plan.action in (ACTION_RELEASE, ACTION_RESTORE) and not (force and plan.address in requested):
            domid = records.get(plan.address, {}).get('domid')
            if domid not in (None, ''):
                refusals.append('%s is assigned to domain %s; detach it from the guest first (xl pci-detach)'
                                % (plan.address, domid))
    return refusals, warnings


def _bind_refusals(address, requested, inventory, require_reset):
    """(refusals, warnings): what stands against binding ``address`` to pciback (see safety_refusals)."""
    refusals, warnings = [], []
    devices, needs, sets = inventory
    record = devices[address]
    for reason in needs.get(address, []):
        refusals.append('%s %s' % (address, reason))
    if record['bridge']:
        refusals.append('%s is a bridge (class %s); pass through the devices behind it instead' % (address, record['class']))
    if not record['reset_methods']:
        no_reset = ('%s offers no reset the kernel can do (no FLR, power-management, bus or slot reset): '
                    'a guest may get it in the state its last user left it' % address)
        if require_reset:
            refusals.append(no_reset)
        else:
            warnings.append(no_reset + ' (require_reset: true refuses such a device)')
    coassigned = sets[address]
    left = [member for member in coassigned['devices']
            if member not in requested and not devices[member]['bridge'] and devices[member]['driver'] not in (None, PCIBACK)]
    if left:
        refusals.append('%s cannot be isolated from %s, which stay on dom0 drivers (%s); a guest needs the whole set: '
                        'list them too' % (address, ', '.join(left), '; '.join(coassigned['reasons'])))
    return refusals, warnings


class PcibackBinder:
    """Makes devices assignable (``present``) or gives them back (``absent``) on one dom0.

    ``host`` is an XenHost, ``sysfs`` a PciSysfs, ``journal`` a DriverJournal, ``toolstack`` an
    XenToolstack when xenstored runs (else None), ``commands`` runs modprobe.
    """

    def __init__(self, paths, host, sysfs, journal, toolstack, commands, check_mode=False,
                 force=False, quarantine=True, reset=False, controller_address=None, functions='given',
                 require_reset=False, follow_identity=False):
        self.paths = paths
        self.host = host
        self.sysfs = sysfs
        self.journal = journal
        self.toolstack = toolstack
        self.commands = commands
        self.check_mode = check_mode
        self.force = force
        self.quarantine = quarantine
        self.reset = reset
        self.controller_address = controller_address
        self.functions = functions        # 'all': a function named stands for every function of its device
        self.require_reset = require_reset
        self.follow_identity = follow_identity    # act where a drifted address's recorded device is now
        self.followed = {}                # new address -> the address its records named
        self.notes = []
        self.warnings = []
        self.hypervisor_limit = None
        self._boot_id = host.boot_id()
        self._quarantine_capable = None
        self._records = {}
        self._identities = {}
        self._stale = set()               # forced drifted addresses: their records are another device's

    # ---- entry point -------------------------------------------------------------------------
    def ensure(self, requested, state, restore=True):
        """Bring ``requested`` addresses to ``state``; return a result dict (raises PassthroughError).

        Check the host and read what is there; plan every device (no I/O); refuse an unsafe batch;
        ask Xen what the result must say; then apply the plans as one transaction, or in check mode
        say what they would do.
        """
        addresses = self._existing_devices(requested)
        pciback_loaded = self._require_pciback()
        journal = self.journal.load()
        addresses, journal_moved = self._drift(addresses, journal)
        records = self._records = self._libxl_records()
        targets = self._targets(addresses, state, restore, journal)
        self._identities = current_identities(self.sysfs.devices_dir, [address for address, _t, _r in targets])
        slots = self.sysfs.pciback_slots()
        snapshots = dict((address, (self.sysfs.driver(address), self.sysfs.driver_override(address), address in slots))
                         for address, _target, _give_back in targets)
        xen_quarantines = self._ask_xen_before_planning(targets, journal, snapshots)
        plans = [self._plan(address, target, give_back, journal.get(address), records, snapshots[address], xen_quarantines)
                 for address, target, give_back in targets]
        self._refuse_unsafe(plans, addresses, records)
        if state == STATE_PRESENT and self.quarantine and self.toolstack is not None and not self._all_quarantined(plans):
            self._can_quarantine()        # what the hypervisor lacks, if anything, goes in the result
        for plan in plans:
            plan.followed_from = self.followed.get(plan.address)
        work = [plan for plan in plans if plan.action != ACTION_NONE]
        if journal_moved and not work and not self.check_mode:
            self.journal.save(journal)      # the followed records, even when their devices need no move
        if work and not self.check_mode:
            if not pciback_loaded and any(plan.target == STATE_PRESENT for plan in work):
                self._load_pciback()
            self._apply(work, journal)
        else:
            for plan in work:
                plan.driver_after = PCIBACK if plan.target == STATE_PRESENT else (
                    plan.original_driver if plan.restore else None)
        return {
            'changed': bool(work),
            'devices': [plan.result() for plan in plans],
            'notes': self.notes,
            'hypervisor_limit': self.hypervisor_limit,
        }

    def _existing_devices(self, requested):
        """The canonical addresses requested (every function of their devices with ``functions: all``), on a dom0."""
        addresses = parse_devices(requested)
        self._require_dom0()
        missing = [address for address in addresses if not self.sysfs.exists(address)]
        if missing:
            raise PassthroughError('no such PCI device: %s (not in %s); nothing was changed'
                                   % (', '.join(missing), self.sysfs.devices_dir))
        if self.functions == 'all':
            addresses = whole_devices(addresses, self.sysfs.addresses())
        return addresses

    def _drift(self, addresses, journal):
        """``(addresses, journal moved)``: the addresses to act on, once the records of each (its journal entry, its
        hide list comment) are compared with the device there now (see ``_xen/drift.py``).

        A drifted address is refused, unless ``follow_identity`` (the recorded device is found where it is now, by
        its identity, and acted on there, its journal entry moving with it) or ``force`` (the address is acted on
        as it is; a journal entry made for the other device is dropped, its driver not given to this one).
        """
        drift = drift_at(self.paths, journal, self.sysfs.devices_dir, addresses)
        if not drift:
            return addresses, False
        messages = [drift_message(self.paths, address, entry) for address in sorted(drift) for entry in drift[address]]
        if self.follow_identity:
            return self._follow(addresses, journal, drift), True
        if self.force:
            for address in sorted(drift):
                self._stale.add(address)
                if any(entry['source'] == JOURNAL for entry in drift[address]):
                    journal.pop(address, None)
            self.notes.append('acted on the addresses as they are (force): %s; the journal entries and libxl records '
                              'made for the other devices are not used' % '; '.join(messages))
            return addresses, False
        raise PassthroughError('refusing: %s; follow_identity: true acts on the recorded devices where they are now, '
                               'force: true on the addresses as they are; nothing was changed' % '; '.join(messages))

    def _follow(self, addresses, journal, drift):
        """The addresses with each drifted one replaced by where its recorded device is now (PassthroughError naming
        every identity that matches no device or several, or a device another record already names)."""
        everything = self.sysfs.addresses()
        result, refusals = [], []
        for address in addresses:
            if address not in drift:
                result.append(address)
                continue
            recorded = drift[address][0]['recorded']
            try:
                found = follow(recorded, self.sysfs.devices_dir, everything)
            except IdentityError as exc:
                refusals.append('%s: %s' % (address, exc))
                continue
            if found != address and found in journal:
                refusals.append('%s: its recorded device is at %s now, which the journal already records'
                                % (address, found))
                continue
            if address in journal and (journal[address].get('identity') or {}) == recorded:
                journal[found] = journal.pop(address)
            self.followed[found] = address
            self.notes.append('%s; followed it to %s' % (drift_message(self.paths, address, drift[address][0]), found))
            result.append(found)
        if refusals:
            raise PassthroughError('refusing: %s; nothing was changed' % '; '.join(refusals))
        return list(dict.fromkeys(result))

    def _targets(self, addresses, state, restore, journal):
        """(address, state, restore) for each device to plan: those requested, then those left half done."""
        targets = [(address, state, restore) for address in addresses]
        for address in sorted(journal):
            if journal[address]['phase'] in HALF_DONE_PHASES and address not in addresses and self.sysfs.exists(address):
                # Interrupted earlier and not named now: give the device back to its original driver.
                targets.append((address, STATE_ABSENT, True))
        return targets

    # ---- checks before anything is touched ---------------------------------------------------
    def require_host(self):
        """Refuse a host that is not a Xen dom0, or whose kernel cannot have xen-pciback: what a run checks
        before it creates anything, its lock and journal directory included (ensure checks it again)."""
        self._require_dom0()
        self._require_pciback()

    def _require_dom0(self):
        if self.host.hypervisor() != 'xen':
            raise PassthroughError('this host is not running on Xen (%s/hypervisor/type does not say xen): '
                                   'boot it as a Xen dom0 first; nothing was changed' % self.paths.sys)
        if not self.host.is_dom0():
            raise PassthroughError('this host is a Xen guest, not dom0 (%s/xen/capabilities lacks control_d); '
                                   'PCI devices are assigned from dom0; nothing was changed' % self.paths.proc)

    def _require_pciback(self):
        """True when pciback is loaded, False when it can be loaded; raise when it cannot be had."""
        if self.sysfs.pciback_loaded():
            return True
        build = self.host.pciback_build()
        if build in ('absent', 'builtin'):
            symbol = pciback_symbol(self.host.arch)
            problem = 'lacks %s' % symbol if build == 'absent' else 'has %s built in, yet pciback is not there' % symbol
            raise PassthroughError('xen-pciback is not available: the running kernel %s %s (the option xen-pciback '
                                   'needs on %s); nothing was changed' % (self.host.kernel_release, problem, self.host.arch))
        return False

    def _load_pciback(self):
        modprobe = self.commands.find('modprobe')
        if modprobe is None:
            raise PassthroughError('xen-pciback is not loaded and modprobe was not found; nothing was changed')
        rc, out, err = self.commands.run([modprobe, PCIBACK_MODULE])
        if rc != 0 or not self.sysfs.pciback_loaded():
            raise PassthroughError('xen-pciback could not be loaded (modprobe %s: %s); check dmesg for a '
                                   'malformed hide= parameter; nothing was changed'
                                   % (PCIBACK_MODULE, (err or out).strip() or 'rc=%d' % rc))
        self.notes.append('loaded %s' % PCIBACK_MODULE)

    def _libxl_records(self):
        if self.toolstack is None:
            return {}
        try:
            records = self.toolstack.libxl_records()
            for address, domid in self.toolstack.backend_devices().items():
                records.setdefault(address, {}).setdefault('domid', domid)
            return records
        except ToolstackError as exc:
            raise PassthroughError('cannot read libxl records from xenstore: %s; nothing was changed' % exc)

    def _plan(self, address, target, restore, entry, records, snapshot, xen_quarantines):
        """What to do with one device, from what was read (``snapshot``: driver, override, in pciback's slots): no I/O.

        ``xen_quarantines`` is Xen's answer, asked before planning when a held device may need quarantine again.
        """
        driver, _override, in_slots = snapshot
        original, source = self._original_driver(address, driver, entry, {} if address in self._stale else records)
        recovering = entry is not None and entry['phase'] in HALF_DONE_PHASES
        if target == STATE_PRESENT:
            if driver != PCIBACK:
                action = ACTION_BIND
            elif (entry is None or entry['phase'] != PHASE_HELD or (self._quarantine_lost(entry) and xen_quarantines)
                  or self._lacks_libxl_record(address, records, original)):
                action = ACTION_ADOPT
            else:
                action = ACTION_NONE
        elif driver == PCIBACK or in_slots:
            action = ACTION_RELEASE
        elif entry is None:
            action = ACTION_NONE
        elif driver is not None:
            action = ACTION_FORGET     # back on a driver by other means: drop the stale record
        elif restore or entry['phase'] != PHASE_RELEASED:
            action = ACTION_RESTORE
        else:
            action = ACTION_NONE
        return DevicePlan(address, target, action, restore, snapshot, entry, original, source, recovering)

    @staticmethod
    def _original_driver(address, driver, entry, records):
        if entry is not None:
            return entry.get('original_driver'), 'journal'
        recorded = driver_from_path(records.get(address, {}).get('driver_path'))
        if recorded:
            return recorded, 'xenstore'
        if driver and driver != PCIBACK:
            return driver, 'current driver'
        return None, None

    def _lacks_libxl_record(self, address, records, original):
        """Held with its driver on record, but libxl's driver_path is gone (xenstore lives in memory: a reboot, or
        xenstored down at the time): write it again, so that ``xl pci-assignable-remove -r`` can give it back."""
        return (self.toolstack is not None and original is not None
                and not records.get(address, {}).get('driver_path'))

    def _quarantine_lost(self, entry):
        """Held, and to be quarantined, but not quarantined in this boot (Xen forgets its quarantine on reboot)."""
        return (self.quarantine and self.toolstack is not None and entry is not None and entry['phase'] == PHASE_HELD
                and entry.get('quarantined_boot') != self._boot_id)

    def _ask_xen_before_planning(self, targets, journal, snapshots):
        """Whether Xen can quarantine, asked here once (its note recorded) when a held device named ``present`` lost
        its quarantine: the answer decides whether it is adopted to be quarantined again. None when not asked."""
        for address, target, _give_back in targets:
            if target == STATE_PRESENT and snapshots[address][0] == PCIBACK and self._quarantine_lost(journal.get(address)):
                return self._can_quarantine()
        return None

    def _all_quarantined(self, plans):
        """Every device already held and quarantined by Xen in this boot: Xen can quarantine, no need to ask it."""
        return all(plan.action == ACTION_NONE and (plan.entry or {}).get('quarantined_boot') == self._boot_id
                   for plan in plans)

    def _can_quarantine(self):
        if self._quarantine_capable is None:
            try:
                capable, reason = self.toolstack.quarantine_capable()
            except ToolstackError as exc:
                capable, reason = False, 'cannot ask Xen whether it can quarantine: %s' % exc
            self._quarantine_capable = capable
            if reason:
                self.notes.append(reason)
                if not capable:
                    self.hypervisor_limit = reason
        return self._quarantine_capable

    def _quarantine_refused(self, exc):
        """Xen refused to quarantine (no PCI passthrough in this build): quarantine nothing more in this run."""
        self._quarantine_capable = False
        if self.hypervisor_limit is None:
            self.hypervisor_limit = str(exc)
            self.notes.append(str(exc))

    def _refuse_unsafe(self, plans, requested, records):
        """Read what the checks need, then refuse the batch (nothing changed) when safety_refusals finds a reason."""
        inventory = None
        if not self.force and any(plan.action == ACTION_BIND for plan in plans):
            devices = read_devices(self.sysfs)
            inventory = (devices, find_host_needs(self.paths, devices, self.controller_address),
                         coassignment_sets(self.sysfs, devices))
        refusals, warnings = safety_refusals(plans, requested, records, inventory, self.force, self.require_reset)
        self.warnings.extend(warnings)
        if refusals:
            for plan in plans:
                plan.action = ACTION_NONE
            raise PassthroughError('refusing: %s; nothing was changed (force: true overrides)' % '; '.join(refusals),
                                   [plan.result() for plan in plans])

    # ---- doing it ----------------------------------------------------------------------------
    def _apply(self, work, journal):
        """Do the batch as one transaction (see the module's docstring), then journal the outcome.

        On a failure the steps begun are undone, newest first, and PassthroughError names every cause.
        """
        transaction = Transaction()
        # Nothing is moved yet: a failure of these two goes up as it is, and the journal they leave half done
        # tells the next run what to finish, as an interruption would.
        transaction.run([
            Step(STEP_JOURNAL, None, do=partial(self._journal_half_done, work, journal),
                 undo=partial(self._journal_put_back, work, journal)),
            Step(STEP_DRIVER_PATHS, None, do=partial(self._record_driver_paths, work),
                 undo=partial(self._forget_driver_paths, work, unless_parked=True)),
        ])
        steps = [Step(STEP_MOVE, plan, do=partial(self._move, plan), undo=partial(self._put_back, plan))
                 for plan in work]
        # Putting a device back (its move's undo) de-quarantines it first, as xl does before it unbinds: the
        # quarantine has no undo of its own, so that a device Xen still holds is not given to a dom0 driver.
        steps += [Step(STEP_QUARANTINE, plan, do=partial(self._quarantine, plan), undo=None)
                  for plan in work if plan.target == STATE_PRESENT]
        try:
            transaction.run(steps, undo_on=(OSError, ToolstackError, PassthroughError))
        except StepFailed as failure:
            moved = [step.subject for step in failure.undone if step.name == STEP_MOVE]      # newest first
            gone = [plan.address for plan in reversed(moved) if not self.sysfs.exists(plan.address)]
            parked = [plan.address for plan in moved if plan.parked]
            message = rollback_message(failure.step.subject.address, self._describe(failure.cause), gone, parked)
            raise PassthroughError(message, [plan.result() for plan in work])
        self._journal_done(work, journal)

    def _journal_half_done(self, work, journal):
        """Step: the journal says every device of the batch is being moved (``binding`` or ``releasing``)."""
        for plan in work:
            journal[plan.address] = self._entry_for(plan, PHASE_BINDING if plan.target == STATE_PRESENT else PHASE_RELEASING)
        self.journal.save(journal)

    def _journal_put_back(self, work, journal):
        """Undo: every entry of the batch as it was before the run, but a device parked on pciback is held."""
        for plan in work:
            if plan.parked:
                journal[plan.address] = self._entry_for(plan, PHASE_HELD)
            elif plan.entry is None:
                journal.pop(plan.address, None)
            else:
                journal[plan.address] = plan.entry
        self.journal.save(journal)

    def _journal_done(self, work, journal):
        """After the transaction: held, released without a driver (``restore: false``) or no entry at all; the
        driver_path of each device given back is removed, as ``xl pci-assignable-remove -r`` removes it."""
        for plan in work:
            if plan.target == STATE_PRESENT:
                journal[plan.address] = self._entry_for(plan, PHASE_HELD)
            elif plan.driver_after is None and not plan.restore and plan.original_driver is not None:
                journal[plan.address] = self._entry_for(plan, PHASE_RELEASED)
            else:
                journal.pop(plan.address, None)
        self.journal.save(journal)
        self._forget_driver_paths([plan for plan in work if plan.target == STATE_ABSENT and plan.address not in journal
                                   and (plan.driver_path_written or self._records.get(plan.address, {}).get('driver_path'))])

    def _entry_for(self, plan, phase):
        entry = dict(plan.entry or {})
        if plan.quarantined:
            quarantined_boot = self._boot_id
        elif phase == PHASE_HELD and plan.quarantined is None:
            quarantined_boot = entry.get('quarantined_boot')
        else:
            quarantined_boot = None
        entry.update({'original_driver': plan.original_driver, 'phase': phase, 'quarantined_boot': quarantined_boot})
        identity = self._identities.get(plan.address)
        if identity is not None:
            entry['identity'] = identity
        vf_reference = self.sysfs.vf_reference(plan.address)
        if vf_reference is not None:
            entry['sriov_vf'] = vf_reference       # a VF by its PF and index too, beside its address
        if plan.override_before not in (None, PCIBACK) and not entry.get('original_override'):
            entry['original_override'] = plan.override_before
        entry.setdefault('original_override', None)
        return entry

    @staticmethod
    def _describe(exc):
        if isinstance(exc, OSError) and exc.errno is not None:
            return '%s (%s)' % (os.strerror(exc.errno), errno.errorcode.get(exc.errno, exc.errno))
        return str(exc)

    def _record_driver_paths(self, work):
        """Step: write libxl's driver_path before any move, so ``xl pci-assignable-remove -r`` can give the device back."""
        if self.toolstack is None:
            return
        writing = [plan for plan in work
                   if plan.target == STATE_PRESENT and plan.original_driver and plan.original_source != 'xenstore']
        try:
            self.toolstack.write_driver_paths(dict((plan.pci_address, plan.original_driver) for plan in writing))
        except ToolstackError as exc:
            raise PassthroughError('cannot write libxl records to xenstore: %s; nothing was moved' % exc)
        for plan in writing:
            plan.driver_path_written = True

    def _forget_driver_paths(self, plans, unless_parked=False):
        """Remove libxl's driver_path of ``plans``; ``unless_parked``: the undo of _record_driver_paths, which keeps
        the record of a device parked on pciback (``xl pci-assignable-remove -r`` can give it back)."""
        if unless_parked:
            plans = [plan for plan in plans if plan.driver_path_written and not plan.parked]
        if self.toolstack is None or not plans:
            return
        try:
            self.toolstack.remove_driver_paths([plan.pci_address for plan in plans])
        except ToolstackError as exc:
            self.notes.append('could not remove libxl driver_path records: %s' % exc)

    def _move(self, plan):
        if plan.action == ACTION_BIND:
            self._bind_to_pciback(plan)
        elif plan.action == ACTION_RELEASE:
            self._release_from_pciback(plan)
            if plan.restore:
                self._give_back(plan)
        elif plan.action == ACTION_RESTORE:
            self._give_back(plan)
        plan.driver_after = self.sysfs.driver(plan.address)

    def _bind_to_pciback(self, plan):
        address = plan.address
        if plan.override_before not in (None, PCIBACK):
            self.sysfs.set_driver_override(address, None)   # another driver's override would make bind fail
        if plan.override_before != PCIBACK and self.sysfs.probed_only_with_override(address):
            self.sysfs.set_driver_override(address, PCIBACK)
        if plan.driver_before:
            self.sysfs.unbind(address, plan.driver_before)
        if address not in self.sysfs.pciback_slots():
            self.sysfs.pciback_new_slot(address)
        try:
            self.sysfs.bind(address, PCIBACK)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            self.hypervisor_limit = no_pci_device_reset(self.host.xen_version_tuple(), self.host.arch)
            self.notes.append(self.hypervisor_limit)
            raise PassthroughError('xen-pciback cannot take the device: %s' % self.hypervisor_limit)
        if self.reset:
            if os.path.exists(os.path.join(self.sysfs.device_dir(address), 'reset')):
                self.sysfs.reset(address)
                plan.reset_done = True
            else:
                self.notes.append('%s has no reset method; not reset' % address)

    def _quarantine(self, plan):
        if not self.quarantine or self.toolstack is None:
            return
        if plan.action == ACTION_ADOPT and (plan.entry or {}).get('quarantined_boot') == self._boot_id:
            plan.quarantined = True
            return
        if not self._can_quarantine():
            plan.quarantined = False
            return
        try:
            self.toolstack.quarantine(plan.pci_address, self._named(plan))
        except QuarantineRefused as exc:
            self._quarantine_refused(exc)
            plan.quarantined = False
            return
        plan.quarantined = plan.quarantined_here = True

    def _named(self, plan):
        """libxl has a ``name`` for the device (``xl pci-assignable-add -n``), which xl drops as it (de)quarantines."""
        return 'name' in self._records.get(plan.address, {})

    def _release_from_pciback(self, plan):
        """De-quarantine (xl also unbinds and drops the slot; libxenctrl does Xen's part only), then finish in sysfs."""
        address = plan.address
        if plan.driver_before == PCIBACK and self.quarantine and self.toolstack is not None and self._can_quarantine():
            # Xen de-quarantines only what it holds; add first (idempotent) unless this boot's journal says so.
            try:
                if (plan.entry or {}).get('quarantined_boot') != self._boot_id:
                    self.toolstack.quarantine(plan.pci_address, self._named(plan))
                self.toolstack.dequarantine(plan.pci_address, self._named(plan))
                plan.dequarantined_here = True
            except QuarantineRefused as exc:
                self._quarantine_refused(exc)     # nothing quarantined to undo: sysfs does the rest
        if self.sysfs.driver(address) == PCIBACK:
            self.sysfs.unbind(address, PCIBACK)
        if address in self.sysfs.pciback_slots():
            self.sysfs.pciback_remove_slot(address)
        if self.sysfs.driver_override(address) == PCIBACK:
            self.sysfs.set_driver_override(address, None)
        plan.quarantined = False

    def _give_back(self, plan):
        """Bind the recorded driver (none on record: let the kernel choose) and check it took."""
        address = plan.address
        driver = plan.original_driver
        if driver is None:
            self.sysfs.probe(address)
            plan.original_source = 'kernel probe'
        else:
            if not self.sysfs.driver_loaded(driver):
                self._load_module_for(address)
            if self.sysfs.driver(address) != driver:
                self.sysfs.bind(address, driver)
            if self.sysfs.driver(address) != driver:
                raise PassthroughError('%s did not bind to its original driver %s' % (address, driver))
        override = (plan.entry or {}).get('original_override')
        if override and self.sysfs.driver_override(address) != override:
            self.sysfs.set_driver_override(address, override)

    def _load_module_for(self, address):
        """Load the module for the device's modalias (a module name may differ from its driver's name)."""
        modalias = read_text(os.path.join(self.sysfs.device_dir(address), 'modalias'))
        modprobe = self.commands.find('modprobe')
        if modalias and modprobe:
            self.commands.run([modprobe, '-q', modalias])

    # ---- undo ---------------------------------------------------------------------------------
    def _put_back(self, plan):
        """Undo of a move (and of the device's quarantine): back to its snapshot, or, when its driver will not take it
        back, held by pciback (``plan.parked``) rather than left without a driver."""
        if not self.sysfs.exists(plan.address):
            # It left the bus during the run (hot unplug): nothing to put back, and no pciback slot may stay
            # behind to seize it when it comes back.
            self._drop_added_slot(plan)
            plan.driver_after = None
            plan.quarantined = None
            return
        try:
            self._restore_snapshot(plan)
        except (OSError, ToolstackError):
            pass
        now = self.sysfs.driver(plan.address)
        if now is None and plan.driver_before is not None:
            # Its driver will not take it back: hold it on pciback rather than leave it orphaned.
            try:
                self._bind_back(plan.address, PCIBACK)
                now = PCIBACK
            except OSError:
                self.notes.append('%s is left without a driver: putting it back failed' % plan.address)
        if now == PCIBACK and plan.driver_before != PCIBACK:
            if plan.address not in self.sysfs.pciback_slots():
                self.sysfs.pciback_new_slot(plan.address)
            plan.parked = True
        plan.driver_after = now
        plan.quarantined = None

    def _restore_snapshot(self, plan):
        address = plan.address
        if plan.quarantined_here:
            self.toolstack.dequarantine(plan.pci_address, self._named(plan))
        current = self.sysfs.driver(address)
        if current != plan.driver_before and current is not None:
            self.sysfs.unbind(address, current)
        in_slots = address in self.sysfs.pciback_slots()
        if in_slots and not plan.in_slots_before:
            self.sysfs.pciback_remove_slot(address)
        elif plan.in_slots_before and not in_slots:
            self.sysfs.pciback_new_slot(address)
        if self.sysfs.driver_override(address) != plan.override_before:
            self.sysfs.set_driver_override(address, plan.override_before)
        if current != plan.driver_before and plan.driver_before is not None:
            self._bind_back(address, plan.driver_before)
        if plan.dequarantined_here:
            self.toolstack.quarantine(plan.pci_address, self._named(plan))

    def _drop_added_slot(self, plan):
        if plan.address in self.sysfs.pciback_slots() and not plan.in_slots_before:
            try:
                self.sysfs.pciback_remove_slot(plan.address)
            except OSError:
                self.notes.append('%s: could not remove the pciback slot this run added' % plan.address)

    def _bind_back(self, address, driver):
        slot_added = driver == PCIBACK and address not in self.sysfs.pciback_slots()
        if slot_added:
            self.sysfs.pciback_new_slot(address)
        try:
            self.sysfs.bind(address, driver)
        except OSError:
            if driver == PCIBACK:
                if slot_added:     # pciback did not take it: its slot must not seize the device later
                    self.sysfs.pciback_remove_slot(address)
                raise
            self.sysfs.probe(address)


def open_binder(paths, commands, sysfs=None, uname=None, **options):
    """A PcibackBinder for the host at ``paths``, with the toolstack when xenstored runs there."""
    from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import DriverJournal
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import XenToolstack

    host = XenHost(paths, uname=uname)
    toolstack = None
    if host.is_dom0() and host.xenstored_running():
        candidate = XenToolstack.for_host(commands, host)
        if candidate.available():
            toolstack = candidate
    binder = PcibackBinder(paths, host, sysfs or PciSysfs(paths), DriverJournal(paths), toolstack, commands, **options)
    if toolstack is None and host.is_dom0():
        binder.notes.append('xenstored is not running or xl is not installed: devices are bound in sysfs only, '
                            'without a libxl record or quarantine')
    return binder
