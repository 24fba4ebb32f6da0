# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long pci_info takes on a host with many PCI functions.

Builds two fake hosts with N functions (default 4096: 64 buses x 8 slots x 8 functions, SR-IOV
style, every one with a driver and a network interface on some): one where Linux has IOMMU groups,
one shaped like a Xen dom0 (no groups; root ports above the buses, so that the co-assignment sets
come from every function's config space). Times ``build_report`` (what ``pci_info`` runs) on both
and ``read_devices`` alone, best of several runs. Prints the times and their ratios to the budget
(1 s for the whole report) and to each other; exits 1 over budget. Also times the names of a
host's devices looked up in a pci.ids of the real file's size, against one Python pass over its lines.

    python tests/bench/bench_pci_info.py [--functions 4096] [--repeat 5]
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import shutil
import sys
import tempfile
import time

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.ids import PciNames
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import read_devices
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import ACS_ALL, ENDPOINT, ROOT_PORT, config_space
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

BUDGET_SECONDS = 1.0


def build_host(root, functions, linux_groups=True):
    """Buses of 8 multi-function devices of 8 functions, each bus below a PCIe root port.

    ``linux_groups``: every function has its IOMMU group, as where Linux drives the IOMMU; without,
    as in a Xen dom0, the sets come from the topology: every function's config space is read (the
    worst case), and on every other bus the functions lack ACS and go together.
    """
    kernel = FakeKernel(root)
    kernel.load_pciback()
    ports = set()
    for index in range(functions):
        bus, rest = divmod(index, 64)
        slot, function = divmod(rest, 8)
        parent = None
        if not linux_groups:
            parent = '0000:00:%02x.%d' % divmod(bus, 8)
            if parent not in ports:
                kernel.add_device(parent, vendor='1b36', device='000c', class_code='060400', reset_methods=None,
                                  config=config_space('1b36', '000c', multifunction=True, bridge=True,
                                                      pcie_type=ROOT_PORT, acs=(ACS_ALL, ACS_ALL)))
                ports.add(parent)
        address = '0000:%02x:%02x.%d' % (bus + 1, slot, function)
        kernel.add_device(address, vendor='8086', device='10ca', class_code='020000', driver='igbvf', parent=parent,
                          iommu_group=index if linux_groups else None, net=['eth%d' % index] if function == 0 else (),
                          config=None if linux_groups else config_space(
                              '8086', '10ca', multifunction=True, pcie_type=ENDPOINT,
                              acs=(ACS_ALL, ACS_ALL if bus % 2 else 0)))
    return kernel, len(ports)


def write_pci_ids(path):
    """A pci.ids of the real file's shape and size (1.3 MB): 2500 vendors with 8 devices of one subsystem each."""
    lines = ['#', '#\tList of PCI IDs', '#']
    for vendor in range(0x1000, 0x1000 + 2500):
        lines.append('%04x  Vendor %d Incorporated' % (vendor, vendor))
        for device in range(8):
            lines.append('\t%04x  Device %d of vendor %04x, a controller' % (device * 7, device, vendor))
            lines.append('\t\t%04x %04x  Subsystem %d' % (vendor, device, device))
    for base in range(0x13):
        lines.append('C %02x  Class %d' % (base, base))
        lines.extend('\t%02x  Subclass %d' % (sub, sub) for sub in range(8))
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')


def one_pass_over_lines(path):
    """What reading pci.ids line by line in Python costs at the least: the yardstick for the names' lookup."""
    count = 0
    with open(path, 'rb') as handle:
        for line in handle:
            if line.startswith(b'\t'):
                count += 1
    return count


def best_of(repeat, function):
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--functions', type=int, default=4096)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    # sysfs lives in memory: build the fake one in memory too where the machine has /dev/shm.
    root = tempfile.mkdtemp(prefix='pci-bench-', dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    try:
        started = time.perf_counter()
        kernel, _ports = build_host(os.path.join(root, 'groups'), args.functions)
        dom0, ports = build_host(os.path.join(root, 'dom0'), args.functions, linux_groups=False)
        print('built two fake hosts with %d PCI functions in %.1f s' % (args.functions, time.perf_counter() - started))
        commands = Commands(lambda name: None, lambda argv: (127, '', 'no commands in the benchmark'))
        no_filter = DeviceFilter()
        report = build_report(kernel.paths, commands, no_filter, uname=kernel.uname)
        assert len(report['devices']) == args.functions, len(report['devices'])
        report = build_report(dom0.paths, commands, no_filter, uname=dom0.uname)
        assert len(report['devices']) == args.functions + ports, len(report['devices'])
        shared = [device for device in report['devices'] if len(device['coassignment']['devices']) == 7]
        assert len(shared) == args.functions // 2, len(shared)
        read_time = best_of(args.repeat, lambda: read_devices(PciSysfs(kernel.paths)))
        report_time = best_of(args.repeat, lambda: build_report(kernel.paths, commands, no_filter, uname=kernel.uname))
        dom0_time = best_of(args.repeat, lambda: build_report(dom0.paths, commands, no_filter, uname=dom0.uname))
        print('read_devices (sysfs only):             %.3f s' % read_time)
        print('pci_info, Linux IOMMU groups:          %.3f s  (%.1f us per function)'
              % (report_time, report_time / args.functions * 1e6))
        print('pci_info, Xen dom0 (sets from config): %.3f s  (%.1f us per function)'
              % (dom0_time, dom0_time / (args.functions + ports) * 1e6))
        print('ratio to the %.1f s budget:             %.2f (groups), %.2f (dom0)'
              % (BUDGET_SECONDS, report_time / BUDGET_SECONDS, dom0_time / BUDGET_SECONDS))
        print('ratio dom0 / groups report:            %.2f' % (dom0_time / report_time))
        print('ratio report / sysfs read:             %.2f' % (report_time / read_time))
        ids_path = os.path.join(root, 'pci.ids')
        write_pci_ids(ids_path)
        host_ids = set((('%04x' % vendor), '%04x' % (7 * device)) for vendor in (0x1000, 0x1234, 0x15ad, 0x18e0, 0x19c3)
                       for device in range(3))
        host_classes = set(['020000', '010600', '0c0330', '060400', '030000'])
        names = PciNames.load([ids_path], host_ids, host_classes)
        assert len(names.devices) == len(host_ids) and len(names.classes) == 2 * len(host_classes), names.classes
        names_time = best_of(args.repeat, lambda: PciNames.load([ids_path], host_ids, host_classes))
        lines_time = best_of(args.repeat, lambda: one_pass_over_lines(ids_path))
        size_kb = os.path.getsize(ids_path) // 1024
        print('names from a %d kB pci.ids (%d ids):   %.4f s' % (size_kb, len(host_ids), names_time))
        print('ratio names / one Python pass over it: %.2f' % (names_time / lines_time))
        return 0 if max(report_time, dom0_time) < BUDGET_SECONDS else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
