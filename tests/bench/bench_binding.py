# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long pci_assignable's planning and checks take for a large request on a host with many PCI functions.

Builds a fake Xen dom0 with N functions (default 4096, as bench_pci_info.py's dom0: no Linux IOMMU
groups, so the co-assignment sets come from every function's config space) and times the binding
engine in check mode (every read, plan and refusal check of a real run, nothing moved) for requests of
128, 256 and 512 functions (whole buses), best of several runs. Prints the times, the time per
device, and the ratios: 512 devices to the 0.5 s budget, and the time at 512 to that at 128 (at most
4 when the work grows no faster than the number of devices). Exits 1 over budget.

    python tests/bench/bench_binding.py [--functions 4096] [--repeat 5]
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import shutil
import sys
import tempfile

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import open_binder
from ansible_collections.xenpci.passthrough.tests.bench.bench_pci_info import best_of, build_host
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen

BUDGET_SECONDS = 0.5
SIZES = (128, 256, 512)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--functions', type=int, default=4096)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix='binding-bench-', dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    try:
        kernel, _ports = build_host(os.path.join(root, 'dom0'), args.functions, linux_groups=False)
        xen = FakeXen(kernel)
        functions = sorted(address for address in kernel._devices if not address.startswith('0000:00:'))
        times = {}
        for size in SIZES:
            request = functions[:size]       # whole buses: no co-assignment set is split

            def plan(request=request):
                binder = open_binder(kernel.paths, xen.commands, sysfs=xen.sysfs, uname=kernel.uname, check_mode=True)
                result = binder.ensure(request, 'present')
                assert result['changed'] is True and len(result['devices']) == len(request)
            times[size] = best_of(args.repeat, plan)
            print('plan and check %3d devices among %d functions: %.3f s  (%.0f us per device)'
                  % (size, args.functions, times[size], times[size] / size * 1e6))
        largest, smallest = SIZES[-1], SIZES[0]
        print('ratio %d devices to the %.1f s budget:  %.2f' % (largest, BUDGET_SECONDS, times[largest] / BUDGET_SECONDS))
        print('ratio of the times, %d to %d devices: %.2f   (at most %.0f, the ratio of the requests, when the work grows '
              'no faster than the number of devices)' % (largest, smallest, times[largest] / times[smallest],
                                                         largest / smallest))
        return 1 if times[largest] > BUDGET_SECONDS else 0
    finally:
        shutil.rmtree(root)


if __name__ == '__main__':
    sys.exit(main())
