# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""One pci_assignable task: the devices' reset methods, the host's lock, the binder, in that order.

The reset methods are planned (and a bad one refused) before the lock is created, planned again
under the lock from what is there then, and set in sysfs before the devices move (pciback resets a
device as it takes it and as it lets it go); a failed move puts them back. The udev rule file is
written last. Without ``reset_method`` the task is the binder's alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.reset_method import (
    ResetMethodError,
    plan_reset_methods,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import ACTION_NONE, PassthroughError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import HostLock, JournalError


class AssignableTask:
    """``params`` are pci_assignable's; ``binder`` an opened PcibackBinder; ``labels`` the AnsibleModule (SELinux)."""

    def __init__(self, paths, binder, params, addresses, labels=None):
        self.paths = paths
        self.binder = binder
        self.params = params
        self.addresses = addresses
        self.labels = labels
        self.resets = None

    def plan_resets(self):
        """The reset methods' plan (None without ``reset_method``); ResetMethodError refuses, before any change."""
        if self.params['reset_method'] is None:
            return None
        return plan_reset_methods(self.paths, self.binder.sysfs, self.addresses, self.params['reset_method'],
                                  self.binder.host.kernel_release)

    def run(self, check_mode):
        """The module's result: the binder's, with each named device's ``reset_method`` and ``changed`` for both."""
        params = self.params
        self.resets = self.plan_resets()        # a bad reset_method is refused before the lock is created
        if check_mode:
            return self._with_resets(self.binder.ensure(params['devices'], params['state'], params['restore']))
        with HostLock(self.paths, timeout=params['lock_timeout']):
            self.resets = self.plan_resets()        # again, under the lock: what is there now
            return self._with_resets(self._move())

    def _move(self):
        params, resets = self.params, self.resets
        if resets is not None:
            resets.apply_runtime()
        try:
            result = self.binder.ensure(params['devices'], params['state'], params['restore'])
        except (PassthroughError, JournalError) as exc:
            problem = resets.undo_runtime() if resets is not None else None
            if problem:
                exc.args = (str(exc) + problem,)
            raise
        if resets is not None:
            try:
                resets.write_file(labels=self.labels)
            except ResetMethodError as exc:
                raise PassthroughError('%s; the devices were moved and their reset methods set in sysfs, only the '
                                       'rule file was not written' % exc, result['devices'])
        return result

    def _with_resets(self, result):
        if self.resets is not None:
            methods = self.resets.methods()
            for device in result['devices']:
                if device['address'] in methods:
                    device['reset_method'] = methods[device['address']]
            result['changed'] = result['changed'] or self.resets.changed
        return result

    def diff(self, devices):
        """The drivers before and after of each changed device (and with ``reset_method``, its methods and the rule file)."""
        changed = [device for device in devices if device['action'] != ACTION_NONE]
        drivers = {
            'before': ''.join('%s: %s\n' % (device['address'], device['driver_before'] or '(no driver)') for device in changed),
            'after': ''.join('%s: %s\n' % (device['address'], device['driver_after'] or '(no driver)') for device in changed),
        }
        if self.resets is None:
            return drivers
        before, after = self.resets.diff_lines()
        drivers['before'] += before
        drivers['after'] += after
        return [drivers, self.resets.planned.diff()]
