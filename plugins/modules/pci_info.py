#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pci_info
short_description: Report a host's PCI devices and its readiness for Xen PCI passthrough
version_added: 0.1.0
description:
  - Reads the host's PCI devices from sysfs and reports, per device, its ids, class, names, driver,
    IOMMU group, SR-IOV links and state (total and current VFs, autoprobe, each VF's driver), reset methods,
    network interfaces and block devices, and why the host
    itself needs it (default route, the connection to the controller, the root or boot file system, the boot VGA).
  - Reports the passthrough view of each device (bound to pciback, pciback slot, original driver on record,
    the domain using it) and of the host (Xen, dom0, xen-pciback, IOMMU, toolstack), with a list of problems
    that stand in the way of passthrough.
  - Reports each device's identity (ids, subsystem ids, class, path through the bridges), where the collection's
    records (its journal, the C(# identity) comments of its xen-pciback modprobe.d file) name the address as
    another device (RV(devices[].drift)), and its dom0 access status now and after the next boot
    (RV(devices[].dom0_access)); recorded devices that left the host are in RV(host.notes).
  - Reading a host with thousands of PCI functions takes a fraction of a second; names come from C(pci.ids) when installed.
author:
  - xenpci.passthrough maintainers (@xenpci)
extends_documentation_fragment:
  - xenpci.passthrough.attributes
  - xenpci.passthrough.attributes.INFO_MODULE
attributes:
  platform:
    support: full
    platforms: posix
    details:
      - Linux hosts; Xen dom0 for the passthrough view, any Linux host for the device list.
options:
  addresses:
    description:
      - Report only these devices (V(DDDD:BB:DD.F) or V(BB:DD.F)).
      - A device is reported when every filter given matches it (O(addresses), O(classes), O(ids), O(drivers)), and
        a filter matches when any of its values does; the P(xenpci.passthrough.pci_select#filter) filter and the
        C(assign) role select the same way.
    type: list
    elements: str
  classes:
    description:
      - Report only devices whose PCI class starts with one of these hex prefixes,
        for example V(02) (network), V(0200) (Ethernet), V(0c0330) (USB xHCI).
    type: list
    elements: str
  ids:
    description:
      - Report only devices with these ids, V(vendor:device) in hex; V(8086) or V(8086:*) match a whole vendor.
    type: list
    elements: str
  drivers:
    description:
      - Report only devices bound to one of these drivers (as named under C(/sys/bus/pci/drivers/)); V(none) matches devices without a driver.
    type: list
    elements: str
  names:
    description:
      - Look up vendor, device and class names in the host's C(pci.ids).
    type: bool
    default: true
notes:
  - All filters given must match; within one filter any value may match.
seealso:
  - module: xenpci.passthrough.pci_assignable
'''

EXAMPLES = r'''
- name: Read every PCI device and the host's readiness
  xenpci.passthrough.pci_info:
  register: pci

- name: Show what stands in the way of passthrough
  ansible.builtin.debug:
    var: pci.host.problems

- name: Find the Intel NICs that the host does not need
  xenpci.passthrough.pci_info:
    classes: ['0200']
    ids: ['8086:*']
  register: nics

- name: Make them assignable
  xenpci.passthrough.pci_assignable:
    devices: "{{ nics.devices | rejectattr('host_needs') | map(attribute='address') | list }}"
    state: present
'''

RETURN = r'''
devices:
  description: The devices that match the filters, sorted by address.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: Canonical address.
      type: str
      sample: '0000:03:00.0'
    vendor_id:
      description: Vendor id, hex.
      type: str
      sample: '8086'
    device_id:
      description: Device id, hex.
      type: str
      sample: '10d3'
    subsystem_vendor_id:
      description: Subsystem vendor id, hex.
      type: str
    subsystem_device_id:
      description: Subsystem device id, hex.
      type: str
    class:
      description: Class code, six hex digits.
      type: str
      sample: '020000'
    vendor_name:
      description: Vendor name from C(pci.ids), or null (only with O(names=true)).
      type: str
    device_name:
      description: Device name from C(pci.ids), or null (only with O(names=true)).
      type: str
    class_name:
      description: Class name from C(pci.ids), or null (only with O(names=true)).
      type: str
    driver:
      description: Bound driver as named in sysfs, or null.
      type: str
      sample: e1000e
    driver_override:
      description: The device's C(driver_override), or null.
      type: str
    iommu_group:
      description: IOMMU group number when Linux manages the IOMMU (not in a Xen PV dom0), else null.
      type: str
    iommu_group_devices:
      description: The other devices of the IOMMU group.
      type: list
      elements: str
    coassignment:
      description:
        - The functions that cannot be isolated from this one, which a guest must take with it, and why.
        - Linux's IOMMU groups where Linux drives the IOMMU; in a Xen dom0, where it does not, computed from the
          topology as Linux computes its groups. See C(docs/xen-pciback.md) for the rules.
        - M(xenpci.passthrough.pci_assignable) refuses a request that leaves part of a set on dom0 drivers.
      type: dict
      contains:
        devices:
          description: The other members of the set (bridges included; they are never moved and never block).
          type: list
          elements: str
          sample: ['0000:00:05.1']
        reasons:
          description: Why the members cannot be isolated (empty when the device is alone).
          type: list
          elements: str
          sample: ['0000:00:05.0, 0000:00:05.1 are functions of one multi-function device without ACS isolation']
        source:
          description: C(linux_iommu_groups) when the sets are Linux's IOMMU groups, C(topology) when computed.
          type: str
          sample: topology
    physfn:
      description: SR-IOV physical function of a virtual function, or null.
      type: str
    virtfns:
      description: SR-IOV virtual functions of a physical function.
      type: list
      elements: str
    sriov:
      description:
        - A physical function's SR-IOV state (its C(sriov_*) files); null for a function without SR-IOV (a VF
          included, whose RV(devices[].physfn) names its PF).
        - M(xenpci.passthrough.pci_sriov) sets the number of VFs; M(xenpci.passthrough.pci_assignable) takes a VF by
          its PF and index as V(PF/vfN).
      type: dict
      contains:
        totalvfs:
          description: The most VFs the PF offers (C(sriov_totalvfs)).
          type: int
          sample: 7
        numvfs:
          description: The VFs enabled now (C(sriov_numvfs)).
          type: int
          sample: 2
        drivers_autoprobe:
          description: Whether dom0 drivers probe new VFs (C(sriov_drivers_autoprobe)).
          type: bool
        vfs:
          description: The VFs, by index.
          type: list
          elements: dict
          contains:
            index:
              description: The VF's index (the PF's C(virtfnN) link).
              type: int
            address:
              description: The VF's address.
              type: str
              sample: '0000:03:10.0'
            driver:
              description: The VF's driver, or null.
              type: str
              sample: igbvf
    bridge:
      description: The device is a bridge (class 06).
      type: bool
    multifunction:
      description: Other functions share its slot.
      type: bool
    boot_vga:
      description: The firmware used it as the boot display.
      type: bool
    reset_methods:
      description:
        - Reset methods the kernel offers, from its C(reset_method) file (Linux 5.15 and later; V(flr), V(pm),
          V(bus), ...). An older kernel has only a C(reset) file; then the function-level resets its config space
          offers (V(flr), V(af_flr), V(pm)), or V(bus) when it offers none (the kernel's reset is then a bus or
          slot reset).
        - Empty when the kernel knows no way to reset the device; M(xenpci.passthrough.pci_assignable) warns about
          such a device, or refuses it with O(xenpci.passthrough.pci_assignable#module:require_reset=true).
      type: list
      elements: str
    net_interfaces:
      description: Network interfaces of the device.
      type: list
      elements: str
    block_devices:
      description: Block devices of the device.
      type: list
      elements: str
    host_needs:
      description: Why the host needs the device; empty when it does not.
      type: list
      elements: str
      sample: ['carries the default route (eno1)']
    identity:
      description:
        - What the device is and where it sits, as the collection records it beside the address (in its journal and
          as a C(# identity) comment of its xen-pciback modprobe.d file).
        - Two identities are the same device when the ids are equal and, where both paths are known, the slots on
          the way (the paths without bus numbers, which shift when a card is added).
      type: dict
      contains:
        vendor:
          description: Vendor id, hex.
          type: str
        device:
          description: Device id, hex.
          type: str
        subsystem_vendor:
          description: Subsystem vendor id, hex.
          type: str
        subsystem_device:
          description: Subsystem device id, hex.
          type: str
        class:
          description: Class code, six hex digits.
          type: str
        path:
          description: The path through the bridges from the root bus, as in C(/sys/devices).
          type: str
          sample: pci0000:00/0000:00:1c.0/0000:03:00.0
    drift:
      description:
        - The records that name this address as another device than the one there now (a card added renumbered the
          buses, or one was swapped); empty when none does.
        - M(xenpci.passthrough.pci_assignable) refuses such an address unless told to follow the identity
          (O(xenpci.passthrough.pci_assignable#module:follow_identity)) or O(xenpci.passthrough.pci_assignable#module:force);
          M(xenpci.passthrough.module_params) refuses to add it to the hide list again.
      type: list
      elements: dict
      contains:
        source:
          description: V(journal) (the journal of original drivers) or V(hide) (the hide list of the collection's modprobe.d file).
          type: str
        recorded:
          description: The identity recorded (as RV(devices[].identity)).
          type: dict
        message:
          description: What was recorded and what is there, in words.
          type: str
    dom0_access:
      description:
        - Whether dom0 has the device now and will have it after the next boot, as XenServer's
          C(PCI.get_dom0_access_status) says it, from the device's driver now and the hide list of the next boot
          (RV(host.pciback.hide)). A device is hidden when a hide entry names it or a bridge above it.
        - V(enabled) not on pciback, and the next boot does not hide it.
        - V(disable_on_reboot) not on pciback, and the next boot hides it.
        - V(disabled) on pciback, and the next boot hides it.
        - V(enable_on_reboot) on pciback (moved there at run time), and the next boot does not hide it.
        - V(hidden_but_claimed) the running xen-pciback was given it to hide and lists it in its C(slots), the next
          boot hides it too, but another driver holds it; that driver took it before xen-pciback loaded (a native
          driver in the initramfs); it will happen again at the next boot unless xen-pciback loads first.
        - V(hide_unparsed) a hide list names it (the next boot's, or the one the running kernel was given) but the
          kernel rejects that list (see RV(host.pciback.hide)); it hides nothing, this device included.
      type: str
      choices: [enabled, disable_on_reboot, disabled, enable_on_reboot, hidden_but_claimed, hide_unparsed]
    passthrough:
      description: The device's passthrough state.
      type: dict
      contains:
        pciback_bound:
          description: Bound to xen-pciback.
          type: bool
        pciback_slot:
          description: Listed in pciback's C(slots).
          type: bool
        original_driver:
          description: The driver to give it back to, from this collection's journal or libxl's record.
          type: str
        original_driver_source:
          description: V(journal), V(xenstore) or null.
          type: str
        journal_phase:
          description: V(held), V(released), or V(binding)/V(releasing) for an interrupted move; null when not in the journal.
          type: str
        assigned_domain:
          description:
            - The id of the domain using the device, from libxl's record in xenstore or the PV PCI backend of a domain
              that still exists; null when no domain uses it.
            - The backend a destroyed guest leaves behind (closed, for a domain no longer under C(/local/domain)) does
              not count.
          type: int
        assignable:
          description: On pciback and not used by a domain (what C(xl pci-assignable-list) lists).
          type: bool
        candidate:
          description: Neither needed by the host nor a bridge.
          type: bool
        guest_configs:
          description:
            - The guest configurations in C(/etc/xen) (C(*.cfg)) whose C(pci) list names the device. Two or more
              cannot all run at once with it; a file whose C(pci) list xl could not read names nothing here.
          type: list
          elements: str
host:
  description: The host's passthrough readiness.
  returned: always
  type: dict
  contains:
    arch:
      description: Machine architecture.
      type: str
      sample: x86_64
    kernel:
      description: Running kernel release.
      type: str
    xen:
      description: Xen as dom0 sees it.
      type: dict
      contains:
        hypervisor:
          description: The host runs on Xen.
          type: bool
        dom0:
          description: The host is Xen's dom0 (C(control_d) in C(/proc/xen/capabilities)).
          type: bool
        version:
          description: Xen's version, or null when not on Xen.
          type: str
          sample: '4.17.5'
        xenstored_running:
          description: xenstored runs, so that the xl toolstack can be used.
          type: bool
        quarantine_capable:
          description:
            - Whether Xen can quarantine PCI devices and pass them through, from its virt_caps (what C(xl info) prints); null when Xen could not
              be asked. False on Xen on Arm before 4.21, which has no PCI passthrough support.
          type: bool
        quarantine_note:
          description:
            - What Xen lacks when RV(host.xen.quarantine_capable) is false, else null. On Arm with Linux 6.12 or later
              it also says that xen-pciback can hold no device there, its bind asking Xen for a PCI reset that such a
              Xen refuses.
          type: str
        quarantine_through:
          description:
            - How this host's Xen is asked to quarantine devices, by M(xenpci.passthrough.pci_assignable) and the
              roles. V(libxenctrl) is the hypercall that C(xl pci-assignable-add) makes, from the module's own
              process (Xen's control library loaded through ctypes; no process per device). V(xl) runs C(xl
              pci-assignable-add) and C(-remove) instead, where that library cannot be loaded (see
              RV(host.xen.xenctrl_note)). Null when xenstored does not run or xl is not installed.
          type: str
          choices: [libxenctrl, xl]
        xenctrl_note:
          description: Why Xen's control library cannot be used from the module's process, else null.
          type: str
          sample: 'libxenctrl.so.4.17 cannot be used: libxenctrl.so.4.17: cannot open shared object file'
        xenstore_through:
          description:
            - How the modules read and write xenstore (libxl's records, the PV backends of guests). V(libxenstore) is
              the library the C(xenstore-*) commands use, from the module's own process (loaded through ctypes).
              V(commands) runs C(xenstore-ls), C(-list), C(-write) and C(-rm) instead, where that library cannot be
              loaded or cannot connect (see RV(host.xen.xenstore_note)). Null when xenstored does not run or xl is
              not installed.
          type: str
          choices: [libxenstore, commands]
        xenstore_note:
          description: Why libxenstore cannot be used from the module's process, else null.
          type: str
    pciback:
      description: xen-pciback in the running kernel.
      type: dict
      contains:
        kconfig_symbol:
          description: The kernel option xen-pciback needs on this architecture.
          type: str
          sample: CONFIG_XEN_PCIDEV_BACKEND
        variant:
          description: V(pv_backend) (x86, the PV PCI backend) or V(stub) (elsewhere, the stub only).
          type: str
        build:
          description: V(module), V(builtin), V(absent) or V(unknown).
          type: str
        loaded:
          description: xen-pciback is loaded (its driver is in sysfs).
          type: bool
        parameters:
          description: Its module parameters as the running kernel shows them; empty when not loaded.
          type: dict
        slots:
          description: The addresses in pciback's C(slots).
          type: list
          elements: str
        bound:
          description: The addresses bound to pciback.
          type: list
          elements: str
        hide:
          description:
            - xen-pciback's hide lists as the kernel reads them (C(pcistub_init)), each null when there is none.
          type: dict
          contains:
            boot:
              description:
                - The list the next boot gives xen-pciback. As a module, the last C(hide) of the modprobe.d files in
                  modprobe's order, else a C(xen-pciback.hide=) of the kernel command line; built in, the command line.
                  The command line read is the running kernel's C(/proc/cmdline), not the boot loader's
                  configuration.
              type: dict
              contains:
                source:
                  description: The file and line, or C(/proc/cmdline).
                  type: str
                text:
                  description: The list as written.
                  type: str
                  sample: (0000:03:00.0)(0000:04:00.0)
                entries:
                  description: The entries the kernel reads, canonical, C(*) for a wildcard slot or function.
                  type: list
                  elements: str
                error:
                  description:
                    - Why the kernel rejects the list, else null. A list xen-pciback cannot read hides nothing at all
                      (as a module it does not load); RV(host.problems) says so too.
                  type: str
            running:
              description:
                - The list the running xen-pciback was given (its C(hide) parameter, mode 0444, which shows the text
                  as given), with the same keys as RV(host.pciback.hide.boot); null when xen-pciback is not loaded
                  or was given none.
              type: dict
    iommu:
      description: The IOMMU as Linux sees it.
      type: dict
      contains:
        linux_groups:
          description: Linux itself manages an IOMMU (it has IOMMU groups); false in a Xen PV dom0, where Xen does.
          type: bool
    journal:
      description: This collection's journal of original drivers.
      type: dict
      contains:
        path:
          description: Where it is.
          type: str
          sample: /var/lib/xenpci_passthrough/drivers.json
        devices:
          description: How many devices it records.
          type: int
        error:
          description: Why it could not be read, or null.
          type: str
    pci_ids:
      description:
        - The C(pci.ids) file the names came from; null when O(names=false) or when the host has none (then
          RV(host.notes) says so, and the task warns).
      type: str
      sample: /usr/share/misc/pci.ids
    problems:
      description: What stands in the way of passthrough on this host; empty when ready.
      type: list
      elements: str
    notes:
      description:
        - What the report could not say, such as names left null for want of C(pci.ids), and what the collection's
          records say that is no longer so (an address that names another device, a recorded device that left the
          host); each is also a warning.
      type: list
      elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import controller_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, ReportError, build_report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            addresses=dict(type='list', elements='str'),
            classes=dict(type='list', elements='str'),
            ids=dict(type='list', elements='str'),
            drivers=dict(type='list', elements='str'),
            names=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        device_filter = DeviceFilter(params['addresses'], params['classes'], params['ids'], params['drivers'])
    except ReportError as exc:
        module.fail_json(msg='invalid filter: %s' % exc)
    commands = Commands.for_module(module)
    report = build_report(HostPaths(), commands, device_filter, names=params['names'],
                          controller_address=controller_address())
    for note in report['host']['notes']:
        module.warn(note)
    module.exit_json(changed=False, **report)


if __name__ == '__main__':
    main()
