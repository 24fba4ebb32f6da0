# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Moving 16 PCI functions to pciback and back on the Xen rig: raw sysfs writes, one task, an xl loop.

Three ways to do the same work on the rig's dom0, each timed by the wall clock of the
controller (what a person running them waits for):

  raw       one SSH call running a shell script of sysfs writes (unbind, new_slot, bind; and back):
            no checks, no record, no quarantine
  task      one xenpci.passthrough.pci_assignable task for the whole list (present), one back (absent);
            measured with quarantine (what xl does) and without (the sysfs part only, like raw)
  xl loop   what teams write today: an ansible.builtin.command task looping
            ``xl pci-assignable-add`` over the list, then ``xl pci-assignable-remove -r``
  xl, one ssh  the same xl commands in one SSH call: xl's own work, without Ansible
  no-op task   ``ansible.builtin.ping``: Ansible's fixed cost per task (SSH, a module's start on dom0),
               the floor under every task figure
  unchanged    the pci_assignable task run again on devices it already holds (a run that changes nothing)
  task, no pipelining  the task with Ansible's pipelining off (the rig's inventory turns it on): what it saves
  SR-IOV    where the rig has an SR-IOV PF (x86_64): 8 VFs made and each given to pciback, by raw sysfs
            writes in one SSH call against a pci_sriov task and a pci_assignable task (PF/vfN), each
            counted as its own work (minus a no-op task)

Prints the times and the ratios; "own work" is a task's time minus the no-op task's. Run with a
booted rig: ``make bench-rig`` (boots one when none runs, stops it afterwards).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
import tempfile
import time

RIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'rig')
DEVICES = ['0000:00:03.0', '0000:00:04.0', '0000:00:05.0', '0000:00:05.1', '0000:00:0a.0', '0000:00:0a.1',
           '0000:00:0a.2', '0000:00:0a.3', '0000:00:0b.0', '0000:00:0c.0', '0000:00:0d.0', '0000:00:0e.0',
           '0000:00:0f.0', '0000:00:10.0', '0000:01:00.0', '0000:02:00.0']

RAW_SCRIPT = r'''
set -e
cd /sys/bus/pci
for d in %(devices)s; do
    drv=$(basename "$(readlink devices/$d/driver)")
    echo "$d $drv" >> /run/bench-raw-drivers
    echo "$d" > "drivers/$drv/unbind"
    grep -qx "$d" drivers/pciback/slots || echo "$d" > drivers/pciback/new_slot
    echo "$d" > drivers/pciback/bind
done
while read -r d drv; do
    echo "$d" > drivers/pciback/unbind
    echo "$d" > drivers/pciback/remove_slot
    echo "$d" > "drivers/$drv/bind"
done < /run/bench-raw-drivers
rm -f /run/bench-raw-drivers
'''

XL_LOOP_PLAYBOOK = '''
- name: What teams write today
  hosts: xen_dom0
  gather_facts: false
  tasks:
    - name: Make each device assignable
      ansible.builtin.command: xl pci-assignable-add {{ item }}
      loop: %(devices)s
      changed_when: true
    - name: Give each device back
      ansible.builtin.command: xl pci-assignable-remove -r {{ item }}
      loop: %(devices)s
      changed_when: true
'''

SRIOV_VFS = 8
SRIOV_RAW_SCRIPT = r'''
set -e
cd /sys/bus/pci
echo 0 > devices/%(pf)s/sriov_drivers_autoprobe
echo %(vfs)d > devices/%(pf)s/sriov_numvfs
for link in devices/%(pf)s/virtfn*; do
    vf=$(basename "$(readlink "$link")")
    echo pciback > "devices/$vf/driver_override"
    echo "$vf" > drivers/pciback/new_slot
    echo "$vf" > drivers/pciback/bind
done
'''
SRIOV_RAW_UNDO = r'''
cd /sys/bus/pci
for link in devices/%(pf)s/virtfn*; do
    vf=$(basename "$(readlink "$link")")
    echo "$vf" > drivers/pciback/unbind
    echo "$vf" > drivers/pciback/remove_slot
    echo > "devices/$vf/driver_override"
done
echo 0 > devices/%(pf)s/sriov_numvfs
echo 1 > devices/%(pf)s/sriov_drivers_autoprobe
'''

XL_SCRIPT = r'''
set -e
for d in %(devices)s; do xl pci-assignable-add "$d"; done
for d in %(devices)s; do xl pci-assignable-remove -r "$d"; done
'''


def timed(argv, **kwargs):
    started = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            check=False, **kwargs)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit('%s failed:\n%s' % (' '.join(argv[:4]), result.stdout[-3000:]))
    return elapsed


