# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""GRUB defaults files on a tree under tmp_path; the shell itself checks what the files mean."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import subprocess

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import CmdlineError, parse_params, tokenize
from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.grub_defaults import (
    DROP_IN_NAME,
    GrubDefaults,
    GrubSyntaxError,
    shell_double_quote,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError, write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.tests.unit.real_commands import real_commands

# Shaped like Debian 12's /etc/default/grub and the xen.cfg of its Xen packages.
DEBIAN_GRUB = '''\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Debian} ) 2>/dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# Uncomment to disable graphical terminal
#GRUB_TERMINAL=console
'''

XEN_CFG = '''\
# Set to 0 or 1 to avoid the warning below.
#XEN_OVERRIDE_GRUB_DEFAULT=0

echo "Including Xen overrides from /etc/default/grub.d/xen.cfg"

# Arguments for the hypervisor:
#GRUB_CMDLINE_XEN_DEFAULT=""
#GRUB_CMDLINE_XEN=""

# Make booting into Xen the default if not changed above
if [ "$XEN_OVERRIDE_GRUB_DEFAULT" = "" ]; then
        echo "WARNING: GRUB_DEFAULT changed to boot into Xen by default!"
        XEN_OVERRIDE_GRUB_DEFAULT=1
fi
if [ "$XEN_OVERRIDE_GRUB_DEFAULT" = "1" ]; then
        GRUB_DEFAULT=$( \\
                printf "$(gettext "%s, with Xen hypervisor")" \\
                "$(grep PRETTY_NAME /etc/os-release 2>/dev/null | cut -d\\" -f2)" )
fi
'''

# What update-grub (grub-mkconfig + 20_linux_xen + 10_linux) does with the files, in shell.
UPDATE_GRUB = r'''
cd "$1" || exit 1
. ./etc/default/grub
for x in ./etc/default/grub.d/*.cfg; do
  if [ -e "$x" ]; then . "$x"; fi
done >/dev/null 2>&1
if [ "${GRUB_CMDLINE_LINUX_XEN_REPLACE}" ]; then d1="$GRUB_CMDLINE_LINUX_XEN_REPLACE"; else d1="$GRUB_CMDLINE_LINUX"; fi
if [ "${GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT}" ]; then d2="$GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT"; else d2="$GRUB_CMDLINE_LINUX_DEFAULT"; fi
printf '%s\n' "$GRUB_CMDLINE_XEN $GRUB_CMDLINE_XEN_DEFAULT" "$d1 $d2" "$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT"
'''

SHELLS = [shell for shell in ('sh', 'bash') if any(os.path.exists(os.path.join(directory, shell))
                                                   for directory in os.environ.get('PATH', '').split(os.pathsep))]


def shell_lines(root, shell='bash'):
    """{target: line} as the shell builds them from the files under ``root``."""
    result = subprocess.run([shell, '-c', UPDATE_GRUB, shell, root], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env={'PATH': os.environ.get('PATH', ''), 'LC_ALL': 'C'}, check=True)
    lines = result.stdout.split('\n')
    return dict((target, ' '.join(token.raw for token in tokenize(line)))
                for target, line in zip(('xen', 'dom0_linux', 'linux'), lines))


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tree_digest(root):
    result = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            result[path] = digest(path)
    return result


@pytest.fixture
def debian(tmp_path):
    """A Debian dom0's GRUB defaults under tmp_path; returns (HostPaths, root)."""
    root = str(tmp_path)
    os.makedirs(os.path.join(root, 'etc', 'default', 'grub.d'))
    write(root, 'etc/default/grub', DEBIAN_GRUB)
    write(root, 'etc/default/grub.d/xen.cfg', XEN_CFG)
    return HostPaths(root), root


def write(root, relative, text):
    path = os.path.join(root, relative)
    with open(path, 'w') as handle:
        handle.write(text)
    return path


def read(root, relative):
    with open(os.path.join(root, relative)) as handle:
        return handle.read()


def plan(paths, target, params, state='present', grub_file=None):
    return GrubDefaults(paths, real_commands(), grub_file).plan(target, parse_params(params, state))


def apply(paths, target, params, state='present', grub_file=None):
    planned = plan(paths, target, params, state, grub_file)
    write_planned(planned.planned)
    return planned


def drop_in(root):
    return os.path.join(root, 'etc', 'default', 'grub.d', DROP_IN_NAME)


# ---- what is written, and that the shell reads it so -----------------------------------------


def test_each_target_goes_to_the_drop_in_and_the_shell_agrees(debian):
    paths, root = debian
    untouched = dict((name, digest(os.path.join(root, name))) for name in ('etc/default/grub', 'etc/default/grub.d/xen.cfg'))
    xen = apply(paths, 'xen', {'iommu': '1', 'dom0_mem': '4G,max:4G'})
    assert (xen.cmdline_before, xen.cmdline_after, xen.conflicts) == ('', 'iommu=1 dom0_mem=4G,max:4G', [])
    dom0 = apply(paths, 'dom0_linux', {'xen-pciback.hide': '(0000:03:00.0)(0000:04:00.0)', 'console': ['hvc0', 'tty0']})
    assert dom0.cmdline_after == 'quiet xen-pciback.hide=(0000:03:00.0)(0000:04:00.0) console=hvc0 console=tty0'
    linux = apply(paths, 'linux', {'intel_iommu': 'on'})
    assert linux.cmdline_after == 'quiet intel_iommu=on'
    assert read(root, 'etc/default/grub.d/' + DROP_IN_NAME).splitlines()[3:] == [
        'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT iommu=1 dom0_mem=4G,max:4G"',
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on"',
        'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="${GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT:-$GRUB_CMDLINE_LINUX_DEFAULT}'
        ' xen-pciback.hide=(0000:03:00.0)(0000:04:00.0) console=hvc0 console=tty0"',
    ]
    for name, value in untouched.items():
        assert digest(os.path.join(root, name)) == value
    for shell in SHELLS:
        assert shell_lines(root, shell) == {
            'xen': 'iommu=1 dom0_mem=4G,max:4G',
            'dom0_linux': 'quiet intel_iommu=on xen-pciback.hide=(0000:03:00.0)(0000:04:00.0) console=hvc0 console=tty0',
            'linux': 'quiet intel_iommu=on',
        }


def test_applying_twice_changes_nothing_the_second_time(debian):
    paths, root = debian
    for target, params in (('xen', {'iommu': '1'}), ('dom0_linux', {'nomodeset': None}), ('linux', {'k': 'a b'})):
        assert apply(paths, target, params).planned.changed is True
        before = tree_digest(root)
        again = apply(paths, target, params)
        assert again.planned.changed is False and again.conflicts == []
        assert tree_digest(root) == before


def test_a_planned_change_touches_no_file(debian):
    paths, root = debian
    before = tree_digest(root)
    planned = plan(paths, 'xen', {'iommu': '1'})
    assert planned.planned.changed is True and planned.planned.before is None
    assert tree_digest(root) == before


def test_absent_removes_and_the_empty_drop_in_goes(debian):
    paths, root = debian
    apply(paths, 'xen', {'iommu': '1', 'loglvl': 'all'})
    apply(paths, 'dom0_linux', {'console': ['hvc0', 'tty0']})
    gone = apply(paths, 'dom0_linux', {'console': 'tty0'}, 'absent')
    assert gone.cmdline_after == 'quiet console=hvc0'
    apply(paths, 'dom0_linux', {'console': None}, 'absent')
    assert 'REPLACE' not in read(root, 'etc/default/grub.d/' + DROP_IN_NAME)
    last = apply(paths, 'xen', {'iommu': None, 'loglvl': None}, 'absent')
    assert last.planned.after is None and not os.path.exists(drop_in(root))
    assert apply(paths, 'xen', {'iommu': None}, 'absent').planned.changed is False


def test_a_parameter_already_set_elsewhere_to_the_same_value_is_left_there(debian):
    paths, root = debian
    write(root, 'etc/default/grub', DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="intel_iommu=on"'))
    result = apply(paths, 'linux', {'intel_iommu': 'on'})
    assert result.planned.changed is False and result.conflicts == []
    assert not os.path.exists(drop_in(root))


def test_existing_dom0_replacement_is_kept(debian):
    paths, root = debian
    write(root, 'etc/default/grub', DEBIAN_GRUB + 'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="console=hvc0 earlyprintk=xen"\n')
    result = apply(paths, 'dom0_linux', {'xen-pciback.hide': '(0000:03:00.0)'})
    assert result.cmdline_before == 'console=hvc0 earlyprintk=xen'
    assert result.cmdline_after == 'console=hvc0 earlyprintk=xen xen-pciback.hide=(0000:03:00.0)'
    for shell in SHELLS:
        assert shell_lines(root, shell)['dom0_linux'] == result.cmdline_after
        assert shell_lines(root, shell)['linux'] == 'quiet'


def test_linux_parameters_added_later_still_reach_dom0(debian):
    paths, root = debian
    apply(paths, 'dom0_linux', {'nomodeset': None})
    linux = apply(paths, 'linux', {'iommu': 'pt'})
    assert linux.cmdline_after == 'quiet iommu=pt'
    for shell in SHELLS:
        assert shell_lines(root, shell)['dom0_linux'] == 'quiet iommu=pt nomodeset'


# ---- editing a file in place ---------------------------------------------------------------------


def test_edit_in_place_replaces_the_value_and_keeps_the_rest(debian):
    paths, root = debian
    write(root, 'etc/default/grub', DEBIAN_GRUB.replace(
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
        "export GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=0 k=\"a b\" splash'   # tuned by hand"))
    result = apply(paths, 'linux', {'iommu': '1'}, grub_file=os.path.join(root, 'etc/default/grub'))
    assert result.cmdline_after == 'quiet iommu=1 k="a b" splash'
    assert read(root, 'etc/default/grub') == DEBIAN_GRUB.replace(
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
        'export GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=1 k=\\"a b\\" splash"   # tuned by hand')
    for shell in SHELLS:
        assert shell_lines(root, shell)['linux'] == 'quiet iommu=1 k="a b" splash'


def test_edit_in_place_keeps_the_reference_the_drop_in_form_starts_with(debian):
    paths, root = debian
    xen_cfg = os.path.join(root, 'etc', 'default', 'grub.d', 'xen.cfg')
    write(root, 'etc/default/grub.d/xen.cfg', XEN_CFG + 'GRUB_CMDLINE_XEN_DEFAULT="${GRUB_CMDLINE_XEN_DEFAULT:-$X} iommu=0 x"\n')
    result = apply(paths, 'xen', {'iommu': None}, 'absent', grub_file=xen_cfg)
    assert read(root, 'etc/default/grub.d/xen.cfg').endswith('\nGRUB_CMDLINE_XEN_DEFAULT="${GRUB_CMDLINE_XEN_DEFAULT:-$X} x"\n')
    assert result.cmdline_after == 'x'
    apply(paths, 'xen', {'x': None}, 'absent', grub_file=xen_cfg)
    assert read(root, 'etc/default/grub.d/xen.cfg') == XEN_CFG    # a line that only says V="$V" goes


@pytest.mark.parametrize('line', [
    'GRUB_CMDLINE_LINUX_DEFAULT="${BASE}quiet $BASE iommu=0"',
    'GRUB_CMDLINE_LINUX_DEFAULT="$(echo quiet) iommu=0"',
    'GRUB_CMDLINE_LINUX_DEFAULT=`echo quiet`',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet \\\niommu=0"',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet\niommu=0"',
    'true && GRUB_CMDLINE_LINUX_DEFAULT=quiet',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet" GRUB_CMDLINE_LINUX=""',
])
def test_in_place_only_plain_assignments_of_the_variable_are_edited(debian, line):
    paths, root = debian
    write(root, 'etc/default/grub', 'BASE="ro"\n' + line + '\n')
    before = tree_digest(root)
    with pytest.raises(GrubSyntaxError, match='grub line 2: GRUB_CMDLINE_LINUX_DEFAULT is set there in a way this module '
                                              'does not edit in place'):
        plan(paths, 'linux', {'iommu': '1'}, grub_file=os.path.join(root, 'etc/default/grub'))
    assert tree_digest(root) == before
    plan(paths, 'xen', {'iommu': '1'}, grub_file=os.path.join(root, 'etc/default/grub'))     # another variable: edited


def test_a_new_variable_in_default_grub_is_a_plain_assignment(debian):
    paths, root = debian
    apply(paths, 'xen', {'iommu': '1'}, grub_file=os.path.join(root, 'etc/default/grub'))
    assert read(root, 'etc/default/grub') == DEBIAN_GRUB + 'GRUB_CMDLINE_XEN_DEFAULT="iommu=1"\n'


def test_another_drop_in_is_edited_in_place_adding_to_what_came_before(debian):
    paths, root = debian
    xen_cfg = os.path.join(root, 'etc', 'default', 'grub.d', 'xen.cfg')
    result = apply(paths, 'xen', {'iommu': '1'}, grub_file=xen_cfg)
    assert read(root, 'etc/default/grub.d/xen.cfg') == XEN_CFG + 'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT iommu=1"\n'
    assert result.cmdline_after == 'iommu=1' and not os.path.exists(drop_in(root))
    for shell in SHELLS:
        assert shell_lines(root, shell)['xen'] == 'iommu=1'


def test_without_grub_d_the_default_is_etc_default_grub(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, 'etc', 'default'))
    write(root, 'etc/default/grub', 'GRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet"\n')
    result = apply(HostPaths(root), 'xen', {'dom0_mem': '2G'})
    assert result.planned.path == os.path.join(root, 'etc', 'default', 'grub')
    assert read(root, 'etc/default/grub').endswith('\nGRUB_CMDLINE_XEN_DEFAULT="dom0_mem=2G"\n')


def test_a_file_update_grub_does_not_read_is_refused(debian):
    paths, root = debian
    with pytest.raises(GrubSyntaxError, match='not read by update-grub'):
        GrubDefaults(paths, real_commands(), os.path.join(root, 'etc', 'default', 'grub.d', 'x.conf'))


# ---- conflicts ---------------------------------------------------------------------------------


def test_another_value_elsewhere_is_a_conflict_naming_file_and_line(debian):
    paths, root = debian
    write(root, 'etc/default/grub', DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="iommu=soft"'))
    result = plan(paths, 'linux', {'iommu': 'pt'})
    assert result.cmdline_after == 'iommu=soft quiet iommu=pt'
    assert [(c['param'], c['found'], c['line'], c['variable']) for c in result.conflicts] == [
        ('iommu', 'iommu=soft', 8, 'GRUB_CMDLINE_LINUX')]
    assert 'stays on the Linux command line next to iommu=pt' in result.conflicts[0]['message']


def test_removing_what_another_file_sets_is_a_conflict(debian):
    paths, _root = debian
    result = plan(paths, 'linux', {'quiet': None}, 'absent')
    assert result.planned.changed is False
    assert [(c['found'], c['variable']) for c in result.conflicts] == [('quiet', 'GRUB_CMDLINE_LINUX_DEFAULT')]


def test_a_later_file_that_sets_the_variable_anew_is_a_conflict(debian):
    paths, root = debian
    write(root, 'etc/default/grub.d/50-cloudimg-settings.cfg', 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=1G"\n')
    result = plan(paths, 'xen', {'iommu': '1'}, grub_file=os.path.join(root, 'etc/default/grub'))
    assert result.cmdline_after == 'dom0_mem=1G'
    assert len(result.conflicts) == 1
    assert '50-cloudimg-settings.cfg line 1' in result.conflicts[0]['message']


# ---- files the shell reads: what it sees, and where it stops ---------------------------------------


@pytest.mark.parametrize('relative, text, message', [
    ('etc/default/grub', DEBIAN_GRUB + 'GRUB_CMDLINE_LINUX="quiet\n', 'grub: the shell stops .* 13: .*Unterminated quoted'),
    ('etc/default/grub', DEBIAN_GRUB + "GRUB_TERMINAL='console\n", 'grub: the shell stops .* 13: .*Unterminated quoted'),
    ('etc/default/grub.d/xen.cfg', XEN_CFG + 'X=$(echo "a"\n', r'xen.cfg: the shell stops .*expecting "\)"'),
    ('etc/default/grub', 'GRUB_DISTRIBUTOR=`lsb_release -i\n', 'grub: the shell stops .*EOF in backquote'),
    ('etc/default/grub', '. /nonexistent/grub.local\n', 'grub: the shell stops .*cannot open /nonexistent/grub.local'),
    ('etc/default/grub.d/10-exit.cfg', 'exit 0\n', '10-exit.cfg: the shell stops reading it.*exit status 0'),
])
def test_a_file_the_shell_stops_in_is_refused_and_nothing_is_written(debian, relative, text, message):
    paths, root = debian
    write(root, relative, text)
    before = tree_digest(root)
    with pytest.raises(GrubSyntaxError, match=message):
        plan(paths, 'linux', {'iommu': '1'})
    assert tree_digest(root) == before


@pytest.mark.parametrize('text', [
    'GRUB_CMDLINE_LINUX="$(echo quiet splash)"\n',
    'GRUB_CMDLINE_LINUX=`echo quiet`\n',
    'if true; then\n  GRUB_CMDLINE_LINUX="quiet"\nfi\n',
    'GRUB_CMDLINE_LINUX="quiet \\\nsplash"\n',
    'read GRUB_CMDLINE_LINUX < {root}/cmdline\n',
    'GRUB_CMDLINE_LINUX_DEFAULT=x\nunset GRUB_CMDLINE_LINUX_DEFAULT\n',
    'true && GRUB_CMDLINE_LINUX=quiet\n',
    '. {root}/grub.local\n',
    'X=`echo ro`\nGRUB_CMDLINE_LINUX="$X"\n',
    'GRUB_CMDLINE_LINUX="${{X:=quiet}}"\n',
    'GRUB_CMDLINE_LINUX=$(cat <<EOF\nroot=/dev/sda1 ro\nEOF\n)\n',
])
def test_any_shell_is_read_as_the_shell_reads_it(debian, text):
    paths, root = debian
    write(root, 'cmdline', 'nosmt\n')
    write(root, 'grub.local', 'GRUB_CMDLINE_LINUX="from_another_file"\n')
    write(root, 'etc/default/grub', text.format(root=root))
    linux = apply(paths, 'linux', {'iommu': '1'})
    xen = apply(paths, 'dom0_linux', {'iommu': '1'})
    for shell in SHELLS:
        lines = shell_lines(root, shell)
        assert (lines['linux'], lines['dom0_linux']) == (linux.cmdline_after, xen.cmdline_after)
    assert tokenize(linux.cmdline_after)[-1].raw == 'iommu=1'


def test_a_value_computed_by_the_shell_is_traced_to_its_file_and_line(debian):
    paths, root = debian
    write(root, 'etc/default/grub', '# x\nGRUB_CMDLINE_LINUX="$(echo iommu=soft)"\n')
    result = plan(paths, 'linux', {'iommu': 'pt'})
    assert [(c['found'], c['line'], c['variable']) for c in result.conflicts] == [('iommu=soft', 2, 'GRUB_CMDLINE_LINUX')]
    assert result.conflicts[0]['file'] == os.path.join(root, 'etc/default/grub')


def test_a_parameter_copied_from_another_variable_is_traced_to_where_it_was_written(debian):
    paths, root = debian
    apply(paths, 'dom0_linux', {'console': 'hvc0'})
    result = plan(paths, 'dom0_linux', {'quiet': None}, 'absent')
    assert [(c['found'], c['line'], c['variable']) for c in result.conflicts] == [('quiet', 7, 'GRUB_CMDLINE_LINUX_DEFAULT')]


def test_harmless_shell_around_the_variables_is_accepted(debian):
    paths, root = debian
    write(root, 'etc/default/grub.d/10-local.cfg', '''\
# local settings
case "$(uname -m)" in
  aarch64) GRUB_TERMINAL=console ;;
esac
for x in 1 2; do : ; done
if [ -n "$GRUB_CMDLINE_LINUX_DEFAULT" ]; then echo "dom0: $GRUB_CMDLINE_LINUX_DEFAULT"; fi
export GRUB_CMDLINE_LINUX GRUB_CMDLINE_XEN
echo "GRUB_CMDLINE_LINUX is not set here" > /dev/null
find . -name x > /dev/null
f() { echo "(x)"; }
GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT splash"
''')
    result = apply(paths, 'linux', {'iommu': 'pt'})
    assert result.cmdline_after == 'quiet splash iommu=pt'
    for shell in SHELLS:
        assert shell_lines(root, shell)['linux'] == 'quiet splash iommu=pt'


# ---- injection and quoting -----------------------------------------------------------------------


@pytest.mark.parametrize('value, message', [
    ('"; rm -rf /', 'double quote'),
    ('$(reboot)', 'GRUB would interpret'),
    ('`reboot`', 'GRUB would interpret'),
    ('a\nreboot', 'control character'),
    ('x;reboot', 'GRUB would interpret'),
    ("it's", 'GRUB would interpret'),
    ('a\\b', 'GRUB would interpret'),
])
def test_values_that_could_inject_are_refused_and_nothing_is_written(debian, value, message):
    paths, root = debian
    before = tree_digest(root)
    with pytest.raises(CmdlineError, match=message):
        plan(paths, 'dom0_linux', {'k': value})
    assert tree_digest(root) == before


NASTY = [
    'plain', 'two words', '"; rm -rf / #', '$(reboot)', '`reboot`', '${HOME}', '$HOME', 'a\\b', 'a\\', '\\"',
    "it's", '!history', '*', '~root', 'tab\there', '$', '`', '"', "'", 'x=$((1+1))', u'caf\u00e9',
]


@pytest.mark.parametrize('shell', SHELLS)
def test_shell_double_quote_means_exactly_the_text(tmp_path, shell):
    path = str(tmp_path / 'quoted.cfg')
    with open(path, 'w') as handle:
        for index, text in enumerate(NASTY):
            handle.write('V%d=%s\n' % (index, shell_double_quote(text)))
    for index, text in enumerate(NASTY):
        out = subprocess.run([shell, '-c', '. "$1"; printf %%s "$V%d"' % index, shell, path], stdout=subprocess.PIPE,
                             check=True).stdout.decode('utf-8')
        assert out == text


@pytest.mark.parametrize('text', ['a\nb', 'a\rb', 'a\0b'])
def test_shell_double_quote_refuses_line_breaks(text):
    with pytest.raises(CmdlineError):
        shell_double_quote(text)


def test_a_bare_key_a_repeated_key_and_a_value_with_blanks(debian):
    paths, root = debian
    result = apply(paths, 'dom0_linux', {'nomodeset': None, 'console': ['ttyS0,115200n8', 'hvc0'],
                                         'acpi_osi': '!Windows 2012'})
    assert result.cmdline_after == 'quiet nomodeset console=ttyS0,115200n8 console=hvc0 acpi_osi="!Windows 2012"'
    for shell in SHELLS:
        assert shell_lines(root, shell)['dom0_linux'] == result.cmdline_after


def test_a_planted_symlink_is_refused(debian):
    paths, root = debian
    victim = write(root, 'victim', 'secret\n')
    os.symlink(victim, drop_in(root))
    with pytest.raises(FileEditError, match='symbolic link'):
        plan(paths, 'xen', {'iommu': '1'})
    assert read(root, 'victim') == 'secret\n'


# ---- properties ----------------------------------------------------------------------------------

try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:     # pragma: no cover - hypothesis is in requirements-dev.txt
    given = None

if given is not None:
    _TEXT = st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\n\r\0'), max_size=20)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(_TEXT, min_size=1, max_size=8))
    def test_shell_double_quote_round_trips_through_sh_and_bash(texts):
        script = ''.join('V%d=%s\n' % (index, shell_double_quote(text)) for index, text in enumerate(texts))
        printer = script + ''.join('printf "%%s\\0" "$V%d"\n' % index for index in range(len(texts)))
        for shell in SHELLS:
            out = subprocess.run([shell, '-c', printer], stdout=subprocess.PIPE, check=True).stdout
            assert out.decode('utf-8').split('\0')[:-1] == texts

    _KEYS = st.sampled_from(['iommu', 'console', 'xen-pciback.hide', 'xen_pciback.hide', 'quiet', 'dom0_mem'])
    _VALUES = st.one_of(st.none(), st.sampled_from(['1', 'pt', 'a b', '(0000:03:00.0)', 'tty0', '4G,max:4G']))
    _STEP = st.tuples(st.sampled_from(['xen', 'dom0_linux', 'linux']), st.sampled_from(['present', 'absent']),
                      _KEYS, st.one_of(_VALUES, st.lists(_VALUES.filter(lambda value: value is not None),
                                                         min_size=1, max_size=3)))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(_STEP, min_size=1, max_size=6), st.booleans())
    def test_random_edits_mean_to_the_shell_what_the_plan_says_and_are_idempotent(tmp_path_factory, steps, in_place):
        root = str(tmp_path_factory.mktemp('grub'))
        os.makedirs(os.path.join(root, 'etc', 'default', 'grub.d'))
        write(root, 'etc/default/grub', DEBIAN_GRUB)
        write(root, 'etc/default/grub.d/xen.cfg', XEN_CFG)
        paths = HostPaths(root)
        grub_file = os.path.join(root, 'etc', 'default', 'grub') if in_place else None
        for target, state, key, value in steps:
            try:
                result = apply(paths, target, {key: value}, state, grub_file)
            except CmdlineError:
                continue
            lines = shell_lines(root, 'bash')
            assert lines[target] == result.cmdline_after
            again = plan(paths, target, {key: value}, state, grub_file)
            assert again.planned.changed is False and again.cmdline_after == result.cmdline_after
            if not result.conflicts:
                tokens = [token for token in tokenize(result.cmdline_after)
                          if token.norm_key == key.replace('-', '_')]
                values = value if isinstance(value, list) else [value]
                if state == 'present':
                    assert [token.value for token in tokens] == values
                else:
                    assert not [token for token in tokens if value is None or token.value in values]
