# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The guests' devices: the requests a task gives, and the fake xl's guest commands against libxl 4.17's behaviour
(which the module's tests rely on), read through the collection's XenToolstack."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.guests import (
    GuestPciError,
    check_domain_name,
    parse_device_requests,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import ToolstackError, XenToolstack
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, XHCI
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import DOMID_IO
from ansible_collections.xenpci.passthrough.tests.unit.strategies import bad_addresses


# ---- requests ------------------------------------------------------------------------------------

def test_requests_are_canonical_and_spell_xl_options():
    requests = parse_device_requests(['00:03.0', {'address': '0000:00:04.0', 'permissive': 'yes', 'seize': 0,
                                                  'rdm_policy': 'RELAXED'}, '0000:00:03.0'])
    assert [request.address for request in requests] == [E1000_A, E1000_B]
    assert requests[0].spec() == E1000_A
    assert requests[1].options == {'permissive': True, 'seize': False, 'rdm_policy': 'relaxed'}
    assert requests[1].spec() == '%s,permissive=1,seize=0,rdm_policy=relaxed' % E1000_B


def test_every_bad_entry_is_named_at_once():
    with pytest.raises(GuestPciError) as caught:
        parse_device_requests(['00:03.0', 'nonsense', {'address': E1000_B, 'power_mgmt': 2, 'msi': 1}])
    message = str(caught.value)
    assert "'nonsense' is not a PCI function address" in message
    assert 'power_mgmt=2 is not a boolean' in message and "'msi' is not a device option xl knows" in message
    assert message.endswith('nothing was changed')


@settings(max_examples=60, deadline=None)
@given(bad_addresses)
def test_a_bad_address_is_refused_as_a_string_or_in_a_dict(bad):
    for entry in (bad, {'address': bad}):
        with pytest.raises(GuestPciError) as caught:
            parse_device_requests([E1000_A, entry])
        assert repr(bad) in str(caught.value)


@pytest.mark.parametrize('name', ['', '   ', None, 'a\nb', 'x\0', 'del\x7f', 'nel\x85', 3])
def test_a_domain_name_that_cannot_be_is_refused(name):
    with pytest.raises(GuestPciError, match='nothing was changed'):
        check_domain_name(name)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2fff,
                                      blacklist_categories=('Cc', 'Cs', 'Zs', 'Zl', 'Zp')), min_size=1, max_size=30))
def test_a_printable_name_is_taken_as_it_is(name):
    assert check_domain_name(name) == name


# ---- the fake xl, as libxl 4.17 behaves ------------------------------------------------------------

@pytest.fixture
def guest(xen):
    xen.create_domain(3, 'web1')
    return xen


def xl(xen, *args):
    return xen.run(['xl'] + list(args))


def test_xl_list_and_domid_name_the_running_domains(guest):
    toolstack = XenToolstack(guest.commands, (4, 17), 'x86_64')
    assert [(entry['name'], entry['domid']) for entry in toolstack.domains()] == [('Domain-0', 0), ('web1', 3)]
    assert xl(guest, 'domid', 'web1') == (0, '3\n', '')
    rc, _out, err = xl(guest, 'domid', 'nope')
    assert rc == 1 and "Can't get domid of domain name 'nope', maybe this domain does not exist." in err


def test_attach_refuses_a_device_that_is_not_assignable(guest, kernel):
    rc, _out, err = xl(guest, 'pci-attach', 'web1', XHCI)          # still on xhci_hcd
    assert rc == 1 and 'PCI device 0:0:5.0 is not assignable' in err
    assert guest.record(XHCI, 'domid') is None and guest.guest_devices(3) == []
    assert kernel.driver(XHCI) == 'xhci_hcd'