def drivers(ssh):
    out = subprocess.run(ssh + ['for d in %s; do basename "$(readlink /sys/bus/pci/devices/$d/driver)"; done'
                                % ' '.join(DEVICES)], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return out.split()


def rig_env(run_dir):
    values = {}
    with open(os.path.join(run_dir, 'rig.env')) as handle:
        for line in handle:
            name, sep, value = line.strip().partition('=')
            if sep and not name.startswith('#'):
                values[name] = value.strip('"')
    return values


def sriov(ssh, inventory, env, pf, no_op):
    """{name: seconds} of 8 VFs made and held: raw sysfs writes, and the collection's two tasks."""
    def module(name, args):
        return timed(['ansible', 'xen_dom0', '-i', inventory, '-m', 'xenpci.passthrough.' + name,
                      '-a', json.dumps(args)], env=env)
    times = {'SR-IOV raw': timed(ssh + [SRIOV_RAW_SCRIPT % {'pf': pf, 'vfs': SRIOV_VFS}])}
    timed(ssh + [SRIOV_RAW_UNDO % {'pf': pf}])
    made = module('pci_sriov', {'pf': pf, 'numvfs': SRIOV_VFS, 'autoprobe': False, 'persistent': False})
    held = module('pci_assignable', {'devices': ['%s/vf%d' % (pf, index) for index in range(SRIOV_VFS)]})
    times['SR-IOV tasks, own work'] = made + held - 2 * no_op
    module('pci_assignable', {'devices': ['%s/vf%d' % (pf, index) for index in range(SRIOV_VFS)], 'state': 'absent'})
    module('pci_sriov', {'pf': pf, 'numvfs': 0, 'autoprobe': True, 'persistent': False})
    return times


def main():
    run_dir = os.environ.get('RIG_RUN_DIR') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'xenpci-rig', 'run')
    inventory = os.path.join(run_dir, 'inventory.ini')
    ssh = [os.path.join(RIG_DIR, 'ssh-dom0')]
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False')
    before = drivers(ssh)
    if 'pciback' in before:
        raise SystemExit('some devices are already on pciback: %s' % before)

    def task(state, quarantine, options=()):
        args = json.dumps({'devices': DEVICES, 'state': state, 'quarantine': quarantine})
        return timed(['ansible', 'xen_dom0', '-i', inventory, '-m', 'xenpci.passthrough.pci_assignable', '-a', args]
                     + list(options), env=env)

    times = {}
    ping = ['ansible', 'xen_dom0', '-i', inventory, '-m', 'ansible.builtin.ping']
    timed(ping, env=env)        # the first task after a boot pays for the SSH master and dom0's caches: not counted
    times['no-op task'] = min(timed(ping, env=env) for _run in range(3))
    times['raw'] = timed(ssh + [RAW_SCRIPT % {'devices': ' '.join(DEVICES)}])
    assert drivers(ssh) == before
    times['xl, one ssh'] = timed(ssh + [XL_SCRIPT % {'devices': ' '.join(DEVICES)}])
    assert drivers(ssh) == before
    times['task, no quarantine'] = task('present', False) + task('absent', False)
    assert drivers(ssh) == before
    times['task'] = task('present', True)
    times['unchanged'] = task('present', True)
    times['task'] += task('absent', True)
    assert drivers(ssh) == before
    no_pipelining = ['-e', 'ansible_pipelining=false']     # the rig's inventory turns it on
    times['task, no pipelining'] = task('present', True, no_pipelining) + task('absent', True, no_pipelining)
    assert drivers(ssh) == before
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        handle.write(XL_LOOP_PLAYBOOK % {'devices': json.dumps(DEVICES)})
    try:
        times['xl loop'] = timed(['ansible-playbook', '-i', inventory, handle.name], env=env)
    finally:
        os.unlink(handle.name)
    assert drivers(ssh) == before
    pf = rig_env(run_dir).get('RIG_PCI_SRIOV_PF')
    if pf:
        times.update(sriov(ssh, inventory, env, pf, times['no-op task']))
    floor = 2 * times['no-op task']              # a task there and one back
    own = times['task'] - floor
    print('moving %d functions to pciback and back on the rig (wall clock, controller side):' % len(DEVICES))
    for name in ('no-op task', 'raw', 'xl, one ssh', 'task, no quarantine', 'task', 'unchanged', 'task, no pipelining',
                 'xl loop'):
        print('  %-22s %6.1f s' % (name, times[name]))
    print('  %-22s %6.1f s   (task minus two no-op tasks)' % ('task, own work', own))
    print('ratios:')
    print('  task own work / xl, one ssh  %5.2f   (target 1.2)' % (own / times['xl, one ssh']))
    print('  task own work / raw          %5.2f   (target 1.5)' % (own / times['raw']))
    print('  unchanged / no-op task       %5.2f   (target 1.3)' % (times['unchanged'] / times['no-op task']))
    print('  task (no quarantine) / raw   %5.2f' % (times['task, no quarantine'] / times['raw']))
    print('  xl loop / task               %5.2f' % (times['xl loop'] / times['task']))
    if pf:
        print('%d SR-IOV VFs made and held (%s):' % (SRIOV_VFS, pf))
        print('  %-22s %6.1f s' % ('raw', times['SR-IOV raw']))
        print('  %-22s %6.1f s   (pci_sriov and pci_assignable, minus two no-op tasks)'
              % ('tasks, own work', times['SR-IOV tasks, own work']))
        print('  tasks own work / raw         %5.2f   (target 1.5)' % (times['SR-IOV tasks, own work'] / times['SR-IOV raw']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
