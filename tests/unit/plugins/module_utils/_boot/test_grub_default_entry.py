# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""XEN_OVERRIDE_GRUB_DEFAULT in /etc/default/grub, and GRUB_DEFAULT and GRUB_DISTRIBUTOR as the shell reads them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import parse_params
from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.grub_defaults import GrubDefaults, GrubSyntaxError
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_defaults import (
    DEBIAN_GRUB,
    read,
    tree_digest,
    write,
)
from ansible_collections.xenpci.passthrough.tests.unit.real_commands import real_commands

DISTRIBUTED_GRUB = DEBIAN_GRUB.replace(
    'GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Debian} ) 2>/dev/null || echo Debian`',
    'GRUB_DISTRIBUTOR=`echo Debian`')

# As xen-hypervisor-common's grub.d/xen.cfg computes the Xen entry's title: gettext comes from grub-mkconfig_lib.
XEN_CFG = '''\
#XEN_OVERRIDE_GRUB_DEFAULT=0
echo "Including Xen overrides from /etc/default/grub.d/xen.cfg"
if [ "$XEN_OVERRIDE_GRUB_DEFAULT" = "" ]; then
        grub_warn "GRUB_DEFAULT changed to boot into Xen by default!"
        XEN_OVERRIDE_GRUB_DEFAULT=1
fi
if [ "$XEN_OVERRIDE_GRUB_DEFAULT" = "1" ]; then
        GRUB_DEFAULT="$(printf "$(gettext "%s, with Xen hypervisor")" "$GRUB_DISTRIBUTOR GNU/Linux")"
fi
'''

# A grub-mkconfig_lib whose gettext "translates", so that a test tells it was sourced before the defaults files.
GRUB_LIB = '''\
gettext () { printf '%s' "$1" | sed 's/with Xen/avec Xen/'; }
grub_warn () { echo "Warning: $*" >&2; }
'''

TITLE = 'Debian GNU/Linux, avec Xen hypervisor'
OVERRIDE = 'XEN_OVERRIDE_GRUB_DEFAULT'


@pytest.fixture
def host(tmp_path):
    """A Debian dom0's GRUB files under tmp_path, XEN_OVERRIDE_GRUB_DEFAULT set nowhere; returns (HostPaths, root)."""
    root = str(tmp_path)
    for directory in ('etc/default/grub.d', 'usr/share/grub'):
        os.makedirs(os.path.join(root, directory))
    write(root, 'etc/default/grub', DISTRIBUTED_GRUB.replace('GRUB_DEFAULT=0', 'GRUB_DEFAULT=0\n' + OVERRIDE + '=0'))
    write(root, 'etc/default/grub.d/xen.cfg', XEN_CFG)
    write(root, 'usr/share/grub/grub-mkconfig_lib', GRUB_LIB)
    return HostPaths(root), root


def plan(paths, params, xen_default, grub_file=None):
    wanted = parse_params(params, 'present') if params else []
    return GrubDefaults(paths, real_commands(), grub_file).plan('xen', wanted, xen_default)


def apply(paths, params, xen_default, grub_file=None):
    result = plan(paths, params, xen_default, grub_file)
    for planned in [result.planned] + result.also:
        write_planned(planned)
    return result


