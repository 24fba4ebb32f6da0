#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: module_params
short_description: Set kernel module parameters persistently and, where the kernel allows it, at run time
version_added: 0.1.0
description:
  - Persistent, O(state=present) sets the parameters in one C(options) line in a file this collection owns,
    C(/etc/modprobe.d/xenpci-MODULE.conf), keeping the parameters already there. O(state=absent) removes the named
    parameters, or all of them (and the file) when O(params) is empty.
  - xen-pciback's C(hide) is merged, not overwritten. Adding V(0000:03:00.0) to an existing V((0000:04:00.0\))
    keeps both, and O(state=absent) removes only the addresses named. Every address is checked, because a malformed
    one makes xen-pciback fail to load. Wildcards are not accepted.
  - Other C(*.conf) files in C(/etc/modprobe.d), C(/run/modprobe.d), C(/usr/local/lib/modprobe.d),
    C(/usr/lib/modprobe.d) and C(/lib/modprobe.d), and the kernel command line, are read, never changed, to
    report in RV(conflicts) the C(options) lines that set the same parameters to something else.
  - Run time, when the module is loaded, a parameter that the kernel shows under C(/sys/module/MODULE/parameters/)
    with the owner's write bit is written at once and read back. Any other parameter is reported as needing a
    reload of the module, or a reboot when the module is built in.
  - A built-in module takes its parameters from the kernel command line (C(xen-pciback.hide=...)), not from
    modprobe.d. The module says so and returns them in RV(cmdline) and RV(cmdline_params), for
    M(xenpci.passthrough.boot_cmdline) to put on the command line.
  - For xen-pciback's C(hide), the file also records each hidden device's identity (ids, subsystem ids, class, path
    through the bridges) in a C(# identity) comment, kept from when the address was first hidden. Adding an address
    again whose recorded identity is not the device there now (a card added renumbered the buses) is refused and the
    file left as it was; remove the address (O(state=absent)) and add the device's current address.
    M(xenpci.passthrough.pci_info) reports such drift.
  - A file the collection owns that was changed by hand (a line other than C(options) for this module, an open
    quote, a bad address in C(hide)) is refused and left as it was.
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
      - The diff shows the owned modprobe.d file; run-time changes are in RV(runtime).
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - Linux with kmod (modprobe.d).
options:
  name:
    description:
      - The kernel module, for example V(xen-pciback). V(-) and V(_) are the same (V(xen_pciback) names the same
        module and the same file).
    type: str
    required: true
  params:
    description:
      - A mapping of parameter to value. Booleans are written V(1) and V(0), lists joined with commas; xen-pciback's
        C(hide) takes a list of PCI addresses or a V((DDDD:BB:DD.F\)(DDDD:BB:DD.F\)) string.
      - Values cannot hold double quotes, line breaks or non-ASCII characters; values with blanks are quoted.
      - With O(state=absent) a list of parameter names is enough; C(hide) with addresses removes only those.
    type: raw
    default: {}
  state:
    description:
      - V(present) sets the parameters; V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  runtime:
    description:
      - Write the parameters that the kernel lets change at run time when the module is loaded. V(false) leaves the
        running module alone (the value applies at the next load).
    type: bool
    default: true
  cmdline:
    description:
      - The parameters go on the kernel command line through M(xenpci.passthrough.boot_cmdline). With V(true),
        RV(cmdline) and RV(bootloader_update_required) are given for a loadable module too (modprobe also applies
        C(MODULE.param=value) from the command line), and a built-in module is not warned about.
    type: bool
    default: false
  backup:
    description:
      - Keep a copy of the owned file, with a timestamp in its name, before changing it.
    type: bool
    default: false
notes:
  - The owned file is replaced atomically; a symbolic link at its place is refused, not followed.
  - RV(initramfs_update_required) is true when this task changed the file and the module is loaded from the initramfs
    (named in C(/etc/initramfs-tools/modules), or in C(add_drivers) or C(force_drivers) of dracut's configuration). Run
    C(update-initramfs -u) or C(dracut -f) then.
  - As a loadable module, xen-pciback's C(hide) only takes devices that no driver has taken yet; load it early (from
    the initramfs) or keep the devices' own drivers off them.
seealso:
  - module: xenpci.passthrough.kernel_config
  - module: xenpci.passthrough.pci_assignable
'''

EXAMPLES = r'''
- name: Have xen-pciback hide two NICs at load time
  xenpci.passthrough.module_params:
    name: xen-pciback
    params:
      hide: ['0000:03:00.0', '0000:04:00.0']
  register: pciback_params

- name: Put them on the command line where xen-pciback is built in
  xenpci.passthrough.boot_cmdline:
    linux: "{{ pciback_params.cmdline_params }}"
  when: pciback_params.build == 'builtin'

- name: Stop hiding one of them (the other stays)
  xenpci.passthrough.module_params:
    name: xen-pciback
    params:
      hide: ['0000:04:00.0']
    state: absent

- name: Permissive config space writes, now and after reboots
  xenpci.passthrough.module_params:
    name: xen_pciback
    params:
      permissive: true
'''

RETURN = r'''
file:
  description: The modprobe.d file this collection owns for the module.
  returned: always
  type: str
  sample: /etc/modprobe.d/xenpci-xen-pciback.conf
options_line:
  description: Its C(options) line after the task, or null when there is none (no file).
  returned: always
  type: str
  sample: options xen-pciback hide=(0000:03:00.0)(0000:04:00.0)
params:
  description: The parameters in the file after the task.
  returned: always
  type: dict
  sample: {hide: '(0000:03:00.0)(0000:04:00.0)'}
build:
  description: How the running kernel has the module, V(module), V(builtin), V(absent) or V(unknown).
  returned: always
  type: str
loaded:
  description: Whether the module is loaded (always true for a built-in module with parameters).
  returned: always
  type: bool
runtime:
  description:
    - Per parameter the task touched, C(status) (V(applied), V(unchanged), V(not_loaded), V(reload_required),
      V(reboot_required)), C(running) (the value the kernel shows, null when it does not show one) and C(wanted).
    - In check mode, V(applied) means it would be written.
  returned: always
  type: dict
  sample: {permissive: {status: applied, running: 'Y', wanted: '1'}, hide: {status: reload_required, running: '', wanted: '(0000:03:00.0)'}}
conflicts:
  description: Other C(options) lines (or the kernel command line) that set one of these parameters to something else.
  returned: always
  type: list
  elements: dict
  sample: [{file: /etc/modprobe.d/local.conf, line: 3, options: options xen-pciback hide=(0000:05:00.0), params: [hide]}]
cmdline:
  description: The parameters as kernel command line words, when the module is built in or O(cmdline=true).
  returned: always
  type: list
  elements: str
  sample: ['xen-pciback.hide=(0000:03:00.0)(0000:04:00.0)']
cmdline_params:
  description:
    - The same as a mapping for M(xenpci.passthrough.boot_cmdline); a parameter the task removed maps to null.
  returned: always
  type: dict
  sample: {xen-pciback.hide: '(0000:03:00.0)(0000:04:00.0)'}
notes:
  description: What the task noticed, such as a built-in module or a file it could not read.
  returned: always
  type: list
  elements: str
reload_required:
  description: A parameter differs in the running module and only a reload of the module changes it.
  returned: always
  type: bool
reboot_required:
  description: A parameter differs in the running, built-in module and only a reboot changes it.
  returned: always
  type: bool
initramfs_update_required:
  description: This task changed the file and the module is loaded from the initramfs.
  returned: always
  type: bool
initramfs_tools:
  description:
    - The initramfs tools whose configuration loads the module from the initramfs, C(initramfs-tools) (regenerate with
      C(update-initramfs -u)) or C(dracut) (C(dracut --force)); empty when the module does not load from one.
  returned: always
  type: list
  elements: str
  sample: [initramfs-tools]
bootloader_update_required:
  description: The parameters belong on the kernel command line (RV(cmdline)) and the running kernel's command line
    does not have them as wanted.
  returned: always
  type: bool
backup_file:
  description: The copy made with O(backup=true).
  returned: when a backup was made
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError, write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import ModprobeError
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.parameters import (
    ModuleParamsError,
    plan_module_params,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            params=dict(type='raw', default={}),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            runtime=dict(type='bool', default=True),
            cmdline=dict(type='bool', default=False),
            backup=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    paths = HostPaths()
    try:
        plan = plan_module_params(paths, XenHost(paths), params['name'], params['params'], params['state'],
                                  runtime=params['runtime'], cmdline=params['cmdline'])
    except (ModprobeError, FileEditError) as exc:
        module.fail_json(msg=str(exc))
    result = plan.result()
    if module._diff:
        result['diff'] = plan.planned.diff()
    if not module.check_mode:
        try:
            backup_file = write_planned(plan.planned, module.backup_local if params['backup'] else None, labels=module)
            plan.apply_runtime()
        except (FileEditError, ModuleParamsError) as exc:
            module.fail_json(msg=str(exc), **result)
        if backup_file:
            result['backup_file'] = backup_file
        result['runtime'] = plan.runtime
    for conflict in plan.conflicts:
        module.warn('%s line %d also sets %s for %s: %s' % (
            conflict['file'], conflict['line'], ', '.join(conflict['params']), params['name'], conflict['options']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
