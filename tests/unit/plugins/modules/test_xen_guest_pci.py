# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xen_guest_pci's main() on the fake dom0, with xl (pci-attach, pci-detach, pci-list, list) following libxl 4.17."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci import sysfs
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen import guests
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.modules import module_params, pci_assignable, xen_guest_pci
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC, XHCI, build_rig_host
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import DOMID_IO, FakeXen
from ansible_collections.xenpci.passthrough.tests.unit.plugins.modules.conftest import ModuleRunner
from ansible_collections.xenpci.passthrough.tests.unit.plugins.modules.test_drift import (
    MOVED,
    NIC,
    PORT_B,
    add_nic_behind_a_port,
    journal,
    renumber,
)
from ansible_collections.xenpci.passthrough.tests.unit.strategies import bad_addresses

GUEST = 'web1'
GUEST_ID = 3
OTHER = 'db2'
OTHER_ID = 5
MISSING = '0000:00:1f.7'


@pytest.fixture
def dom0(tmp_path, monkeypatch, capsys):
    """A factory: the rig-shaped dom0 of ``arch`` with a running guest ``web1`` (id 3) and ``db2`` (id 5), whose
    toolstack and uname are the fakes' (whatever the machine running the tests is)."""

    def make(arch='x86_64', xen_version=(4, 17), quarantine=True, release='6.1.0-test-amd64'):
        kernel = build_rig_host(str(tmp_path / arch), arch=arch, release=release, xen_version=xen_version)
        xen = FakeXen(kernel, quarantine=quarantine)
        xen.create_domain(GUEST_ID, GUEST)
        xen.create_domain(OTHER_ID, OTHER)
        monkeypatch.setattr(HostPaths, 'default_root', kernel.root)
        monkeypatch.setattr(sysfs, 'PciSysfs', lambda paths: xen.sysfs)
        monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: xen.commands))
        monkeypatch.setattr(xen_guest_pci, 'XenHost', lambda paths: XenHost(paths, uname=kernel.uname))
        return ModuleRunner(kernel, xen, capsys)
    return make


@pytest.fixture
def run(dom0):
    return dom0()


@pytest.fixture
def ready(run):
    """web1 running, E1000_A and E1000_B assignable (pci_assignable did it)."""
    result = run(pci_assignable, devices=[E1000_A, E1000_B])
    assert result['changed'] is True, result
    return run


def _journal(kernel):
    with open(os.path.join(kernel.root, 'var/lib/xenpci_passthrough/drivers.json')) as handle:
        return json.load(handle)['devices']


def _changes(xen, since):
    """The commands after call number ``since`` that change something (every xl and xenstore command but reads)."""
    reads = (['xl', 'list'], ['xl', 'pci-list'], ['xl', 'info'], ['xl', 'pci-assignable-list'])
    return [call for call in xen.calls[since:]
            if call[0] not in ('xenstore-ls', 'xenstore-list') and call[:2] not in reads]


# ---- attach, again, detach -------------------------------------------------------------------------

def test_two_devices_attached_in_one_task_then_nothing_to_do_then_one_detached(ready):
    xen, kernel = ready.xen, ready.kernel
    calls = len(xen.calls)
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A, {'address': '00:04.0', 'permissive': True}],
                   _ansible_diff=True)
    assert not result.get('failed'), result['msg']
    assert result['changed'] is True
    assert [(device['address'], device['action']) for device in result['devices']] == \
        [(E1000_A, 'attached'), (E1000_B, 'attached')]
    assert result['domain'] == {'name': GUEST, 'domid': GUEST_ID, 'running': True}
    assert result['guest_devices'] == {'before': [], 'after': [E1000_A, E1000_B]}
    assert result['diff']['before'] == '' and result['diff']['after'] == '%s\n%s\n' % (E1000_A, E1000_B)
    assert xen.guest_devices(GUEST_ID) == [E1000_A, E1000_B]
    assert xen.owner[E1000_A] == xen.owner[E1000_B] == GUEST_ID
    assert xen.record(E1000_A, 'domid') == str(GUEST_ID)
    attaches = [call for call in xen.calls[calls:] if call[:2] == ['xl', 'pci-attach']]
    assert attaches == [['xl', 'pci-attach', str(GUEST_ID), E1000_A],
                        ['xl', 'pci-attach', str(GUEST_ID), '%s,permissive=1' % E1000_B]]
    assert xen.store['/local/domain/0/backend/pci/%d/0/opts-1' % GUEST_ID] == \
        'msitranslate=0,power_mgmt=0,permissive=1,rdm_policy=strict'
    assert ('sys/bus/pci/drivers/pciback/permissive', E1000_B) in kernel.writes
    # The state is read once: one xl list, and one xl pci-list before (one more after, to report what xl sees).
    assert [call[:2] for call in xen.calls[calls:]].count(['xl', 'list']) == 1
    assert [call[:2] for call in xen.calls[calls:]].count(['xl', 'pci-list']) == 2

    calls = len(xen.calls)
    again = ready(xen_guest_pci, domain=GUEST, devices=[E1000_B, E1000_A], _ansible_diff=True)
    assert again['changed'] is False
    assert [device['action'] for device in again['devices']] == ['unchanged', 'unchanged']
    assert again['diff']['before'] == again['diff']['after'] == '%s\n%s\n' % (E1000_A, E1000_B)
    assert _changes(xen, calls) == []
    assert [call[:2] for call in xen.calls[calls:]].count(['xl', 'pci-list']) == 1

    calls = len(xen.calls)
    detached = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A], state='absent', _ansible_diff=True)
    assert detached['changed'] is True
    assert detached['devices'][0]['action'] == 'detached'
    assert detached['guest_devices'] == {'before': [E1000_A, E1000_B], 'after': [E1000_B]}
    assert _changes(xen, calls) == [['xl', 'pci-detach', str(GUEST_ID), E1000_A]]
    assert xen.guest_devices(GUEST_ID) == [E1000_B]
    # It stays assignable: on pciback, back in quarantine, listed by xl pci-assignable-list.
    assert kernel.driver(E1000_A) == 'pciback' and xen.owner[E1000_A] == DOMID_IO
    assert xen.record(E1000_A, 'domid') is None
    assert E1000_A in xen.run(['xl', 'pci-assignable-list'])[1]
    assert ready(xen_guest_pci, domain=GUEST, devices=[E1000_A], state='absent')['changed'] is False


