# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long pci_info takes on a host with many PCI functions.

Builds a fake dom0 with N functions (default 4096: 64 buses x 8 slots x 8 functions, SR-IOV
style, every one with a driver, an IOMMU group and a network interface on some), then times
``build_report`` (what ``pci_info`` runs) and ``read_devices`` alone, best of several runs.
Prints the times and their ratio to the budget (1 s for the whole report); exits 1 over budget.

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
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import read_devices
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

BUDGET_SECONDS = 1.0


def build_host(root, functions):
    kernel = FakeKernel(root)
    kernel.load_pciback()
    for index in range(functions):
        bus, rest = divmod(index, 64)
        slot, function = divmod(rest, 8)
        address = '0000:%02x:%02x.%d' % (bus + 1, slot, function)
        kernel.add_device(address, vendor='8086', device='10ca', class_code='020000', driver='igbvf',
                          iommu_group=index, net=['eth%d' % index] if function == 0 else ())
    return kernel


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
        kernel = build_host(root, args.functions)
        print('built a fake host with %d PCI functions in %.1f s' % (args.functions, time.perf_counter() - started))
        commands = Commands(lambda name: None, lambda argv: (127, '', 'no commands in the benchmark'))
        no_filter = DeviceFilter()
        report = build_report(kernel.paths, commands, no_filter, uname=kernel.uname)
        assert len(report['devices']) == args.functions, len(report['devices'])
        read_time = best_of(args.repeat, lambda: read_devices(PciSysfs(kernel.paths)))
        report_time = best_of(args.repeat, lambda: build_report(kernel.paths, commands, no_filter, uname=kernel.uname))
        per_function_us = report_time / args.functions * 1e6
        print('read_devices (sysfs only):  %.3f s' % read_time)
        print('pci_info report (all):      %.3f s  (%.1f us per function)' % (report_time, per_function_us))
        print('ratio to the %.1f s budget:  %.2f' % (BUDGET_SECONDS, report_time / BUDGET_SECONDS))
        print('ratio report / sysfs read:  %.2f' % (report_time / read_time))
        return 0 if report_time < BUDGET_SECONDS else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
