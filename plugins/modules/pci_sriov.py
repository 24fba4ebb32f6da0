#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pci_sriov
short_description: Set the number of SR-IOV virtual functions of a PCI device, now and after reboots
version_added: 0.1.0
description:
  - Sets how many SR-IOV virtual functions (VFs) a physical function (PF) such as a NIC, an NVMe drive or a GPU
    has, through its sysfs C(sriov_numvfs), and optionally its C(sriov_drivers_autoprobe), so that new VFs appear
    without a dom0 driver, ready for M(xenpci.passthrough.pci_assignable).
  - The kernel takes a new number only from 0 (C(sriov_numvfs_store) answers EBUSY otherwise), so a change from
    one non-zero number to another goes through 0, and every VF is removed and created anew. Such a change is
    refused, naming each, while a VF is bound to pciback, recorded as held in this collection's journal, used by a
    domain, or needed by the host (default route, the connection to the controller, root or boot file system),
    unless O(force=true).
  - Keeps the number across reboots and PF driver re-probes (which lose every VF) with a line per PF in the udev
    rule file C(/etc/udev/rules.d/70-xenpci-passthrough-sriov.rules), a file of this collection's own, keyed on
    the PF's address and its vendor and device ids. Other PFs' lines stay; the file goes when no line is left.
  - A VF cannot be hidden at boot with xen-pciback's C(hide=) parameter (it does not exist yet when pciback parses
    it). O(hold_vfs) has pciback take the VFs meant for guests as they appear, at every boot, and
    M(xenpci.passthrough.pci_assignable) takes them now, by PF and index (V(0000:03:00.0/vf0)). See
    C(docs/sriov.md).
  - Refuses, before anything changes, a malformed address, a function that does not exist, has no SR-IOV
    capability or is itself a VF, a number above the PF's C(sriov_totalvfs), and a change of the number on a PF
    held by pciback or without a driver.
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
      - The diff shows the PF's C(sriov_numvfs) and C(sriov_drivers_autoprobe) before and after, and the rule file
        before and after.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - Linux hosts (any, not only a Xen dom0); the PF's driver must support SR-IOV configuration through sysfs.
