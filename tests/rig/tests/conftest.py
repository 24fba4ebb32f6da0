# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Xen rig as a pytest fixture: boot it once per session, run the collection against it, stop it.

The tests talk to the rig the way users do: ``ansible`` runs the collection's modules over SSH
(the collection comes from ``ANSIBLE_COLLECTIONS_PATH``, which the Makefile points at its build
tree), and plain SSH runs ``xl`` and reads sysfs in dom0 to judge the result.

The same tests run on every rig: ``RIG_ARCH`` (``x86_64``, the default, or ``aarch64``) and
``RIG_SUITE`` (``bookworm``, the default, or ``trixie``) pick the rig, and what differs between
rigs comes from the rig's ``rig.env``: the PCI addresses of its devices by role (``Rig.nics``,
``Rig.xhci``, ...), the Xen version Debian ships in the suite (``Rig.xen_version``), whether that
Xen can pass PCI devices through (``Rig.xen_passthrough``); never from the tests.

Environment:
  RIG_ARCH=aarch64  the arm64 rig (default x86_64)
  RIG_SUITE=trixie  the Debian 13 rig: Xen 4.20, Linux 6.12 (default bookworm: Xen 4.17, Linux 6.1)
  RIG_REUSE=1       use a rig that is already running (``tests/rig/boot`` by hand) and leave it running
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

RIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RIG_HOST = 'xenpci-rig'
JOURNAL = '/var/lib/xenpci_passthrough/drivers.json'      # pci_assignable's record of original drivers
OPTIONS_FILE = '/etc/modprobe.d/xenpci-xen-pciback.conf'  # module_params' file for xen-pciback: the hide list
SOFTDEP_FILE = '/etc/modprobe.d/xenpci-softdep.conf'      # the pciback role's softdeps
REPO = os.path.dirname(os.path.dirname(RIG_DIR))


def pytest_configure(config):
    config.addinivalue_line('markers', 'rig: needs the Xen rig (a dom0 booted in QEMU)')
    config.addinivalue_line('markers', 'slow: takes many minutes on the emulated rig (make rig-test-full)')
    config.addinivalue_line('markers', 'smoke: the short selection: the rig boots, xen-pciback is there, one assign '
                                       'and restore (make rig-smoke)')
    config.addinivalue_line('markers', 'power_cycle: powers the rig off and on with other hardware or the initramfs '
                                       'on its disk; runs after every other test')


def pytest_collection_modifyitems(items):
    """The tests that power-cycle the rig run last: what they change (the devices' addresses, the initramfs the rig
    boots) is not undone for the tests after them."""
    items.sort(key=lambda item: item.get_closest_marker('power_cycle') is not None)


# Where the rig tests' time goes, by kind of call: {kind: [calls, seconds]}, printed after the tests.
CALL_TIMES = {}


def _timed(kind, started):
    tally = CALL_TIMES.setdefault(kind, [0, 0.0])
    tally[0] += 1
    tally[1] += time.time() - started


def pytest_terminal_summary(terminalreporter):
    if CALL_TIMES:
        terminalreporter.write_line('rig time by call: ' + ', '.join(
            '%s %d in %.0f s' % (kind, calls, seconds) for kind, (calls, seconds) in sorted(CALL_TIMES.items())))


def _read_env(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            if '=' in line and not line.startswith('#'):
                key, value = line.rstrip('\n').split('=', 1)
                values[key.replace('export ', '').strip()] = shlex.split(value)[0] if value else ''
    return values


def rig_arch():
    return os.environ.get('RIG_ARCH') or 'x86_64'


def rig_suite():
    return os.environ.get('RIG_SUITE') or 'bookworm'


def _run_dir(arch, suite):
    """The rig's run directory, as tests/rig/lib.sh names it."""
    if os.environ.get('RIG_RUN_DIR'):
        return os.environ['RIG_RUN_DIR']
    cache = os.environ.get('RIG_CACHE_DIR') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'xenpci-rig')
    suffix = ('' if arch == 'x86_64' else '-' + arch) + ('' if suite == 'bookworm' else '-' + suite)
    return os.path.join(cache, 'run' + suffix)