def test_detaching_the_last_device_and_one_the_guest_does_not_have(ready):
    ready(xen_guest_pci, domain=GUEST, devices=[E1000_A])
    calls = len(ready.xen.calls)
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B], state='absent')
    assert result['changed'] is True
    assert [device['action'] for device in result['devices']] == ['detached', 'unchanged']
    assert _changes(ready.xen, calls) == [['xl', 'pci-detach', str(GUEST_ID), E1000_A]]
    assert ready.xen.guest_devices(GUEST_ID) == []
    assert not [key for key in ready.xen.store if key.startswith('/local/domain/0/backend/pci/%d' % GUEST_ID)]
    # Then pci_assignable gives both back to their driver.
    back = ready(pci_assignable, devices=[E1000_A, E1000_B], state='absent')
    assert back['changed'] is True and ready.kernel.driver(E1000_A) == ready.kernel.driver(E1000_B) == 'e1000'


def test_a_guest_given_by_its_id_is_the_same_guest(ready):
    result = ready(xen_guest_pci, name=str(GUEST_ID), devices=[E1000_A])
    assert result['changed'] is True and result['domain'] == {'name': GUEST, 'domid': GUEST_ID, 'running': True}
    assert ready(xen_guest_pci, domain=GUEST, devices=[E1000_A])['changed'] is False


def test_check_mode_changes_nothing(ready):
    snapshot = HostSnapshot.take(ready.kernel.root, ready.xen)
    calls = len(ready.xen.calls)
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B], _ansible_check_mode=True,
                   _ansible_diff=True)
    assert result['changed'] is True
    assert [device['action'] for device in result['devices']] == ['attached', 'attached']
    assert result['guest_devices'] == {'before': [], 'after': [E1000_A, E1000_B]}
    assert result['diff']['after'] == '%s\n%s\n' % (E1000_A, E1000_B)
    assert _changes(ready.xen, calls) == []
    assert_unchanged(snapshot, ready.kernel.root, ready.xen)


def test_check_mode_of_make_assignable_and_detach_changes_nothing(run):
    run.xen.attach(XHCI, GUEST_ID)
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A], make_assignable=True, _ansible_check_mode=True)
    assert result['changed'] is True and result['devices'][0]['made_assignable'] is True
    assert [(device['address'], device['action']) for device in result['assignable']] == [(E1000_A, 'assigned')]
    absent = run(xen_guest_pci, domain=GUEST, devices=[XHCI], state='absent', _ansible_check_mode=True)
    assert absent['changed'] is True and absent['guest_devices'] == {'before': [XHCI], 'after': []}
    assert run.kernel.writes == []
    assert_unchanged(snapshot, run.kernel.root, run.xen)


# ---- make_assignable ------------------------------------------------------------------------------

def test_make_assignable_binds_through_the_journal_then_attaches(run):
    kernel, xen = run.kernel, run.xen
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A, {'address': E1000_B, 'seize': 'yes'}],
                 make_assignable=True)
    assert not result.get('failed'), result['msg']
    assert [device['made_assignable'] for device in result['devices']] == [True, True]
    assert [(device['address'], device['action'], device['original_driver']) for device in result['assignable']] == \
        [(E1000_A, 'assigned', 'e1000'), (E1000_B, 'assigned', 'e1000')]
    entry = _journal(kernel)[E1000_A]
    assert entry['original_driver'] == 'e1000' and entry['phase'] == 'held'
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert xen.guest_devices(GUEST_ID) == [E1000_A, E1000_B]
    assert ['xl', 'pci-attach', str(GUEST_ID), '%s,seize=1' % E1000_B] in xen.calls
    # Detached, the devices stay assignable, and the journal still knows where they belong.
    run(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B], state='absent')
    assert kernel.driver(E1000_A) == 'pciback' and _journal(kernel)[E1000_A]['phase'] == 'held'
    back = run(pci_assignable, devices=[E1000_A, E1000_B], state='absent')
    assert back['changed'] is True and kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'