options:
  pf:
    description:
      - Address of the physical function, V(DDDD:BB:DD.F) or the short V(BB:DD.F) (domain 0000).
    type: str
    required: true
  numvfs:
    description:
      - The number of VFs the PF should have, from V(0) to its C(sriov_totalvfs)
        (RV(xenpci.passthrough.pci_info#module:devices[].sriov.totalvfs)).
      - V(0) removes every VF.
    type: int
    required: true
  autoprobe:
    description:
      - The PF's C(sriov_drivers_autoprobe). V(false) leaves new VFs without a dom0 driver (the kernel probes a VF
        only when it is V(true) or the VF has a C(driver_override)), which is what VFs meant for guests want.
      - Written before the number, so that the VFs the task creates follow it. Omitted, it is left as it is.
    type: bool
  persistent:
    description:
      - Keep O(numvfs) (and O(autoprobe), when given) across reboots and PF driver re-probes with the PF's line in
        the rule file.
      - V(false), and O(numvfs=0), remove the PF's line, so that the next boot does not set another number than
        the one this task set.
    type: bool
    default: true
  hold_vfs:
    description:
      - The VFs, by index, that xen-pciback takes at every boot as soon as they appear, for guests; a line each in
        the rule file after the PF's, which gives the VF a pciback slot and binds it (udev writes xen-pciback's
        C(new_slot) and C(bind) through the VF's C(subsystem) link), so that no dom0 driver ever holds it.
      - Needs O(autoprobe=false) (or a PF whose C(sriov_drivers_autoprobe) is off already), else a dom0 driver
        takes each new VF before udev runs, and O(persistent=true). It keeps them at boot only; to hold them now,
        give them to M(xenpci.passthrough.pci_assignable) (V(0000:03:00.0/vf0)).
      - Omitted, the lines there are kept (those past a smaller O(numvfs) go); V([]) removes them.
    type: list
    elements: int
  force:
    description:
      - Change the number even though VFs that are in use (on pciback, held, used by a domain, needed by the host)
        are removed by it.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for another run of this collection on the same host to finish.
    type: int
    default: 120
notes:
  - The rule applies on the PF's C(add) event (udev's coldplug at boot replays it for a PF whose driver is already
    bound) and its C(bind) event (the PF's driver taking it, at boot or when it is re-probed), while a driver
    other than pciback holds the PF; the kernel configures VFs only through the PF's driver.
  - A PF whose driver creates VFs by itself (a module parameter such as C(max_vfs)) gets EBUSY from the rule when
    the numbers differ; set one or the other.
  - Files are replaced atomically and never followed through a symbolic link.
seealso:
  - module: xenpci.passthrough.pci_assignable
  - module: xenpci.passthrough.pci_info
  - name: PCI Express I/O Virtualization Howto
    description: The kernel's documentation of sriov_numvfs and sriov_drivers_autoprobe.
    link: https://docs.kernel.org/PCI/pci-iov-howto.html
'''

EXAMPLES = r'''
- name: Give a NIC four VFs that no dom0 driver takes, now and after reboots
  xenpci.passthrough.pci_sriov:
    pf: '0000:03:00.0'
    numvfs: 4
    autoprobe: false

- name: Keep VF 0 and VF 1 on xen-pciback at every boot, as soon as they appear
  xenpci.passthrough.pci_sriov:
    pf: '0000:03:00.0'
    numvfs: 4
    autoprobe: false
    hold_vfs: [0, 1]

- name: Make two of them assignable to guests now, named by their PF and index
  xenpci.passthrough.pci_assignable:
    devices: ['0000:03:00.0/vf0', '0000:03:00.0/vf1']

- name: Remove every VF of the NIC, and its line in the rule file
  xenpci.passthrough.pci_sriov:
    pf: '0000:03:00.0'
    numvfs: 0
'''

RETURN = r'''
pf:
  description: The PF's canonical address.
  returned: always
  type: str
  sample: '0000:03:00.0'
driver:
  description: The PF's driver, or null.
  returned: success
  type: str
  sample: igb
totalvfs:
  description: The most VFs the PF offers (C(sriov_totalvfs)).
  returned: success
  type: int
  sample: 7
numvfs_before:
  description: The number of VFs before the task.
  returned: success
  type: int
numvfs:
  description: The number of VFs after the task (in check mode, the one it would have).
  returned: success
  type: int
  sample: 4
drivers_autoprobe_before:
  description: C(sriov_drivers_autoprobe) before the task.
  returned: success
  type: bool
drivers_autoprobe:
  description: C(sriov_drivers_autoprobe) after the task (in check mode, the one it would have).
  returned: success
  type: bool
vfs:
  description:
    - The VFs after the task, by index. In check mode, when the number would change, empty (the kernel gives VFs
      their addresses when it creates them).
  returned: success
  type: list
  elements: dict
  contains:
    index:
      description: The VF's index (its PF's C(virtfnN) link), what O(xenpci.passthrough.pci_assignable#module:devices)
        takes as V(PF/vfN).
      type: int
      sample: 0
    address:
      description: The VF's address.
      type: str
      sample: '0000:03:10.0'
    driver:
      description: The VF's driver, or null.
      type: str
in_use:
  description: The VFs that were in use when the number changed (with O(force=true)), and why; empty otherwise.
  returned: success
  type: dict
  sample: {'0000:03:10.0': ['bound to pciback']}
rules_file:
  description: The udev rule file.
  returned: success
  type: str
  sample: /etc/udev/rules.d/70-xenpci-passthrough-sriov.rules
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import controller_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sriov import SriovError, domain_records, plan_sriov
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci import sysfs as pci_sysfs
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import HostLock, JournalError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import ToolstackError, XenToolstack


def _domains(paths, commands):
    """A callable giving {address: domid} of the devices domains use, where the xl toolstack runs."""
    def read():
        host = XenHost(paths)
        if not (host.is_dom0() and host.xenstored_running()):
            return {}
        toolstack = XenToolstack.for_host(commands, host)
        if not toolstack.available():
            return {}
        try:
            return domain_records(toolstack)
        except ToolstackError as exc:
            raise SriovError('cannot read which domains use the VFs from xenstore: %s; nothing was changed' % exc)
    return read


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pf=dict(type='str', required=True),
            numvfs=dict(type='int', required=True),
            autoprobe=dict(type='bool'),
            persistent=dict(type='bool', default=True),
            hold_vfs=dict(type='list', elements='int'),
            force=dict(type='bool', default=False),
            lock_timeout=dict(type='int', default=120),
        ),
        supports_check_mode=True,
    )
    params = module.params
    paths = HostPaths()
    sysfs = pci_sysfs.PciSysfs(paths)
    domains = _domains(paths, Commands.for_module(module))

    def plan():
        return plan_sriov(paths, sysfs, params['pf'], params['numvfs'], autoprobe=params['autoprobe'],
                          persistent=params['persistent'], force=params['force'], domains=domains,
                          controller_address=controller_address(), hold_vfs=params['hold_vfs'])
    try:
        # A bad request is refused before the lock (and its directory) is created.
        planned = plan()
        if planned.changed and not module.check_mode:
            with HostLock(paths, timeout=params['lock_timeout']):
                planned = plan()        # again, under the lock: what is there now
                planned.apply(labels=module)
    except (SriovError, JournalError) as exc:
        module.fail_json(msg=str(exc), pf=params['pf'])
    result = planned.result(check_mode=module.check_mode)
    if module._diff:
        result['diff'] = planned.diff()
    module.exit_json(changed=planned.changed, **result)


if __name__ == '__main__':
    main()