def test_attach_list_detach(guest, kernel):
    assert xl(guest, 'pci-assignable-add', E1000_A)[0] == 0
    assert xl(guest, 'pci-list', 'web1') == (0, '', '')              # no device: not even the header
    assert xl(guest, 'pci-attach', 'web1', '00:03.0,permissive=1') == (0, '', '')
    assert xl(guest, 'pci-list', '3') == (0, 'Vdev Device\n00.0 %s\n' % E1000_A, '')
    assert guest.owner[E1000_A] == 3 and guest.record(E1000_A, 'domid') == '3'
    assert ('sys/bus/pci/drivers/pciback/permissive', E1000_A) in kernel.writes
    assert E1000_A not in xl(guest, 'pci-assignable-list')[1]
    # Attached already: libxl's record has a domid, so it is not assignable any more.
    rc, _out, err = xl(guest, 'pci-attach', 'web1', E1000_A)
    assert rc == 1 and 'is not assignable' in err
    assert guest.guest_devices(3) == [E1000_A]
    assert xl(guest, 'pci-detach', 'web1', E1000_A) == (0, '', '')
    assert guest.guest_devices(3) == [] and guest.record(E1000_A, 'domid') is None
    assert guest.owner[E1000_A] == DOMID_IO and kernel.driver(E1000_A) == 'pciback'


def test_detach_of_a_device_the_guest_does_not_have_fails(guest):
    for address in (E1000_A, E1000_B):
        assert xl(guest, 'pci-assignable-add', address)[0] == 0
    rc, _out, _err = xl(guest, 'pci-detach', 'web1', E1000_A)         # the guest has no device at all
    assert rc == 1
    xl(guest, 'pci-attach', 'web1', E1000_B)
    rc, _out, err = xl(guest, 'pci-detach', 'web1', E1000_A)
    assert rc == 1 and 'PCI device not attached to this domain' in err


def test_detach_moves_the_later_backend_entries_down(guest):
    for address in (E1000_A, E1000_B, XHCI):
        assert xl(guest, 'pci-assignable-add', address)[0] == 0
        assert xl(guest, 'pci-attach', 'web1', address)[0] == 0
    assert xl(guest, 'pci-detach', '3', E1000_A)[0] == 0
    assert guest.guest_devices(3) == [E1000_B, XHCI]
    assert guest.store['/local/domain/0/backend/pci/3/0/num_devs'] == '2'
    assert '/local/domain/0/backend/pci/3/0/dev-2' not in guest.store
    toolstack = XenToolstack(guest.commands, (4, 17), 'x86_64')
    assert [device['address'] for device in toolstack.pci_list(3)] == [E1000_B, XHCI]
    assert toolstack.backend_devices() == {E1000_B: '3', XHCI: '3'}


def test_seize_takes_the_device_from_its_driver(guest, kernel):
    assert xl(guest, 'pci-attach', 'web1', '%s,seize=1' % E1000_A)[0] == 0
    assert kernel.driver(E1000_A) == 'pciback' and guest.guest_devices(3) == [E1000_A]
    assert guest.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'


@pytest.mark.parametrize('spec, message', [
    ('%s,permisive=1' % E1000_A, 'Unknown PCI_SPEC_STRING option: permisive'),
    ('%s,rdm_policy=loose' % E1000_A, 'Unknown RDM policy: loose'),
    ('00:03', 'malformed PCI_SPEC_STRING'),
])
def test_a_malformed_spec_exits_2(guest, spec, message):
    rc, _out, err = xl(guest, 'pci-attach', 'web1', spec)
    assert rc == 2 and message in err and 'pci-attach: malformed PCI_SPEC_STRING "%s"' % spec in err


def test_an_unknown_domain_is_an_invalid_identifier(guest):
    rc, _out, err = xl(guest, 'pci-attach', 'nope', E1000_A)
    assert rc == 1 and err == 'nope is an invalid domain identifier (rc=-6)\n'
    with pytest.raises(ToolstackError, match='invalid domain identifier'):
        XenToolstack(guest.commands, (4, 17)).pci_list('nope')
