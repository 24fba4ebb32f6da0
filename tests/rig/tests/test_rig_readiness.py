# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The readiness playbook's fleet report: the rig's dom0 and a host that does not answer, one line each."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from conftest import RIG_HOST

pytestmark = pytest.mark.rig

GHOST = 'ghost-dom0'


@pytest.fixture
def held(rig):
    """One NIC held by pciback while the report is made; given back afterwards."""
    nic = rig.nics[0]
    if rig.pciback_holds:
        made = rig.module('pci_assignable', {'devices': [nic]})
        assert not made['failed'], made
    yield nic if rig.pciback_holds else None
    rig.give_back([nic])


def test_the_fleet_report_has_a_line_per_host(rig, held, tmp_path):
    inventory = tmp_path / 'ghosts.ini'
    # nothing listens on port 9 of the controller: the host is unreachable at once
    inventory.write_text('[ghosts]\n%s ansible_host=127.0.0.1 ansible_port=9 ansible_user=root\n' % GHOST)
    report_dir = tmp_path / 'report'
    variables = {'passthrough_hosts': 'xen_dom0:ghosts', 'passthrough_report_dir': str(report_dir)}
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    process = subprocess.run(['ansible-playbook', '-i', rig.inventory, '-i', str(inventory), 'xenpci.passthrough.readiness',
                              '-e', json.dumps(variables)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, env=env, timeout=900, check=False)
    assert process.returncode == 4, process.stdout + process.stderr      # 4: a host was unreachable
    info = rig.module('pci_info', {'names': False})
    host = info['host']

    with open(str(report_dir / 'readiness.json')) as handle:
        report = json.load(handle)['hosts']
    assert sorted(report) == sorted([RIG_HOST, GHOST]) and report[GHOST] is None
    line = report[RIG_HOST]
    assert line['ready'] is (host['problems'] == []) and line['problems'] == host['problems']
    assert (line['xen_version'], line['kernel'], line['arch']) == (host['xen']['version'], host['kernel'], rig.arch)
    assert (line['pciback_build'], line['pciback_loaded'], line['dom0']) == ('module', True, True)
    assert line['iommu'] is rig.xen_passthrough
    assert line['held'] == ([[held, 'e1000']] if held else [])
    needed = sorted(device['address'] for device in info['devices'] if device['host_needs'])
    assert sorted(address for address, _why in line['host_needs']) == needed

    with open(str(report_dir / 'readiness.md')) as handle:
        markdown = handle.read()
    rows = [row for row in markdown.splitlines() if row.startswith('| ') and not row.startswith('| host ')]
    assert len(rows) == 2, markdown
    assert rows[0].startswith('| %s | %s | %s | yes |' % (RIG_HOST, 'yes' if line['ready'] else 'no', host['xen']['version']))
    assert rows[1].startswith('| %s | no answer |' % GHOST)
    if held:
        assert '%s (e1000)' % held in rows[0]

    with open(str(report_dir / 'readiness.html')) as handle:
        html = handle.read()
    assert '<td>%s</td><td class="state">no answer</td>' % GHOST in html
    assert '<td>%s</td><td class="state">%s</td>' % (RIG_HOST, 'yes' if line['ready'] else 'no') in html

    # the play's own output: a line per host
    if line['ready']:
        assert line['summary'].startswith('ready (Xen %s, %s, xen-pciback module, ' % (host['xen']['version'], host['kernel']))
    else:
        assert line['summary'].startswith('not ready: %s (Xen %s' % ('; '.join(host['problems']), host['xen']['version']))
    assert line['summary'].endswith(', %d held)' % (1 if held else 0))
    assert '%s: %s' % (RIG_HOST, 'ready (Xen' if line['ready'] else 'not ready: ') in process.stdout
    assert '%s: no answer' % GHOST in process.stdout
