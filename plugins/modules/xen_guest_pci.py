#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: xen_guest_pci
short_description: Attach PCI devices to a Xen guest or detach them, and keep its xl configuration in step
version_added: 0.1.0
description:
  - What C(xl pci-attach) and C(xl pci-detach) do, for a list of devices of one running guest in one task, with
    check mode and diff; optionally the same change in the guest's xl configuration file (O(config)).
  - O(state=present) attaches each device the guest does not have yet, with the options given for it as
    xl-pci-configuration(5) spells them; a device the guest already has is left as it is.
    O(state=absent) detaches each device the guest has; the others are left alone.
  - A device must be I(assignable) (bound to xen-pciback and given to no domain), as libxl requires. One that is not
    is refused, naming it, unless O(make_assignable=true) (or the device's C(seize) option) asks this module to
    make it assignable first, as M(xenpci.passthrough.pci_assignable) does (the journal of original drivers, the
    refusal of devices the host needs, rollback). A detached device stays assignable, held by pciback;
    M(xenpci.passthrough.pci_assignable) with O(xenpci.passthrough.pci_assignable#module:state=absent) gives it back
    to its dom0 driver.
  - Refuses, before anything is changed, a guest that does not run, dom0 (V(Domain-0) or id 0), a device that is not
    on the PCI bus, an option xl does not know, a malformed address, a device that another running domain has
    (naming that domain), and an address the collection recorded as another device than the one there now (see
    O(follow_identity)).
  - Refuses O(state=present) on a hypervisor that cannot give PCI devices to guests (Xen on Arm before 4.21, such
    as Debian's arm64 Xen, which has no PCI passthrough to guests and whose guests have no PV PCI frontend), saying
    why in RV(hypervisor_limit).
  - A failure part-way through attaching detaches again the devices this task attached and gives back to their
    drivers those it made assignable. A failure part-way through detaching leaves detached the devices already
    detached, and names them.
  - With O(config), the guest's xl configuration file gets the same change in its C(pci = [...]) list (each device
    with its options, as xl-pci-configuration(5) spells them; an entry with other options is written again), so the
    guest has the devices when it is created again from its file. This happens whether the guest runs or not; for
    a guest that does not run, only the file is changed. Without O(config) the file is not changed, and a device
    attached here is gone when the guest is created again.
  - The file is replaced atomically (never through a symbolic link), and only when its list changes; every byte
    outside the list stays as it was. A file xl could not read, or whose C(pci) list an edit could not be sure of
    (C(pci +=), two C(pci) settings, a name instead of an address, C(BB:DD.*)), is refused with its line, and so is
    a file whose C(name) is another guest's.
author:
  - xenpci.passthrough maintainers (@xenpci)
extends_documentation_fragment:
  - xenpci.passthrough.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the guest's devices (what C(xl pci-list) lists) before and after, and with O(config) the
        file's text before and after.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - A Linux Xen dom0 running xenstored, with the xl toolstack. On x86_64, PV and HVM guests; on aarch64, Xen 4.21
        or later built with PCI passthrough (Arm Xen before 4.21 is refused).
options:
  domain:
    description:
      - The guest, by the name C(xl list) shows (and its configuration file's C(name) setting).
      - A string of digits is taken as a domain id, as xl does (only for a running guest).
    type: str
    required: true
    aliases: [name]
  config:
    description:
      - Path of the guest's xl configuration file (xl.cfg(5)), whose C(pci) list is kept in step with O(devices)
        and O(state); a C(pci = [...]) line is appended when the file has none. The file must exist.
      - With O(state=absent), devices that are no longer on the PCI bus may be named; they are only removed from the
        file.
      - The devices must be assignable when the guest is created from the file (M(xenpci.passthrough.pci_assignable)
        and the C(xenpci.passthrough.pciback) role's boot-time hiding), unless an entry has C(seize); O(make_assignable)
        acts only for a running guest.
    type: path
  backup:
    description:
      - With O(config), copy the file (timestamped, next to it) before changing it.
    type: bool
    default: false
  devices:
    description:
      - The PCI functions. Each is an address, V(DDDD:BB:DD.F) or the short V(BB:DD.F) (domain 0000), or a dict
        with C(address) and options of xl-pci-configuration(5).
      - C(permissive) (bool) lets the guest write all of the device's configuration space.
      - C(msitranslate) (bool) turns on MSI-INTx translation (HVM).
      - C(power_mgmt) (bool) lets the guest program the device's D0-D3hot power states (HVM).
      - C(rdm_policy) (V(strict) or V(relaxed)) is the reserved device memory policy for this device (HVM, x86).
      - C(seize) (bool) makes the device assignable first when it is not, as O(make_assignable=true) does for every
        device (xl would take it from its driver unrecorded; here it goes through the journal and the refusals of
        M(xenpci.passthrough.pci_assignable)). In O(config) it is written as given, and xl takes the device itself
        when it creates the guest.
      - Options left out are xl's defaults (all false, C(rdm_policy) V(strict)). With O(state=absent) the options
        are checked but not used. A device already attached keeps the options it was attached with (RV(notes) says
        when they differ); detach it and attach it again to change them.
      - Wildcards (V(BB:DD.*)) are not accepted; repeats of one device count once.
    type: list
    elements: raw
    required: true
  state:
    description:
      - V(present) attaches the devices to the guest; V(absent) detaches them.
    type: str
    choices: [present, absent]
    default: present
  follow_identity:
    description:
      - Where the collection recorded a device (the journal of M(xenpci.passthrough.pci_assignable), the
        C(# identity) comments of its xen-pciback modprobe.d file) it keeps the device's identity beside the address
        (vendor, device, subsystem ids, class and its path through the bridges). An address whose recorded identity
        is not the device there now (a card was added and the buses were renumbered) is refused, with either
        O(state), naming both identities, with nothing changed.
      - V(true) acts instead where the recorded device is now, found by its identity as
        O(xenpci.passthrough.pci_assignable#module:follow_identity) finds it (ids; among devices with the same ids,
        the one in the recorded slot). The device is attached or detached at its address now, which
        RV(devices[].address) gives, and RV(devices[].followed_from) names the address the records named. When it
        is made assignable here (O(make_assignable), C(seize)), its journal entry moves with it, as
        M(xenpci.passthrough.pci_assignable) moves it. With O(config), its entry in the file goes to its address now,
        and an entry at the old address, which names another device now, is taken out. An identity that matches no
        device (it left the host) or several is refused, naming them, and so are two addresses whose records name
        one device.
      - The hide list still names the old address; M(xenpci.passthrough.pci_info) reports it in
        RV(xenpci.passthrough.pci_info#module:devices[].drift) until M(xenpci.passthrough.module_params) changes it.
        Once the journal entry has moved, the journal records the device at its address now only, so later tasks
        should name that address.
    type: bool
    default: false
  make_assignable:
    description:
      - With O(state=present), make each device that is not assignable yet assignable first, as
        M(xenpci.passthrough.pci_assignable) does (recorded in its journal, refusing devices the host needs), before
        attaching it to the running guest.
      - V(false) refuses such a device, naming it and its driver.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another run of this collection on the same host to finish.
    type: int
    default: 120
notes:
  - The state is read once per task (C(xl list), C(xl pci-list), libxl's records in xenstore), then one C(xl pci-attach)
    or C(xl pci-detach) runs per device to change; the configuration file is written last.
  - Runs of this module and of M(xenpci.passthrough.pci_assignable) on one host wait for each other (a lock in
    C(/var/lib/xenpci_passthrough/)), taken only when something changes.
seealso:
  - module: xenpci.passthrough.pci_assignable
  - module: xenpci.passthrough.pci_info
  - name: xl pci-attach
    description: The xl command this module mirrors.
    link: https://xenbits.xen.org/docs/unstable/man/xl.1.html
  - name: xl-pci-configuration(5)
    description: The per-device options.
    link: https://xenbits.xen.org/docs/unstable/man/xl-pci-configuration.5.html
'''

EXAMPLES = r'''
- name: Give two NICs to the guest web1
  xenpci.passthrough.xen_guest_pci:
    domain: web1
    devices:
      - '0000:03:00.0'
      - address: '04:00.0'
        permissive: true

- name: Make a device assignable and attach it in one task
  xenpci.passthrough.xen_guest_pci:
    domain: web1
    devices: ['0000:05:00.0']
    make_assignable: true

- name: Attach a device to web1 and keep it in web1's configuration for its next start
  xenpci.passthrough.xen_guest_pci:
    domain: web1
    config: /etc/xen/web1.cfg
    devices:
      - address: '0000:03:00.0'
        permissive: true
    backup: true

- name: Attach the NIC recorded at 03:00.0 wherever a card added since has moved it, making it assignable
  xenpci.passthrough.xen_guest_pci:
    domain: web1
    devices: ['0000:03:00.0']
    make_assignable: true
    follow_identity: true

- name: Take a device back from the guest (it stays assignable)
  xenpci.passthrough.xen_guest_pci:
    domain: web1
    devices: ['0000:04:00.0']
    state: absent

- name: Then give it back to its dom0 driver
  xenpci.passthrough.pci_assignable:
    devices: ['0000:04:00.0']
    state: absent
'''

RETURN = r'''
domain:
  description: The guest, as C(xl list) names it.
  returned: success
  type: dict
  contains:
    name:
      description: Its name.
      type: str
      sample: web1
    domid:
      description: Its domain id; null when it does not run (then only O(config) was changed).
      type: int
      sample: 3
    running:
      description: Whether the guest runs (a guest shut down but not destroyed does not).
      type: bool
devices:
  description: One entry per device named.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Canonical address.
      type: str
      sample: '0000:03:00.0'
    action:
      description: V(attached), V(detached) or V(unchanged) (in check mode, what would be done).
      type: str
    options:
      description: The options given for the device, as canonical values.
      type: dict
      sample: {permissive: true}
    made_assignable:
      description: Whether the device was (in check mode, would be) made assignable before it was attached.
      type: bool
    followed_from:
      description: With O(follow_identity=true), the address the records named when they were followed to this one.
      type: str
      returned: when the device was followed
      sample: '0000:03:00.0'
    driver_before:
      description: The device's dom0 driver before the task (V(pciback) when assignable), or null.
      type: str
    config_action:
      description: With O(config), what happened to the device's entry in the file (V(added), V(replaced) with other
        options, V(removed), V(unchanged)); null without O(config).
      type: str
guest_devices:
  description: The running guest's devices (what C(xl pci-list) lists), before the task and after it (in check mode,
    as it would be); empty lists when the guest does not run.
  returned: success
  type: dict
  contains:
    before:
      description: Canonical addresses, in xl's order.
      type: list
      elements: str
    after:
      description: Canonical addresses, in xl's order.
      type: list
      elements: str
  sample: {before: [], after: ['0000:03:00.0', '0000:04:00.0']}
config:
  description: What happened to the configuration file.
  returned: when O(config) is given and the task succeeded
  type: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /etc/xen/web1.cfg
    changed:
      description: Whether its text changed (in check mode, would change).
      type: bool
    added:
      description: Canonical addresses added to its C(pci) list.
      type: list
      elements: str
    replaced:
      description: Canonical addresses whose entry was written again with other options.
      type: list
      elements: str
    removed:
      description: Canonical addresses removed from its C(pci) list.
      type: list
      elements: str
    backup_file:
      description: The copy made with O(backup=true).
      type: str
      returned: when a backup was made
assignable:
  description: What making devices assignable did (or would do), one entry per device, as
    M(xenpci.passthrough.pci_assignable) returns them in its RV(xenpci.passthrough.pci_assignable#module:devices);
    empty when no device needed it.
  returned: success
  type: list
  elements: dict
notes:
  description: What the task noticed, such as a device attached with other options than asked, or one that another
    domain has and that O(state=absent) left alone.
  returned: always
  type: list
  elements: str
other_configs:
  description:
    - The devices of the task that guest configurations in C(/etc/xen) (C(*.cfg), besides O(config)) also name in
      their C(pci) list, each with those files. Two guests whose configurations name one device cannot both run,
      libxl refuses the device to the one started second. With O(state=present) RV(notes) says so too; a file
      whose C(pci) list xl could not read is named in RV(notes) instead.
  returned: success
  type: dict
  sample: {"0000:03:00.0": ["/etc/xen/web2.cfg"]}
hypervisor_limit:
  description:
    - Why Xen on this host cannot give PCI devices to guests (Xen on Arm before 4.21, or no IOMMU on Arm), when that
      refused the task; or what it lacks to quarantine devices made assignable here. Null otherwise.
  returned: always
  type: str
  sample: >-
    Xen 4.17 on aarch64 has no PCI passthrough to guests (Arm has it from Xen 4.21 on, as an experimental build
    option; before, Xen assigns no PCI device to a domU and Linux has no PV PCI frontend there): no device can be
    attached to a guest on this host
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import controller_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.guests import GuestPciError, open_guest_devices
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import HostLock, JournalError


def _diff(result, config_diff):
    """The guest's devices before and after (when it runs), then the configuration file's text (with ``config``)."""
    diffs = []
    if result['domain']['running']:
        devices = result['guest_devices']
        diffs.append({
            'before_header': 'xl pci-list %s' % result['domain']['name'],
            'after_header': 'xl pci-list %s' % result['domain']['name'],
            'before': ''.join('%s\n' % address for address in devices['before']),
            'after': ''.join('%s\n' % address for address in devices['after']),
        })
    if config_diff is not None:
        diffs.append(config_diff)
    return diffs[0] if len(diffs) == 1 else diffs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type='str', required=True, aliases=['name']),
            devices=dict(type='list', elements='raw', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            config=dict(type='path'),
            backup=dict(type='bool', default=False),
            make_assignable=dict(type='bool', default=False),
            follow_identity=dict(type='bool', default=False),
            lock_timeout=dict(type='int', default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    paths = HostPaths()
    guests = open_guest_devices(paths, Commands.for_module(module), XenHost(paths), check_mode=module.check_mode,
                                make_assignable=params['make_assignable'],
                                lock=lambda: HostLock(paths, timeout=params['lock_timeout']),
                                controller_address=controller_address(), follow_identity=params['follow_identity'])
    try:
        result = guests.ensure(params['domain'], params['devices'], params['state'], config=params['config'],
                               backup=module.backup_local if params['backup'] else None, labels=module)
    except GuestPciError as exc:
        module.fail_json(msg=str(exc), devices=exc.results, notes=guests.notes,
                         hypervisor_limit=exc.hypervisor_limit or guests.hypervisor_limit)
    except JournalError as exc:
        module.fail_json(msg=str(exc), devices=[], notes=guests.notes, hypervisor_limit=guests.hypervisor_limit)
    if module._diff:
        result['diff'] = _diff(result, guests.config_diff)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
