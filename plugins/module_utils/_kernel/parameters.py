# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Kernel module parameters, persistent and at run time: what ``module_params`` plans and applies.

Persistent: one ``options`` line in the modprobe.d file this collection owns for the module
(``_kernel.modprobe``). Run time: a parameter the kernel shows under
``/sys/module/<module>/parameters/`` with the owner's write bit is written at once when the
module is loaded (and read back); one without it (``hide`` of xen-pciback, mode 0444) takes a
reload of the module, or a reboot when the module is built in. A built-in module takes its
parameters from the kernel command line (``xen-pciback.hide=...``), which the plan gives as
``cmdline`` for ``boot_cmdline``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import stat

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import PlannedFile, read_text_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import (
    PCIBACK,
    ModprobeError,
    check_module_name,
    check_param_name,
    cmdline_params,
    find_conflicts,
    format_param,
    is_hide,
    merge_params,
    owned_file,
    param_value,
    parse_hide,
    parse_owned,
    render_owned,
    sysfs_name,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import (
    describe,
    format_comment,
    identity_differs,
    parse_comment,
    read_identity,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs, read_text

APPLIED = 'applied'
UNCHANGED = 'unchanged'
NOT_LOADED = 'not_loaded'
RELOAD = 'reload_required'
REBOOT = 'reboot_required'
_TRUE = ('1', 'y', 'yes', 'on', 'true')
_FALSE = ('0', 'n', 'no', 'off', 'false')
_DRACUT_RE = re.compile(r'^\s*(?:add_drivers|force_drivers)\+?=\s*["\']?([^"\'#]*)')


class ModuleParamsError(Exception):
    """A refusal or a failed run-time write; nothing more was changed."""


# ---- what the kernel has -----------------------------------------------------------------------

def _module_dir(paths, module):
    return os.path.join(paths.sys, 'module', sysfs_name(module))


def module_build(paths, host, module):
    """``module``, ``builtin``, ``absent`` (xen-pciback only: the kernel config says so) or ``unknown``."""
    if sysfs_name(module) == PCIBACK:
        return host.pciback_build()
    return host.module_build(module)


def module_loaded(paths, module):
    """Loaded (or built in): ``/sys/module/<m>`` exists and, for a loadable module, is ``live``."""
    directory = _module_dir(paths, module)
    if not os.path.isdir(directory):
        return False
    state = read_text(os.path.join(directory, 'initstate'))
    return state is None or state == 'live'


def initramfs_lists(paths, module):
    """Where the initramfs configuration asks for ``module``: initramfs-tools' ``modules``, dracut's drivers."""
    found = []
    wanted = sysfs_name(module)
    path = paths.join('etc', 'initramfs-tools', 'modules')
    for line in (read_text(path) or '').splitlines():
        words = line.split()
        if words and not words[0].startswith('#') and sysfs_name(words[0]) == wanted:
            found.append(path)
            break
    dracut = [paths.join('etc', 'dracut.conf')] + sorted(glob.glob(paths.join('etc', 'dracut.conf.d', '*.conf')))
    for path in dracut:
        for line in (read_text(path) or '').splitlines():
            match = _DRACUT_RE.match(line)
            if match and wanted in [sysfs_name(word) for word in match.group(1).split()]:
                found.append(path)
                break
    return found


def initramfs_tools(lists):
    """The tools (``initramfs-tools``, ``dracut``) whose configuration files in ``lists`` load the module."""
    return sorted(set('initramfs-tools' if os.sep + 'initramfs-tools' + os.sep in path else 'dracut' for path in lists))


# ---- run time ----------------------------------------------------------------------------------

def _same_runtime(module, param, running, wanted):
    if running is None:
        return False
    if is_hide(module, param):
        try:
            return set(parse_hide(running, module)) == set(parse_hide(wanted, module))
        except ModprobeError:
            return False
    if running in ('Y', 'N') and wanted.lower() in _TRUE + _FALSE:
        return (running == 'Y') == (wanted.lower() in _TRUE)
    return running == wanted


def _runtime_entry(paths, module, build, loaded, param, wanted, state, removed, file_changed, allow_write):
    later = REBOOT if build == 'builtin' else RELOAD
    entry = {'status': UNCHANGED, 'running': None, 'wanted': wanted}
    if not loaded:
        entry['status'] = NOT_LOADED
        return entry, None
    path = os.path.join(_module_dir(paths, module), 'parameters', param)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        # The kernel does not show it (no such parameter, or mode 0): it cannot be checked, only reloaded.
        entry['status'] = later if (state == 'present' or file_changed) else UNCHANGED
        return entry, None
    running = read_text(path)
    entry['running'] = '' if running == '(null)' else running
    if state == 'absent':
        if is_hide(module, param):
            still = set(removed) & set(parse_hide(entry['running'], module)) if _parses(module, entry['running']) else removed
            entry['status'] = later if still else UNCHANGED
        elif file_changed:
            entry['status'] = later
        return entry, None
    if _same_runtime(module, param, entry['running'], wanted):
        return entry, None
    if allow_write and stat.S_ISREG(mode) and mode & stat.S_IWUSR:
        entry['status'] = APPLIED
        return entry, path
    entry['status'] = later
    return entry, None


def _parses(module, text):
    try:
        parse_hide(text, module)
    except ModprobeError:
        return False
    return True


# ---- the identities of hidden devices -----------------------------------------------------------

def _hide_identities(paths, module, before, after, requested, state):
    """The ``# identity`` comments of the owned file after the task, and whether one is new.

    A hidden address keeps the identity recorded when it was first hidden; an address without one gets the
    identity of the device there now. Adding an address whose recorded identity is not the device there now
    is refused (the hide list would go on hiding another device than the one it was meant for).
    """
    if sysfs_name(module) != PCIBACK:
        return [], False
    recorded = {}
    for line in (before or '').splitlines():
        parsed = parse_comment(line)
        if parsed is not None:
            recorded[parsed[0]] = parsed[1]
    hidden = parse_hide(dict(after).get('hide'), module)
    named = parse_hide(dict(requested).get('hide'), module) if state == 'present' else []
    drifted = []
    comments = []
    added = False
    for address in hidden:
        now = read_identity(paths.pci_devices, address)
        identity = recorded.get(address)
        if identity is not None and address in named and identity_differs(identity, now):
            drifted.append('%s was hidden as %s, but %s is there now' % (address, describe(identity), describe(now)))
        if identity is None and now is not None:
            identity = now
            added = True
        if identity is not None:
            comments.append(format_comment(address, identity))
    if drifted:
        raise ModprobeError('refusing to go on hiding another device: %s; remove the address from the hide list '
                            '(state: absent) and add the device\'s current address (xenpci.passthrough.pci_info '
                            'reports its drift); %s was left as it was' % ('; '.join(drifted), owned_file(paths, module)))
    return comments, added


# ---- the plan ----------------------------------------------------------------------------------

def _requested(module, params, state):
    if params is None:
        return []
    if isinstance(params, (list, tuple)) and state == 'absent':
        items = [(name, None) for name in params]
    elif isinstance(params, dict):
        items = list(params.items())
    else:
        raise ModprobeError('params must be a mapping of parameter to value (with state=absent, a list of names is '
                            'enough)')
    requested = []
    seen = set()
    for name, value in items:
        param = check_param_name(module, name)
        if param in seen:
            raise ModprobeError('%s.%s is given twice' % (module, param))
        seen.add(param)
        if state == 'present':
            param_value(module, param, value)           # refuses a bad value before anything is read
        elif is_hide(module, param) and value is not None:
            parse_hide(value, module)
        requested.append((param, value))
    return requested


class ParamsPlan:
    """What ``module_params`` would do; ``apply`` does the run-time part after the file is written."""

    def __init__(self, paths, module, planned, after, build, loaded, runtime, writes, conflicts, notes,
                 cmdline, cmdline_map, bootloader, initramfs):
        self.paths = paths
        self.module = module
        self.planned = planned
        self.after = after
        self.build = build
        self.loaded = loaded
        self.runtime = runtime
        self.writes = writes
        self.conflicts = conflicts
        self.notes = notes
        self.cmdline = cmdline
        self.cmdline_map = cmdline_map
        self.bootloader = bootloader
        self.initramfs = initramfs

    @property
    def changed(self):
        return self.planned.changed or bool(self.writes)

    def options_line(self):
        return self.planned.after.splitlines()[-1] if self.planned.after else None

    def apply_runtime(self):
        """Write the run-time values and read them back; raises ModuleParamsError with what the kernel said."""
        sysfs = PciSysfs(self.paths)
        for param, path in self.writes:
            wanted = self.runtime[param]['wanted']
            try:
                sysfs.write(path, wanted)
            except (OSError, UnicodeError) as exc:
                raise ModuleParamsError('writing %r to %s failed: %s' % (wanted, path, exc))
            running = read_text(path)
            self.runtime[param]['running'] = running
            if not _same_runtime(self.module, param, running, wanted):
                raise ModuleParamsError('wrote %r to %s but the kernel shows %r' % (wanted, path, running))

    def result(self):
        statuses = [entry['status'] for entry in self.runtime.values()]
        return {
            'changed': self.changed,
            'name': self.module,
            'file': self.planned.path,
            'options_line': self.options_line(),
            'params': dict(self.after),
            'build': self.build,
            'loaded': self.loaded,
            'runtime': self.runtime,
            'conflicts': self.conflicts,
            'notes': self.notes,
            'cmdline': self.cmdline,
            'cmdline_params': self.cmdline_map,
            'reload_required': RELOAD in statuses,
            'reboot_required': REBOOT in statuses,
            'initramfs_update_required': bool(self.initramfs) and self.planned.changed and self.build == 'module',
            'initramfs_tools': initramfs_tools(self.initramfs),
            'bootloader_update_required': self.bootloader,
        }


def plan_module_params(paths, host, module, params, state, runtime=True, cmdline=False):
    """Plan the owned modprobe.d file and the run-time changes for ``module``; refusals come before any write."""
    check_module_name(module)
    requested = _requested(module, params, state)
    path = owned_file(paths, module)
    before = read_text_file(path)
    current, spelling = parse_owned(before, path, module) if before is not None else ([], None)
    spelling = spelling or module
    after = [] if (state == 'absent' and not requested) else merge_params(module, current, requested, state)
    comments, identity_added = _hide_identities(paths, module, before, after, requested, state)
    text = before if after == current and not identity_added else render_owned(spelling, after, comments)
    planned = PlannedFile(path, before, text, own_file=True)
    build = module_build(paths, host, module)
    loaded = module_loaded(paths, module)
    notes = []
    after_map = dict(after)
    touched = [name for name, dummy in requested] or [name for name, dummy in current]
    runtime_entries = {}
    writes = []
    for param in touched:
        removed = parse_hide(dict(requested).get(param) or dict(current).get(param), module) \
            if is_hide(module, param) and state == 'absent' else []
        wanted = after_map.get(param, '')
        entry, write = _runtime_entry(paths, module, build, loaded, param, wanted, state, removed,
                                      planned.changed, runtime)
        runtime_entries[param] = entry
        if write:
            writes.append((param, write))
    cmdline_path = os.path.join(paths.proc, 'cmdline')
    running_cmdline = read_text(cmdline_path)
    # Where the command line is how the parameters are given, it is compared below, not reported as a conflict.
    by_cmdline = build == 'builtin' or cmdline
    conflicts, conflict_notes = find_conflicts(
        paths, module, set(touched), after, path,
        cmdline=(cmdline_path, running_cmdline) if running_cmdline and not by_cmdline else None)
    notes.extend(conflict_notes)
    cmdline_list = []
    cmdline_map = {}
    bootloader = False
    if by_cmdline:
        cmdline_list = ['%s.%s' % (spelling, format_param(name, value)) for name, value in after]
        cmdline_map = dict(('%s.%s' % (spelling, name), value) for name, value in after)
        cmdline_map.update(('%s.%s' % (spelling, name), None) for name, dummy in current + requested
                           if name not in after_map)
        on_cmdline = dict(cmdline_params(running_cmdline, module))
        bootloader = any(not _same_runtime(module, name, on_cmdline.get(name), value) for name, value in after) \
            or any(name in on_cmdline for name, dummy in current + requested if name not in after_map)
        if build == 'builtin' and not cmdline:
            notes.append('%s is built into this kernel: it takes its parameters from the kernel command line, not from '
                         'modprobe.d; give cmdline to xenpci.passthrough.boot_cmdline (and set cmdline=true)' % module)
    if build == 'absent':
        notes.append('this kernel has no %s; the file is for a kernel that has it as a module' % module)
    initramfs = initramfs_lists(paths, module) if build == 'module' else []
    if sysfs_name(module) == PCIBACK and build == 'module' and after_map.get('hide') and not initramfs:
        notes.append('xen-pciback only takes hidden devices that no driver has taken yet: load it early (list it in '
                     'the initramfs) or keep the devices\' own drivers off them')
    return ParamsPlan(paths, module, planned, after, build, loaded, runtime_entries, writes, conflicts, notes,
                      cmdline_list, cmdline_map, bootloader, initramfs)