def test_seize_alone_makes_only_that_device_assignable(run):
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A, {'address': E1000_B, 'seize': True}])
    assert result['failed'] is True
    assert '%s is not assignable: its driver is e1000' % E1000_A in result['msg']
    assert E1000_B not in result['msg']


def test_make_assignable_refuses_a_device_the_host_needs_and_changes_nothing(run):
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A, MGMT_NIC], make_assignable=True)
    assert result['failed'] is True
    assert 'cannot make %s, %s assignable' % (E1000_A, MGMT_NIC) in result['msg']
    assert 'carries the default route' in result['msg'] and 'nothing was changed' in result['msg']
    assert_unchanged(snapshot, run.kernel.root, run.xen)


def test_a_failed_attach_puts_the_batch_back(run):
    kernel, xen = run.kernel, run.xen
    xen.fail_commands['xl pci-attach'] = [None, 1]      # the first attach runs, the second fails
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B], make_assignable=True)
    assert result['failed'] is True
    assert result['msg'].startswith('%s: xl pci-attach %d %s failed (rc=1)' % (E1000_B, GUEST_ID, E1000_B))
    assert 'detached again %s' % E1000_A in result['msg'] and 'gave %s, %s back' % (E1000_A, E1000_B) in result['msg']
    assert xen.guest_devices(GUEST_ID) == [] and xen.record(E1000_A, 'domid') is None
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert _journal(kernel) == {}
    assert E1000_A not in xen.owner and E1000_B not in xen.owner


def test_a_guest_created_without_passthrough_is_named_with_what_to_change(ready):
    xen = ready.xen
    xen.create_domain(7, 'plain', passthrough=False)     # its config had neither pci = [...] nor passthrough
    result = ready(xen_guest_pci, domain='plain', devices=[E1000_A])
    assert result['failed'] is True
    assert 'xc_assign_device failed: Operation not supported' in result['msg']
    assert 'plain (id 7) was created without PCI passthrough' in result['msg']
    assert 'passthrough = "enabled"' in result['msg']
    assert xen.guest_devices(7) == [] and ready.kernel.driver(E1000_A) == 'pciback'
    other = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A])     # a guest with passthrough: no hint
    assert not other.get('failed') and other['changed'] is True, other


def test_a_failed_detach_names_what_was_detached(ready):
    ready(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B])
    ready.xen.fail_commands['xl pci-detach'] = [None, 1]
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A, E1000_B], state='absent')
    assert result['failed'] is True
    assert 'detached before the failure: %s' % E1000_A in result['msg']
    assert ready.xen.guest_devices(GUEST_ID) == [E1000_B]


# ---- options ----------------------------------------------------------------------------------------

def test_options_are_passed_as_xl_spells_them(ready):
    ready(xen_guest_pci, domain=GUEST, devices=[{'address': E1000_A, 'permissive': 'true', 'msitranslate': 1,
                                                 'power_mgmt': False, 'rdm_policy': 'Relaxed'}])
    assert ['xl', 'pci-attach', str(GUEST_ID),
            '%s,permissive=1,msitranslate=1,power_mgmt=0,rdm_policy=relaxed' % E1000_A] in ready.xen.calls
    assert ready.xen.store['/local/domain/0/backend/pci/%d/0/opts-0' % GUEST_ID] == \
        'msitranslate=1,power_mgmt=0,permissive=1,rdm_policy=relaxed'


def test_an_attached_device_keeps_its_options_and_the_notes_say_so(ready):
    ready(xen_guest_pci, domain=GUEST, devices=[E1000_A])
    result = ready(xen_guest_pci, domain=GUEST, devices=[{'address': E1000_A, 'permissive': True}])
    assert result['changed'] is False
    assert any('%s is attached to %s (id %d) with permissive=0 (asked 1)' % (E1000_A, GUEST, GUEST_ID) in note
               for note in result['notes']), result['notes']


# ---- refusals: each changes nothing ---------------------------------------------------------------

def _refused(run, named, **args):
    """Run the module with ``args``: it must fail, the message naming each of ``named``, and change nothing."""
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    writes, calls = len(run.kernel.writes), len(run.xen.calls)
    result = run(xen_guest_pci, **args)
    assert result.get('failed') is True, result
    for text in named:
        assert text in result['msg'], (text, result['msg'])
    assert 'nothing was changed' in result['msg'] or 'embedded null character' in result['msg']
    assert run.kernel.writes[writes:] == []
    assert _changes(run.xen, calls) == []
    assert_unchanged(snapshot, run.kernel.root, run.xen)
    return result


@pytest.mark.parametrize('domain, named', [
    ('nosuchguest', ["no running Xen domain is named 'nosuchguest'", 'xl list shows: %s, %s' % (GUEST, OTHER)]),
    ('Domain-0', ["domain 'Domain-0' is dom0"]),
    ('0', ["domain '0' is dom0"]),
    ('42', ["no running Xen domain is named '42'"]),
    ('', ["domain must name a Xen guest, got ''"]),
    ('web1\n', ["domain 'web1\\n' has a control character"]),
])
def test_a_domain_that_is_not_a_running_guest_is_refused(ready, domain, named):
    _refused(ready, named, domain=domain, devices=[E1000_A])