def update_grub_default(root):
    """GRUB_DEFAULT as grub-mkconfig leaves it: its library, then the defaults files in glob order."""
    script = ('. ./usr/share/grub/grub-mkconfig_lib; . ./etc/default/grub\n'
              'for x in ./etc/default/grub.d/*.cfg; do . "$x"; done >/dev/null 2>&1\n'
              'printf %s "$GRUB_DEFAULT"')
    return subprocess.run(['sh', '-c', script], cwd=root, stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout


def test_the_plain_assignment_is_changed_in_place_and_the_default_entry_follows(host):
    paths, root = host
    result = apply(paths, {'iommu': '1'}, '1')
    assert (result.before['GRUB_DEFAULT'], result.after['GRUB_DEFAULT']) == ('0', TITLE)
    assert result.after['GRUB_DISTRIBUTOR'] == 'Debian'
    assert [planned.path for planned in result.also] == [os.path.join(root, 'etc/default/grub')]
    grub = read(root, 'etc/default/grub')
    assert grub == DISTRIBUTED_GRUB.replace('GRUB_DEFAULT=0', 'GRUB_DEFAULT=0\n%s=1' % OVERRIDE)
    assert update_grub_default(root) == TITLE
    again = plan(paths, {'iommu': '1'}, '1')
    assert not again.planned.changed and not [planned for planned in again.also if planned.changed]
    assert again.after['GRUB_DEFAULT'] == TITLE


def test_a_missing_assignment_is_added_at_the_end_and_kept_with_its_comment(host):
    paths, root = host
    write(root, 'etc/default/grub', DISTRIBUTED_GRUB)
    apply(paths, {}, '1')
    assert read(root, 'etc/default/grub') == DISTRIBUTED_GRUB + OVERRIDE + '=1\n'
    write(root, 'etc/default/grub', DISTRIBUTED_GRUB + 'export %s="0"   # set by hand\n' % OVERRIDE)
    apply(paths, {}, '1')
    assert read(root, 'etc/default/grub').endswith('\nexport %s=1   # set by hand\n' % OVERRIDE)
    assert update_grub_default(root) == TITLE
    assert not os.path.exists(os.path.join(root, 'etc/default/grub.d/zz-xenpci-passthrough.cfg'))


def test_zero_leaves_the_default_entry_as_grub_default_sets_it(host):
    paths, root = host
    apply(paths, {}, '1')
    result = apply(paths, {}, '0')
    assert (result.before['GRUB_DEFAULT'], result.after['GRUB_DEFAULT']) == (TITLE, '0')
    assert '\n%s=0\n' % OVERRIDE in read(root, 'etc/default/grub')


def test_a_plan_reads_the_planned_files_and_writes_none(host):
    paths, root = host
    before = tree_digest(root)
    result = plan(paths, {'dom0_mem': '2G'}, '1')
    assert result.after['GRUB_DEFAULT'] == TITLE and result.cmdline_after == 'dom0_mem=2G'
    assert result.planned.changed and result.also[0].changed
    assert tree_digest(root) == before


def test_both_edits_go_into_default_grub_when_it_is_the_file_edited(host):
    paths, root = host
    main = os.path.join(root, 'etc/default/grub')
    result = apply(paths, {'iommu': '1'}, '1', grub_file=main)
    assert result.planned.path == main and result.also == []
    grub = read(root, 'etc/default/grub')
    assert '\n%s=1\n' % OVERRIDE in grub and '\nGRUB_CMDLINE_XEN_DEFAULT="iommu=1"\n' in grub
    assert result.after['GRUB_DEFAULT'] == TITLE == update_grub_default(root)


def test_a_later_file_that_sets_grub_default_shows(host):
    paths, root = host
    write(root, 'etc/default/grub.d/y-local.cfg', 'GRUB_DEFAULT=saved\n')
    result = plan(paths, {}, '1')
    assert result.after['GRUB_DEFAULT'] == 'saved' == update_grub_default(root)


def test_without_the_setting_default_grub_is_not_read_for_writing(host):
    paths, root = host
    write(root, 'etc/default/grub', DISTRIBUTED_GRUB + '[ -e /x ] && %s=0\n' % OVERRIDE)
    result = plan(paths, {'iommu': '1'}, None)
    assert result.also == [] and result.after['GRUB_DEFAULT'] == TITLE


@pytest.mark.parametrize('line', ['[ -e /etc/xen-off ] && %s=0' % OVERRIDE, '%s=$(cat /etc/xen-default)' % OVERRIDE,
                                  'if true; then %s=0; fi' % OVERRIDE])
def test_another_kind_of_assignment_is_refused_naming_the_line(host, line):
    paths, root = host
    write(root, 'etc/default/grub', DISTRIBUTED_GRUB + line + '\n')
    before = tree_digest(root)
    with pytest.raises(GrubSyntaxError) as caught:
        plan(paths, {'iommu': '1'}, '1')
    number = DISTRIBUTED_GRUB.count('\n') + 1
    assert str(caught.value).startswith('%s line %d: %s is set there' % (os.path.join(root, 'etc/default/grub'), number, OVERRIDE))
    assert 'leave xen_default_entry unset' in str(caught.value)
    assert tree_digest(root) == before
