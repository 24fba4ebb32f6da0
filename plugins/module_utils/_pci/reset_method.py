# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Which resets the kernel may use for a PCI function: its sysfs ``reset_method``, now and at every boot.

Linux 5.15 and later list the enabled methods of a function in ``reset_method``, in the order they
are tried. A write of space-separated names enables those, in that order; each must be one of
the kernel's names (``device_specific acpi flr af_flr pm bus cxl_bus``) that the function
supports, else the kernel answers EINVAL and keeps what it had. ``default`` enables every
method the function supports again, in the kernel's order; an empty write disables them all,
which this module never does. The file only shows the enabled methods: the ones a function
supports are known here as the enabled ones plus the function-level resets its config space
offers (what ``pci_info`` reads on older kernels); after ``default`` the file shows them all.

Persistence is a udev rule file of the collection's own, one line per function, that writes
``reset_method`` when udev handles the function's ``add`` event (at boot, on hot plug or on
``udevadm trigger``). ``default`` drops the function's line, and the file when it is left empty.

``plan_reset_methods`` reads and decides everything before anything is written, so that a bad
request is refused with nothing changed; ``apply_runtime`` writes sysfs (``undo_runtime`` puts
it back), ``write_file`` writes the rule file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._host import udev_rules
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import (
    FileEditError,
    PlannedFile,
    write_planned,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.udev_rules import describe_errno, read_own_rules, rule_lines
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import is_canonical_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.config_space import ConfigSpace

# drivers/pci/pci.c pci_reset_fn_methods[], in the kernel's order (cxl_bus from Linux 6.7 on).
KERNEL_METHODS = ('device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus', 'cxl_bus')
DEFAULT = 'default'
RULES_NAME = '70-xenpci-passthrough-reset.rules'
RULES_HEADER = ('# Managed by the xenpci.passthrough collection (xenpci.passthrough.pci_assignable, option reset_method):\n'
                '# change the values through it. A line added here by hand makes its next run fail and leave this file\n'
                '# as it is.\n')
_RULE_RE = re.compile(r'^ACTION=="add",\s*SUBSYSTEM=="pci",\s*KERNEL=="([^"]*)",\s*ATTR\{reset_method\}="([^"]*)"\s*$')
_RELEASE_RE = re.compile(r'^(\d+)\.(\d+)')


class ResetMethodError(Exception):
    """A request, a device or a file that cannot be used; nothing was changed (unless the message says so)."""


def rules_path(paths):
    return udev_rules.rules_path(paths, RULES_NAME)


def kernel_order(methods):
    return [name for name in KERNEL_METHODS if name in methods]


def parse_request(value):
    """The task's ``reset_method``: DEFAULT, or a tuple of method names in the order wanted.

    ``value`` is a list of strings (Ansible splits ``flr,bus``; a blank separates names too).
    An unknown name, a repeat, an empty list or ``default`` among names is refused.
    """
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ResetMethodError('reset_method: %r is not a reset method name; nothing was changed' % (item,))
        names.extend(item.split())
    if names == [DEFAULT]:
        return DEFAULT
    if not names:
        raise ResetMethodError('reset_method is empty: that would disable every reset of the devices, which this '
                               'collection does not do; give methods (such as [flr]) or default; nothing was changed')
    unknown = [name for name in names if name not in KERNEL_METHODS]
    if DEFAULT in names:
        raise ResetMethodError('reset_method: default stands alone, not among method names (%s); nothing was changed'
                               % ' '.join(names))
    if unknown:
        raise ResetMethodError('reset_method: %s %s not a reset method Linux knows (%s); nothing was changed'
                               % (', '.join(repr(name) for name in unknown), 'is' if len(unknown) == 1 else 'are',
                                  ' '.join(KERNEL_METHODS)))
    repeated = sorted(set(name for name in names if names.count(name) > 1))
    if repeated:
        raise ResetMethodError('reset_method: %s named more than once (%s); nothing was changed'
                               % (', '.join(repeated), ' '.join(names)))
    return tuple(names)


def _release_before_5_15(release):
    match = _RELEASE_RE.match(release or '')
    return match is not None and (int(match.group(1)), int(match.group(2))) < (5, 15)


def parse_rules(text, path):
    """``{address: [methods]}`` of the collection's rule file; any other line is refused (a hand edit)."""
    entries = {}
    for number, stripped in rule_lines(text):
        match = _RULE_RE.match(stripped)
        methods = match.group(2).split() if match else []
        if match is None or not is_canonical_address(match.group(1)) or not methods \
                or any(name not in KERNEL_METHODS for name in methods):
            raise ResetMethodError('%s line %d is not a reset_method rule this collection writes: %r; this file is '
                                   'managed by the collection, move that line to another file; %s was left as it was '
                                   'and nothing was changed' % (path, number, stripped[:100], path))
        entries[match.group(1)] = methods
    return entries


def render_rules(entries):
    """The rule file's text for ``{address: [methods]}``, or None when there is none."""
    if not entries:
        return None
    return RULES_HEADER + ''.join('ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{reset_method}="%s"\n'
                                  % (address, ' '.join(entries[address])) for address in sorted(entries))


class DeviceReset:
    """One function: its enabled methods before the task, and what they are (or would be) after it."""

    def __init__(self, address, before, after, supported):
        self.address = address
        self.before = before          # enabled methods read before the task
        self.after = after            # wanted methods, or (default) the prediction, then what the kernel shows
        self.supported = supported    # known supported methods, in the kernel's order
        self.written = False          # this run wrote reset_method (undo writes ``before`` back)


class ResetMethodPlan:
    """What ``reset_method`` the task sets on which functions, and the rule file after it."""

    def __init__(self, sysfs, request, devices, planned):
        self.sysfs = sysfs
        self.request = request
        self.devices = devices
        self.planned = planned

    @property
    def runtime_changed(self):
        return any(device.before != device.after for device in self.devices)

    @property
    def changed(self):
        return self.runtime_changed or self.planned.changed

    def methods(self):
        """``{address: [methods after the task]}``."""
        return dict((device.address, list(device.after)) for device in self.devices)

    def diff_lines(self):
        """``(before, after)`` text of the functions whose methods change, one line each."""
        changing = [device for device in self.devices if device.before != device.after]
        return (''.join('%s reset_method: %s\n' % (device.address, ' '.join(device.before) or '(none)')
                        for device in changing),
                ''.join('%s reset_method: %s\n' % (device.address, ' '.join(device.after) or '(none)')
                        for device in changing))

    def apply_runtime(self):
        """Write ``reset_method`` where it differs (``default``: always, the kernel alone knows the full set).

        A write the kernel refuses puts back the functions already written and raises ResetMethodError.
        """
        for device in self.devices:
            if self.request != DEFAULT and device.before == device.after:
                continue
            text = DEFAULT if self.request == DEFAULT else ' '.join(device.after)
            try:
                self.sysfs.set_reset_method(device.address, text)
            except OSError as exc:
                problem = self.undo_runtime()
                raise ResetMethodError('%s: the kernel refused reset_method %r (%s)%s; nothing was changed%s'
                                       % (device.address, text, describe_errno(exc),
                                          '; the device does not support one of them' if exc.errno == errno.EINVAL else '',
                                          problem))
            device.written = True
            device.after = self.sysfs.reset_methods(device.address) or []

    def undo_runtime(self):
        """Write back the methods of every function this run wrote; '' or a note of what could not be put back."""
        failed = []
        for device in reversed(self.devices):
            if not device.written:
                continue
            try:
                self.sysfs.set_reset_method(device.address, ' '.join(device.before))
                device.written = False
                device.after = list(device.before)
            except OSError as exc:
                failed.append('%s (%s)' % (device.address, describe_errno(exc)))
        if failed:
            return ', except the reset_method of %s, which could not be put back' % ', '.join(failed)
        return ''

    def write_file(self, labels=None):
        try:
            write_planned(self.planned, labels=labels)
        except FileEditError as exc:
            raise ResetMethodError(str(exc))


def _supported(sysfs, address, enabled):
    """The methods known to be supported: the enabled ones, and the function-level resets config space offers."""
    config = ConfigSpace.read(os.path.join(sysfs.device_dir(address), 'config'))
    return kernel_order(set(enabled) | set(config.resets))


def plan_reset_methods(paths, sysfs, addresses, value, kernel_release):
    """Decide ``reset_method`` for ``addresses`` (canonical; those not on the bus are left to the caller to refuse).

    Reads sysfs, config space and the rule file; raises ResetMethodError, before anything is
    written, for a bad request, a kernel without ``reset_method``, a method a function does not
    offer, or a rule file that is a symbolic link, not the collection's, or in a linked directory.
    """
    request = parse_request(value)
    devices = []
    refusals = []
    for address in addresses:
        if not sysfs.exists(address):
            continue
        enabled = sysfs.reset_methods(address)
        if enabled is None:
            if _release_before_5_15(kernel_release):
                refusals.append('%s: Linux %s has no reset_method (it came in 5.15), so reset_method %s cannot be set'
                                % (address, kernel_release, _shown(request)))
            else:
                refusals.append('%s has no reset_method file: the kernel offers no reset for it, so reset_method %s '
                                'cannot be set' % (address, _shown(request)))
            continue
        supported = _supported(sysfs, address, enabled)
        if request == DEFAULT:
            after = supported
        else:
            missing = [name for name in request if name not in supported]
            if missing:
                refusals.append('%s does not offer %s (reset_method %s): the kernel lists %s for it%s'
                                % (address, ' '.join(missing), _shown(request), ' '.join(enabled) or 'no method',
                                   '' if enabled == supported else ' and its config space offers %s'
                                   % ' '.join(name for name in supported if name not in enabled))
                                + ('; a method disabled earlier shows again after reset_method: default'
                                   if enabled else ''))
                continue
            after = list(request)
        devices.append(DeviceReset(address, enabled, after, supported))
    if refusals:
        raise ResetMethodError('refusing: %s; nothing was changed' % '; '.join(refusals))
    path, before = read_own_rules(paths, RULES_NAME, ResetMethodError)
    entries = parse_rules(before, path)
    for device in devices:
        if request == DEFAULT:
            entries.pop(device.address, None)
        else:
            entries[device.address] = list(request)
    planned = PlannedFile(path, before, render_rules(entries), mode=0o644, own_file=True)
    return ResetMethodPlan(sysfs, request, devices, planned)


def _shown(request):
    return DEFAULT if request == DEFAULT else '[%s]' % ', '.join(request)
