# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel import parameters as kernel_parameters
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import ModprobeError
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.parameters import (
    ModuleParamsError,
    module_build,
    module_loaded,
    plan_module_params,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

OWNED = ('etc', 'modprobe.d', 'xenpci-xen-pciback.conf')


def make_host(root, build='module', loaded=True, hide='', cmdline='BOOT_IMAGE=/vmlinuz ro quiet'):
    """A dom0 whose xen-pciback shows hide and passthrough read-only (0444) and permissive writable (0644)."""
    kernel = FakeKernel(str(root), pciback_build=build)
    if loaded:
        kernel.load_pciback(hide=hide)
        parameters = os.path.join(kernel.paths.pciback_module, 'parameters')
        for name, mode in (('hide', 0o444), ('passthrough', 0o444), ('permissive', 0o644)):
            os.chmod(os.path.join(parameters, name), mode)
    os.makedirs(kernel.paths.join('etc', 'modprobe.d'))
    with open(os.path.join(kernel.paths.proc, 'cmdline'), 'w') as handle:
        handle.write(cmdline + '\n')
    return kernel, XenHost(kernel.paths, uname=kernel.uname)


def apply(plan):
    write_planned(plan.planned)
    plan.apply_runtime()
    return plan.result()


def read(kernel, *parts):
    with open(kernel.paths.join(*parts)) as handle:
        return handle.read()


def test_present_writes_the_file_and_the_writable_parameter_then_nothing(tmp_path):
    kernel, host = make_host(tmp_path)
    plan = plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0'], 'permissive': True}, 'present')
    result = apply(plan)
    assert result['changed'] and result['options_line'] == 'options xen-pciback hide=(0000:03:00.0) permissive=1'
    assert result['runtime'] == {
        'hide': {'status': 'reload_required', 'running': '', 'wanted': '(0000:03:00.0)'},
        'permissive': {'status': 'applied', 'running': '1', 'wanted': '1'},
    }
    assert result['reload_required'] and not result['reboot_required'] and result['build'] == 'module'
    assert result['cmdline'] == [] and not result['bootloader_update_required']
    assert read(kernel, 'sys', 'module', 'xen_pciback', 'parameters', 'permissive').strip() == '1'
    again = plan_module_params(kernel.paths, host, 'xen_pciback', {'hide': '(0000:03:00.0)', 'permissive': 1}, 'present')
    assert not again.changed and again.writes == []
    assert again.result()['runtime']['permissive']['status'] == 'unchanged'


def test_a_read_only_value_already_running_needs_nothing(tmp_path):
    kernel, host = make_host(tmp_path, hide='(0000:03:00.0)')
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['0000:03:00.0']}, 'present'))
    assert result['runtime']['hide']['status'] == 'unchanged' and not result['reload_required']


def test_the_hide_list_is_merged_and_removed_one_by_one(tmp_path):
    kernel, host = make_host(tmp_path)
    apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': '(0000:04:00.0)'}, 'present'))
    apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['0000:03:00.0']}, 'present'))
    assert read(kernel, *OWNED).endswith('options xen-pciback hide=(0000:04:00.0)(0000:03:00.0)\n')
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['04:00.0']}, 'absent'))
    assert result['params'] == {'hide': '(0000:03:00.0)'}
    assert result['runtime']['hide']['status'] == 'unchanged'      # the running module never hid it
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {}, 'absent'))
    assert result['changed'] and result['options_line'] is None
    assert not os.path.exists(kernel.paths.join(*OWNED))
    assert not plan_module_params(kernel.paths, host, 'xen-pciback', {}, 'absent').changed


def test_removing_an_address_the_running_module_hides_needs_a_reload(tmp_path):
    kernel, host = make_host(tmp_path, hide='(0000:03:00.0)')
    apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0']}, 'present'))
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', ['hide'], 'absent'))
    assert result['runtime']['hide']['status'] == 'reload_required' and result['params'] == {}


def test_a_module_that_is_not_loaded_gets_the_file_only(tmp_path):
    kernel, host = make_host(tmp_path, loaded=False)
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': 'Y'}, 'present'))
    assert result['changed'] and not result['loaded']
    assert result['runtime'] == {'permissive': {'status': 'not_loaded', 'running': None, 'wanted': 'Y'}}
    assert not result['reload_required']


