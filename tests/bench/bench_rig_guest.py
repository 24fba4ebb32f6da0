# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Attaching 4 PCI functions to a running guest and detaching them on the x86_64 rig: one task against xl.

The rig's PV guest (tests/rig/guest) runs with no device; four e1000 functions are assignable. Timed by the
controller's wall clock:

  no-op task   ``ansible.builtin.ping``: Ansible's fixed cost per task (SSH, the module's start on dom0)
  task         one xenpci.passthrough.xen_guest_pci task attaching the four (present), one detaching them (absent)
  xl           one SSH call running ``xl pci-attach`` for each of the four, one running ``xl pci-detach``

Prints the times and the ratio of the module's own work (the task minus the no-op task) to xl's. Run with a
booted x86_64 rig: ``make bench-rig`` runs it after bench_rig.py (boots a rig when none runs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RIG_DIR = os.path.join(os.path.dirname(BENCH_DIR), 'rig')
sys.path.insert(0, os.path.join(RIG_DIR, 'tests'))

from rig_guest import Guest  # noqa: E402  (tests/rig/tests on sys.path above)

NAME = 'xenpci-bench'
ROUNDS = 3


def run_dir():
    return os.environ.get('RIG_RUN_DIR') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'xenpci-rig', 'run')


def rig_env():
    values = {}
    with open(os.path.join(run_dir(), 'rig.env')) as handle:
        for line in handle:
            if '=' in line and not line.startswith('#'):
                key, value = line.rstrip('\n').split('=', 1)
                values[key.replace('export ', '').strip()] = value.strip().strip('"\'')
    return values


def ssh(command, check=True):
    result = subprocess.run([os.path.join(RIG_DIR, 'ssh-dom0'), command], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit('dom0: %s failed:\n%s' % (command, result.stdout[-3000:]))
    return result


def timed(argv, **kwargs):
    started = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            check=False, **kwargs)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or '| FAILED' in result.stdout:
        raise SystemExit('%s failed:\n%s' % (' '.join(argv[:4]), result.stdout[-3000:]))
    return elapsed


def main():
    env = rig_env()
    devices = (env.get('RIG_PCI_NICS', '').split() + env.get('RIG_PCI_MULTIFUNCTION', '').split())[:4]
    if len(devices) < 4:
        raise SystemExit('the rig lists fewer than 4 e1000 functions: %s' % devices)
    inventory = os.path.join(run_dir(), 'inventory.ini')
    ansible_env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False')

    def ansible(module, args=None):
        argv = ['ansible', 'xen_dom0', '-i', inventory, '-m', module]
        if args is not None:
            argv += ['-a', json.dumps(args)]
        return timed(argv, env=ansible_env)

    def listed():
        return sorted(ssh('xl pci-list %s | awk \'NR > 1 {print $2}\'' % NAME).stdout.split())

    guest = Guest(ssh, NAME)
    ansible('xenpci.passthrough.pci_assignable', {'devices': devices})
    guest.write_config(passthrough=True)     # started without devices, given some while it runs
    guest.create()
    times = {'no-op task': 0.0, 'task': 0.0, 'xl': 0.0}
    try:
        guest.wait_for(lambda report: report.number > 0, what='the guest up')
        for _round in range(ROUNDS):
            times['no-op task'] += 2 * ansible('ansible.builtin.ping')
            times['task'] += ansible('xenpci.passthrough.xen_guest_pci', {'domain': NAME, 'devices': devices})
            assert len(listed()) == 4, listed()
            times['task'] += ansible('xenpci.passthrough.xen_guest_pci',
                                     {'domain': NAME, 'devices': devices, 'state': 'absent'})
            assert listed() == [], listed()
            times['xl'] += timed([os.path.join(RIG_DIR, 'ssh-dom0'), ' && '.join(
                'xl pci-attach %s %s' % (NAME, address) for address in devices)])
            assert len(listed()) == 4, listed()
            times['xl'] += timed([os.path.join(RIG_DIR, 'ssh-dom0'), ' && '.join(
                'xl pci-detach %s %s' % (NAME, address) for address in devices)])
            assert listed() == [], listed()
    finally:
        guest.destroy()
        guest.remove_config()
        ansible('xenpci.passthrough.pci_assignable', {'devices': devices, 'state': 'absent'})
    own = times['task'] - times['no-op task']
    print('attaching %d functions to a running PV guest and detaching them, %d rounds (wall clock, controller side):'
          % (len(devices), ROUNDS))
    for name in ('no-op task', 'task', 'xl'):
        print('  %-12s %6.1f s' % (name, times[name] / ROUNDS))
    print('ratios:')
    print('  (task - no-op task) / xl   %5.2f   (target 1.2)' % (own / times['xl']))
    print('  task / xl                  %5.2f' % (times['task'] / times['xl']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
