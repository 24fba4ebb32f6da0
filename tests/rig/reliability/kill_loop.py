# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs in the rig's dom0 (Python standard library only): kill pci_assignable with SIGKILL part-way, again and again.

Usage: python3 kill_loop.py PRESENT_PAYLOAD ABSENT_PAYLOAD SEED KILLS ORIGINAL_DRIVER ADDRESS...

The payloads are the module as Ansible ships it to a host (AnsiballZ files with their arguments inside): one moving
ADDRESS... to pciback (state present), one giving them back (state absent). Iteration i (seeded: random.Random(SEED))
starts the batch that moves the devices the other way from where they are, kills it with SIGKILL after a random
delay within the time a whole batch takes, and then:

  1. reads the journal: it must parse, and every device must be on ORIGINAL_DRIVER, on pciback, or, with no driver,
     recorded as half-done (phase binding/releasing) in the journal;
  2. runs the same batch again to the end: it must succeed and leave every device where the batch puts it
     (and ``xl pci-assignable-list`` must list them, or not list them);
  3. counts the devices left without a driver after that run: the goal is 0.

At the end one more absent batch must give every device back to ORIGINAL_DRIVER. One JSON line per iteration on
stdout, then a summary line; progress on stderr.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import random
import signal
import subprocess
import sys
import time

JOURNAL = '/var/lib/xenpci_passthrough/drivers.json'
HALF_DONE = ('binding', 'releasing')


def driver(address):
    try:
        return os.path.basename(os.readlink('/sys/bus/pci/devices/%s/driver' % address))
    except OSError:
        return None


def journal():
    """(entries, error): the journal's devices, or why it does not parse."""
    try:
        with open(JOURNAL, 'rb') as handle:
            document = json.loads(handle.read().decode('utf-8'))
    except IOError:
        return {}, None                      # no journal yet: nothing was recorded before the kill
    except ValueError as exc:
        return None, 'journal does not parse: %s' % exc
    if not isinstance(document, dict) or document.get('format') != 1 or not isinstance(document.get('devices'), dict):
        return None, 'journal has an unknown layout'
    return document['devices'], None


def assignable():
    out = subprocess.run(['xl', 'pci-assignable-list'], stdout=subprocess.PIPE, universal_newlines=True,
                         check=False).stdout
    return sorted(out.split())


def run_payload(path, timeout=900):
    started = time.time()
    process = subprocess.run([sys.executable, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=timeout, check=False)
    try:
        result = json.loads(process.stdout)
    except ValueError:
        result = {'failed': True, 'msg': 'no JSON: %s %s' % (process.stdout[-500:], process.stderr[-500:])}
    return result, time.time() - started


def killed_run(path, delay):
    """Start the batch, SIGKILL it after ``delay`` seconds; True when it was still running (really killed)."""
    process = subprocess.Popen([sys.executable, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        # The module's own process: AnsiballZ re-executes nothing, so this pid is the module.
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return True


def check_after_kill(addresses, original):
    entries, error = journal()
    states = {}
    problems = [error] if error else []
    for address in addresses:
        now = driver(address)
        entry = (entries or {}).get(address) or {}
        if now in (original, 'pciback'):
            states[address] = now
        elif now is None and entry.get('phase') in HALF_DONE:
            states[address] = 'driverless, journalled ' + entry['phase']
        else:
            states[address] = 'LOST (%s, journal %s)' % (now, entry.get('phase'))
            problems.append('%s is on %s and the journal says %s' % (address, now, entry.get('phase')))
    return states, problems


def main(argv):
    present, absent, seed, kills, original = argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5]
    addresses = argv[6:]
    rng = random.Random(seed)
    payloads = {'present': present, 'absent': absent}
    wanted = {'present': 'pciback', 'absent': original}

    # Where the devices are now decides the first direction; measure a whole batch for the kill window.
    direction = 'present' if all(driver(a) == original for a in addresses) else 'absent'
    result, window = run_payload(payloads[direction])
    if result.get('failed'):
        print(json.dumps({'setup_failed': result.get('msg')}))
        return 1
    direction = 'absent' if direction == 'present' else 'present'
    summary = {'seed': seed, 'kills': 0, 'finished_before_kill': 0, 'driverless_after_kill': 0,
               'driverless_after_next_run': 0, 'lost': 0, 'converge_failures': 0, 'window_s': round(window, 1)}
    for iteration in range(kills):
        delay = rng.uniform(0.05, window)
        really_killed = killed_run(payloads[direction], delay)
        states, problems = check_after_kill(addresses, original)
        result, took = run_payload(payloads[direction])
        after = {address: driver(address) for address in addresses}
        listed = assignable()
        # xl lists every assignable device of the host: these must be among them (present) or not (absent).
        converged = (not result.get('failed') and all(value == wanted[direction] for value in after.values())
                     and (set(addresses) <= set(listed) if direction == 'present'
                          else not set(addresses) & set(listed)))
        record = {
            'iteration': iteration, 'direction': direction, 'delay_s': round(delay, 2), 'killed': really_killed,
            'after_kill': states, 'problems': problems, 'next_run_ok': converged, 'next_run_s': round(took, 1),
            'driverless_after_next_run': sum(1 for value in after.values() if value is None),
        }
        if not converged:
            record['next_run'] = {'msg': result.get('msg'), 'after': after, 'assignable': listed}
        summary['kills'] += int(really_killed)
        summary['finished_before_kill'] += int(not really_killed)
        summary['driverless_after_kill'] += sum(1 for value in states.values() if value.startswith('driverless'))
        summary['driverless_after_next_run'] += record['driverless_after_next_run']
        summary['lost'] += len(problems)
        summary['converge_failures'] += int(not converged)
        print(json.dumps(record, sort_keys=True), flush=True)
        sys.stderr.write('%2d %-7s killed=%s after %.1f s: %s; next run %s\n'
                         % (iteration, direction, really_killed, delay,
                            'ok' if not problems else problems, 'ok' if converged else 'FAILED'))
        direction = 'absent' if direction == 'present' else 'present'

    # Whatever happened: a final absent batch gives every device back.
    result, _took = run_payload(absent)
    final = {address: driver(address) for address in addresses}
    summary['restored'] = not result.get('failed') and all(value == original for value in final.values())
    summary['final_drivers'] = final
    print(json.dumps({'summary': summary}, sort_keys=True), flush=True)
    return 0 if summary['restored'] and not summary['lost'] and not summary['converge_failures'] else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