def test_a_shut_down_guest_is_refused(ready):
    ready.xen.domain_states[GUEST_ID] = '---s--'
    _refused(ready, ["domain 'web1' (id 3) is shut down"], domain=GUEST, devices=[E1000_A])


@pytest.mark.parametrize('state', ['present', 'absent'])
def test_a_device_not_on_the_bus_is_refused(ready, state):
    _refused(ready, ['no such PCI device: %s' % MISSING], domain=GUEST, devices=[E1000_A, MISSING], state=state)


@pytest.mark.parametrize('device, named', [
    ('00:03.0; reboot', ["'00:03.0; reboot' is not a PCI function address"]),
    ('0000:00:03.*', ["'0000:00:03.*' is not a PCI function address"]),
    ({'address': '00:20.0'}, ["'00:20.0': device number 0x20 is out of range"]),
    ({'address': E1000_A, 'permisive': True}, ["'permisive' is not a device option xl knows"]),
    ({'address': E1000_A, 'vslot': 3}, ["'vslot' is a key of xl that this module does not set"]),
    ({'address': E1000_A, 'permissive': 'maybe'}, ["permissive='maybe' is not a boolean"]),
    ({'address': E1000_A, 'rdm_policy': 'loose'}, ["rdm_policy='loose' is not strict or relaxed"]),
    ({'permissive': True}, ["{'permissive': True} has no address"]),
    (7, ['7 is neither a PCI address nor a dict']),
])
def test_bad_devices_are_refused_naming_the_value(ready, device, named):
    _refused(ready, named + ['invalid devices'], domain=GUEST, devices=[E1000_B, device])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=bad_addresses, in_dict=st.booleans(), state=st.sampled_from(['present', 'absent']), check=st.booleans())
def test_any_bad_address_is_refused_naming_it_and_changes_nothing(ready, bad, in_dict, state, check):
    result = _refused(ready, [], domain=GUEST, devices=[E1000_A, {'address': bad} if in_dict else bad], state=state,
                      _ansible_check_mode=check)
    # ansible-core itself refuses a NUL anywhere in the arguments, before the module's code runs.
    assert repr(bad) in result['msg'] or ('\0' in bad and 'embedded null character' in result['msg'])


def test_one_device_twice_with_different_options_is_refused(ready):
    _refused(ready, ['%s is listed twice with different options' % E1000_A], domain=GUEST,
             devices=[E1000_A, {'address': '00:03.0', 'permissive': True}])


def test_a_device_that_is_not_assignable_is_refused_naming_it(run):
    _refused(run, ['%s is not assignable: its driver is xhci_hcd, not pciback' % XHCI, 'make_assignable: true'],
             domain=GUEST, devices=[XHCI])


def test_a_device_in_another_running_guest_is_refused_naming_that_guest(ready):
    ready(xen_guest_pci, domain=OTHER, devices=[E1000_B])
    result = _refused(ready, ['%s is attached to domain %s (id %d)' % (E1000_B, OTHER, OTHER_ID),
                              'xl pci-detach %s %s' % (OTHER, E1000_B)],
                      domain=GUEST, devices=[E1000_A, E1000_B])
    assert ready.xen.guest_devices(OTHER_ID) == [E1000_B] and ready.xen.guest_devices(GUEST_ID) == []
    assert [device['action'] for device in result['devices']] == ['unchanged', 'unchanged']
    # Only the PV backend names the other guest (libxl before 4.15 kept no domid in its record): still refused.
    del ready.xen.store['/libxl/pci/0000-00-04-0/domid']
    _refused(ready, ['%s is attached to domain %s' % (E1000_B, OTHER)], domain=GUEST, devices=[E1000_B])
    # Detaching it from this guest, which does not have it, leaves it alone and says so.
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_B], state='absent')
    assert result['changed'] is False
    assert any('attached to domain %s (id %d), not to %s' % (OTHER, OTHER_ID, GUEST) in note for note in result['notes'])


def test_a_device_left_by_a_destroyed_guest_can_be_attached(ready):
    ready.xen.attach(E1000_A, 7)
    ready.xen.destroy(7)
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A])
    assert not result.get('failed'), result['msg']
    assert ready.xen.guest_devices(GUEST_ID) == [E1000_A]


def test_a_stale_libxl_record_is_refused_with_the_way_out(ready):
    ready.xen.set('/libxl/pci/0000-00-03-0/domid', '9')
    _refused(ready, ['%s: libxl records it as attached to domain 9, which does not run' % E1000_A,
                     'xenstore-rm /libxl/pci/0000-00-03-0/domid'], domain=GUEST, devices=[E1000_A])


def test_bad_arguments_are_refused_by_the_argument_spec(ready):
    result = ready(xen_guest_pci, domain=GUEST, devices=[E1000_A], state='attached')
    assert result['failed'] is True and 'state' in result['msg']


# ---- hosts that cannot -----------------------------------------------------------------------------