def rig_script_env(arch, suite):
    """The environment for the rig's scripts (boot, stop, ssh-dom0, ...): they find the rig by both."""
    return dict(os.environ, RIG_ARCH=arch, RIG_SUITE=suite)


class Rig:
    """A booted rig: ``ssh`` runs a command in dom0, ``module`` runs a collection module through ansible.

    Its devices by role, as PCI addresses in dom0 (from rig.env): ``mgmt_nic`` and ``root_disk``
    (None where they are not PCI devices, as on the arm64 rig), ``nics`` (single-function e1000s),
    ``multifunction`` (the functions of one e1000), ``msi_nics`` (e1000e NICs with MSI, the guest's), ``xhci``,
    ``bridges``, ``candidates``, ``isolation`` (the devices below a root port without ACS, a switch, a conventional
    PCI bridge: x86_64 only); ``linux_iommu_groups`` Linux's IOMMU groups on the same machine booted without Xen
    (tests/rig/linux-iommu-groups; None where not recorded); ``sriov_pf`` an SR-IOV physical function (x86_64 only:
    QEMU's NVMe controller, eight VFs); ``drift`` two NICs of models found nowhere else on the rig (x86_64 only),
    which ``power_cycle`` can boot at each other's address (``swap`` says when they are).
    ``xen_passthrough`` says whether the rig's Xen can quarantine and pass PCI devices through;
    ``pciback_holds`` whether dom0's xen-pciback can hold a device at all (not on the arm64 trixie
    rig: Linux 6.12's pciback asks Xen to reset each device, which a Xen without PCI support refuses);
    ``suite`` is the rig's Debian suite and ``xen_version`` the Xen version Debian ships in it
    (``4.17`` in bookworm, ``4.20`` in trixie).
    """

    def __init__(self, env):
        self.env = env
        self.inventory = env['RIG_INVENTORY']
        self.host = RIG_HOST
        self.arch = env.get('RIG_ARCH') or 'x86_64'
        self.suite = env.get('RIG_SUITE') or 'bookworm'
        self.xen_version = env.get('RIG_XEN_VERSION') or '4.17'
        self.mgmt_nic = env.get('RIG_PCI_MGMT_NIC') or None
        self.root_disk = env.get('RIG_PCI_ROOT_DISK') or None
        self.nics = self._list('RIG_PCI_NICS')
        self.msi_nics = self._list('RIG_PCI_MSI_NICS')
        self.multifunction = self._list('RIG_PCI_MULTIFUNCTION')
        self.xhci = env.get('RIG_PCI_XHCI') or None
        self.bridges = self._list('RIG_PCI_BRIDGES')
        self.candidates = self._list('RIG_PCI_CANDIDATES')
        self.isolation = self._list('RIG_PCI_ISOLATION')
        self.sriov_pf = env.get('RIG_PCI_SRIOV_PF') or None
        self.drift = self._list('RIG_PCI_DRIFT')
        self.swap = env.get('RIG_PCI_SWAP') or None
        groups_file = os.environ.get('RIG_LINUX_IOMMU_GROUPS')
        self.linux_iommu_groups = None
        if groups_file:
            with open(groups_file) as handle:
                self.linux_iommu_groups = json.load(handle)['groups']
        self.xen_passthrough = env.get('RIG_XEN_PASSTHROUGH') == 'yes'
        self.pciback_holds = env.get('RIG_PCIBACK_HOLDS', 'yes') == 'yes'

    def _list(self, key):
        return (self.env.get(key) or '').split()

    def require_pciback(self):
        """Skip a test that needs devices held by pciback where this rig's pciback cannot hold one."""
        if not self.pciback_holds:
            pytest.skip("xen-pciback cannot hold a device on the %s %s rig (Xen %s lacks the PCI reset Linux's "
                        "pciback asks for; test_what_xl_does records it)" % (self.arch, self.suite, self.xen_version))

    def script_env(self):
        """The environment in which the rig's scripts (ssh-dom0, reboot, ...) find this rig."""
        return rig_script_env(self.arch, self.suite)

    def ssh(self, command, check=True, timeout=300):
        argv = [os.path.join(RIG_DIR, 'ssh-dom0'), command]
        started = time.time()
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                env=self.script_env(), timeout=timeout, check=False)
        _timed('ssh', started)
        if check and result.returncode != 0:
            raise AssertionError('dom0 command failed (rc=%d): %s\n%s%s'
                                 % (result.returncode, command, result.stdout, result.stderr))
        return result

    def driver(self, address):
        out = self.ssh('readlink /sys/bus/pci/devices/%s/driver || true' % address).stdout.strip()
        return os.path.basename(out) if out else None

    def drivers(self):
        """{address: driver} for every PCI function in dom0: what a refused task must leave alone."""
        # Two processes in dom0, not two per function: on the emulated dom0 a process costs about 0.1 s.
        # (each driver's directory links the devices bound to it, by address)
        out = self.ssh('ls /sys/bus/pci/devices; echo ==; '
                       'find /sys/bus/pci/drivers/ -mindepth 2 -maxdepth 2 -name "*:*:*.*" -printf "%f %h\\n"').stdout
        names, _sep, bound = out.partition('==\n')
        drivers = dict((name, '') for name in names.split())
        for line in bound.splitlines():
            device, driver = line.split(' ', 1)
            drivers[device] = os.path.basename(driver)
        return drivers

    def files(self, *paths):
        """{path: content, or None where there is no such file} in dom0."""
        found = {}
        for path in paths:
            result = self.ssh('cat %s' % shlex.quote(path), check=False)
            found[path] = result.stdout if result.returncode == 0 else None
        return found

    def recorded_drivers(self):
        """{address: original driver} from pci_assignable's journal of original drivers."""
        text = self.files(JOURNAL)[JOURNAL]
        devices = json.loads(text)['devices'] if text else {}
        return {address: entry['original_driver'] for address, entry in devices.items()}

    def give_back(self, devices):
        """After a test: ``devices`` on their own drivers, none held by pciback or recorded in the collection's journal.

        One dom0 command looks; ``pci_assignable`` (state absent, force) runs only where something is left. A module
        task costs several seconds on the emulated dom0, the look a fraction of one, and after a test that passed
        there is usually nothing left.
        """
        devices = [address for address in devices if address]
        out = self.ssh('for d in %s; do echo "$d $(readlink /sys/bus/pci/devices/$d/driver)"; done; echo ==; '
                       'cat /sys/bus/pci/drivers/pciback/slots 2>/dev/null; echo ==; cat %s 2>/dev/null; true'
                       % (' '.join(devices), JOURNAL)).stdout
        bound, slots, journal = out.split('==\n', 2)
        recorded = json.loads(journal)['devices'] if journal.strip() else {}
        drivers = dict((line.split(' ', 1) + [''])[:2] for line in bound.splitlines() if line.strip())
        left = [address for address in devices
                if os.path.basename(drivers.get(address, '').strip()) in ('', 'pciback')
                or address in slots or address in recorded]
        if left:
            result = self.module('pci_assignable', {'devices': devices, 'state': 'absent', 'force': True})
            assert not result['failed'], result
            return result
        return None

    def reboot(self, power_cut=False):
        """Reboot dom0 (cleanly, or by a reset through QEMU's monitor) and wait until it answers again."""
        argv = [os.path.join(RIG_DIR, 'reboot')] + (['--power-cut'] if power_cut else [])
        started = time.time()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=900, env=self.script_env())
        _timed('reboot', started)

    def power_cycle(self, swap=None):
        """Power dom0 off and start the machine again with the initramfs on dom0's disk, and with ``swap``
        (``ADDRESS=ADDRESS``) two devices at each other's address; the rig's addresses by role are read again."""
        argv = [os.path.join(RIG_DIR, 'reboot'), '--power-cycle'] + (['--swap', swap] if swap else [])
        started = time.time()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=900, env=self.script_env())
        _timed('power cycle', started)
        self.__init__(_read_env(os.path.join(os.path.dirname(self.inventory), 'rig.env')))

    def module(self, name, args, check=False, diff=False):
        """Run xenpci.passthrough.<name> with ``args``; return its result for the rig host."""
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        argv = ['ansible', 'xen_dom0', '-i', self.inventory, '-m', 'xenpci.passthrough.' + name]
        if args:
            argv.extend(['-a', json.dumps(args)])
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        started = time.time()
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                env=env, timeout=600, check=False)
        _timed('module ' + name, started)
        # The default ad-hoc output is '<host> | STATUS => {json}' (after a diff, when asked for one).
        marker = re.search(r'^%s \| ([A-Z!]+) => ' % re.escape(self.host), result.stdout, re.M)
        if marker is None:
            raise AssertionError('ansible gave no result (rc=%d):\n%s\n%s' % (result.returncode, result.stdout, result.stderr))
        document, _end = json.JSONDecoder().raw_decode(result.stdout[marker.end():])
        document['failed'] = marker.group(1).startswith('FAILED')
        return document


