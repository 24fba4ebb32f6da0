# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""A running Xen guest's PCI devices: what ``xl pci-attach`` and ``xl pci-detach`` do, for a list in one task.

The state is read once per task: ``xl list`` (the running domains, by name and id), ``xl pci-list`` of
the guest (its devices), libxl's records (``/libxl/pci``: a ``domid`` while a domain has a device)
and the PV PCI backends of live domains (which domain holds which device, with the options libxl
wrote). Every refusal is decided from that before anything is changed.

What libxl does, and this follows (tools/libs/light/libxl_pci.c, Xen 4.17): ``libxl__device_pci_add``
refuses a device that is not *assignable* -- not bound to pciback, or with a ``domid`` in its libxl
record (libxl_pci_assignable) -- unless ``seize=1`` lets it take the device from its dom0 driver
itself, without any record beyond libxl's ``driver_path``. Here a device that is not assignable is
refused by name, or, when the task asks for it (``make_assignable``, or ``seize`` for that device),
made assignable first by the collection's binder (_xen.binding: the journal of original drivers,
the refusal of devices the host needs, rollback), as ``pci_assignable`` would. ``xl pci-detach``
(libxl_device_pci_remove) fails for a device the guest does not have, so only the guest's devices
are detached; Xen then puts a device that was quarantined back in quarantine and the device stays
on pciback, assignable: giving it back to its dom0 driver is ``pci_assignable``'s job.

A failure part-way through attaching detaches again what the task attached and gives back to their
drivers the devices it made assignable. A failure part-way through detaching stops there: the
devices already detached stay detached (what was asked), and the error names them.

With a guest configuration file (``config``), its ``pci = [...]`` list is kept in step too (through
xl_config: a file xl could not read, or whose list an edit could not be sure of, is refused and left
as it was; the new text replaces the file atomically, never through a symbolic link). The file is
planned before anything changes, and written last, under the same lock; whether the guest runs or
not: a guest that does not run only has its file changed. A file that names another guest
(``name = "..."``) is refused.