def test_arm_xen_without_pci_passthrough_is_refused_with_the_reason(dom0):
    run = dom0(arch='aarch64', quarantine=False, release='6.1.0-44-arm64')
    run(pci_assignable, devices=[E1000_A])          # dom0's part works there (the arm64 rig)
    assert run.kernel.driver(E1000_A) == 'pciback'
    result = _refused(run, ['Xen 4.17 on aarch64 has no PCI passthrough to guests',
                            'no device can be attached to a guest on this host'],
                      domain=GUEST, devices=[E1000_A])
    assert result['hypervisor_limit'].startswith('Xen 4.17 on aarch64 has no PCI passthrough to guests')
    _refused(run, ['Xen 4.17 on aarch64'], domain=GUEST, devices=[E1000_B], make_assignable=True)
    # Nothing can be attached there, so there is nothing to detach.
    absent = run(xen_guest_pci, domain=GUEST, devices=[E1000_A], state='absent')
    assert absent['changed'] is False and not absent.get('failed')


def test_arm_xen_4_21_without_an_iommu_is_refused(dom0):
    run = dom0(arch='aarch64', xen_version=(4, 21), quarantine=False, release='6.12.0-arm64')
    result = _refused(run, ['Xen 4.21 on aarch64 reports no PCI passthrough support (virt_caps: hvm hap vpmu'],
                      domain=GUEST, devices=[E1000_A], make_assignable=True)
    assert 'no device can be attached' in result['hypervisor_limit']


def test_arm_xen_4_21_with_an_iommu_attaches(dom0):
    run = dom0(arch='aarch64', xen_version=(4, 21), release='6.12.0-arm64')
    result = run(xen_guest_pci, domain=GUEST, devices=[E1000_A], make_assignable=True)
    assert not result.get('failed'), result['msg']
    assert run.xen.guest_devices(GUEST_ID) == [E1000_A]


def test_a_dom0_without_xenstored_is_refused(dom0, tmp_path):
    run = dom0()
    os.unlink(os.path.join(run.kernel.root, 'proc', '412', 'comm'))
    _refused(run, ['xenstored is not running or xl is not installed'], domain=GUEST, devices=[E1000_A])


# ---- the guest's configuration file ----------------------------------------------------------------

WEB1_CFG = """# web1: a PV guest
name = "web1"
memory = 512
vcpus = 1
disk = [ 'phy:/dev/vg0/web1,xvda,w' ]
pci = [ '0000:00:06.0' ]      # the igb port
on_poweroff = "destroy"
"""


def _config(run, text=WEB1_CFG, name='web1.cfg'):
    """The guest's configuration under the fake root (so that snapshots see it); its path."""
    path = os.path.join(run.kernel.root, 'etc', 'xen', name)
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(text)
    return path


def _read(path):
    with open(path) as handle:
        return handle.read()


def test_config_is_kept_in_step_with_the_running_guest(ready):
    path = _config(ready)
    result = ready(xen_guest_pci, domain=GUEST, config=path, _ansible_diff=True,
                   devices=[E1000_A, {'address': E1000_B, 'permissive': True}])
    assert not result.get('failed'), result['msg']
    assert result['changed'] is True and ready.xen.guest_devices(GUEST_ID) == [E1000_A, E1000_B]
    assert result['config'] == {'path': path, 'changed': True, 'added': [E1000_A, E1000_B], 'replaced': [],
                                'removed': []}
    assert [device['config_action'] for device in result['devices']] == ['added', 'added']
    text = _read(path)
    assert "pci = [ '0000:00:06.0', '%s', '%s,permissive=1' ]      # the igb port\n" % (E1000_A, E1000_B) in text
    assert text.replace("pci = [ '0000:00:06.0', '%s', '%s,permissive=1' ]" % (E1000_A, E1000_B),
                        "pci = [ '0000:00:06.0' ]") == WEB1_CFG
    # Two diffs: the guest's devices, then the file.
    assert [diff['before_header'] for diff in result['diff']] == ['xl pci-list web1', path]
    assert result['diff'][1]['before'] == WEB1_CFG and result['diff'][1]['after'] == text

    again = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A, {'address': E1000_B, 'permissive': 1}])
    assert again['changed'] is False and again['config']['changed'] is False and _read(path) == text

    removed = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A], state='absent')
    assert removed['changed'] is True and removed['config']['removed'] == [E1000_A]
    assert ready.xen.guest_devices(GUEST_ID) == [E1000_B]
    assert "pci = [ '0000:00:06.0', '%s,permissive=1' ]" % E1000_B in _read(path)


def test_a_guest_that_does_not_run_only_has_its_file_changed(run):
    path = _config(run, WEB1_CFG.replace('web1', 'web9'), 'web9.cfg')
    calls = len(run.xen.calls)
    result = run(xen_guest_pci, domain='web9', config=path, devices=[XHCI, {'address': E1000_A, 'seize': True}],
                 make_assignable=True)
    assert not result.get('failed'), result['msg']
    assert result['changed'] is True
    assert result['domain'] == {'name': 'web9', 'domid': None, 'running': False}
    assert [device['action'] for device in result['devices']] == ['unchanged', 'unchanged']
    assert any('web9 does not run: only its configuration' in note for note in result['notes'])
    assert "pci = [ '0000:00:06.0', '%s', '%s,seize=1' ]" % (XHCI, E1000_A) in _read(path)
    # Nothing else: no attach, no device moved, no journal.
    assert _changes(run.xen, calls) == []
    assert run.kernel.driver(XHCI) == 'xhci_hcd' and run.kernel.driver(E1000_A) == 'e1000'
    assert not os.path.exists(os.path.join(run.kernel.root, 'var/lib/xenpci_passthrough/drivers.json'))


