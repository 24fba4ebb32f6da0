#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pci_assignable
short_description: Make PCI devices assignable to Xen guests, or give them back to their driver
version_added: 0.1.0
description:
  - What C(xl pci-assignable-add) and C(xl pci-assignable-remove -r) do, for a list of devices in one task,
    with check mode, diff, a journal of original drivers, safety checks and rollback.
  - O(state=present) unbinds each device from its driver, adds a pciback slot, binds it to xen-pciback and, where
    the xl toolstack runs, has Xen quarantine it as C(xl pci-assignable-add) does. The original driver is recorded
    before anything changes, in this collection's journal (C(/var/lib/xenpci_passthrough/drivers.json)) and in
    libxl's xenstore record, so C(xl pci-assignable-remove -r) gives back a device this module assigned and this
    module gives back a device C(xl pci-assignable-add) assigned.
  - O(state=absent) undoes it in xl's order (de-quarantine, unbind from pciback, remove the slot), clears a
    C(driver_override) left at pciback and binds the recorded driver again.
  - On a hypervisor that cannot pass PCI devices through (no IOMMU; Xen on Arm before 4.21, such as Debian 12's
    arm64 Xen 4.17, where C(xl pci-assignable-add) fails to quarantine) the task still does dom0's part and
    says in RV(hypervisor_limit) what Xen lacks; it neither fails nor reports the devices as quarantined.
  - Such a Xen may not let dom0 hold a device at all. xen-pciback of Linux 6.12 (Debian 13) asks Xen to reset every
    device it takes when dom0 is not PV, as on Arm, and Debian 13's arm64 Xen 4.20, built without PCI support,
    answers ENOSYS. Then O(state=present) fails, puts the batch back and says why in RV(hypervisor_limit).
  - A failure part-way through a batch puts the devices already moved back as they were. A run interrupted
    (killed, power cut) is finished by the next run from the journal. Concurrent runs on one host wait for each other.
  - Refuses, unless O(force=true), a device the host needs (default route, the connection to the controller,
    root or boot file system, boot VGA), a bridge, part of a set of functions that cannot be isolated from each
    other (Linux's IOMMU group, or in a Xen dom0 the set computed from the topology, as
    M(xenpci.passthrough.pci_info) reports it in RV(xenpci.passthrough.pci_info#module:devices[].coassignment)) whose other members stay on dom0
    drivers, and the release of a device a domain is using. Refuses on a host that is not a Xen dom0 or whose kernel
    lacks xen-pciback. Every refusal is decided before anything is changed.
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
      - The diff shows each changed device's driver before and after and, with O(reset_method), each changed
        device's reset methods and the udev rule file before and after.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - A Linux Xen dom0, x86_64 (xen-pciback as PV backend) or aarch64 (xen-pciback stub, Linux 5.16 and later).
options:
  devices:
    description:
      - Addresses of the PCI functions, V(DDDD:BB:DD.F) or the short V(BB:DD.F) (domain 0000).
      - An SR-IOV virtual function may be named by its physical function and index, V(PF/vfN) such as
        V(0000:03:00.0/vf1); the task resolves it on the host, when it runs, through the PF's C(virtfnN) link
        (M(xenpci.passthrough.pci_sriov) creates the VFs). An index the PF does not have (see its
        RV(xenpci.passthrough.pci_info#module:devices[].sriov)) is refused before anything changes.
      - Wildcards are not accepted; repeats of one device (short and long form) count once.
      - An empty list changes nothing and warns (it usually means that a selection upstream matched no device).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) makes the devices assignable (bound to pciback); V(absent) gives them back.
    type: str
    choices: [present, absent]
    default: present
  restore:
    description:
      - With O(state=absent), bind the original driver again (like C(xl pci-assignable-remove -r)).
      - V(false) leaves the device without a driver and keeps its record, like C(xl pci-assignable-remove) without C(-r).
    type: bool
    default: true
  force:
    description:
      - Take devices the host needs, bridges and part of a set that cannot be isolated, and release devices a domain uses.
      - Act on an address whose recorded identity is not the device there now (see O(follow_identity)) as it is; a
        journal entry made for the other device is dropped, and its driver is not given to this one.
    type: bool
    default: false
  follow_identity:
    description:
      - Where the collection recorded a device (its journal, the C(# identity) comments of its xen-pciback
        modprobe.d file) it keeps the device's identity beside the address (vendor, device, subsystem ids, class and
        its path through the bridges). An address whose recorded identity is not the device there now (a card was
        added and the buses were renumbered) is refused, naming both identities, with nothing changed.
      - V(true) acts instead where the recorded device is now, found by its identity (ids; among devices with the
        same ids, the one in the recorded slot), and moves its journal entry there; RV(devices[].followed_from)
        names the address the records named. An identity that matches no device (it left the host) or several is
        refused, naming them.
      - The hide list still names the old address; M(xenpci.passthrough.pci_info) reports it in
        RV(xenpci.passthrough.pci_info#module:devices[].drift) until M(xenpci.passthrough.module_params) changes it.
    type: bool
    default: false
  reset:
    description:
      - Reset each device through its sysfs C(reset) file after binding it to pciback (pciback also resets on bind).
    type: bool
    default: false
  quarantine:
    description:
      - Where the xl toolstack runs, have Xen quarantine each device as C(xl pci-assignable-add) does.
      - Where the hypervisor cannot (no IOMMU, or an Arm Xen without PCI passthrough), the devices are still
        bound and RV(hypervisor_limit) says what the hypervisor lacks.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for another run on the same host to finish.
    type: int
    default: 120
  require_reset:
    description:
      - Refuse to make assignable a device for which the kernel offers no reset (its sysfs C(reset_method) is
        empty, or it has no C(reset) file), as libvirt and Qubes do. V(false) warns instead.
      - M(xenpci.passthrough.pci_info) lists each device's RV(xenpci.passthrough.pci_info#module:devices[].reset_methods).
    type: bool
    default: false
  functions:
    description:
      - V(given) acts on the functions named. V(all) acts on every function of each device named, so that
        V(0000:01:00.0) of a GPU stands for its V(.0) VGA, V(.1) audio and V(.2) USB functions, which then move
        (or go back) together. RV(devices) lists every function acted on.
      - A function that does not exist is still an error, whichever the value.
    type: str
    choices: [given, all]
    default: given
  reset_method:
    description:
      - The resets the kernel may use for each function named in O(devices) (not the other functions
        O(functions=all) adds), in the order it tries them, as the device's sysfs C(reset_method) takes them
        (Linux 5.15 and later), names among V(device_specific), V(acpi), V(flr), V(af_flr), V(pm), V(bus) and
        V(cxl_bus), such as V([flr]) or V([bus]) for a device whose function-level reset is broken.
      - Set in sysfs when it differs, before the device moves (xen-pciback resets a device as it takes and lets
        go of it, with these methods), and kept across reboots and hot plug by a line per device in
        C(/etc/udev/rules.d/70-xenpci-passthrough-reset.rules), a file of this collection's own; other devices'
        lines stay.
      - V(default) gives the device back the kernel's choice (every method it supports, in the kernel's order)
        and removes its line; the file goes when no line is left.
      - Applies with either O(state). Omitted, nothing about resets changes; a device given back
        (O(state=absent)) keeps its reset method and its line, which describe the hardware rather than who holds
        it; give V(default) with O(state=absent) to drop them.
      - Refused, before anything changes, for a method the kernel does not know, a method a device does not offer
        (the methods C(reset_method) lists, and the function-level resets its config space offers; a method
        disabled earlier shows again after V(default)), an empty list (which would disable every reset), and a
        kernel or device without C(reset_method).
      - M(xenpci.passthrough.pci_info) lists each device's enabled methods in
        RV(xenpci.passthrough.pci_info#module:devices[].reset_methods).
    type: list
    elements: str
notes:
  - The journal and its lock live in C(/var/lib/xenpci_passthrough/), created with mode 0700; files are replaced
    atomically and never followed through a symbolic link.
  - Making devices assignable again after a reboot is a separate concern (boot-time hiding); this module acts on the running host.
  - The udev rule of O(reset_method) applies when udev handles the device's C(add) event, at boot or on hot plug;
    at boot a driver may take the device before that. The task sets the running host itself.
seealso:
  - module: xenpci.passthrough.pci_info
  - name: xl pci-assignable-add
    description: The xl command this module mirrors.
    link: https://xenbits.xen.org/docs/unstable/man/xl.1.html
'''

EXAMPLES = r'''
- name: Make two NICs assignable to guests
  xenpci.passthrough.pci_assignable:
    devices:
      - '0000:03:00.0'
      - '04:00.0'
    state: present

- name: Give them back to their drivers
  xenpci.passthrough.pci_assignable:
    devices: ['0000:03:00.0', '0000:04:00.0']
    state: absent

- name: Make a GPU assignable with all its functions (VGA, audio, USB) by naming one
  xenpci.passthrough.pci_assignable:
    devices: ['0000:01:00.0']
    functions: all

- name: Make a NIC whose function-level reset hangs assignable, reset by a bus reset, now and after reboots
  xenpci.passthrough.pci_assignable:
    devices: ['0000:05:00.0']
    reset_method: [bus]

- name: Give it back, and the kernel's choice of reset methods with it
  xenpci.passthrough.pci_assignable:
    devices: ['0000:05:00.0']
    state: absent
    reset_method: default

- name: Make two SR-IOV virtual functions of a NIC assignable, named by their PF and index
  xenpci.passthrough.pci_assignable:
    devices: ['0000:03:00.0/vf0', '0000:03:00.0/vf1']

- name: Hold a device even though the host uses it (for example a second GPU that is the boot VGA)
  xenpci.passthrough.pci_assignable:
    devices: ['0000:01:00.0', '0000:01:00.1']
    force: true
'''

RETURN = r'''
devices:
  description: One entry per device named (and per device an interrupted earlier run left half-moved).
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Canonical address.
      type: str
      sample: '0000:03:00.0'
    action:
      description: V(assigned), V(adopted) (already on pciback, now recorded and quarantined), V(released),
        V(restored), V(forgotten) (a stale record dropped) or V(unchanged).
      type: str
    driver_before:
      description: Driver before the task, or null.
      type: str
    driver_after:
      description: Driver after the task (in check mode, the one it would have), or null.
      type: str
    original_driver:
      description: The driver the device goes back to.
      type: str
    original_driver_source:
      description: Where that came from, V(journal), V(xenstore) (libxl's record), V(current driver) or V(kernel probe).
      type: str
    quarantined:
      description: Whether Xen quarantined it in this run; null when it was not asked (no toolstack, or check mode).
      type: bool
    reset:
      description: Whether this task reset the device.
      type: bool
    recovered:
      description: The device was half-moved by an interrupted run and this run finished the move.
      type: bool
    followed_from:
      description: With O(follow_identity=true), the address the records named when they were followed to this one.
      type: str
      returned: when a record was followed
      sample: '0000:03:00.0'
    sriov_vf:
      description: V(PF/vfN) when the device was named so in O(devices) (RV(devices[].address) is the VF's address).
      type: str
      sample: '0000:03:00.0/vf1'
    reset_method:
      description:
        - The reset methods the kernel has enabled for the device after the task, in its order (in check mode, the
          ones it would have; for V(default), as far as sysfs and config space tell).
        - Given with O(reset_method), for the functions named in O(devices).
      type: list
      elements: str
      sample: [flr]
notes:
  description: What the task noticed, such as a hypervisor that cannot quarantine or xen-pciback loaded by the task.
  returned: always
  type: list
  elements: str
hypervisor_limit:
  description:
    - What the hypervisor lacks for PCI passthrough, when it lacks something (no IOMMU; Xen on Arm before 4.21,
      which has no PCI passthrough support); null when Xen quarantines devices, or when it was not asked (no
      toolstack, O(quarantine=false), nothing to give back).
    - dom0's part is done all the same (devices held by pciback, original drivers recorded for C(xl)); the devices
      are then not quarantined (RV(devices[].quarantined) is false) and no guest can be given them on this host.
    - Where xen-pciback cannot take a device because Xen refuses the PCI reset it asks for (Linux 6.12 on Arm with
      a Xen without PCI support, such as Debian 13's arm64 Xen 4.20), the task fails, the batch is put back, and
      this says so.
  returned: always
  type: str
  sample: >-
    Xen 4.17 on aarch64 has no PCI passthrough support (Arm has it from Xen 4.21 on, as an experimental build
    option): the devices are held by pciback in dom0 and listed by xl pci-assignable-list, but Xen does not
    quarantine them and cannot give them to a guest
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import controller_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.reset_method import ResetMethodError
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sriov import SriovError, resolve_vf_references
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.assignable import AssignableTask
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import (
    PassthroughError,
    open_binder,
    parse_devices,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import JournalError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type='list', elements='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            restore=dict(type='bool', default=True),
            force=dict(type='bool', default=False),
            follow_identity=dict(type='bool', default=False),
            reset=dict(type='bool', default=False),
            quarantine=dict(type='bool', default=True),
            lock_timeout=dict(type='int', default=120),
            functions=dict(type='str', choices=['given', 'all'], default='given'),
            require_reset=dict(type='bool', default=False),
            reset_method=dict(type='list', elements='str'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    paths = HostPaths()
    commands = Commands.for_module(module)
    binder = open_binder(paths, commands, check_mode=module.check_mode, force=params['force'],
                         quarantine=params['quarantine'], reset=params['reset'], functions=params['functions'],
                         require_reset=params['require_reset'], follow_identity=params['follow_identity'],
                         controller_address=controller_address())
    vf_names = {}
    try:
        # A VF named PF/vfN becomes its address now; a bad one is refused before the lock is created.
        params['devices'], vf_names = resolve_vf_references(binder.sysfs, params['devices'])
        # A bad address, and a host that is not a dom0 with xen-pciback, are refused before the lock is created.
        addresses = parse_devices(params['devices'])
        if not addresses:
            module.warn('devices is empty: nothing to do; an empty list usually means a selection upstream '
                        '(a filter, a variable) matched no device')
        binder.require_host()
        task = AssignableTask(paths, binder, params, addresses, labels=module)
        result = task.run(module.check_mode)
    except (ResetMethodError, SriovError) as exc:
        module.fail_json(msg=str(exc), devices=[], notes=binder.notes, hypervisor_limit=binder.hypervisor_limit)
    except PassthroughError as exc:
        module.fail_json(msg=str(exc), devices=exc.results, notes=binder.notes, hypervisor_limit=binder.hypervisor_limit)
    except JournalError as exc:
        module.fail_json(msg=str(exc), devices=[], notes=binder.notes, hypervisor_limit=binder.hypervisor_limit)
    for warning in binder.warnings:
        module.warn(warning)
    for device in result['devices']:
        if device['address'] in vf_names:
            device['sriov_vf'] = vf_names[device['address']]
    if module._diff:
        result['diff'] = task.diff(result['devices'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
