#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: boot_cmdline
short_description: Set or remove parameters on the Xen, dom0 and Linux boot command lines
version_added: 0.1.0
description:
  - Sets and removes parameters on the command line of the Xen hypervisor (O(target=xen)), of dom0's kernel as GRUB
    starts it under Xen (O(target=dom0_linux)), or of a Linux kernel booted without Xen (O(target=linux)).
  - Parameters that are not named in O(params) are never touched. A parameter is matched by name, with C(-) and
    C(_) taken as the same character, as Linux and Xen do.
  - With O(backend=grub), the change is written to a GRUB defaults file; C(update-grub) (or C(grub2-mkconfig)) must run
    before it takes effect, which RV(bootloader_update_required) says, unless O(update_bootloader=true).
    Every change takes effect at the next boot, which RV(reboot_required) says.
  - GRUB defaults files are shell, and C(/bin/sh) reads them as C(update-grub) does (sourced in its order, from an
    argument list), so the command lines are what C(update-grub) will build, whatever shell the files hold. A file the
    shell stops in (a syntax error, an C(exit), a sourced file that is missing) is an error naming it, and nothing is
    written.
  - The module writes its own drop-in by default. A file given in O(grub_file) is edited in place only where the
    variable it edits is set by plain assignments alone on a line (C(NAME="..."), C(NAME='...'), C(NAME=word),
    C(export NAME=...), and C(NAME="$NAME ...") as the drop-in writes); any other way of setting it there (a command
    substitution, a continuation line, other references) is an error naming the line, and nothing is written.
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
      - The diff is the edited file (and C(/etc/default/grub) when O(xen_default_entry) changes it); for
        O(backend=grubby), the arguments of each boot entry that changes.
  idempotent:
    support: full
  platform:
    support: full
    platforms: posix
    details:
      - Debian and Ubuntu GRUB (C(/etc/default/grub) and C(/etc/default/grub.d/*.cfg)), C(/etc/default/grub) with
        C(grub2-mkconfig) elsewhere, grubby on the RHEL family (O(target=linux)), U-Boot C(extlinux.conf) (O(target=linux)).
options:
  target:
    description:
      - V(xen) is the hypervisor's command line (GRUB's C(GRUB_CMDLINE_XEN_DEFAULT)).
      - V(dom0_linux) is the command line of dom0's kernel when GRUB boots it under Xen. Debian's C(20_linux_xen) gives
        dom0 C(GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT) in place of C(GRUB_CMDLINE_LINUX_DEFAULT) when it is set; the
        module writes C(GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="${GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT:-$GRUB_CMDLINE_LINUX_DEFAULT} ...")
        so that dom0 keeps what it had and gets the new parameters, and a Linux boot without Xen does not.
      - V(linux) is the command line of Linux booted without Xen (C(GRUB_CMDLINE_LINUX_DEFAULT), which dom0 also gets
        when nothing replaces it).
      - The module edits the C(*_DEFAULT) variables, which GRUB gives the default entries and not the recovery entries.
    type: str
    choices: [xen, dom0_linux, linux]
    required: true
  params:
    description:
      - A mapping of parameter names to values, see the examples.
      - Required, and not empty, unless O(xen_default_entry) is set; V({}) then leaves the command line alone.
      - With O(state=present), each name ends up with exactly the values given; its other occurrences are removed.
        A string or a number is one C(name=value); null is a bare C(name); a list gives the name once for each element,
        in that order (a list V(tty0), V(ttyS0,115200) for C(console) gives C(console=tty0 console=ttyS0,115200)).
        A value with blanks is written C(name="a b").
      - With O(state=absent), null removes every occurrence of the name; a value, or a list of values, removes only
        those occurrences.
      - A YAML boolean is refused, because C(on), C(off), C(yes) and C(no) unquoted are booleans to YAML; quote the
        value the kernel expects (V('on'), V('1')) or use null for a bare name.
      - A value may not hold a double quote or a control character (a newline above all). With O(backend=grub), nor
        may it hold a character GRUB's script language would interpret in C(grub.cfg) (C($), C(\), C('), backquote,
        C(;), C(&), C(|), C(<) and C(>)); with O(backend=extlinux), nor C($), C(') or C(\), which U-Boot's
        expansion of the C(APPEND) line interprets. Such values are refused before anything is written.
    type: dict
  state:
    description:
      - Whether the parameters are present or absent.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - Where the command line is configured. V(auto) picks V(grub) where C(update-grub) exists; V(grubby) where grubby
        exists (V(grub) for O(target=xen) and O(target=dom0_linux) there); V(grub) where C(/etc/default/grub) and
        C(grub-mkconfig) or C(grub2-mkconfig) exist; V(extlinux) where O(extlinux_file) exists.
      - V(grubby) runs C(grubby --update-kernel=ALL --args=... / --remove-args=...) and checks every entry afterwards.
        It handles O(target=linux) only, one value per name and no blanks in values (grubby splits on them).
      - V(extlinux) edits the C(APPEND) line of the label that boots by default (the last C(DEFAULT) or
        C(MENU DEFAULT), else the first label) and only for O(target=linux), since U-Boot's C(extlinux.conf) cannot start Xen.
        A file generated by Debian's C(u-boot-update) is refused (set C(U_BOOT_PARAMETERS) in C(/etc/default/u-boot)).
    type: str
    choices: [auto, grub, grubby, extlinux]
    default: auto
  grub_file:
    description:
      - The GRUB defaults file to edit, C(/etc/default/grub) or a C(*.cfg) file in C(/etc/default/grub.d/).
      - By default C(/etc/default/grub.d/zz-xenpci-passthrough.cfg) where C(/etc/default/grub.d/) exists (Debian and
        Ubuntu); else C(/etc/default/grub). C(update-grub) sources the C(*.cfg) files after C(/etc/default/grub) in
        name order, so this name sorts after Debian's C(xen.cfg) and the like, and each of its lines adds to a variable
        (C(GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT iommu=1")) instead of replacing what other files set.
        The module removes that file when nothing is left in it.
      - A parameter that another GRUB file puts on the same command line with another value (or, with
        O(state=absent), at all) is a conflict, see O(on_conflict). To change it where it is, give that file here.
    type: path
  extlinux_file:
    description:
      - The C(extlinux.conf) for O(backend=extlinux).
    type: path
    default: /boot/extlinux/extlinux.conf
  on_conflict:
    description:
      - What to do when the command line GRUB would build still holds an occurrence of a parameter from another file,
        or the value written here would not reach it (a later file sets the variable anew).
      - V(fail) changes nothing and fails, listing RV(conflicts). V(warn) writes this file anyway and warns; for most
        parameters the kernel and Xen use the last occurrence, which is the one this module writes.
    type: str
    choices: [fail, warn]
    default: fail
  xen_default_entry:
    description:
      - Make the Xen entry GRUB's default (V(true)) or leave GRUB's default entry as the other settings make it
        (V(false)), through C(XEN_OVERRIDE_GRUB_DEFAULT), which the C(/etc/default/grub.d/xen.cfg) of Debian's
        C(xen-hypervisor-common) reads. The module writes C(XEN_OVERRIDE_GRUB_DEFAULT=1) (or C(=0)) into
        C(/etc/default/grub), which C(update-grub) reads before C(xen.cfg), as a plain assignment; the last one there is
        changed in place, else a line is added at the end. Any other way of setting it there (a condition on the same
        line, a reference, a command substitution) is an error naming the line, and nothing is written.
      - Unset, C(XEN_OVERRIDE_GRUB_DEFAULT) is not touched.
      - For O(target=xen) with O(backend=grub) only. The task may then write two files, this one and O(grub_file)
        (or the drop-in); the diff shows both. RV(grub_default) says what C(update-grub) will make of it.
    type: bool
  update_bootloader:
    description:
      - When a GRUB defaults file changed, run C(update-grub) (or C(grub2-mkconfig -o) onto the existing
        C(/boot/grub2/grub.cfg) or C(/boot/grub/grub.cfg)). It runs only in the task that changed the file.
    type: bool
    default: false
  backup:
    description:
      - Keep a copy of the file, with a timestamp, before changing it.
    type: bool
    default: false
notes:
  - Files are replaced atomically and never written through a symbolic link.
  - The module does not reboot; see RV(reboot_required).
seealso:
  - module: xenpci.passthrough.pci_assignable
  - name: Xen command-line options
    description: The hypervisor's parameters.
    link: https://xenbits.xen.org/docs/unstable/misc/xen-command-line.html
  - name: Linux kernel parameters
    description: The kernel's parameters.
    link: https://docs.kernel.org/admin-guide/kernel-parameters.html
'''

EXAMPLES = r'''
- name: Turn the IOMMU on in Xen
  xenpci.passthrough.boot_cmdline:
    target: xen
    params:
      iommu: '1'
  register: xen_cmdline

- name: Hide two NICs from dom0's drivers at boot (xen-pciback built in)
  xenpci.passthrough.boot_cmdline:
    target: dom0_linux
    params:
      xen-pciback.hide: '(0000:03:00.0)(0000:04:00.0)'
    update_bootloader: true

- name: Two consoles and a bare parameter on the dom0 kernel
  xenpci.passthrough.boot_cmdline:
    target: dom0_linux
    params:
      console: [hvc0, tty0]
      earlyprintk: xen
      nomodeset: null

- name: Remove one value of a repeated parameter only
  xenpci.passthrough.boot_cmdline:
    target: dom0_linux
    params:
      console: tty0
    state: absent

- name: Intel IOMMU on for a RHEL-family host without Xen (grubby)
  xenpci.passthrough.boot_cmdline:
    target: linux
    params:
      intel_iommu: 'on'
      iommu: pt

- name: Edit /etc/default/grub itself, keeping a backup
  xenpci.passthrough.boot_cmdline:
    target: xen
    params:
      dom0_mem: 4G,max:4G
    grub_file: /etc/default/grub
    backup: true

- name: Make Xen GRUB's default entry, with dom0's memory on its command line
  xenpci.passthrough.boot_cmdline:
    target: xen
    params:
      dom0_mem: 4G,max:4G
    xen_default_entry: true
  register: xen_boot

- name: Check that update-grub will start Xen by default (LC_ALL=C titles)
  ansible.builtin.assert:
    that: >-
      xen_boot.grub_default == (xen_boot.grub_distributor ~ ' GNU/Linux' if xen_boot.grub_distributor else 'GNU/Linux')
      ~ ', with Xen hypervisor'

- name: Reboot when a command line changed
  ansible.builtin.reboot:
  when: xen_cmdline.reboot_required
'''

RETURN = r'''
backend:
  description: The back end used.
  returned: always
  type: str
  sample: grub
file:
  description: The file edited (null for V(grubby)).
  returned: always
  type: str
  sample: /etc/default/grub.d/zz-xenpci-passthrough.cfg
cmdline_before:
  description:
    - The command line of the default entry for O(target) before the task, as the boot loader will build it from its
      configuration (for GRUB, the parameters its variables give; GRUB adds C(root=) and C(ro) to Linux itself).
  returned: always
  type: str
  sample: quiet
cmdline_after:
  description: The same after the task (in check mode, what it would be).
  returned: always
  type: str
  sample: quiet xen-pciback.hide=(0000:03:00.0)
conflicts:
  description: Occurrences of the parameters that another file puts on the command line and this task cannot change.
  returned: always
  type: list
  elements: dict
  contains:
    param:
      description: The parameter, as named in O(params).
      type: str
    found:
      description: The occurrence as written (null when the value written by this task does not reach the line).
      type: str
    file:
      description: The file that puts it there.
      type: str
    line:
      description: The line in that file.
      type: int
    variable:
      description: The GRUB variable.
      type: str
    message:
      description: What is wrong, in words.
      type: str
grub_default:
  description:
    - C(GRUB_DEFAULT) as C(update-grub) will see it once the task is done (in check mode, would be), read by the
      shell from C(/etc/default/grub) and C(/etc/default/grub.d/*.cfg) after GRUB's C(grub-mkconfig_lib), as
      C(update-grub) does; empty when no file sets it. Null for the back ends other than V(grub).
    - Debian's C(xen.cfg) sets it to the Xen entry's title, C(<distributor> GNU/Linux, with Xen hypervisor)
      (see RV(grub_distributor)), when C(XEN_OVERRIDE_GRUB_DEFAULT) is 1.
  returned: always
  type: str
  sample: Debian GNU/Linux, with Xen hypervisor
grub_default_before:
  description: The same before the task.
  returned: always
  type: str
  sample: '0'
grub_distributor:
  description:
    - C(GRUB_DISTRIBUTOR) as C(update-grub) will see it once the task is done; GRUB's C(20_linux_xen) titles the Xen
      entry C(<GRUB_DISTRIBUTOR> GNU/Linux, with Xen hypervisor), or C(GNU/Linux, with Xen hypervisor) when it is
      empty (in the C locale). Null for the back ends other than V(grub).
  returned: always
  type: str
  sample: Debian
reboot_required:
  description: The command line or GRUB's default entry changed; it takes effect at the next boot.
  returned: always
  type: bool
bootloader_update_required:
  description: A GRUB defaults file changed and C(update-grub) (or C(grub2-mkconfig)) has not run since.
  returned: always
  type: bool
initramfs_update_required:
  description: Always false; the command line is not in the initramfs.
  returned: always
  type: bool
backup_file:
  description:
    - The backup made with O(backup=true), of RV(file), or of C(/etc/default/grub) when only O(xen_default_entry)
      changed it. Each file changed is backed up next to itself.
  returned: when a backup was made
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.loaders import (
    BACKENDS,
    DEFAULT_EXTLINUX,
    TARGETS,
    BootCmdlineError,
    ensure,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths


def main():
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type='str', choices=list(TARGETS), required=True),
            params=dict(type='dict'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            backend=dict(type='str', choices=list(BACKENDS), default='auto'),
            grub_file=dict(type='path'),
            extlinux_file=dict(type='path', default=DEFAULT_EXTLINUX),
            on_conflict=dict(type='str', choices=['fail', 'warn'], default='fail'),
            update_bootloader=dict(type='bool', default=False),
            backup=dict(type='bool', default=False),
            xen_default_entry=dict(type='bool'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    commands = Commands.for_module(module)
    try:
        result = ensure(HostPaths(), commands, params['target'], params['params'], state=params['state'],
                        backend=params['backend'], grub_file=params['grub_file'], extlinux_file=params['extlinux_file'],
                        on_conflict=params['on_conflict'], update_bootloader=params['update_bootloader'],
                        check_mode=module.check_mode, backup=module.backup_local if params['backup'] else None,
                        labels=module, xen_default_entry=params['xen_default_entry'])
    except BootCmdlineError as exc:
        failure = dict((key, value) for key, value in exc.result.items() if key not in ('diff', 'warnings'))
        module.fail_json(msg=str(exc), **failure)
    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