def test_runtime_false_leaves_the_running_module_alone(tmp_path):
    kernel, host = make_host(tmp_path)
    plan = plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': True}, 'present', runtime=False)
    result = apply(plan)
    assert result['runtime']['permissive']['status'] == 'reload_required'
    assert read(kernel, 'sys', 'module', 'xen_pciback', 'parameters', 'permissive').strip() == 'N'


def test_a_bool_parameter_reading_y_matches_true(tmp_path):
    kernel, host = make_host(tmp_path)
    with open(kernel.paths.join('sys', 'module', 'xen_pciback', 'parameters', 'permissive'), 'w') as handle:
        handle.write('Y\n')
    plan = plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': 'on'}, 'present')
    assert plan.result()['runtime']['permissive']['status'] == 'unchanged'


def test_a_parameter_the_kernel_does_not_show_needs_a_reload(tmp_path):
    kernel, host = make_host(tmp_path)
    result = plan_module_params(kernel.paths, host, 'xen-pciback', {'verbose_request': 1}, 'present').result()
    assert result['runtime']['verbose_request']['status'] == 'reload_required'


def test_a_runtime_write_the_kernel_refuses_is_an_error(tmp_path, monkeypatch):
    kernel, host = make_host(tmp_path)

    class Refusing:
        def __init__(self, paths):
            pass

        def write(self, path, text):
            raise OSError(errno.EINVAL, 'Invalid argument')
    monkeypatch.setattr(kernel_parameters, 'PciSysfs', Refusing)
    plan = plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': True}, 'present')
    with pytest.raises(ModuleParamsError, match='writing .1. to .*permissive failed: .*Invalid argument'):
        plan.apply_runtime()


def test_a_built_in_module_takes_its_parameters_from_the_command_line(tmp_path):
    kernel, host = make_host(tmp_path, build='builtin')
    plan = plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0', '04:00.0']}, 'present')
    result = apply(plan)
    assert result['build'] == 'builtin' and result['loaded']
    assert result['cmdline'] == ['xen-pciback.hide=(0000:03:00.0)(0000:04:00.0)']
    assert result['cmdline_params'] == {'xen-pciback.hide': '(0000:03:00.0)(0000:04:00.0)'}
    assert result['bootloader_update_required'] and result['reboot_required'] and not result['reload_required']
    assert any('built into this kernel' in note for note in result['notes'])
    assert not result['initramfs_update_required']
    # After boot_cmdline and a reboot: the command line and the running module have it.
    kernel2, host2 = make_host(tmp_path / 'rebooted', build='builtin', hide='(0000:03:00.0)(0000:04:00.0)',
                               cmdline='ro xen-pciback.hide=(0000:04:00.0)(0000:03:00.0)')
    result = apply(plan_module_params(kernel2.paths, host2, 'xen-pciback', {'hide': ['03:00.0', '04:00.0']},
                                      'present', cmdline=True))
    assert not result['bootloader_update_required'] and not result['reboot_required']
    assert not any('built into this kernel' in note for note in result['notes'])
    assert result['conflicts'] == []


def test_removing_a_parameter_of_a_built_in_module_maps_it_to_null(tmp_path):
    kernel, host = make_host(tmp_path, build='builtin', cmdline='ro xen-pciback.permissive=1')
    apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': 1}, 'present'))
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', ['permissive'], 'absent'))
    assert result['cmdline_params'] == {'xen-pciback.permissive': None} and result['bootloader_update_required']


def test_cmdline_true_for_a_loadable_module(tmp_path):
    kernel, host = make_host(tmp_path, cmdline='ro xen-pciback.hide=(0000:09:00.0)')
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0']}, 'present', cmdline=True))
    assert result['cmdline'] == ['xen-pciback.hide=(0000:03:00.0)'] and result['bootloader_update_required']
    assert result['conflicts'] == []
    plain = plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0']}, 'present').result()
    assert plain['cmdline'] == [] and plain['conflicts'][0]['file'] == os.path.join(kernel.paths.proc, 'cmdline')