def _qemu_missing_reason(arch):
    qemu = 'qemu-system-' + arch
    if shutil.which(qemu) is None and shutil.which('apt-get') is None:
        return '%s is not installed and cannot be installed here (no apt-get)' % qemu
    return None


@pytest.fixture(scope='session')
def rig():
    arch, suite = rig_arch(), rig_suite()
    reason = _qemu_missing_reason(arch)
    if reason:
        pytest.skip(reason)
    run_dir = _run_dir(arch, suite)
    reuse = os.environ.get('RIG_REUSE') == '1'
    if not reuse:
        started = time.time()
        subprocess.run([os.path.join(RIG_DIR, 'boot')], check=True, stdout=subprocess.DEVNULL,
                       env=rig_script_env(arch, suite))
        print('%s %s rig booted in %.0f s' % (arch, suite, time.time() - started))
    env = _read_env(os.path.join(run_dir, 'rig.env'))
    try:
        yield Rig(env)
    finally:
        if not reuse:
            # Its disk is thrown away: no clean shutdown (test_rig_reboot shows one).
            subprocess.run([os.path.join(RIG_DIR, 'stop'), '--discard'], check=False, env=rig_script_env(arch, suite))
            pid_file = env.get('RIG_QEMU_PID_FILE', os.path.join(run_dir, 'qemu.pid'))
            try:
                with open(pid_file) as handle:
                    os.kill(int(handle.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


PLAY = '''
- name: Apply {role}
  hosts: xen_dom0
  gather_facts: false
  roles:
    - role: xenpci.passthrough.{role}
  post_tasks:
    - name: Hand the role's facts to the test
      ansible.builtin.copy:
        content: '{{{{ {facts} | to_json }}}}'
        dest: "{out}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false    # the test's own bookkeeping: not part of the role's changes
'''


class Run:
    def __init__(self, process, facts):
        self.rc = process.returncode
        self.stdout = process.stdout
        self.output = process.stdout + process.stderr       # failures are in both, depending on the callback
        self.facts = facts
        match = re.search(r'^%s\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)' % re.escape(RIG_HOST),
                          process.stdout, re.M)
        if match is None:
            raise AssertionError('no recap (rc=%d):\n%s\n%s' % (process.returncode, process.stdout, process.stderr))
        self.ok, self.changed, self.unreachable, self.failed = (int(value) for value in match.groups())

    def __repr__(self):
        return 'rc=%d ok=%d changed=%d failed=%d\n%s' % (self.rc, self.ok, self.changed, self.failed, self.output)


@pytest.fixture
def play(rig, tmp_path):
    """Run a role (or a playbook of the collection) on the rig with ansible-playbook; return its recap and facts."""
    def run(role=None, variables=None, check=False, playbook=None, facts=None):
        out = str(tmp_path / 'facts.json')
        if os.path.exists(out):
            os.unlink(out)
        if playbook is None:
            playbook = str(tmp_path / 'play.yml')
            with open(playbook, 'w') as handle:
                handle.write(PLAY.format(role=role, out=out, facts=facts or '{}'))
        argv = ['ansible-playbook', '-i', rig.inventory, playbook, '-e', json.dumps(variables or {})]
        if check:
            argv.extend(['--check', '--diff'])
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        started = time.time()
        process = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                 env=env, timeout=2400, check=False)
        _timed('play ' + (role or os.path.basename(playbook)), started)
        result = None
        if os.path.exists(out):
            with open(out) as handle:
                result = json.load(handle)
        return Run(process, result)
    return run
