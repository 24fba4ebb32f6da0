# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xenstored, xl and modprobe for a FakeKernel, following libxl 4.17 (tools/libs/light/libxl_pci.c).

``FakeXen.commands`` is a Commands object for the collection: ``xenstore-ls -f``,
``xenstore-list``, ``xenstore-write``, ``xenstore-rm``, ``xl pci-assignable-add/-remove [-r]/-list``,
``xl info``, ``xl list``, ``xl domid``, ``xl pci-list``, ``xl pci-attach``, ``xl pci-detach`` and
``modprobe`` act on the fake host as the real tools act on a dom0, sysfs writes included (through
the same KernelSysfs, so injected failures apply to them too). ``create_domain`` starts a guest (its
``/local/domain/<domid>``), ``attach`` and ``destroy`` leave in xenstore what a guest given a
device, then destroyed, leaves there.

The guests' commands follow tools/xl/xl_pci.c and libxl_pci.c (4.17): a domain is named by its name
or, all digits, by its id (find_domain); ``xl pci-attach`` parses a PCI_SPEC_STRING
(xl-pci-configuration(5)), seizes the device with ``seize=1``, refuses a device that is not
assignable (not on pciback, or libxl's record has a ``domid``: libxl_pci_assignable), records the
``domid``, resets the device, writes ``permissive`` to pciback, assigns it in Xen and adds it to the
guest's PV PCI backend; ``xl pci-detach`` fails for a device not attached to that domain and
otherwise undoes all that, Xen putting back in quarantine a device that was quarantined.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import PCIBACK, KernelSysfs
from ansible_collections.xenpci.passthrough.tests.unit.real_commands import is_shell, run_real

DOMID_IO = 0x7ff1
XENBUS_CONNECTED = 4
XENBUS_CLOSED = 6
DEFAULT_OPTS = 'msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict'
# xl-pci-configuration(5) and xlu_pci_parse_spec_string (tools/libs/util/libxlu_pci.c, 4.17)
_SPEC_BDF_RE = re.compile(r'^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])(?:@([0-9a-fA-F]{1,2}))?$')
_SPEC_KEYS = ('bdf', 'vslot', 'permissive', 'msitranslate', 'seize', 'power_mgmt', 'rdm_policy', 'name')


class FakeXen:
    """A dom0's toolstack. ``quarantine=False`` is a Xen that refuses to quarantine (xl fails after
    dom0's part), by default without ``directio`` in ``xl info``: an x86 Xen without an IOMMU, or
    Debian 12's arm64 Xen 4.17 (built without PCI support). ``directio=True`` with it is a Xen that
    claims an IOMMU and still refuses, as Arm Xen 4.17-4.20 does on a board with an SMMU.
    """

    def __init__(self, kernel, quarantine=True, running=True, tools=True, directio=None):
        self.kernel = kernel
        self.sysfs = KernelSysfs(kernel)
        self.store = {}                   # xenstore path -> value
        self.owner = {}                   # address -> Xen owner domid (absent: dom0)
        self.can_quarantine = quarantine
        self.directio = quarantine if directio is None else directio
        self.tools = tools
        self.calls = []
        self.fail_commands = {}           # 'xl pci-assignable-add' -> [rc or None (run it), ...]
        self.driver_path_at_add = {}      # address -> libxl driver_path when xl pci-assignable-add ran
        self.domain_states = {}           # domid -> xl list's state letters (default '-b----')
        self.no_passthrough = set()       # domids created without PCI passthrough (create_domain)
        self.owner_before_attach = {}     # address -> Xen owner before a guest was given it (None: dom0)
        if running:
            kernel.start_xenstored()
        self.commands = Commands(self.find, self.run)

    # ---- Commands interface ----------------------------------------------------------------
    def find(self, name):
        if name == 'modprobe' or (self.tools and name in ('xl', 'xenstore-ls', 'xenstore-list', 'xenstore-write',
                                                          'xenstore-rm')):
            return '/usr/sbin/' + name
        return None

    def run(self, argv):
        if not isinstance(argv, (list, tuple)) or not all(isinstance(arg, str) for arg in argv):
            raise TypeError('a command is a list of arguments, never a string for a shell: %r' % (argv,))
        if is_shell(argv):
            return run_real(argv)
        argv = [os.path.basename(argv[0])] + list(argv[1:])
        self.calls.append(argv)
        key = ' '.join(argv[:2])
        pending = self.fail_commands.get(key)
        if pending and pending.pop(0) is not None:
            return 1, '', '%s: injected failure\n' % key
        handler = {'xenstore-ls': self._ls, 'xenstore-list': self._list, 'xenstore-write': self._write,
                   'xenstore-rm': self._rm, 'xl': self._xl, 'modprobe': self._modprobe}[argv[0]]
        return handler(argv[1:])

    # ---- xenstore --------------------------------------------------------------------------
    def _ls(self, args):
        path = args[-1].rstrip('/')
        if path not in self.store and not any(key.startswith(path + '/') for key in self.store):
            return 1, '', 'xenstore-ls: xs_directory (%s): No such file or directory\n' % path
        lines = ['%s = "%s"' % (key, value.replace('\\', '\\\\').replace('"', '\\"'))
                 for key, value in sorted(self.store.items()) if key.startswith(path + '/')]
        return 0, ''.join(line + '\n' for line in lines), ''

    def _list(self, args):
        path = args[-1].rstrip('/')
        below = [key[len(path) + 1:] for key in self.store if key.startswith(path + '/')]
        if path not in self.store and not below:
            return 1, '', 'xenstore-list: could not list path %s\n' % path
        return 0, ''.join('%s\n' % name for name in sorted(set(key.split('/')[0] for key in below))), ''

    def _write(self, args):
        for index in range(0, len(args), 2):
            self.set(args[index], args[index + 1])
        return 0, '', ''

    def _rm(self, args):
        for path in args:        # like xenstore-rm, a path that is not there is passed over
            for key in [key for key in self.store if key == path or key.startswith(path + '/')]:
                del self.store[key]
        return 0, '', ''

    def set(self, path, value):
        parts = path.strip('/').split('/')
        for depth in range(1, len(parts)):
            self.store.setdefault('/' + '/'.join(parts[:depth]), '')
        self.store[path] = value

    def record(self, address, key):
        return self.store.get('/libxl/pci/%s/%s' % (address.replace(':', '-').replace('.', '-'), key))

    def create_domain(self, domid, name=None, state='-b----', passthrough=True):
        """A running guest: its ``/local/domain/<domid>`` with ``domid`` and ``name`` (default ``guest<domid>``),
        listed by ``xl list`` with ``state`` (``--ps--``: shut down but not destroyed). ``passthrough=False``: created
        without PCI passthrough (no ``pci`` list nor ``passthrough`` in its config), so Xen gave it no IOMMU context
        and refuses it any device (XEN_DOMCTL_assign_device: EOPNOTSUPP)."""
        self.set('/local/domain/%d/domid' % domid, str(domid))
        self.set('/local/domain/%d/name' % domid, name or 'guest%d' % domid)
        self.domain_states[domid] = state
        if not passthrough:
            self.no_passthrough.add(domid)
        return domid

    def attach(self, address, domid, opts=DEFAULT_OPTS):
        """What ``xl pci-attach`` leaves while guest ``domid`` has the device: the guest's own directory
        ``/local/domain/<domid>`` (made here when the guest was not created first), libxl's ``domid`` in the
        device's record (libxl__device_pci_add), the next ``key-<n>``, ``dev-<n>`` and ``opts-<n>`` of the
        guest's PV PCI backend, connected (libxl__device_pci_add_xenstore), and Xen's owner."""
        if '/local/domain/%d/name' % domid not in self.store:
            self.create_domain(domid)
        self.set(self._xs_key(address, 'domid'), str(domid))
        backend = self._backend(domid)
        index = int(self.store.get(backend + '/num_devs', '0'))
        self.set(backend + '/frontend-id', str(domid))
        self.set(backend + '/key-%d' % index, address)
        self.set(backend + '/dev-%d' % index, address)
        self.set(backend + '/opts-%d' % index, opts)
        self.set(backend + '/state-%d' % index, str(XENBUS_CONNECTED))
        self.set(backend + '/num_devs', str(index + 1))
        self.set(backend + '/state', str(XENBUS_CONNECTED))
        self.owner_before_attach[address] = self.owner.get(address)
        self.owner[address] = domid

    def guest_devices(self, domid):
        """The addresses in guest ``domid``'s PV PCI backend, in order (what ``xl pci-list`` prints)."""
        backend = self._backend(domid)
        return [self.store[backend + '/dev-%d' % index] for index in range(int(self.store.get(backend + '/num_devs', '0')))]

    @staticmethod
    def _backend(domid):
        return '/local/domain/0/backend/pci/%d/0' % domid

    def domains(self):
        """{domid: name} of the running domains, dom0 (``Domain-0``) included."""
        names = {0: 'Domain-0'}
        for key, value in self.store.items():
            parts = key.split('/')
            if len(parts) == 5 and parts[1:3] == ['local', 'domain'] and parts[3].isdigit() and parts[4] == 'name':
                names[int(parts[3])] = value
        return names

    def destroy(self, domid):
        """Guest ``domid`` is gone (it powered itself off with ``on_poweroff="destroy"``, or ``xl destroy``), as
        libxl 4.17 tears it down: libxl__device_pci_destroy_all deassigns each of its devices (Xen puts a
        device that was quarantined back in quarantine, others go back to dom0) and drops the ``domid`` of
        its record, but the PV PCI backend ``backend/pci/<domid>`` stays behind, closed (state 6), because
        libxl__device_pci_remove_xenstore waits for a connected backend and gives up; the guest's
        ``/local/domain/<domid>`` is removed."""
        for address, owner in list(self.owner.items()):
            if owner == domid:
                if self.can_quarantine:
                    self.owner[address] = DOMID_IO
                else:
                    del self.owner[address]
                self.store.pop(self._xs_key(address, 'domid'), None)
        backend = '/local/domain/0/backend/pci/%d/' % domid
        for key in self.store:
            if key.startswith(backend) and key.rsplit('/', 1)[-1].split('-')[0] == 'state':
                self.store[key] = str(XENBUS_CLOSED)
        guest = '/local/domain/%d' % domid
        for key in [key for key in self.store if key == guest or key.startswith(guest + '/')]:
            del self.store[key]

    # ---- xl (libxl 4.17 semantics) -----------------------------------------------------------
    def _xl(self, args):
        command, rest = args[0], args[1:]
        if command == 'info':
            if self.kernel.arch == 'x86_64':
                caps = 'pv hvm hvm_directio pv_directio hap shadow' if self.directio else 'pv hvm hap shadow'
            else:       # what Xen 4.17 on arm64 prints (hvm_directio with an IOMMU)
                caps = 'hvm hvm_directio hap vpmu iommu_hap_pt_share gnttab-v1' if self.directio else 'hvm hap vpmu gnttab-v1'
            return 0, 'host : dom0\nrelease : %s\nvirt_caps : %s\nxen_major : 4\n' % (self.kernel.release, caps), ''
        if command == 'pci-assignable-list':
            if not self.kernel.pciback_loaded():
                return 0, '', 'Looks like pciback driver not loaded\n'
            bound = sorted(self.sysfs.pciback_bound())
            return 0, ''.join('%s \n' % address for address in bound if self.record(address, 'domid') is None), ''
        if command == 'pci-assignable-add':
            return self._assignable_add(rest[-1])
        if command == 'pci-assignable-remove':
            return self._assignable_remove(rest[-1], '-r' in rest)
        if command == 'list':
            return self._list_domains()
        if command == 'domid':
            domid = self._name_to_domid(rest[0])
            if domid is None:
                return 1, '', "Can't get domid of domain name '%s', maybe this domain does not exist.\n" % rest[0]
            return 0, '%d\n' % domid, ''
        if command in ('pci-list', 'pci-attach', 'pci-detach'):
            domid = self._find_domain(rest[0])
            if domid is None:
                return 1, '', '%s is an invalid domain identifier (rc=-6)\n' % rest[0]
            if command == 'pci-list':
                lines = ['%02x.%01x %s\n' % (int(vdevfn, 16) >> 3, int(vdevfn, 16) & 7, address)
                         for address, vdevfn in self._backend_entries(domid)]
                return 0, ('Vdev Device\n' + ''.join(lines)) if lines else '', ''
            spec, error = self._parse_spec(rest[1])
            if spec is None:
                return 2, '', '%s%s: malformed PCI_SPEC_STRING "%s"\n' % (error, command, rest[1])
            if command == 'pci-attach':
                return self._pci_attach(domid, spec)
            return self._pci_detach(domid, spec)
        return 1, '', 'unknown xl command %s\n' % command

    # ---- guests (xl_pci.c, libxl_pci.c) ----------------------------------------------------------
    def _list_domains(self):
        lines = ['Name                                        ID   Mem VCPUs\tState\tTime(s)\n']
        for domid, name in sorted(self.domains().items()):
            state = 'r-----' if domid == 0 else self.domain_states.get(domid, '-b----')
            memory, seconds = (1024, 12.5) if domid == 0 else (512, 1.5)
            lines.append('%-40s %5d %5lu %5d     %s  %8.1f\n' % (name, domid, memory, 1, state, seconds))
        return 0, ''.join(lines), ''

    def _name_to_domid(self, name):
        for domid, known in sorted(self.domains().items()):
            if known == name:
                return domid
        return None

    def _find_domain(self, text):
        """libxl_domain_qualifier_to_domid: all digits is a domid (not checked), anything else a name."""
        if text.isdigit():
            return int(text)
        return self._name_to_domid(text)

    def _backend_entries(self, domid):
        backend = self._backend(domid)
        return [(self.store[backend + '/dev-%d' % index], self.store.get(backend + '/vdevfn-%d' % index, '0'))
                for index in range(int(self.store.get(backend + '/num_devs', '0')))]

    @staticmethod
    def _parse_spec(text):
        """(spec dict, '') or (None, what xlu_cfg_printf reported) for a PCI_SPEC_STRING."""
        items = text.split(',')
        spec = {'permissive': 0, 'msitranslate': 0, 'seize': 0, 'power_mgmt': 0, 'rdm_policy': 'strict'}
        if items and '=' not in items[0]:
            match = _SPEC_BDF_RE.match(items.pop(0))
            if match is None:
                return None, ''
            spec['bdf'] = '%04x:%02x:%02x.%s' % (int(match.group(1) or '0', 16), int(match.group(2), 16),
                                                 int(match.group(3), 16), match.group(4))
        for item in items:
            key, _sep, value = item.partition('=')
            if key not in _SPEC_KEYS:
                return None, 'command line: Unknown PCI_SPEC_STRING option: %s\n' % key
            if key == 'rdm_policy':
                if value.lower() not in ('strict', 'relaxed'):
                    return None, 'command line: Unknown RDM policy: %s\n' % value
                spec[key] = value.lower()
            elif key in ('permissive', 'msitranslate', 'seize', 'power_mgmt'):
                spec[key] = int(value) if value.strip().lstrip('-').isdigit() else 0     # atoi
        if 'bdf' not in spec:
            return None, ''
        return spec, ''

    @staticmethod
    def _libxl_bdf(address):
        """libxl's "%x:%x:%x.%x" of an address in its messages."""
        domain, bus, rest = address.split(':')
        device, function = rest.split('.')
        return '%x:%x:%x.%x' % (int(domain, 16), int(bus, 16), int(device, 16), int(function, 16))

    def _add_failed(self, domid, address, reason):
        self.store.pop(self._xs_key(address, 'domid'), None)
        return 1, '', ('%slibxl: error: libxl_pci.c:1611:device_pci_add_done: Domain %d:libxl__device_pci_add failed for '
                       'PCI device %s (rc -3)\nlibxl: error: libxl_device.c:1420:device_addrm_aocomplete: unable to add '
                       'device\n' % (reason, domid, self._libxl_bdf(address)))

    def _reset(self, address):
        """libxl__device_pci_reset: pciback's do_flr where it exists, else the function's sysfs reset."""
        path = os.path.join(self.sysfs.device_dir(address), 'reset')
        if os.path.exists(path):
            self.sysfs.write(path, '1')

    def _pci_attach(self, domid, spec):
        address = spec['bdf']
        kernel = self.kernel
        if not kernel.exists(address):
            return self._add_failed(domid, address, "libxl: error: libxl_pci.c:1502:libxl__device_pci_add: Domain %d:"
                                    "PCI device %s is not assignable\n" % (domid, self._libxl_bdf(address)))
        if spec['seize'] and kernel.driver(address) != PCIBACK:
            rc, _out, err = self._assignable_add(address)
            if rc != 0:
                return self._add_failed(domid, address, err)
        if kernel.driver(address) != PCIBACK or self.record(address, 'domid') is not None:
            return self._add_failed(domid, address, "libxl: error: libxl_pci.c:1502:libxl__device_pci_add: Domain %d:"
                                    "PCI device %s is not assignable\n" % (domid, self._libxl_bdf(address)))
        self.set(self._xs_key(address, 'domid'), str(domid))
        self._reset(address)
        if domid != 0 and domid not in self.domains():
            return self._add_failed(domid, address, 'libxl: error: libxl_dom.c:35:libxl__domain_type: unable to get '
                                    'domain type for domid=%d\n' % domid)
        if spec['permissive']:
            try:
                self.sysfs.write(os.path.join(self.sysfs.drivers_dir, PCIBACK, 'permissive'), address)
            except OSError:
                return self._add_failed(domid, address, 'libxl: error: libxl_pci.c:1380:pci_add_dm_done: Domain %d:'
                                        'Setting permissive for device\n' % domid)
        if kernel.arch != 'x86_64' and not self.can_quarantine:
            # Xen built without PCI passthrough (Arm before 4.21) refuses XEN_DOMCTL_assign_device.
            return self._add_failed(domid, address, 'libxl: error: libxl_pci.c:1394:pci_add_dm_done: Domain %d:'
                                    'xc_assign_device failed: Function not implemented\n' % domid)
        if domid in self.no_passthrough:
            return self._add_failed(domid, address, 'libxl: error: libxl_pci.c:1529:pci_add_dm_done: Domain %d:'
                                    'xc_assign_device failed: Operation not supported\n' % domid)
        opts = 'msitranslate=%d,power_mgmt=%d,permissive=%d,rdm_policy=%s' % (
            spec['msitranslate'], spec['power_mgmt'], spec['permissive'], spec['rdm_policy'])
        self.attach(address, domid, opts)
        return 0, '', ''

    def _pci_detach(self, domid, spec):
        address = spec['bdf']
        entries = self._backend_entries(domid)
        if not entries:
            # libxl_device_pci_list finds nothing: do_pci_remove fails with ERROR_FAIL and names no reason.
            return 1, '', 'libxl: error: libxl_device.c:1420:device_addrm_aocomplete: unable to remove device\n'
        if address not in [entry[0] for entry in entries]:
            return 1, '', ('libxl: error: libxl_pci.c:1966:do_pci_remove: Domain %d:PCI device not attached to this '
                           'domain\nlibxl: error: libxl_device.c:1420:device_addrm_aocomplete: unable to remove '
                           'device\n' % domid)
        self._reset(address)
        before = self.owner_before_attach.pop(address, None)
        if before == DOMID_IO and self.can_quarantine:
            self.owner[address] = DOMID_IO         # Xen puts a quarantined device back in quarantine
        else:
            self.owner.pop(address, None)
        self._remove_backend_entry(domid, address)
        self.store.pop(self._xs_key(address, 'domid'), None)
        return 0, '', ''

    def _remove_backend_entry(self, domid, address):
        """libxl__device_pci_remove_xenstore: drop entry i, move the later ones down, and remove the whole backend
        (libxl__device_destroy) when it was the last device."""
        backend = self._backend(domid)
        num = int(self.store[backend + '/num_devs'])
        index = [self.store[backend + '/dev-%d' % i] for i in range(num)].index(address)
        if num == 1:
            top = backend.rsplit('/', 1)[0]
            for key in [key for key in self.store if key == top or key.startswith(top + '/')]:
                del self.store[key]
            return
        fields = ('state', 'key', 'dev', 'vdev', 'opts', 'vdevfn', 'name')
        for field in fields:
            self.store.pop('%s/%s-%d' % (backend, field, index), None)
        for later in range(index + 1, num):
            for field in fields:
                value = self.store.pop('%s/%s-%d' % (backend, field, later), None)
                if value is not None:
                    self.store['%s/%s-%d' % (backend, field, later - 1)] = value
        self.store[backend + '/num_devs'] = str(num - 1)

    def _xs_key(self, address, key):
        return '/libxl/pci/%s/%s' % (address.replace(':', '-').replace('.', '-'), key)

    def _assignable_add(self, address):
        kernel, sysfs = self.kernel, self.sysfs
        if not kernel.exists(address):
            return 1, '', "Couldn't lstat %s/%s\n" % (sysfs.devices_dir, address)
        if not kernel.pciback_loaded():
            return 1, '', 'Looks like pciback driver is not loaded\n'
        warning = ''
        driver = kernel.driver(address)
        self.driver_path_at_add[address] = self.store.get(self._xs_key(address, 'driver_path'))
        try:
            if driver == PCIBACK:
                warning = '%s already assigned to pciback\n' % address
            else:
                if driver is not None:
                    sysfs.unbind(address, driver)
                    self.set(self._xs_key(address, 'driver_path'), '/sys/bus/pci/drivers/' + driver)
                elif self.store.get(self._xs_key(address, 'driver_path')) is None:
                    warning = '%s not bound to a driver, will not be rebound.\n' % address
                if address not in sysfs.pciback_slots():
                    sysfs.pciback_new_slot(address)
                sysfs.bind(address, PCIBACK)
        except OSError as exc:
            return 1, '', 'Couldn\'t bind device to pciback!: %s\n' % os.strerror(exc.errno)
        self.store.pop(self._xs_key(address, 'name'), None)
        if not self.can_quarantine:
            return 1, '', warning + 'libxl: error: libxl_pci.c:837:libxl__device_pci_assignable_add: ' \
                'failed to quarantine %s\n' % address
        self.owner[address] = DOMID_IO
        return 0, '', warning

    def _assignable_remove(self, address, rebind):
        kernel, sysfs = self.kernel, self.sysfs
        if not kernel.pciback_loaded():
            return 1, '', 'Looks like pciback driver is not loaded\n'
        if self.owner.get(address) != DOMID_IO:
            return 1, '', 'failed to de-quarantine %s\n' % address
        del self.owner[address]
        if kernel.driver(address) == PCIBACK:
            for step in (lambda: sysfs.unbind(address, PCIBACK), lambda: sysfs.pciback_remove_slot(address)):
                try:
                    step()
                except OSError:
                    pass
        warning = ''
        if rebind:
            path = self.store.get(self._xs_key(address, 'driver_path'))
            if path:
                try:
                    sysfs.write(os.path.join(kernel.root, path.lstrip('/'), 'bind'), address)
                except OSError as exc:
                    warning = "Couldn't bind device to %s: %s\n" % (path, os.strerror(exc.errno))
                del self.store[self._xs_key(address, 'driver_path')]
            else:
                warning = "Couldn't find path for original driver; not rebinding\n"
        self.store.pop(self._xs_key(address, 'name'), None)
        return 0, '', warning

    # ---- modprobe ------------------------------------------------------------------------------
    def _modprobe(self, args):
        names = [arg for arg in args if not arg.startswith('-')]
        name = names[0]
        if name in ('xen-pciback', 'xen_pciback'):
            if self.kernel.pciback_loaded():
                return 0, '', ''
            try:
                self.kernel.load_pciback()
            except OSError as exc:
                return 1, '', 'modprobe: ERROR: could not insert xen_pciback: %s\n' % os.strerror(exc.errno)
            return 0, '', ''
        if name.startswith('pci:'):
            for address in self.kernel._devices:
                if self.sysfs.attribute(address, 'modalias') == name:
                    self.kernel.load_module_for(address)
            return 0, '', ''
        return 1, '', 'modprobe: FATAL: Module %s not found.\n' % name


def errno_name(code):
    return errno.errorcode.get(code, str(code))