A device's address is checked against the collection's records of it first (_xen.drift: the journal
and the hide list keep each device's identity beside its address): an address whose records name
another device than the one there now is refused, as ``pci_assignable`` refuses it, unless the task
follows the identity (``follow_identity``). Then the device recorded is found where it is now and
acted on there: attached or detached at that address, written there in the file (its entry at the
old address taken out), and made assignable by the binder given the old address, so that its
journal entry moves with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import unicodedata

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError, write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import PciAddressError, parse_pci_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import IdentityError
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PCIBACK
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import PassthroughError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.drift import drift_at, drift_message, follow
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import JournalError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import ToolstackError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xl_config import (
    BOOLEAN_OPTIONS, CONFIG_DIR, OPTION_ORDER, RDM_POLICIES,
    XlConfigError,
    dequote,
    parse_statements,
    plan_pci_edit,
    read_guest_configs,
)

DOM0_NAME = 'Domain-0'
# The per-device options of a PCI_SPEC_STRING (xl-pci-configuration(5)) this module sets, in xl's order: the ones
# xl_config reads and writes (one definition of each).
DEVICE_OPTIONS = OPTION_ORDER
# Keys xl knows that this module does not set (the address is ``address``; the guest chooses its slot).
XL_KEYS_NOT_SET = ('bdf', 'vslot', 'name')
_TRUE = ('1', 'true', 'yes', 'on')
_FALSE = ('0', 'false', 'no', 'off')

ACTION_ATTACH = 'attached'
ACTION_DETACH = 'detached'
ACTION_NONE = 'unchanged'
_LEFT_AS_IT_WAS = '; it was left as it was'


class GuestPciError(Exception):
    """A refusal or a failure; ``results`` says what happened to each device, ``hypervisor_limit`` why Xen cannot."""

    def __init__(self, message, results=None, hypervisor_limit=None):
        super(GuestPciError, self).__init__(message)
        self.results = results or []
        self.hypervisor_limit = hypervisor_limit


class DeviceRequest:
    """One device of the task: its canonical address and the options given for it (canonical values)."""

    def __init__(self, address, options):
        self.address = address
        self.options = options

    def spec(self):
        """The PCI_SPEC_STRING for ``xl pci-attach``: the address, then each option given, as xl spells it."""
        parts = [self.address]
        for key in DEVICE_OPTIONS:
            if key in self.options:
                value = self.options[key]
                parts.append('%s=%s' % (key, (1 if value else 0) if key in BOOLEAN_OPTIONS else value))
        return ','.join(parts)


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def _parse_options(entry, errors):
    """The options of a dict entry, canonical; every problem is appended to ``errors``."""
    options = {}
    for key in sorted(entry, key=repr):
        if key == 'address':
            continue
        value = entry[key]
        if key in BOOLEAN_OPTIONS:
            try:
                options[key] = _boolean(value)
            except ValueError:
                errors.append('%s=%r is not a boolean (true/false, 1/0)' % (key, value))
        elif key == 'rdm_policy':
            if isinstance(value, str) and value.strip().lower() in RDM_POLICIES:
                options[key] = value.strip().lower()
            else:
                errors.append('rdm_policy=%r is not strict or relaxed' % (value,))
        elif key in XL_KEYS_NOT_SET:
            errors.append('%r is a key of xl that this module does not set (it sets %s; the address is address)'
                          % (key, ', '.join(DEVICE_OPTIONS)))
        else:
            errors.append('%r is not a device option xl knows (xl-pci-configuration(5): %s)'
                          % (key, ', '.join(DEVICE_OPTIONS)))
    return options


def parse_device_requests(devices):
    """[DeviceRequest] for ``devices`` (addresses, or dicts with ``address`` and options), repeats dropped.

    Raises GuestPciError naming every bad entry: a malformed address, an option xl does not know, a value
    it would not take, one device listed twice with different options.
    """
    if not isinstance(devices, (list, tuple)):
        raise GuestPciError('devices must be a list, got %r; nothing was changed' % (devices,))
    requests = []
    seen = {}
    errors = []
    for entry in devices:
        entry_errors = []
        if isinstance(entry, dict):
            address_text = entry.get('address')
            if address_text is None:
                errors.append('%r has no address' % (entry,))
                continue
            options = _parse_options(entry, entry_errors)
        elif isinstance(entry, str):
            address_text, options = entry, {}
        else:
            errors.append('%r is neither a PCI address nor a dict with an address' % (entry,))
            continue
        try:
            address = str(parse_pci_address(address_text))
        except PciAddressError as exc:
            errors.append(str(exc))
            continue
        if entry_errors:
            errors.append('%s: %s' % (address, '; '.join(entry_errors)))
            continue
        if address in seen:
            if seen[address].options != options:
                errors.append('%s is listed twice with different options' % address)
            continue
        seen[address] = DeviceRequest(address, options)
        requests.append(seen[address])
    if errors:
        raise GuestPciError('invalid devices: %s; nothing was changed' % '; '.join(errors))
    return requests


def check_domain_name(name):
    """The domain as given, or GuestPciError: empty, not a string, control characters."""
    if not isinstance(name, str) or not name.strip():
        raise GuestPciError('domain must name a Xen guest, got %r; nothing was changed' % (name,))
    if any(unicodedata.category(char) == 'Cc' for char in name):
        raise GuestPciError('domain %r has a control character: no Xen domain is named so; nothing was changed' % (name,))
    return name


class DevicePlan:
    """What the task does with one device, and why."""

    def __init__(self, request, action, driver_before, holder=None, make_assignable=False):
        self.request = request
        self.action = action
        self.driver_before = driver_before
        self.holder = holder                    # another domain's id when one has it
        self.make_assignable = make_assignable
        self.config_action = None               # with a config file: added, replaced, removed or unchanged
        self.followed_from = None               # the address its records named, when they were followed here

    @property
    def address(self):
        return self.request.address

    def result(self):
        result = {
            'address': self.address,
            'action': self.action,
            'options': dict(self.request.options),
            'made_assignable': self.make_assignable and self.action == ACTION_ATTACH,
            'driver_before': self.driver_before,
            'config_action': self.config_action,
        }
        if self.followed_from is not None:
            result['followed_from'] = self.followed_from
        return result


class GuestDevices:
    """Attaches (``present``) or detaches (``absent``) PCI devices of one guest on one dom0, and keeps its
    configuration file's ``pci`` list in step when one is given.

    ``host`` is a XenHost, ``sysfs`` a PciSysfs, ``toolstack`` a XenToolstack (None when xenstored does not run
    or xl is missing: then every task is refused), ``open_binder`` makes a PcibackBinder for a ``check_mode``,
    ``journal`` the DriverJournal whose identities (with the hide list's) are the devices' records (None: the
    hide list's only). ``follow_identity`` acts where a drifted address's recorded device is now (the binder is
    made with the same, see PcibackBinder).
    """

    def __init__(self, paths, host, sysfs, toolstack, open_binder, check_mode=False, make_assignable=False,
                 lock=None, journal=None, follow_identity=False):
        self.paths = paths
        self.host = host
        self.sysfs = sysfs
        self.toolstack = toolstack
        self.open_binder = open_binder
        self.check_mode = check_mode
        self.make_assignable = make_assignable
        self.lock = lock
        self.journal = journal
        self.follow_identity = follow_identity
        self.followed = {}                      # the address acted on -> the address its records named
        self.notes = []
        self.hypervisor_limit = None
        self.config_diff = None                 # the configuration file's diff, once planned

    # ---- entry point -------------------------------------------------------------------------
    def ensure(self, domain, devices, state, config=None, backup=None, labels=None):
        """Bring ``devices`` of guest ``domain`` (and of its configuration file ``config``) to ``state``.

        Returns a result dict, or raises GuestPciError. ``backup`` (``module.backup_local``) copies the file first;
        ``labels`` (the AnsibleModule) keeps its SELinux context.
        """
        requests = parse_device_requests(devices)
        check_domain_name(domain)
        self._require_toolstack()
        if state == 'present':
            self._refuse_without_passthrough()
        guest, names = self._find_guest(domain, config)
        missing = [request.address for request in requests if not self.sysfs.exists(request.address)]
        if missing and (state == 'present' or config is None):
            raise GuestPciError('no such PCI device: %s (not in %s); nothing was changed'
                                % (', '.join(missing), self.sysfs.devices_dir))
        requests = self._drift(requests, missing)
        planned = self._plan_config(config, requests, state, guest, domain) if config else None
        attached = []
        plans = [DevicePlan(request, ACTION_NONE, self.sysfs.driver(request.address)
                            if request.address not in missing else None) for request in requests]
        if guest is not None:
            try:
                attached = [device['address'] for device in self.toolstack.pci_list(guest['domid'])]
                records = self.toolstack.libxl_records()
                backends = self.toolstack.pci_backends()
            except ToolstackError as exc:
                raise GuestPciError('cannot read the devices of %s: %s; nothing was changed' % (_named(guest), exc))
            plans = [self._plan(request, state, attached, records, backends) if request.address not in missing
                     else DevicePlan(request, ACTION_NONE, None) for request in requests]
            self._refuse(plans, guest, names, records, backends)
            self._note_options(plans, backends, guest)
        for plan in plans:
            plan.followed_from = self.followed.get(plan.address)
        if planned is not None:
            self._config_actions(plans, planned)
        other_configs = self._other_configs(requests, config, state)
        assignable = self._make_assignable_check(plans)
        work = [plan for plan in plans if plan.action != ACTION_NONE]
        after = self._expected_after(attached, work)
        file_changes = planned is not None and planned[0].changed
        backup_file = None
        if (work or file_changes) and not self.check_mode:
            if self.lock is None:
                assignable, after, backup_file = self._apply(guest, work, attached, planned, backup, labels)
            else:
                with self.lock():
                    assignable, after, backup_file = self._apply(guest, work, attached, planned, backup, labels)
        result = {
            'changed': bool(work) or file_changes,
            'domain': {'name': guest['name'] if guest else domain, 'domid': guest['domid'] if guest else None,
                       'running': guest is not None},
            'devices': [plan.result() for plan in plans],
            'guest_devices': {'before': attached, 'after': after},
            'assignable': assignable,
            'notes': self.notes,
            'hypervisor_limit': self.hypervisor_limit,
            'other_configs': other_configs,
        }
        if planned is not None:
            self.config_diff = planned[0].diff()
            result['config'] = {'path': config, 'changed': file_changes, 'added': planned[1].added,
                                'replaced': planned[1].replaced, 'removed': planned[1].removed}
            if backup_file:
                result['config']['backup_file'] = backup_file
        return result

    # ---- the devices' records ------------------------------------------------------------------
    def _drift(self, requests, missing):
        """The requests, once the records of each address (journal, hide list) are compared with the device there now.

        A drifted address is refused (GuestPciError, nothing changed), unless ``follow_identity``: then the request
        stands for the address where the recorded device is now (refused when no device or several are it, or when
        it ends on the device another request names with other options).
        """
        journal = self.journal.load() if self.journal is not None else {}
        drift = drift_at(self.paths, journal, self.sysfs.devices_dir,
                         [request.address for request in requests if request.address not in missing])
        if not drift:
            return requests
        if not self.follow_identity:
            raise GuestPciError('refusing: %s; follow_identity: true acts on the recorded devices where they are now; '
                                'nothing was changed' % '; '.join(drift_message(self.paths, address, entry)
                                                                  for address in sorted(drift)
                                                                  for entry in drift[address]))
        everything = self.sysfs.addresses()
        found, refusals = {}, []
        for request in requests:
            if request.address not in drift:
                continue
            try:
                found[request.address] = follow(drift[request.address][0]['recorded'], self.sysfs.devices_dir,
                                                everything)
            except IdentityError as exc:
                refusals.append('%s: %s' % (request.address, exc))
        followed = {}
        for address, there in sorted(found.items()):
            followed.setdefault(there, []).append(address)
        refusals.extend('%s: their records name the same device, at %s now' % (' and '.join(addresses), there)
                        for there, addresses in sorted(followed.items()) if len(addresses) > 1)
        result = {}
        for request in requests:
            if request.address in found:
                request = DeviceRequest(found[request.address], request.options)
            kept = result.setdefault(request.address, request)
            if kept.options != request.options:
                refusals.append('%s is asked twice with different options (%s followed to it)'
                                % (request.address, followed[request.address][0]))
        if refusals:
            raise GuestPciError('refusing: %s; nothing was changed' % '; '.join(refusals))
        for address, there in sorted(found.items()):
            self.followed[there] = address
            self.notes.append('%s; followed it to %s' % (drift_message(self.paths, address, drift[address][0]), there))
        return list(result.values())

    # ---- the configuration file --------------------------------------------------------------
    def _other_configs(self, requests, config, state):
        """``{address: [file, ...]}``: the other guest configurations in /etc/xen that name a device of the task.

        Two guests whose configurations name one device cannot both run: libxl refuses the device to the second
        (it is no longer assignable). With ``present`` that is a note besides the result.
        """
        configs = read_guest_configs(self.paths.join(*CONFIG_DIR))
        found = {}
        for request in requests:
            files = configs.files_naming(request.address, besides=config)
            if files:
                found[request.address] = files
                if state == 'present':
                    self.notes.append('%s is also in the guest configuration %s: of the guests, the one started '
                                      'second is refused it' % (request.address, ', '.join(files)))
        for path in sorted(configs.unreadable):
            self.notes.append('the guest configuration %s was not read for other_configs (%s)'
                              % (path, configs.unreadable[path]))
        return found

    def _plan_config(self, config, requests, state, guest, domain):
        """(PlannedFile, PciEdit) for the file; GuestPciError for a file that cannot be read, parsed or is another
        guest's."""
        # A device followed to its address now: its entry at the old address (another device's now) goes.
        old = [self.followed[request.address] for request in requests if request.address in self.followed]
        if state == 'present':
            add = [(request.address, dict(request.options)) for request in requests]
            remove = old or None
        else:
            add, remove = None, [request.address for request in requests] + old
        try:
            planned, edit = plan_pci_edit(config, add, remove)
            named = [statement for statement in parse_statements(planned.before) if statement.name == 'name']
            file_name = None
            if named and not hasattr(named[-1].value, 'items') and named[-1].value.token.kind == 'string':
                file_name = dequote(named[-1].value.token.text, named[-1].line)
        except XlConfigError as exc:
            where = config if exc.line is None else '%s line %d' % (config, exc.line)
            reason = exc.message[:-len(_LEFT_AS_IT_WAS)] if exc.message.endswith(_LEFT_AS_IT_WAS) else exc.message
            raise GuestPciError('the guest configuration %s: %s; nothing was changed' % (where, reason))
        except FileEditError as exc:
            raise GuestPciError('the guest configuration %s: %s; nothing was changed' % (config, exc))
        wanted = guest['name'] if guest is not None else domain
        if file_name is not None and file_name != wanted:
            raise GuestPciError('the guest configuration %s is the one of %r (name = %r), not of %r; nothing was '
                                'changed' % (config, file_name, file_name, wanted))
        return planned, edit

    @staticmethod
    def _config_actions(plans, planned):
        edit = planned[1]
        for plan in plans:
            address = plan.address
            plan.config_action = ('added' if address in edit.added else 'replaced' if address in edit.replaced
                                  else 'removed' if address in edit.removed else 'unchanged')

    # ---- checks before anything is touched ---------------------------------------------------
    def _require_toolstack(self):
        if self.host.hypervisor() != 'xen':
            raise GuestPciError('this host is not running on Xen (%s/hypervisor/type does not say xen): no guest can '
                                'be given a device; nothing was changed' % self.paths.sys)
        if not self.host.is_dom0():
            raise GuestPciError('this host is a Xen guest, not dom0 (%s/xen/capabilities lacks control_d); devices '
                                'are attached to guests from dom0; nothing was changed' % self.paths.proc)
        if self.toolstack is None:
            raise GuestPciError('xenstored is not running or xl is not installed on this dom0: devices are attached to '
                                'guests with xl; nothing was changed')

    def _refuse_without_passthrough(self):
        try:
            limit = self.toolstack.guest_passthrough_limit()
        except ToolstackError as exc:
            raise GuestPciError('cannot ask Xen whether it passes PCI devices to guests: %s; nothing was changed' % exc)
        if limit:
            self.hypervisor_limit = limit
            raise GuestPciError('refusing: %s; nothing was changed' % limit, hypervisor_limit=limit)

    def _find_guest(self, domain, config=None):
        """(the guest's xl list entry, {domid: name} of the running domains); GuestPciError for dom0, or for a guest
        that does not run when there is no ``config`` (with one, the entry is None: only the file changes)."""
        try:
            domains = self.toolstack.domains()
        except ToolstackError as exc:
            raise GuestPciError('cannot list the running domains: %s; nothing was changed' % exc)
        names = dict((entry['domid'], entry['name']) for entry in domains)
        if domain == DOM0_NAME or (domain.isdigit() and int(domain) == 0):
            raise GuestPciError('domain %r is dom0, the control domain, which holds its devices through its own '
                                'drivers; name a guest; nothing was changed' % (domain,))
        if domain.isdigit():         # xl takes a domain given by digits as its id (libxl_domain_qualifier_to_domid)
            found = [entry for entry in domains if entry['domid'] == int(domain)]
        else:
            found = [entry for entry in domains if entry['name'] == domain]
        if found and found[0]['domid'] == 0:
            raise GuestPciError('domain %r is dom0, the control domain; name a guest; nothing was changed' % (domain,))
        if not found:
            if config is not None and not domain.isdigit():
                self.notes.append('%s does not run: only its configuration %s is changed' % (domain, config))
                return None, names
            running = ', '.join(entry['name'] for entry in domains if entry['domid'] != 0) or 'none but Domain-0'
            if config is not None:
                raise GuestPciError('no running Xen domain has the id %r, and a guest that does not run is named by '
                                    'its name (xl list shows: %s); nothing was changed' % (domain, running))
            raise GuestPciError('no running Xen domain is named %r (xl list shows: %s); nothing was changed'
                                % (domain, running))
        guest = found[0]
        if 's' in guest['state'][3:4] or 'd' in guest['state'][5:6]:
            what = 'dying' if 'd' in guest['state'][5:6] else 'shut down'
            if config is not None:
                self.notes.append('%s is %s (xl list state %s): only its configuration %s is changed'
                                  % (_named(guest), what, guest['state'], config))
                return None, names
            raise GuestPciError('domain %r (id %d) is %s (xl list state %s): a device can only be attached to or '
                                'detached from a running guest; nothing was changed'
                                % (domain, guest['domid'], what, guest['state']))
        return guest, names

    def _plan(self, request, state, attached, records, backends):
        address = request.address
        driver = self.sysfs.driver(address)
        if state == 'absent':
            return DevicePlan(request, ACTION_DETACH if address in attached else ACTION_NONE, driver)
        if address in attached:
            return DevicePlan(request, ACTION_NONE, driver)
        holder = _holder(address, records, backends)
        if holder is not None:
            return DevicePlan(request, ACTION_ATTACH, driver, holder=holder)
        seize = request.options.get('seize', False)
        return DevicePlan(request, ACTION_ATTACH, driver,
                          make_assignable=driver != PCIBACK and (self.make_assignable or seize))

    def _refuse(self, plans, guest, names, records, backends):
        refusals = []
        for plan in plans:
            if plan.action == ACTION_NONE:
                holder = _holder(plan.address, records, backends)
                if holder is not None and holder != str(guest['domid']) and holder.isdigit() and int(holder) in names:
                    self.notes.append('%s is attached to domain %s (id %s), not to %s: left alone'
                                      % (plan.address, names[int(holder)], holder, _named(guest)))
                continue
            if plan.action != ACTION_ATTACH:
                continue
            if plan.holder is not None:
                refusals.append(self._held_elsewhere(plan, guest, names))
            elif plan.driver_before != PCIBACK and not plan.make_assignable:
                refusals.append('%s is not assignable: its driver is %s, not pciback; make it assignable first '
                                '(xenpci.passthrough.pci_assignable), or set make_assignable: true'
                                % (plan.address, plan.driver_before or 'none'))
        if refusals:
            for plan in plans:
                plan.action = ACTION_NONE
            raise GuestPciError('refusing: %s; nothing was changed' % '; '.join(refusals),
                                [plan.result() for plan in plans])

    def _held_elsewhere(self, plan, guest, names):
        holder = plan.holder
        if holder.isdigit() and int(holder) in names and int(holder) != guest['domid']:
            return ('%s is attached to domain %s (id %s); detach it there first (xl pci-detach %s %s)'
                    % (plan.address, names[int(holder)], holder, names[int(holder)], plan.address))
        if holder == str(guest['domid']):
            return ('%s: libxl records it as attached to %s, but xl pci-list does not list it (an attach or detach '
                    'that did not finish?); detach it with xl pci-detach -f %s %s'
                    % (plan.address, _named(guest), guest['domid'], plan.address))
        return ('%s: libxl records it as attached to domain %s, which does not run (a stale record, which makes xl '
                'refuse the device: xenstore-rm %s removes it)' % (plan.address, holder,
                                                                   self.toolstack.record_path(
                                                                       parse_pci_address(plan.address).xenstore_key,
                                                                       'domid')))

    def _note_options(self, plans, backends, guest):
        """An attached device keeps the options it was attached with: say so when the task asks for others."""
        for plan in plans:
            if plan.action != ACTION_NONE or plan.address not in backends:
                continue
            recorded = backends[plan.address]['options']
            if backends[plan.address]['domid'] != str(guest['domid']):
                continue
            differ = []
            for key, value in sorted(plan.request.options.items()):
                if key == 'seize' or key not in recorded:
                    continue
                wanted = str(int(value)) if key in BOOLEAN_OPTIONS else value
                if recorded[key] != wanted:
                    differ.append('%s=%s (asked %s)' % (key, recorded[key], wanted))
            if differ:
                self.notes.append('%s is attached to %s with %s; options of an attached device change only by '
                                  'detaching it and attaching it again' % (plan.address, _named(guest), ', '.join(differ)))

    def _make_assignable_check(self, plans):
        """The binder's refusals (devices the host needs, partial IOMMU groups), decided in check mode."""
        wanted = [plan.address for plan in plans if plan.make_assignable and plan.action == ACTION_ATTACH]
        if not wanted:
            return []
        return self._bind(wanted, check_mode=True)

    def _bind(self, addresses, check_mode, state='present'):
        """The binder's results for ``addresses``. A followed device is made assignable by the address its records
        name, so that the binder follows them too and moves the journal entry (GuestPciError when it follows them
        elsewhere); it is given back by its address now, where its journal entry is then."""
        binder = self.open_binder(check_mode)
        asked = [self.followed.get(address, address) for address in addresses] if state == 'present' else addresses
        try:
            result = binder.ensure(asked, state)
        except (PassthroughError, JournalError) as exc:
            self._take_notes(binder)
            raise GuestPciError('cannot make %s assignable: %s' % (', '.join(addresses), exc),
                                hypervisor_limit=binder.hypervisor_limit)
        self._take_notes(binder)
        found = dict((device.get('followed_from', device['address']), device['address'])
                     for device in result['devices'])
        elsewhere = [(named, address) for address, named in zip(addresses, asked) if found.get(named) != address]
        if elsewhere:
            message = ('making %s assignable, the records were followed elsewhere (did the devices change during the '
                       'task?): %s' % (', '.join(addresses), '; '.join('%s to %s, not to %s' % (
                           named, found.get(named, 'nowhere'), address) for named, address in elsewhere)))
            assigned = [device['address'] for device in result['devices'] if device['action'] == 'assigned']
            if check_mode:
                message += '; nothing was changed'
            elif assigned:
                try:
                    self._bind(assigned, check_mode=False, state='absent')
                    message += '; gave %s back to its driver; nothing was attached' % ', '.join(assigned)
                except GuestPciError as undo:
                    message += '; giving back %s failed: %s; nothing was attached' % (', '.join(assigned), undo)
            else:
                message += '; nothing was attached'
            raise GuestPciError(message, hypervisor_limit=binder.hypervisor_limit)
        return result['devices']

    def _take_notes(self, binder):
        for note in binder.notes:
            if note not in self.notes:
                self.notes.append(note)
        if binder.hypervisor_limit and self.hypervisor_limit is None:
            self.hypervisor_limit = binder.hypervisor_limit

    @staticmethod
    def _expected_after(attached, work):
        after = [address for address in attached
                 if not any(plan.address == address and plan.action == ACTION_DETACH for plan in work)]
        return after + [plan.address for plan in work if plan.action == ACTION_ATTACH]

    # ---- doing it ----------------------------------------------------------------------------
    def _apply(self, guest, work, attached, planned, backup, labels):
        """Make assignable, attach, detach, write the file; (the binder's results, xl pci-list after, the backup
        file) or GuestPciError."""
        assignable, after = self._apply_running(guest, work, attached) if work else ([], attached)
        backup_file = None
        if planned is not None and planned[0].changed:
            try:
                backup_file = write_planned(planned[0], backup, labels)
            except FileEditError as exc:
                attached_here = [plan for plan in work if plan.action == ACTION_ATTACH]
                assigned = [device['address'] for device in assignable if device['action'] == 'assigned']
                detached = [plan.address for plan in work if plan.action == ACTION_DETACH]
                message = '%s; the file was left as it was' % exc
                if attached_here or assigned:
                    message += '; %s' % self._undo_attach(guest, attached_here, assigned)
                if detached:
                    message += '; %s stay detached from %s' % (', '.join(detached), _named(guest))
                raise GuestPciError(message, [plan.result() for plan in work], self.hypervisor_limit)
        return assignable, after, backup_file

    def _apply_running(self, guest, work, attached):
        """Make assignable, attach, detach; (the binder's results, xl pci-list after) or GuestPciError."""
        binding = [plan.address for plan in work if plan.make_assignable]
        assignable = self._bind(binding, check_mode=False) if binding else []
        assigned = [device['address'] for device in assignable if device['action'] == 'assigned']
        done = []
        current = None
        try:
            for current in [plan for plan in work if plan.action == ACTION_ATTACH]:
                self.toolstack.pci_attach(guest['domid'], current.request.spec())
                done.append(current)
        except ToolstackError as exc:
            raise GuestPciError('%s: %s%s; %s' % (current.address, exc, _attach_hint(exc, guest),
                                                  self._undo_attach(guest, done, assigned)),
                                [plan.result() for plan in work], self.hypervisor_limit)
        try:
            for current in [plan for plan in work if plan.action == ACTION_DETACH]:
                self.toolstack.pci_detach(guest['domid'], current.address)
                done.append(current)
        except ToolstackError as exc:
            detached = [plan.address for plan in done if plan.action == ACTION_DETACH]
            raise GuestPciError('%s: %s; %s' % (current.address, exc,
                                                'detached before the failure: %s' % ', '.join(detached)
                                                if detached else 'nothing was detached'),
                                [plan.result() for plan in work], self.hypervisor_limit)
        try:
            after = [device['address'] for device in self.toolstack.pci_list(guest['domid'])]
        except ToolstackError as exc:
            self.notes.append('could not list the devices of %s after the change: %s' % (_named(guest), exc))
            after = self._expected_after(attached, work)
        return assignable, after

    def _undo_attach(self, guest, done, assigned):
        """Detach what this task attached, give back what it made assignable; what happened, in words."""
        problems = []
        for plan in reversed(done):
            try:
                self.toolstack.pci_detach(guest['domid'], plan.address)
            except ToolstackError as undo:
                problems.append('%s stays attached: %s' % (plan.address, undo))
        if assigned:
            try:
                self._bind(assigned, check_mode=False, state='absent')
            except GuestPciError as undo:
                problems.append('giving back %s failed: %s' % (', '.join(assigned), undo))
        if problems:
            return 'putting the batch back failed: %s' % '; '.join(problems)
        undone = []
        if done:
            undone.append('detached again %s' % ', '.join(plan.address for plan in done))
        if assigned:
            undone.append('gave %s back to its driver' % ', '.join(assigned))
        return '%s; the guest and the devices are as they were' % (' and '.join(undone) or 'nothing was attached')


def _holder(address, records, backends):
    """The domid (str) that libxl's record or a live PV PCI backend gives the device to, or None."""
    in_backend = backends.get(address, {}).get('domid')
    if in_backend:
        return in_backend
    recorded = records.get(address, {}).get('domid')
    return recorded.strip() if recorded not in (None, '') else None


# What Xen answers XEN_DOMCTL_assign_device for a domain it created without an IOMMU context (xl gives it one only
# when the config lists PCI devices or sets passthrough): no device can be attached to that guest while it runs.
_NO_PASSTHROUGH_DOMAIN = 'xc_assign_device failed: Operation not supported'


def _attach_hint(error, guest):
    """What to do when xl's error says the guest was created without PCI passthrough; empty otherwise."""
    if _NO_PASSTHROUGH_DOMAIN not in str(error):
        return ''
    return (' (%s was created without PCI passthrough, so Xen gives it no device while it runs: set passthrough = '
            '"enabled" in its xl config, or list a device in its pci = [...], and create it again)' % _named(guest))


def _named(guest):
    return '%s (id %d)' % (guest['name'], guest['domid'])


def open_guest_devices(paths, commands, host, check_mode=False, make_assignable=False, lock=None,
                       controller_address=None, follow_identity=False):
    """A GuestDevices for the dom0 described by ``host`` (a XenHost), with its toolstack when xenstored runs."""
    from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import PcibackBinder
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import DriverJournal
    from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import XenToolstack

    sysfs = PciSysfs(paths)
    toolstack = None
    if host.is_dom0() and host.xenstored_running():
        candidate = XenToolstack.for_host(commands, host)
        if candidate.available():
            toolstack = candidate

    def binder(binder_check_mode):
        return PcibackBinder(paths, host, sysfs, DriverJournal(paths), toolstack, commands, check_mode=binder_check_mode,
                             controller_address=controller_address, follow_identity=follow_identity)

    return GuestDevices(paths, host, sysfs, toolstack, binder, check_mode=check_mode,
                        make_assignable=make_assignable, lock=lock, journal=DriverJournal(paths),
                        follow_identity=follow_identity)