def test_a_shut_down_guest_with_a_config_only_has_its_file_changed(ready):
    path = _config(ready)
    ready.xen.domain_states[GUEST_ID] = '---s--'
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A])
    assert result['changed'] is True and result['domain']['running'] is False
    assert ready.xen.guest_devices(GUEST_ID) == []
    assert E1000_A in _read(path)


def test_a_device_gone_from_the_bus_can_still_leave_the_file(ready):
    path = _config(ready, WEB1_CFG.replace("'0000:00:06.0'", "'0000:00:06.0', '%s'" % MISSING))
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[MISSING], state='absent')
    assert result['changed'] is True and result['config']['removed'] == [MISSING]
    assert result['devices'][0]['config_action'] == 'removed' and result['devices'][0]['action'] == 'unchanged'
    assert _read(path) == WEB1_CFG


def test_check_mode_with_a_config_changes_nothing(ready):
    path = _config(ready)
    snapshot = HostSnapshot.take(ready.kernel.root, ready.xen)
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A], _ansible_check_mode=True,
                   _ansible_diff=True)
    assert result['changed'] is True and result['config']['changed'] is True
    assert E1000_A in result['diff'][1]['after'] and _read(path) == WEB1_CFG
    assert_unchanged(snapshot, ready.kernel.root, ready.xen)


@pytest.mark.parametrize('text, named', [
    (WEB1_CFG + 'memory = 512M\n', ['web1.cfg line 8', "xl cannot read this line ('memory = 512M')"]),
    (WEB1_CFG + "pci += [ '00:05.0' ]\n", ['web1.cfg line 8', 'pci +=']),
    (WEB1_CFG.replace("'0000:00:06.0'", "'06.0,permissive=2'"), ['web1.cfg line 6']),
    (WEB1_CFG.replace("'0000:00:06.0'", "'00:06.*'"), ['line 6', 'names every function']),
    (WEB1_CFG.replace('"web1"', '"db2"'), ["is the one of 'db2' (name = 'db2'), not of 'web1'"]),
])
def test_a_config_that_cannot_be_edited_safely_is_refused(ready, text, named):
    path = _config(ready, text)
    _refused(ready, ['the guest configuration %s' % path] + named, domain=GUEST, config=path, devices=[E1000_A])
    assert _read(path) == text


def test_a_missing_config_or_a_symbolic_link_is_refused(ready):
    _refused(ready, ['does not exist'], domain=GUEST, config=os.path.join(ready.kernel.root, 'etc/xen/none.cfg'),
             devices=[E1000_A])
    target = _config(ready)
    link = os.path.join(ready.kernel.root, 'etc', 'xen', 'link.cfg')
    os.symlink(target, link)
    _refused(ready, ['symbolic link'], domain=GUEST, config=link, devices=[E1000_A])


def test_a_guest_that_does_not_run_needs_its_name(ready):
    path = _config(ready)
    _refused(ready, ["no running Xen domain has the id '42'"], domain='42', config=path, devices=[E1000_A])


def test_a_failed_attach_leaves_the_file_as_it_was(ready):
    path = _config(ready)
    ready.xen.fail_commands['xl pci-attach'] = [1]
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A])
    assert result['failed'] is True and _read(path) == WEB1_CFG


def test_a_file_that_cannot_be_written_puts_the_guest_back(ready, monkeypatch):
    path = _config(ready)

    def refuse(planned, backup, labels):
        raise FileEditError('cannot write %s: No space left on device' % planned.path)
    monkeypatch.setattr(guests, 'write_planned', refuse)
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A, E1000_B])
    assert result['failed'] is True
    assert 'No space left on device; the file was left as it was' in result['msg']
    assert 'detached again %s, %s' % (E1000_A, E1000_B) in result['msg']
    assert ready.xen.guest_devices(GUEST_ID) == [] and _read(path) == WEB1_CFG


def test_backup_keeps_a_copy(ready):
    path = _config(ready)
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A], backup=True)
    backup = result['config']['backup_file']
    assert backup != path and _read(backup) == WEB1_CFG and E1000_A in _read(path)


def test_a_device_another_guest_config_names_is_reported_and_the_notes_say_why(run):
    mine = _config(run, WEB1_CFG.replace('web1', 'web9'), 'web9.cfg')
    other = _config(run, WEB1_CFG.replace("'0000:00:06.0'", "'%s'" % E1000_A), 'web1.cfg')
    _config(run, 'pci = [ 0000:00:06.0 ]\n', 'broken.cfg')           # xl cannot read it: it names nothing
    _config(run, "pci = [ '%s' ]\n" % E1000_A, 'web1.cfg.orig')      # not a *.cfg file
    result = run(xen_guest_pci, domain='web9', config=mine, devices=[E1000_A, XHCI], make_assignable=True)
    assert not result.get('failed'), result['msg']
    assert result['other_configs'] == {E1000_A: [other]}
    assert any(note.startswith('%s is also in the guest configuration %s' % (E1000_A, other))
               for note in result['notes']), result['notes']
    broken = os.path.join(run.kernel.root, 'etc', 'xen', 'broken.cfg')
    assert any(note.startswith('the guest configuration %s was not read' % broken) for note in result['notes'])
    # web9's own file names 0000:00:06.0 and is not another one for itself; web2's is. Taking the device out of
    # web9's list reports web2's, without a note.
    web2 = _config(run, WEB1_CFG.replace('web1', 'web2'), 'web2.cfg')
    again = run(xen_guest_pci, domain='web9', config=mine, devices=['0000:00:06.0'], state='absent')
    assert not again.get('failed'), again['msg']
    assert again['other_configs'] == {'0000:00:06.0': [web2]}
    assert not any('also in' in note for note in again['notes'])


