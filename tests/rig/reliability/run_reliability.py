# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Faults on the Xen rig, measured: ``make reliability`` (boots the rig when none runs).

Phases (``--phases``, default all, in this order):

  kill        pci_assignable killed with SIGKILL at random points of batches that move 8 e1000s, KILLS times
              (seeded: ``--seed`` replays a run); see kill_loop.py for what is checked after each kill
  power-cut   a reset of the machine (QEMU's system_reset) while a batch runs, then: the journal parses, the next
              run converges, state absent restores every original driver
  concurrent  two ansible runs against dom0 at the same time (present, then absent a moment later): the lock
              serialises them, both succeed, the devices end where the later one puts them
  xenstored   xenstored killed before a run: a clear refusal that moves nothing, or the sysfs part done with the
              original drivers journalled; after xenstored is started again the next run converges

Writes the results as JSON (``--out``) and prints a Markdown table for docs/reliability.md. Exit status 1 when
anything was lost.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RIG_DIR = os.path.dirname(HERE)
DEVICES = ['0000:00:0a.0', '0000:00:0a.1', '0000:00:0a.2', '0000:00:0a.3',
           '0000:00:0b.0', '0000:00:0c.0', '0000:00:0d.0', '0000:00:0e.0']
ORIGINAL = 'e1000'
WORK = '/root/xenpci-reliability'
JOURNAL = '/var/lib/xenpci_passthrough/drivers.json'


def run_dir():
    return os.environ.get('RIG_RUN_DIR') or os.path.join(
        os.environ.get('RIG_CACHE_DIR') or os.path.join(os.environ.get('XDG_CACHE_HOME') or
                                                        os.path.expanduser('~/.cache'), 'xenpci-rig'), 'run')


def ssh(command, check=True, stdin=None, timeout=3600):
    result = subprocess.run([os.path.join(RIG_DIR, 'ssh-dom0'), command], input=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise SystemExit('dom0 command failed (rc=%d): %s\n%s%s' % (result.returncode, command, result.stdout,
                                                                    result.stderr))
    return result


def ansible_module(state, extra_env=None, extra_args=()):
    """Run pci_assignable for DEVICES through ansible; (ok, the failure's message, or the whole output)."""
    # Keep-alives: after a power cut the rig never closes the old connection, and ssh would wait for it for hours.
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1',
               ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=5 '
                                '-o ServerAliveCountMax=6', **(extra_env or {}))
    argv = ['ansible', 'xen_dom0', '-i', os.path.join(run_dir(), 'inventory.ini'), '-m',
            'xenpci.passthrough.pci_assignable', '-a', json.dumps({'devices': DEVICES, 'state': state})]
    process = subprocess.run(argv + list(extra_args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, env=env, timeout=1800, check=False)
    message = re.search(r'"msg": "(.*)"', process.stdout)
    return process.returncode == 0, message.group(1) if message else process.stdout


def drivers():
    out = ssh('for d in %s; do echo "$d $(basename "$(readlink /sys/bus/pci/devices/$d/driver)" 2>/dev/null)"; done'
              % ' '.join(DEVICES)).stdout
    return dict((line.split(' ', 1) + [''])[:2] for line in out.splitlines())


def journal_parses():
    result = ssh('python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\'format\'] == 1, d" %s'
                 % JOURNAL, check=False)
    return result.returncode == 0


def all_on(driver):
    return all(value == driver for value in drivers().values())


def build_payloads():
    """The module as Ansible ships it, once per state, kept in dom0 (each build is a real, complete run)."""
    ssh('rm -rf /root/.ansible/tmp %s && mkdir -p %s' % (WORK, WORK))
    for state in ('present', 'absent'):
        ok, message = ansible_module(state, {'ANSIBLE_KEEP_REMOTE_FILES': '1'}, ['-e', 'ansible_pipelining=false'])
        if not ok:
            raise SystemExit('pci_assignable %s failed on the rig: %s' % (state, message))
        ssh('set -e; f=$(ls -t /root/.ansible/tmp/*/AnsiballZ_pci_assignable.py | head -n 1); '
            'cp "$f" %s/%s.py; rm -rf /root/.ansible/tmp' % (WORK, state))
    ssh('cat > %s/kill_loop.py' % WORK, stdin=open(os.path.join(HERE, 'kill_loop.py')).read())


def phase_kill(seed, kills):
    command = 'cd %s && python3 kill_loop.py present.py absent.py %d %d %s %s' % (
        WORK, seed, kills, ORIGINAL, ' '.join(DEVICES))
    process = subprocess.Popen([os.path.join(RIG_DIR, 'ssh-dom0'), command], stdout=subprocess.PIPE,
                               universal_newlines=True)
    records = []
    for line in process.stdout:
        records.append(json.loads(line))
        record = records[-1]
        if 'iteration' in record:
            print('  kill %2d %-7s after %5.1f s: %s, next run %s' % (
                record['iteration'], record['direction'], record['delay_s'],
                'nothing lost' if not record['problems'] else record['problems'],
                'converged' if record['next_run_ok'] else 'FAILED'), flush=True)
    process.wait()
    summary = records[-1].get('summary', {'error': records[-1]}) if records else {'error': 'no output'}
    return {'records': records[:-1], 'summary': summary,
            'ok': process.returncode == 0 and not summary.get('lost') and summary.get('restored', False)}


def phase_power_cut(cuts, delay):
    results = []
    for cut in range(cuts):
        before = 'present' if all_on(ORIGINAL) else 'absent'
        worker = threading.Thread(target=ansible_module, args=(before,))
        worker.start()
        # Cut the power in the middle of the moves: once the journal marks a device half-done (the module writes
        # that before it touches the device), then ``delay`` seconds later.
        started = ssh('for i in $(seq 480); do grep -qE \'"phase": "(binding|releasing)"\' %s 2>/dev/null && exit 0; '
                      'sleep 0.25; done; exit 1' % JOURNAL, check=False).returncode == 0
        time.sleep(delay)
        journal_at_cut = ssh('cat %s 2>/dev/null || true' % JOURNAL, check=False).stdout
        subprocess.run([os.path.join(RIG_DIR, 'reboot'), '--power-cut'], check=True, stdout=subprocess.DEVNULL)
        worker.join()
        after_boot = drivers()
        parses = journal_parses()
        converged, message = ansible_module(before)
        on_target = all_on('pciback' if before == 'present' else ORIGINAL)
        restored, message2 = ansible_module('absent')
        results.append({'cut': cut, 'direction': before, 'delay_s': delay, 'cut_while_half_done': started,
                        'journal_just_before_cut': journal_at_cut, 'drivers_after_boot': after_boot,
                        'journal_parses': parses, 'next_run_ok': converged and on_target, 'next_run_msg': message,
                        'restored': restored and all_on(ORIGINAL), 'restore_msg': message2})
        print('  power cut %d during %s: journal %s, next run %s, restore %s' % (
            cut, before, 'parses' if parses else 'BROKEN', 'converged' if converged and on_target else 'FAILED',
            'ok' if results[-1]['restored'] else 'FAILED'), flush=True)
    return {'records': results, 'ok': all(r['journal_parses'] and r['next_run_ok'] and r['restored']
                                          for r in results)}


def phase_concurrent():
    outcomes = {}

    def one(state):
        outcomes[state] = ansible_module(state)
    first = threading.Thread(target=one, args=('present',))
    second = threading.Thread(target=one, args=('absent',))
    first.start()
    time.sleep(3)              # both ansible processes start; 'absent' is the later request
    second.start()
    first.join()
    second.join()
    final = drivers()
    ok = outcomes['present'][0] and outcomes['absent'][0] and all(v == ORIGINAL for v in final.values())
    print('  concurrent present+absent: present %s, absent %s, final %s' % (
        'ok' if outcomes['present'][0] else outcomes['present'][1], 'ok' if outcomes['absent'][0] else
        outcomes['absent'][1], 'all on ' + ORIGINAL if ok else final), flush=True)
    return {'outcomes': outcomes, 'final': final, 'ok': ok}


def phase_xenstored():
    """xenstored killed before a run. Either answer is right: a clear refusal that moves nothing, or the sysfs part
    done with a note that says xenstored is not running (no libxl record, no quarantine) and the original drivers
    journalled. Once xenstored runs again, the next run converges (it adopts the devices) and absent restores."""
    journal_before = ssh('sha256sum %s 2>/dev/null || true' % JOURNAL).stdout
    before = drivers()
    ssh('pkill -x oxenstored; pkill -x xenstored; sleep 1; ! pgrep -x "o?xenstored"', check=False)
    ok_run, message = ansible_module('present')
    after = drivers()
    if ok_run:
        entries = json.loads(ssh('cat %s' % JOURNAL).stdout)['devices']
        answer = ('done in sysfs, with the note that xenstored is not running'
                  if 'xenstored is not running' in message else 'done')
        sound = all(v == 'pciback' for v in after.values()) and all(
            entries.get(a, {}).get('original_driver') == ORIGINAL for a in DEVICES)
    else:
        answer = 'refused: %s' % message[:200].replace('|', '/')
        sound = after == before and ssh('sha256sum %s 2>/dev/null || true' % JOURNAL).stdout == journal_before
    ssh('systemctl restart xen.service')
    again, message2 = ansible_module('present')
    back, _message = ansible_module('absent')
    ok = sound and again and back and all_on(ORIGINAL)
    print('  xenstored stopped: %s; record sound: %s; after restart: %s' % (
        answer, sound, 'converged and restored' if again and back else message2), flush=True)
    return {'answer': answer, 'message': message, 'sound': sound, 'after_restart_ok': again and back, 'ok': ok}


def table(results):
    rows = ['| Fault | Tries | Devices | Lost (devices off every driver after the next run, broken journals) | Result |',
            '|---|---|---|---|---|']
    if 'kill' in results:
        s = results['kill']['summary']
        rows.append('| SIGKILL of pci_assignable at a random point of a batch (seed %s; %s finished first) | %s | %d '
                    '| %d (driverless right after a kill, journalled half-done: %d) | %s |' % (
                        s.get('seed'), s.get('finished_before_kill'), s.get('kills'), len(DEVICES),
                        s.get('driverless_after_next_run', -1) + s.get('lost', 0), s.get('driverless_after_kill', 0),
                        'converged every time, all restored' if results['kill']['ok'] else 'FAILED'))
    if 'power-cut' in results:
        r = results['power-cut']
        rows.append('| Power cut (machine reset) during a batch | %d | %d | %d | %s |' % (
            len(r['records']), len(DEVICES), sum(not x['journal_parses'] for x in r['records']),
            'journal intact, next run converged' if r['ok'] else 'FAILED'))
    if 'concurrent' in results:
        rows.append('| Two runs at once (present, absent 3 s later) | 1 | %d | 0 | %s |' % (
            len(DEVICES), 'serialised by the lock, final state is the later one' if results['concurrent']['ok']
            else 'FAILED'))
    if 'xenstored' in results:
        rows.append('| xenstored killed before a run | 1 | %d | 0 | %s |' % (
            len(DEVICES), '%s; converged once xenstored ran again' % results['xenstored']['answer']
            if results['xenstored']['ok'] else 'FAILED'))
    return '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--seed', type=int, default=int(os.environ.get('RELIABILITY_SEED', '20261125')))
    parser.add_argument('--kills', type=int, default=int(os.environ.get('RELIABILITY_KILLS', '30')))
    parser.add_argument('--power-cuts', type=int, default=2)
    parser.add_argument('--phases', default='kill,power-cut,concurrent,xenstored')
    parser.add_argument('--out', default=os.environ.get('RELIABILITY_OUT', 'reliability.json'))
    args = parser.parse_args()
    if os.environ.get('RIG_ARCH', 'x86_64') != 'x86_64':
        raise SystemExit('the reliability run uses the eight e1000 functions of the x86_64 rig (RIG_ARCH=x86_64)')
    if not all_on(ORIGINAL):
        ansible_module('absent')
        if not all_on(ORIGINAL):
            raise SystemExit('the devices are not on %s before the run: %s' % (ORIGINAL, drivers()))
    results = {'devices': DEVICES, 'seed': args.seed}
    started = time.time()
    for phase in args.phases.split(','):
        print('%s:' % phase, flush=True)
        phase_started = time.time()
        if phase == 'kill':
            build_payloads()
            results[phase] = phase_kill(args.seed, args.kills)
        elif phase == 'power-cut':
            results[phase] = phase_power_cut(args.power_cuts, delay=1)
        elif phase == 'concurrent':
            results[phase] = phase_concurrent()
        elif phase == 'xenstored':
            results[phase] = phase_xenstored()
        else:
            raise SystemExit('unknown phase %s' % shlex.quote(phase))
        results[phase]['seconds'] = round(time.time() - phase_started)
    results['seconds'] = round(time.time() - started)
    with open(args.out, 'w') as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    print('\n' + table(results))
    print('\nresults in %s; %d s' % (args.out, results['seconds']))
    return 0 if all(results[p]['ok'] for p in args.phases.split(',')) else 1


if __name__ == '__main__':
    sys.exit(main())
