#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kernel_config
short_description: Set PCI passthrough options in a kernel configuration, or check the running kernel for them
version_added: 0.1.0
description:
  - O(mode=edit) sets options in a kernel C(.config) or a configuration fragment (O(path)), keeping the order and
    comments of the file. V(n) is written as C(# CONFIG_X is not set); O(state=absent) drops the lines.
  - O(mode=check_running) reads the running kernel's configuration (C(/boot/config-RELEASE), else
    C(/proc/config.gz)) and reports which wanted options it lacks, without changing anything; with
    O(fail_on_missing=true) the task fails, naming them. A role uses this to stop early on a kernel without
    xen-pciback.
  - The module knows where each passthrough symbol is valid. C(XEN_PCIDEV_BACKEND) builds xen-pciback on x86 only,
    C(XEN_PCIDEV_STUB) on other architectures from Linux 5.16 on, and C(XEN_PCI_STUB) is selected by either and
    never set by hand. An impossible request is refused with a message naming the right symbol for the architecture.
  - Without O(source_tree), dependencies between the known symbols (C(PCI), C(XEN), C(XEN_DOM0), C(XEN_BACKEND),
    C(XEN_PCIDEV_BACKEND), C(XEN_PCIDEV_STUB), C(XEN_PCI_STUB), C(XEN_PCIDEVICE_FRONTEND)) are checked from a
    built-in table; other symbols are written as given.
  - A file that does not parse (a line that is neither C(CONFIG_X=value), C(# CONFIG_X is not set), a comment nor
    blank) is refused with its line number and left as it was.
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
      - O(mode=edit) shows the file before and after; O(mode=check_running) changes nothing and has no diff.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - O(mode=edit) works on any file; O(mode=check_running) needs a Linux host.
options:
  mode:
    description:
      - V(edit) changes the file O(path); V(check_running) only reads the running kernel's configuration.
    type: str
    choices: [edit, check_running]
    default: edit
  path:
    description:
      - The C(.config) or fragment to edit. Required with O(mode=edit).
      - A file with kconfig's header (C(# Linux/x86 6.1.0 Kernel Configuration)) is a whole configuration, where a
        symbol that is not listed is off; a file without it is a fragment, merged into another configuration later.
    type: path
  options:
    description:
      - A mapping of symbol (with or without the C(CONFIG_) prefix) to V(y), V(m), V(n), a string or a number.
        Strings are written double-quoted and escaped; numbers (decimal or V(0x) hexadecimal) as they are.
      - With O(state=absent), and with O(mode=check_running), a list of symbols is enough.
      - With O(mode=check_running), a wanted V(m) is satisfied by V(y) too, and a symbol in a list by any value but
        V(n). Default there is the symbol that builds xen-pciback on the host's architecture.
    type: raw
  state:
    description:
      - With O(mode=edit), V(present) sets the options and V(absent) removes their lines.
    type: str
    choices: [present, absent]
    default: present
  arch:
    description:
      - The architecture the configuration is for (V(x86_64), V(aarch64), or a kernel name such as V(arm64)), to
        prepare a configuration for a cross build.
      - Default is the one in the file's kconfig header, else the host's. Not accepted with O(mode=check_running).
    type: str
  kernel_version:
    description:
      - The Linux version the configuration is for (V(6.1) or a release such as V(6.1.0-13-arm64)); it decides
        whether C(XEN_PCIDEV_STUB) exists (5.16 and later).
      - Default is the one in the file's kconfig header, else the running kernel's. Not accepted with
        O(mode=check_running).
    type: str
  source_tree:
    description:
      - A Linux source tree on the managed host. When given, the options are also checked with the real Kconfig
        through the Python library C(kconfiglib), which must then be installed on the managed host (the task fails
        saying so otherwise).
      - For a whole configuration, an option kconfig would not keep (an unmet dependency, a symbol the tree does
        not define) fails the task; for a fragment, which is checked alone against the tree's defaults, it is
        reported in RV(notes).
    type: path
  create:
    description:
      - Create O(path) when it does not exist.
    type: bool
    default: true
  backup:
    description:
      - Keep a copy of the file, with a timestamp in its name, before changing it.
    type: bool
    default: false
  fail_on_missing:
    description:
      - With O(mode=check_running), fail when the running kernel lacks a wanted option or has another value.
    type: bool
    default: false
notes:
  - Files are replaced atomically, keeping their mode and owner; a symbolic link at O(path) is refused, not followed.
  - After an edit of a whole configuration, run C(make olddefconfig) in the source tree before building.
seealso:
  - module: xenpci.passthrough.module_params
  - module: xenpci.passthrough.pci_info
'''

EXAMPLES = r'''
- name: Stop early on a kernel without xen-pciback
  xenpci.passthrough.kernel_config:
    mode: check_running
    fail_on_missing: true

- name: What does the running kernel have?
  xenpci.passthrough.kernel_config:
    mode: check_running
    options: [XEN_DOM0, XEN_BACKEND, CONFIG_XEN_PCIDEV_BACKEND]
  register: kernel

- name: Prepare a fragment for an arm64 cross build
  xenpci.passthrough.kernel_config:
    path: /srv/build/xen-dom0.config
    arch: aarch64
    kernel_version: '6.1'
    options:
      XEN_BACKEND: y
      XEN_PCIDEV_STUB: m

- name: Build xen-pciback into an x86 kernel, checked against its sources
  xenpci.passthrough.kernel_config:
    path: /usr/src/linux/.config
    source_tree: /usr/src/linux
    backup: true
    options:
      CONFIG_XEN_PCIDEV_BACKEND: y
'''

RETURN = r'''
options:
  description:
    - O(mode=edit), per symbol, C(before) and C(after) values (null when the file does not have it, V(n) when not set).
    - O(mode=check_running), per symbol, C(wanted) and C(running) values.
  returned: always
  type: dict
  sample: {CONFIG_XEN_PCIDEV_BACKEND: {before: 'n', after: 'm'}}
present:
  description: Wanted symbols the running kernel sets, with their values.
  returned: O(mode=check_running)
  type: dict
  sample: {CONFIG_XEN_PCIDEV_BACKEND: m}
missing:
  description: Wanted symbols the running kernel does not set.
  returned: O(mode=check_running)
  type: list
  elements: str
  sample: [CONFIG_XEN_PCIDEV_STUB]
mismatched:
  description: Wanted symbols the running kernel sets to another value.
  returned: O(mode=check_running)
  type: list
  elements: str
arch:
  description: The kernel architecture the options were checked for (V(x86), V(arm64), ...).
  returned: always
  type: str
kernel_version:
  description: The kernel version they were checked for (the running kernel's release in O(mode=check_running)).
  returned: always
  type: str
checked_with:
  description: V(table) (the built-in table of symbols) or V(kconfiglib) (the Kconfig of O(source_tree)).
  returned: O(mode=edit)
  type: str
full_config:
  description: Whether O(path) is a whole configuration (true) or a fragment (false).
  returned: O(mode=edit)
  type: bool
notes:
  description: What the task noticed, such as dependencies a fragment leaves to the configuration it is merged into.
  returned: always
  type: list
  elements: str
rebuild_required:
  description: The configuration changed; the kernel must be rebuilt (and installed) for it to take effect.
  returned: always
  type: bool
reboot_required:
  description: Always false; a rebuilt kernel needs a reboot once it is installed.
  returned: always
  type: bool
initramfs_update_required:
  description: Always false; installing a rebuilt kernel makes its initramfs.
  returned: always
  type: bool
bootloader_update_required:
  description: Always false.
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
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.kconfig import KconfigError, check_running, plan_edit
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.symbols import KernelSymbolError, kernel_arch
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost

_FLAGS = ('reboot_required', 'initramfs_update_required', 'bootloader_update_required')


def _check_running(module, host):
    params = module.params
    given = [name for name in ('path', 'arch', 'kernel_version', 'source_tree') if params[name]]
    if given:
        module.fail_json(msg='mode=check_running reads the running kernel; %s cannot be given' % ', '.join(given))
    try:
        check = check_running(host, params['options'])
    except (KconfigError, KernelSymbolError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, options=check.options, present=check.present, missing=check.missing,
                  mismatched=check.mismatched, arch=kernel_arch(check.arch), kernel_version=check.release,
                  notes=check.notes, rebuild_required=False)
    result.update((flag, False) for flag in _FLAGS)
    if params['fail_on_missing'] and not check.ok:
        module.fail_json(msg=check.failure_message(), **result)
    module.exit_json(**result)


def _edit(module, host):
    params = module.params
    try:
        plan = plan_edit(params['path'], params['options'], params['state'], host, arch=params['arch'],
                         kernel_version=params['kernel_version'], create=params['create'],
                         source_tree=params['source_tree'])
    except (KconfigError, KernelSymbolError, FileEditError) as exc:
        module.fail_json(msg=str(exc))
    planned = plan.planned
    result = dict(changed=planned.changed, path=params['path'], options=plan.options, arch=plan.arch,
                  kernel_version=plan.version, checked_with=plan.checked_with, full_config=plan.full,
                  notes=plan.notes, rebuild_required=planned.changed)
    result.update((flag, False) for flag in _FLAGS)
    if module._diff:
        result['diff'] = planned.diff()
    if planned.changed and not module.check_mode:
        try:
            backup_file = write_planned(planned, module.backup_local if params['backup'] else None, labels=module)
        except FileEditError as exc:
            module.fail_json(msg=str(exc), **result)
        if backup_file:
            result['backup_file'] = backup_file
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', choices=['edit', 'check_running'], default='edit'),
            path=dict(type='path'),
            options=dict(type='raw'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            arch=dict(type='str'),
            kernel_version=dict(type='str'),
            source_tree=dict(type='path'),
            create=dict(type='bool', default=True),
            backup=dict(type='bool', default=False),
            fail_on_missing=dict(type='bool', default=False),
        ),
        required_if=[('mode', 'edit', ('path', 'options'))],
        supports_check_mode=True,
    )
    host = XenHost(HostPaths())
    if module.params['mode'] == 'check_running':
        _check_running(module, host)
    _edit(module, host)


if __name__ == '__main__':
    main()