def test_no_other_config_no_report(ready):
    path = _config(ready)
    result = ready(xen_guest_pci, domain=GUEST, config=path, devices=[E1000_A])
    assert result['other_configs'] == {} and not any('also in' in note for note in result['notes'])


# ---- follow_identity: an address whose records name another device than the one there now ----------

def _renumbered(run, hide=False):
    """The e1000e at NIC made assignable (and, with ``hide``, on the hide list), then a card added behind PORT_B took
    bus 3: a GPU is at NIC now, on nouveau, and the e1000e at MOVED, on e1000e again."""
    add_nic_behind_a_port(run.kernel)
    assert run(pci_assignable, devices=[NIC])['changed'] is True
    if hide:
        assert run(module_params, name='xen-pciback', params={'hide': [NIC]})['changed'] is True
    renumber(run.kernel)


@pytest.mark.parametrize('args', [
    {'make_assignable': True},
    {},
    {'state': 'absent'},
    {'config': 'web1.cfg', 'make_assignable': True},
])
def test_a_drifted_address_is_refused_and_nothing_is_changed(run, args):
    _renumbered(run)
    if 'config' in args:
        args = dict(args, config=_config(run, WEB1_CFG.replace("'0000:00:06.0'", "'%s'" % NIC)))
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    calls, writes = len(run.xen.calls), len(run.kernel.writes)
    result = run(xen_guest_pci, domain=GUEST, devices=[NIC], **args)
    assert result['failed'] is True
    assert 'records %s as 8086:10d3' % NIC in result['msg'] and '10de:1b80' in result['msg'], result['msg']
    assert 'follow_identity: true' in result['msg'] and result['msg'].endswith('nothing was changed')
    assert _changes(run.xen, calls) == [] and run.kernel.writes[writes:] == []
    assert_unchanged(snapshot, run.kernel.root, run.xen)


def test_follow_identity_makes_the_recorded_device_assignable_where_it_is_now_and_attaches_it(run):
    _renumbered(run)
    kernel, xen = run.kernel, run.xen
    result = run(xen_guest_pci, domain=GUEST, devices=[{'address': NIC, 'permissive': True}], make_assignable=True,
                 follow_identity=True)
    assert not result.get('failed'), result['msg']
    [device] = result['devices']
    assert (device['address'], device['followed_from'], device['action']) == (MOVED, NIC, 'attached')
    assert device['made_assignable'] is True and device['driver_before'] == 'e1000e'
    [assigned] = result['assignable']
    assert (assigned['address'], assigned['followed_from'], assigned['action']) == (MOVED, NIC, 'assigned')
    assert xen.guest_devices(GUEST_ID) == [MOVED] and ['xl', 'pci-attach', str(GUEST_ID), '%s,permissive=1' % MOVED] \
        in xen.calls
    assert kernel.driver(MOVED) == 'pciback' and kernel.driver(NIC) == 'nouveau'
    # The journal entry moved with the device, as pci_assignable moves it.
    recorded = journal(kernel)
    assert NIC not in recorded and recorded[MOVED]['original_driver'] == 'e1000e'
    assert any('followed it to %s' % MOVED in note for note in result['notes'])
    # The journal records it at its address now: detached there, then given back to its driver.
    detached = run(xen_guest_pci, domain=GUEST, devices=[MOVED], state='absent')
    assert detached['changed'] is True and xen.guest_devices(GUEST_ID) == []
    assert run(pci_assignable, devices=[MOVED], state='absent')['changed'] is True
    assert kernel.driver(MOVED) == 'e1000e'