@pytest.mark.parametrize('relative, text, tool', [
    (('etc', 'initramfs-tools', 'modules'), '# modules\nxen_pciback\n', 'initramfs-tools'),
    (('etc', 'dracut.conf.d', 'xen.conf'), 'add_drivers+=" xen-pciback "\n', 'dracut'),
])
def test_initramfs_update_when_the_module_is_loaded_from_it(tmp_path, relative, text, tool):
    kernel, host = make_host(tmp_path)
    path = kernel.paths.join(*relative)
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(text)
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0']}, 'present'))
    assert result['initramfs_update_required'] and result['initramfs_tools'] == [tool]
    assert not any('load it early' in note for note in result['notes'])
    again = plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': ['03:00.0']}, 'present').result()
    assert not again['initramfs_update_required']


def test_the_spelling_in_the_owned_file_is_kept(tmp_path):
    kernel, host = make_host(tmp_path)
    apply(plan_module_params(kernel.paths, host, 'xen_pciback', {'permissive': 1}, 'present'))
    result = apply(plan_module_params(kernel.paths, host, 'xen-pciback', {'hide': '03:00.0'}, 'present'))
    assert result['options_line'] == 'options xen_pciback permissive=1 hide=(0000:03:00.0)'


def test_build_detection_of_other_modules(tmp_path):
    kernel, host = make_host(tmp_path)
    paths = kernel.paths
    assert module_build(paths, host, 'snd-hda-intel') == 'unknown' and not module_loaded(paths, 'snd-hda-intel')
    index_dir = os.path.join(paths.lib_modules, kernel.release)
    os.makedirs(index_dir)
    with open(os.path.join(index_dir, 'modules.builtin'), 'w') as handle:
        handle.write('kernel/drivers/vfio/pci/vfio-pci.ko\n')
    with open(os.path.join(index_dir, 'modules.dep'), 'w') as handle:
        handle.write('kernel/sound/pci/hda/snd-hda-intel.ko.xz: kernel/sound/core/snd.ko.xz\n')
    assert module_build(paths, host, 'vfio_pci') == 'builtin'
    assert module_build(paths, host, 'snd_hda_intel') == 'module'
    os.makedirs(os.path.join(paths.sys, 'module', 'kvm', 'parameters'))
    assert module_build(paths, host, 'kvm') == 'builtin' and module_loaded(paths, 'kvm')
    os.makedirs(os.path.join(paths.sys, 'module', 'e1000e'))
    with open(os.path.join(paths.sys, 'module', 'e1000e', 'initstate'), 'w') as handle:
        handle.write('coming\n')
    assert module_build(paths, host, 'e1000e') == 'module' and not module_loaded(paths, 'e1000e')


def test_an_absent_pciback_is_said(tmp_path):
    kernel, host = make_host(tmp_path, build='absent', loaded=False)
    result = plan_module_params(kernel.paths, host, 'xen-pciback', {'permissive': 1}, 'present').result()
    assert result['build'] == 'absent' and any('has no xen-pciback' in note for note in result['notes'])


@pytest.mark.parametrize('name, params, state, message', [
    ('../../etc/passwd', {'a': 1}, 'present', 'not a kernel module name'),
    ('xen-pciback', ['hide'], 'present', 'must be a mapping'),
    ('xen-pciback', {'a-b': 1, 'a_b': 2}, 'present', 'given twice'),
    ('xen-pciback', {'bad name': 1}, 'present', 'not a module parameter name'),
    ('xen-pciback', {'hide': ['0000:82.0.0']}, 'present', 'fail to load'),
    ('xen-pciback', {'hide': ['0000:82.0.0']}, 'absent', 'fail to load'),
    ('xen-pciback', {'permissive': 'a"b'}, 'present', 'double quote'),
    ('xen-pciback', 'hide=1', 'present', 'must be a mapping'),
])
def test_bad_requests_are_refused_before_anything(tmp_path, name, params, state, message):
    kernel, host = make_host(tmp_path)
    with pytest.raises(ModprobeError, match=message):
        plan_module_params(kernel.paths, host, name, params, state)