def test_follow_identity_attaches_a_device_already_assignable_and_moves_its_config_entry(run):
    _renumbered(run, hide=True)        # the hide list keeps naming NIC as the e1000e
    kernel, xen = run.kernel, run.xen
    assert run(pci_assignable, devices=[NIC], follow_identity=True)['devices'][0]['address'] == MOVED
    path = _config(run, WEB1_CFG.replace("'0000:00:06.0'", "'%s'" % NIC))
    calls = len(xen.calls)
    result = run(xen_guest_pci, domain=GUEST, devices=[NIC], config=path, follow_identity=True)
    assert not result.get('failed'), result['msg']
    assert [(device['address'], device['followed_from'], device['action'], device['made_assignable'],
             device['config_action']) for device in result['devices']] == [(MOVED, NIC, 'attached', False, 'added')]
    assert result['assignable'] == [] and xen.guest_devices(GUEST_ID) == [MOVED]
    assert result['config']['added'] == [MOVED] and result['config']['removed'] == [NIC]
    assert "pci = [ '%s' ]" % MOVED in _read(path) and NIC not in _read(path)
    assert ['xl', 'pci-attach', str(GUEST_ID), MOVED] in _changes(xen, calls)
    again = run(xen_guest_pci, domain=GUEST, devices=[NIC], config=path, follow_identity=True)
    assert again['changed'] is False and again['devices'][0]['address'] == MOVED
    refused = run(xen_guest_pci, domain=GUEST, devices=[NIC], state='absent', config=path)
    assert refused['failed'] is True and 'the hide list of' in refused['msg']
    detached = run(xen_guest_pci, domain=GUEST, devices=[NIC], state='absent', config=path, follow_identity=True)
    assert detached['changed'] is True and detached['devices'][0]['action'] == 'detached'
    assert detached['config']['removed'] == [MOVED] and xen.guest_devices(GUEST_ID) == []
    assert kernel.driver(MOVED) == 'pciback' and kernel.driver(NIC) == 'nouveau'


def test_check_mode_of_a_followed_device_changes_nothing(run):
    _renumbered(run)
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    writes = len(run.kernel.writes)
    result = run(xen_guest_pci, domain=GUEST, devices=[NIC], make_assignable=True, follow_identity=True,
                 _ansible_check_mode=True)
    assert result['changed'] is True and result['devices'][0]['address'] == MOVED
    assert result['assignable'][0]['followed_from'] == NIC and result['guest_devices']['after'] == [MOVED]
    assert run.kernel.writes[writes:] == []
    assert_unchanged(snapshot, run.kernel.root, run.xen)


def test_a_recorded_device_with_a_twin_in_no_recorded_slot_is_refused_when_followed(run):
    _renumbered(run)
    kernel = run.kernel
    kernel.unplug(MOVED)
    kernel.add_device('0000:05:00.0', vendor='8086', device='10d3', driver='e1000e', parent=PORT_B)
    kernel.add_device('0000:06:00.0', vendor='8086', device='10d3', driver='e1000e')
    snapshot = HostSnapshot.take(kernel.root, run.xen)
    refused = run(xen_guest_pci, domain=GUEST, devices=[NIC], make_assignable=True, follow_identity=True)
    assert refused['failed'] is True and 'matches 2 devices, 0000:05:00.0, 0000:06:00.0' in refused['msg']
    assert refused['msg'].endswith('nothing was changed')
    assert_unchanged(snapshot, kernel.root, run.xen)


def test_a_recorded_device_that_left_is_refused_when_followed(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    run.kernel.replace_device(NIC, vendor='10de', device='1b80', class_code='030000', driver='nouveau', parent=PORT_B)
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    refused = run(xen_guest_pci, domain=GUEST, devices=[NIC], follow_identity=True)
    assert refused['failed'] is True and 'has left the host' in refused['msg']
    assert refused['msg'].endswith('nothing was changed')
    assert_unchanged(snapshot, run.kernel.root, run.xen)


def test_a_followed_device_another_request_names_with_other_options_is_refused(run):
    _renumbered(run)
    refused = run(xen_guest_pci, domain=GUEST, devices=[NIC, {'address': MOVED, 'permissive': True}],
                  make_assignable=True, follow_identity=True)
    assert refused['failed'] is True
    assert '%s is asked twice with different options (%s followed to it)' % (MOVED, NIC) in refused['msg']
    same = run(xen_guest_pci, domain=GUEST, devices=[NIC, MOVED], make_assignable=True, follow_identity=True)
    assert not same.get('failed'), same['msg']
    assert [device['address'] for device in same['devices']] == [MOVED]


def test_a_device_the_binder_follows_elsewhere_is_refused_or_given_back(run, monkeypatch):
    _renumbered(run)
    # As if the devices changed between the task's reading and the binder's: the task expects the e1000e at E1000_A,
    # the binder finds it at MOVED. The binder's check (in check mode, before anything changes) refuses it.
    monkeypatch.setattr(guests, 'follow', lambda recorded, devices_dir, addresses: E1000_A)
    snapshot = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(xen_guest_pci, domain=GUEST, devices=[NIC], make_assignable=True, follow_identity=True)
    assert result['failed'] is True
    assert 'the records were followed elsewhere' in result['msg'], result['msg']
    assert '%s to %s, not to %s; nothing was changed' % (NIC, MOVED, E1000_A) in result['msg']
    assert_unchanged(snapshot, run.kernel.root, run.xen)
    # Should it happen only once the lock is taken, the device the binder made assignable is given back.
    monkeypatch.setattr(guests.GuestDevices, '_make_assignable_check', lambda self, plans: [])
    result = run(xen_guest_pci, domain=GUEST, devices=[NIC], make_assignable=True, follow_identity=True)
    assert result['failed'] is True
    assert 'gave %s back to its driver; nothing was attached' % MOVED in result['msg'], result['msg']
    assert run.kernel.driver(MOVED) == 'e1000e' and run.kernel.driver(E1000_A) == 'e1000'
    assert run.xen.guest_devices(GUEST_ID) == []
