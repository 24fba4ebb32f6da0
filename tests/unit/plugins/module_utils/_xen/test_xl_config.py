# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xl guest configurations: the pci list read, edited in place, and every unsafe file or request refused."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import OrderedDict

import pytest
from hypothesis import assume, given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xl_config import (
    XlConfigError,
    check_pci_options,
    dequote,
    edit_pci,
    format_pci_spec,
    parse_pci,
    parse_pci_spec,
    parse_statements,
    plan_pci_edit,
    read_guest_configs,
    tokenize,
)
from ansible_collections.xenpci.passthrough.tests.unit.strategies import canonical, spellings, valid_fields

# Shaped like the xlexample.pvlinux Debian installs in /etc/xen, with a few more settings.
PVLINUX = '''# =====================================================================
# A PV Linux guest
# =====================================================================
#
# A small example of what a paravirtualised Linux guest needs; xl.cfg(5) has the rest.

# Guest name
name = "guest.pvlinux"

# The domain's UUID; "uuidgen" makes one.
#uuid = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"

# Kernel image to boot
kernel = "/boot/vmlinuz"

# Ramdisk (optional)
#ramdisk = "/boot/initrd.gz"

# Kernel command line options
extra = "root=/dev/xvda1 console=hvc0"

# Initial memory allocation (MB)
memory = 128
#maxmem = 512

# Number of VCPUS
vcpus = 2

# Network devices: 'vifspec' entries, see xl-network-configuration(5)
vif = [ '' ]

# Disk devices: `diskspec' entries, see xl-disk-configuration(5)
disk = [ '/dev/vg/guest-volume,raw,xvda,rw' ]
'''


def _entries(text):
    return [(entry.address, entry.options) for entry in parse_pci(text).entries]


def _refused(text, line=None):
    with pytest.raises(XlConfigError) as caught:
        parse_pci(text)
    if line is not None:
        assert caught.value.line == line
        assert str(caught.value).startswith('line %d: ' % line)
    return str(caught.value)


# ---- reading -----------------------------------------------------------------------------------

def test_a_config_without_pci_has_no_entries_and_no_place():
    setting = parse_pci(PVLINUX)
    assert setting.entries == []
    assert not setting.present
    assert setting.start is None and setting.line is None


def test_entries_are_canonical_with_their_options_and_place():
    text = ("name = 'g'\n"
            "pci = [ '3:0.0', \"0000:04:00.1@1F,permissive=1,rdm_policy=relaxed\", 'bdf=0001:0a:1f.7,seize=0,' ]\n")
    setting = parse_pci(text)
    assert _entries(text) == [
        ('0000:03:00.0', {}),
        ('0000:04:00.1', {'vslot': 0x1f, 'permissive': 1, 'rdm_policy': 'relaxed'}),
        ('0001:0a:1f.7', {'seize': 0}),
    ]
    assert setting.line == 2
    assert text[setting.start:setting.end].startswith('[ ') and text[setting.start:setting.end].endswith(' ]')
    assert [entry.line for entry in setting.entries] == [2, 2, 2]
    assert setting.entries[1].spec == '"0000:04:00.1@1F,permissive=1,rdm_policy=relaxed"'
    assert setting.as_dict()['0000:03:00.0'] == {}


def test_a_multi_line_list_with_comments_and_a_trailing_comma():
    text = ('pci = [  # devices for the guest\n'
            '    # the NIC\n'
            "    '0000:03:00.0',\n"
            '\n'
            "    '0000:04:00.0,msitranslate=1,power_mgmt=1',   # the GPU\n"
            ']\n'
            'memory = 1024\n')
    assert _entries(text) == [('0000:03:00.0', {}), ('0000:04:00.0', {'msitranslate': 1, 'power_mgmt': 1})]
    assert [entry.line for entry in parse_pci(text).entries] == [3, 5]


def test_semicolons_end_statements_like_newlines():
    text = "name = 'g'; pci = [ '03:00.0,vslot=08' ]; memory = 256\nvcpus = 1;\n"
    assert _entries(text) == [('0000:03:00.0', {'vslot': 8})]


def test_double_quoted_strings_with_escapes_elsewhere_and_in_pci():
    text = ('extra = "console=hvc0 \\"quoted\\" \\\\ path\\t# not a comment"\n'
            "cmdline = 'it\\'s'\n"
            'pci = [ "0000:03:00.0,permissive=1" ]\n')
    assert _entries(text) == [('0000:03:00.0', {'permissive': 1})]
    statements = parse_statements(text)
    assert [statement.name for statement in statements] == ['extra', 'cmdline', 'pci']
    assert dequote(statements[0].value.token.text) == 'console=hvc0 "quoted" \\ path\t# not a comment'
    assert dequote(statements[1].value.token.text) == "it's"


def test_a_final_line_without_newline_and_a_final_comment_are_read():
    assert _entries("pci = [ '03:00.0' ]") == [('0000:03:00.0', {})]
    assert _entries("pci = [ '03:00.0' ]\n# the end") == [('0000:03:00.0', {})]


def test_other_settings_need_only_be_well_formed():
    text = ("cpuid = [ 'host,tm=0', [ 'nested', 0x1f ], ]\n"
            "viridian += [ 'all' ]\nviridian += ['!hcall_remote_tlb_flush']\n"
            "bootloader_args = [\n  # comment\n  '--a',\n]\n"
            "odd_name_1 = 0x10; pci = []\n")
    assert _entries(text) == []
    assert parse_pci(text).present


def test_the_lexer_keeps_carriage_returns_in_strings_and_comments():
    text = "extra = 'a\rb'  # c\rd\npci = [ '03:00.0' ]\n"
    assert _entries(text) == [('0000:03:00.0', {})]


def test_tokens_follow_xl_lexer():
    kinds = [(token.kind, token.text) for token in tokenize("a_1 += 0x1fa; b=['x',\"y\"] # c\n")]
    assert kinds == [('ident', 'a_1'), ('punct', '+='), ('number', '0x1fa'), ('punct', ';'), ('ident', 'b'),
                     ('punct', '='), ('punct', '['), ('string', "'x'"), ('punct', ','), ('string', '"y"'),
                     ('punct', ']'), ('newline', '# c\n')]


# ---- refusals: the file ------------------------------------------------------------------------

@pytest.mark.parametrize('text, line, words', [
    ("name = 'g'\npci += [ '03:00.0' ]\n", 2, '+='),
    ("pci = '03:00.0'\n", 1, 'not a list'),
    ("pci = 3\n", 1, 'not a list'),
    ("pci = [ '03:00.0' ]\nmemory = 1\npci = [ '04:00.0' ]\n", 3, 'second time'),
    ("pci = [ '03:00.0' ]\npci += [ '04:00.0' ]\n", 2, '+='),
    ("pci = [ '03:00.0', 5 ]\n", 1, 'number 5'),
    ("pci = [ '03:00.0',\n  [ '04:00.0' ] ]\n", 2, 'a list'),
    ("pci = [ '03:00.0',\n  '04:00.0'\n", 1, 'not closed'),
    ("name = 'g'\nextra = \"root=/dev/xvda1\nmemory = 1\n", 2, 'not closed'),
    ("name = 'g\\'\n", 1, 'not closed'),
    ("name = 'g'\r\nmemory = 1\r\n", 1, 'carriage return'),
    ("memory = 512M\n", 1, "'M'"),
    ("memory = 2*256\n", 1, "'*'"),
    ("Name = 'g'\n", 1, "'N'"),
    ("kernel = vmlinuz\n", 1, "'vmlinuz'"),
    ("import os\n", 1, "'os'"),
    ("memory = -1\n", 1, "'-'"),
    ("name = 'g' memory = 1\n", 1, "'memory'"),
    ("pci = [ , ]\n", 1, "','"),
    ("pci = [ '03:00.0' '04:00.0' ]\n", 1, '"," or "]"'),
    ("pci =\n[ '03:00.0' ]\n", 1, 'a newline'),
    ("memory =", 1, 'ends'),
    ("x = [ 'a' ]]\n", 1, "']'"),
])
def test_files_xl_could_not_read_or_pci_lists_it_would_misread_are_refused(text, line, words):
    assert words in _refused(text, line)


@pytest.mark.parametrize('entry, words', [
    ('03:00.0,foo=1', "unknown PCI option foo='1'"),
    ('03:00.0,permissive=yes', "permissive='yes'"),
    ('03:00.0,permissive=2', "permissive='2'"),
    ('03:00.0,seize=', "seize=''"),
    ('03:00.0,rdm_policy=loose', "rdm_policy='loose'"),
    ('03:00.0,rdm_policy=Strict', "rdm_policy='Strict'"),
    ('03:00.0@20', "vslot='20'"),
    ('03:00.0@', "vslot=''"),
    ('03:00.0,vslot=8z', "vslot='8z'"),
    ('03:00.0@8,vslot=8', 'vslot twice'),
    ('03:00.0,bdf=03:00.0', 'the address twice'),
    ('03:00.0,permissive=1,permissive=1', 'permissive twice'),
    ('03:00.0,permissive', "'permissive' is not KEY=VALUE"),
    ('03:00.0,,', "'' is not KEY=VALUE"),
    ('03:20.0', 'out of range'),
    ('3:0.8', 'not a PCI function address'),
    ('0000:03:00', 'not a PCI function address'),
    ('', 'not a PCI function address'),
    ('permissive=1', 'no device address'),
    ('name=gpu,permissive=1', 'name=gpu'),
    ('03:00.*', 'every function'),
    ('03:00.0;reboot', 'not a PCI function address'),
])
def test_pci_entries_that_are_not_plain_specs_are_refused_naming_the_line(entry, words):
    message = _refused("name = 'g'\npci = [\n  '0000:01:00.0',\n  '%s',\n]\n" % entry, 4)
    assert words in message


def test_a_repeated_address_is_refused_whatever_its_spelling():
    message = _refused("pci = [ '0000:03:00.0',\n'3:0.0,permissive=1' ]\n", 2)
    assert '0000:03:00.0 is listed twice' in message and 'line 1' in message


@pytest.mark.parametrize('escape', ['\\x41', '\\101', '\\0', '\\q', '\\='])
def test_escapes_xl_mangles_or_refuses_are_refused_in_pci(escape):
    message = _refused("pci = [\n  '03:00.0,permissive%s1' ]\n" % escape, 2)
    assert escape in message


@pytest.mark.parametrize('value', ['"a\\x41"', "'a\\q'", '"a\\0b"', "'\\7'"])
def test_escapes_xl_refuses_in_any_string_make_the_file_refused(value):
    assert 'escape' in _refused("name = 'g'\nextra = %s\npci = []\n" % value, 2)


def test_an_octal_escape_xl_swallows_is_let_through_outside_pci():
    # xl reads "\012" as an escape whose characters vanish; the file is still one xl reads.
    assert parse_pci('extra = "a\\012b"\npci = []\n').present


# ---- canonical spelling and options ------------------------------------------------------------

@pytest.mark.parametrize('options, spec', [
    ({}, '0000:03:00.0'),
    ({'permissive': 1}, '0000:03:00.0,permissive=1'),
    ({'rdm_policy': 'strict', 'seize': 1, 'vslot': 8, 'power_mgmt': 0, 'msitranslate': 1, 'permissive': 0},
     '0000:03:00.0@08,permissive=0,msitranslate=1,seize=1,power_mgmt=0,rdm_policy=strict'),
])
def test_the_canonical_spelling(options, spec):
    assert format_pci_spec('0000:03:00.0', options) == spec
    assert parse_pci_spec(spec) == ('0000:03:00.0', options)


def test_request_options_are_checked_and_made_canonical():
    assert check_pci_options({'permissive': True, 'seize': '0', 'msitranslate': 1, 'power_mgmt': False,
                              'vslot': '1f', 'rdm_policy': 'relaxed'}) == {
        'permissive': 1, 'seize': 0, 'msitranslate': 1, 'power_mgmt': 0, 'vslot': 31, 'rdm_policy': 'relaxed'}
    assert check_pci_options({'vslot': 16, 'permissive': None}) == {'vslot': 16}
    assert check_pci_options(None) == {}


@pytest.mark.parametrize('options, words', [
    ({'permisive': 1}, "unknown PCI option permisive=1"),
    ({'name': 'gpu'}, "unknown PCI option name='gpu'"),
    ({'permissive': 2}, 'permissive=2'),
    ({'seize': 'yes'}, "seize='yes'"),
    ({'rdm_policy': 'loose'}, "rdm_policy='loose'"),
    ({'vslot': 32}, 'vslot=32'),
    ({'vslot': True}, 'vslot=True'),
    ({'vslot': 'zz'}, "vslot='zz'"),
    ({'vslot': '-1'}, "vslot='-1'"),
    ('permissive=1', "'permissive=1'"),
])
def test_bad_request_options_are_refused_naming_key_and_value(options, words):
    with pytest.raises(XlConfigError) as caught:
        edit_pci(PVLINUX, {'03:00.0': options})
    assert words in str(caught.value)
    assert caught.value.line is None


@pytest.mark.parametrize('add, remove, words', [
    ({'03:00.0': {}}, ['0000:03:00.0'], 'both to be added and removed'),
    ([('03:00.0', {}), ('0000:03:00.0', {'permissive': 1})], [], 'twice with different options'),
    ({'03:00.*': {}}, [], 'not a PCI function address'),
    ({}, ['../03:00.0'], 'not a PCI function address'),
    ([('03:00.0',)], [], 'neither an address'),
])
def test_bad_requests_are_refused(add, remove, words):
    with pytest.raises(XlConfigError) as caught:
        edit_pci(PVLINUX, add, remove)
    assert words in str(caught.value)


# ---- editing -----------------------------------------------------------------------------------

def test_a_config_without_pci_gets_the_list_appended():
    edit = edit_pci(PVLINUX, {'0000:03:00.0': {'permissive': 1}})
    assert edit.text == PVLINUX + "pci = [ '0000:03:00.0,permissive=1' ]\n"
    assert edit.added == ['0000:03:00.0'] and edit.changed
    assert edit_pci('memory = 1', ['03:00.0']).text == "memory = 1\npci = [ '0000:03:00.0' ]\n"
    assert edit_pci('# only a comment', ['03:00.0']).text == "# only a comment\npci = [ '0000:03:00.0' ]\n"
    assert edit_pci('', ['03:00.0']).text == "pci = [ '0000:03:00.0' ]\n"


def test_nothing_to_do_gives_the_same_text_back():
    text = "pci = [ '3:0.0,rdm_policy=strict,permissive=1' , \"4:0.0@8\" ]  # keep\n"
    edit = edit_pci(text, {'0000:03:00.0': {'permissive': True, 'rdm_policy': 'strict'},
                           '04:00.0': {'vslot': 8}}, ['0000:05:00.0'])
    assert edit.text is text
    assert not edit.changed
    assert edit_pci(PVLINUX, {}, ['03:00.0']).text is PVLINUX


def test_applying_the_same_request_twice_changes_nothing_the_second_time():
    request = ({'0000:03:00.0': {'permissive': 1}, '0000:05:00.0': {'vslot': 3}}, ['0000:04:00.0'])
    for text in (PVLINUX, "pci = [ '03:00.0', '04:00.0' ]\n",
                 "pci = [\n    '03:00.0',\n    '04:00.0',\n]\n", "pci = [ '03:00.0',\n        '04:00.0' ]\n"):
        once = edit_pci(text, *request)
        assert once.changed
        twice = edit_pci(once.text, *request)
        assert twice.text == once.text and not twice.changed


def test_a_one_line_list_stays_on_one_line():
    text = "name = 'g'\npci = ['03:00.0', '04:00.0,permissive=1']\nmemory = 1\n"
    edit = edit_pci(text, {'04:00.0': {}, '06:00.0': {'seize': 1}}, ['03:00.0'])
    assert edit.text == "name = 'g'\npci = ['0000:04:00.0', '0000:06:00.0,seize=1']\nmemory = 1\n"
    assert edit.replaced == ['0000:04:00.0'] and edit.removed == ['0000:03:00.0']
    assert edit.added == ['0000:06:00.0']


def test_a_one_line_list_keeps_its_spacing():
    assert edit_pci("pci=['03:00.0','04:00.0'];", ['05:00.0']).text == "pci=['03:00.0','04:00.0','0000:05:00.0'];"
    assert edit_pci("pci = [ '03:00.0' ,  ]", ['05:00.0']).text == "pci = [ '03:00.0', '0000:05:00.0',  ]"


def test_an_empty_list_gets_its_entries_on_one_line():
    assert edit_pci('pci = []\n', ['03:00.0', '04:00.0']).text == "pci = [ '0000:03:00.0', '0000:04:00.0' ]\n"


def test_removing_every_entry_leaves_an_empty_list():
    text = "pci = [\n    '03:00.0',  # nic\n    '04:00.0',\n]\nmemory = 1\n"
    assert edit_pci(text, {}, ['03:00.0', '04:00.0']).text == 'pci = []\nmemory = 1\n'
    assert edit_pci("pci = [ '03:00.0' ];x=1", {}, ['03:00.0']).text == 'pci = [];x=1'


def test_a_list_with_an_entry_per_line_keeps_its_lines():
    text = ('pci = [  # passthrough\n'
            "\t'0000:03:00.0',   # NIC\n"
            '\t# GPU and its audio function\n'
            "\t'0000:04:00.0',\n"
            "\t'0000:04:00.1'\n"
            ']\n')
    edit = edit_pci(text, {'0000:05:00.0': {}, '0000:03:00.0': {'permissive': 1}}, ['0000:04:00.0'])
    assert edit.text == ('pci = [  # passthrough\n'
                         "\t'0000:03:00.0,permissive=1',   # NIC\n"
                         '\t# GPU and its audio function\n'
                         "\t'0000:04:00.1',\n"
                         "\t'0000:05:00.0'\n"
                         ']\n')


def test_a_list_with_an_entry_per_line_and_trailing_commas_keeps_them():
    text = "pci = [\n  '03:00.0',\n  '04:00.0',\n  ]\n"
    assert edit_pci(text, ['06:00.0', '07:00.0'], ['04:00.0']).text == \
        "pci = [\n  '03:00.0',\n  '0000:06:00.0',\n  '0000:07:00.0',\n  ]\n"


def test_commas_on_lines_of_their_own_make_the_list_written_again():
    # Deleting the line of '03:00.0' alone would leave its comma behind, alone on its line.
    text = "pci = [\n    '03:00.0'\n    , '04:00.0'\n]\n"
    assert edit_pci(text, {}, ['03:00.0']).text == "pci = [\n    '04:00.0',\n]\n"
    text = "pci = [\n    '03:00.0',\n    '04:00.0'\n    ,\n]\n"
    assert edit_pci(text, {}, ['04:00.0']).text == "pci = [\n    '03:00.0',\n]\n"


def test_other_multi_line_lists_get_one_entry_per_line_with_their_comments():
    text = ("    pci = [ '0000:03:00.0',  # NIC\n"
            '            # GPU\n'
            "            '0000:04:00.0', '0000:04:00.1' ]   # end\n")
    edit = edit_pci(text, ['0000:08:00.0'], ['0000:04:00.1'])
    assert edit.text == ('    pci = [\n'
                         "            '0000:03:00.0',  # NIC\n"
                         '            # GPU\n'
                         "            '0000:04:00.0',\n"
                         "            '0000:08:00.0',\n"
                         '    ]   # end\n')
    assert _entries(edit.text) == [('0000:03:00.0', {}), ('0000:04:00.0', {}), ('0000:08:00.0', {})]


def test_an_empty_multi_line_list_gets_indented_entries():
    text = 'pci = [\n  # none yet\n]\n'
    assert edit_pci(text, ['03:00.0']).text == "pci = [\n    # none yet\n    '0000:03:00.0',\n]\n"


def test_text_outside_the_list_is_left_byte_for_byte():
    before = "# head\nname = 'g'  ;  pci = [ '03:00.0' ] # tail\nvif = [\n  'bridge=xenbr0',\n]\n"
    after = edit_pci(before, ['04:00.0']).text
    start = before.index('[ ')
    end = before.index(' # tail')
    assert after[:start] == before[:start]
    assert after.endswith(before[end:])
    assert after[start:len(after) - len(before) + end] == "[ '03:00.0', '0000:04:00.0' ]"


def test_a_refused_file_gives_no_text(tmp_path):
    path = tmp_path / 'guest.cfg'
    path.write_text("pci = [ '03:00.0' ]\nmemory = 512M\n")
    with pytest.raises(XlConfigError) as caught:
        plan_pci_edit(str(path), ['04:00.0'])
    assert caught.value.line == 2 and caught.value.path == str(path)
    assert str(caught.value).startswith('%s line 2: ' % path)
    assert 'left as it was' in str(caught.value)


def test_plan_reads_the_file_and_plans_the_new_text(tmp_path):
    path = tmp_path / 'guest.cfg'
    path.write_text(PVLINUX)
    planned, edit = plan_pci_edit(str(path), {'03:00.0': {'seize': 1}})
    assert planned.before == PVLINUX and planned.after == edit.text and planned.changed
    assert planned.after.endswith("pci = [ '0000:03:00.0,seize=1' ]\n")
    with pytest.raises(XlConfigError) as caught:
        plan_pci_edit(str(tmp_path / 'missing.cfg'), ['03:00.0'])
    assert 'does not exist' in str(caught.value)


# ---- properties --------------------------------------------------------------------------------

_NAMES = st.from_regex(r'[a-z][_0-9a-z]{0,7}', fullmatch=True).filter(lambda name: name != 'pci')
_BLANKS = st.sampled_from(['', ' ', '  ', '\t', ' \t '])
_COMMENT_TEXT = st.text(st.characters(blacklist_characters='\n', blacklist_categories=('Cs',)), max_size=15)
_STRING_TEXT = st.text(st.characters(blacklist_characters='\n\'"\\', blacklist_categories=('Cs',)), max_size=10)
_ESCAPES = st.sampled_from(['\\"', "\\'", '\\\\', '\\n', '\\t', '\\r', '\\a', '\\b', '\\f', '\\v'])


@st.composite
def _quoted(draw):
    quote = draw(st.sampled_from(["'", '"']))
    return quote + ''.join(draw(st.lists(st.one_of(_STRING_TEXT, _ESCAPES), max_size=4))) + quote


@st.composite
def _line_end(draw):
    """What may follow a value inside a list or end a line: a newline or a comment, after blanks."""
    return draw(_BLANKS) + draw(st.one_of(st.just('\n'), _COMMENT_TEXT.map(lambda text: '#' + text + '\n')))


@st.composite
def _nlok(draw, multi_line):
    """Blanks and, when the list may span lines, newlines and comment lines."""
    text = draw(_BLANKS)
    if multi_line:
        for dummy in range(draw(st.integers(0, 2))):
            text += draw(_line_end()) + draw(_BLANKS)
    return text


def _list_text(draw, items, multi_line):
    text = '[' + draw(_nlok(multi_line))
    for number, item in enumerate(items):
        text += item + draw(_nlok(multi_line))
        if number < len(items) - 1 or draw(st.booleans()):
            text += ',' + draw(_nlok(multi_line))
    return text + ']'


@st.composite
def _value(draw, depth=0):
    kind = draw(st.sampled_from(['string', 'number', 'list'] if depth < 2 else ['string', 'number']))
    if kind == 'string':
        return draw(_quoted())
    if kind == 'number':
        return draw(st.from_regex(r'[0-9][0-9a-fx]{0,5}', fullmatch=True))
    items = draw(st.lists(_value(depth + 1), max_size=3))
    return _list_text(draw, items, draw(st.booleans()))


@st.composite
def _other_pieces(draw):
    """Settings other than pci, comments and blank lines, each ending its statement."""
    pieces = []
    for dummy in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(['setting', 'setting', 'comment', 'blank']))
        if kind == 'setting':
            pieces.append(draw(_NAMES) + draw(_BLANKS) + draw(st.sampled_from(['=', '+='])) + draw(_BLANKS)
                          + draw(_value()) + draw(st.one_of(_line_end(), _BLANKS.map(lambda blank: blank + ';'))))
        elif kind == 'comment':
            pieces.append(draw(_BLANKS) + '#' + draw(_COMMENT_TEXT) + '\n')
        else:
            pieces.append(draw(_BLANKS) + '\n')
    return pieces


_BOOLEAN_KEYS = ['permissive', 'msitranslate', 'seize', 'power_mgmt']


@st.composite
def _options(draw):
    """Options as xl means them: booleans 0/1, vslot a number 0-0x1f, rdm_policy a word."""
    options = {}
    for key in _BOOLEAN_KEYS:
        if draw(st.booleans()):
            options[key] = draw(st.integers(0, 1))
    if draw(st.booleans()):
        options['vslot'] = draw(st.integers(0, 0x1f))
    if draw(st.booleans()):
        options['rdm_policy'] = draw(st.sampled_from(['strict', 'relaxed']))
    return options


@st.composite
def _spec_spelling(draw, fields, options):
    """One way of writing the entry in a file: short or long address, @ or vslot=, bdf=, any key order."""
    address = draw(spellings(*fields))
    pairs = [(key, str(value)) for key, value in options.items() if key != 'vslot']
    head = address
    if 'vslot' in options:
        digits = '%x' % options['vslot'] if draw(st.booleans()) else '%02X' % options['vslot']
        if draw(st.booleans()):
            head += '@' + digits
        else:
            pairs.append(('vslot', digits))
    pairs = draw(st.permutations(pairs))
    if '@' not in head and draw(st.booleans()):
        pairs.insert(draw(st.integers(0, len(pairs))), ('bdf', address))
        head = None
    parts = ([head] if head else []) + ['%s=%s' % pair for pair in pairs]
    return ','.join(parts) + (',' if draw(st.booleans()) else '')


@st.composite
def _pci_statement(draw):
    """``(statement text, offset of its value, {address: options})`` in one of the layouts people write."""
    size = draw(st.integers(0, 4))
    entries = draw(st.lists(valid_fields, min_size=size, max_size=size, unique_by=lambda fields: fields))
    truth = OrderedDict()
    items = []
    for fields in entries:
        options = draw(_options())
        truth[canonical(*fields)] = options
        quote = draw(st.sampled_from(["'", '"']))
        items.append(quote + draw(_spec_spelling(fields, options)) + quote)
    layout = draw(st.sampled_from(['one line', 'line each', 'free']))
    if layout == 'line each':
        indent = draw(st.sampled_from(['  ', '    ', '\t', '        ']))
        value = '[' + draw(_line_end())
        for number, item in enumerate(items):
            comma = ',' if number < len(items) - 1 or draw(st.booleans()) else ''
            value += indent + item + draw(_BLANKS) + comma + draw(_line_end())
            if draw(st.booleans()):
                value += indent + '#' + draw(_COMMENT_TEXT) + '\n'
        value += draw(_BLANKS) + ']'
    else:
        value = _list_text(draw, items, layout == 'free')
    head = draw(_BLANKS) + 'pci' + draw(_BLANKS) + '=' + draw(_BLANKS)
    return head + value, len(head), truth


@st.composite
def configs(draw):
    """``(text, (start, end) of the pci value or None, {address: options} the file holds)``."""
    pieces = draw(_other_pieces())
    span = None
    truth = OrderedDict()
    if draw(st.sampled_from([True, True, False])):
        statement, offset, truth = draw(_pci_statement())
        where = draw(st.integers(0, len(pieces)))
        start = len(''.join(pieces[:where])) + offset
        span = (start, start + len(statement) - offset)
        pieces.insert(where, statement + draw(st.one_of(_line_end(), _BLANKS.map(lambda blank: blank + ';'))))
    text = ''.join(pieces)
    if text.endswith('\n') and draw(st.booleans()):
        text = text[:-1]  # the last statement or comment may end the file without a newline
    return text, span, truth


def _request_options(draw):
    """Options as a task may give them: the canonical meaning and one of the ways to write it."""
    meaning = draw(_options())
    given_as = {}
    for key, value in meaning.items():
        if key in _BOOLEAN_KEYS:
            given_as[key] = draw(st.sampled_from([value, bool(value), str(value)]))
        elif key == 'vslot':
            given_as[key] = draw(st.sampled_from([value, '%x' % value, '%02X' % value]))
        else:
            given_as[key] = value
    if draw(st.booleans()):
        given_as[draw(st.sampled_from(_BOOLEAN_KEYS + ['vslot', 'rdm_policy']))] = None
        meaning = dict((key, value) for key, value in meaning.items() if key in given_as and given_as[key] is not None)
    return meaning, given_as


@st.composite
def requests(draw, truth):
    """``(add, remove, expected {address: options} after the edit)`` touching present and new addresses."""
    present = list(truth)
    new = [canonical(*fields) for fields in draw(st.lists(valid_fields, min_size=1, max_size=3))]
    touched = draw(st.lists(st.sampled_from(present + new), min_size=1, unique=True))
    add = OrderedDict()
    remove = []
    expected = OrderedDict(truth)
    for address in touched:
        fields = tuple(int(part, 16) for part in address.replace(':', '.').split('.'))
        spelled = draw(spellings(*fields))
        action = draw(st.sampled_from(['add same', 'add', 'remove']))
        if action == 'remove':
            remove.append(spelled)
            expected.pop(address, None)
            continue
        if action == 'add same' and address in truth:
            meaning, given_as = truth[address], dict(truth[address])
        else:
            meaning, given_as = _request_options(draw)
        add[spelled] = given_as
        expected[address] = meaning
    return add, remove, expected


@settings(max_examples=200, deadline=None)
@given(st.data(), configs())
def test_an_edit_changes_only_the_pci_value_and_gives_exactly_the_requested_entries(data, config):
    text, span, truth = config
    setting = parse_pci(text)
    assert setting.as_dict() == truth
    add, remove, expected = data.draw(requests(truth))
    edit = edit_pci(text, add, remove)
    after = parse_pci(edit.text)
    assert list(after.as_dict().items()) == list(expected.items())
    if span is None:
        assert edit.text.startswith(text)
        appended = edit.text[len(text):]
        assert appended == '' if not expected else appended.lstrip('\n').startswith('pci = [ ')
        assert appended.count('\n') <= 2
    else:
        start, end = span
        assert (setting.start, setting.end) == span
        assert edit.text[:start] == text[:start]
        assert edit.text[len(edit.text) - (len(text) - end):] == text[end:]
        assert (after.start, after.end) == (start, len(edit.text) - (len(text) - end))
    assert edit_pci(edit.text, add, remove).text == edit.text
    assert set(edit.added) == set(expected) - set(truth)
    assert set(edit.removed) == set(truth) - set(expected)
    assert set(edit.replaced) == set(address for address in expected
                                     if address in truth and truth[address] != expected[address])
    assert (edit.text == text) == (not edit.changed)


@settings(max_examples=100, deadline=None)
@given(configs())
def test_asking_for_what_is_there_gives_the_same_text(config):
    text, dummy, truth = config
    assert edit_pci(text, truth).text is text


@settings(max_examples=100, deadline=None)
@given(configs())
def test_other_settings_survive_an_add_then_remove_and_a_one_line_list_stays_one_line(config):
    text, span, truth = config
    assume('0000:7f:1f.7' not in truth)
    added = edit_pci(text, {'7f:1f.7': {'permissive': 1}}).text
    back = edit_pci(added, {}, ['0000:7f:1f.7']).text
    if span is None:
        separator = '' if text == '' or text.endswith('\n') else '\n'
        assert added == text + separator + "pci = [ '0000:7f:1f.7,permissive=1' ]\n"
        assert back == text + separator + 'pci = []\n'
    elif '\n' not in text[span[0]:span[1]]:
        assert back.count('\n') == text.count('\n')
        assert parse_pci(back).as_dict() == truth


@settings(max_examples=200, deadline=None)
@given(st.data(), configs())
def test_a_damaged_config_is_read_or_refused_with_a_line_never_anything_else(data, config):
    text = config[0]
    where = data.draw(st.integers(0, len(text)))
    pieces = ['\'', '"', '\\', '[', ']', ',', '=', '+=', ';', '\n', '\r', '#', 'pci', 'pci = 1\n', 'pci += []\n',
              '@', '*', 'X']
    damage = data.draw(st.one_of(st.sampled_from(pieces), st.text(max_size=3)))
    damaged = text[:where] + damage + text[where:]
    try:
        setting = parse_pci(damaged)
    except XlConfigError as exc:
        assert exc.line is not None and 1 <= exc.line <= damaged.count('\n') + 1
        assert str(exc).startswith('line %d: ' % exc.line)
        return
    for entry in setting.entries:
        assert parse_pci_spec(dequote(entry.spec)) == (entry.address, entry.options)


def test_guest_configs_name_each_device_with_its_files_and_set_unreadable_ones_aside(tmp_path):
    (tmp_path / 'a.cfg').write_text(u"pci = [ '03:00.0', '0000:04:00.0' ]\n")
    (tmp_path / 'b.cfg').write_text(u"name = 'b'\npci = [ '0000:03:00.0,seize=1' ]\n")
    (tmp_path / 'c.cfg').write_text(u"pci = [ '03:00.0', '03:00.0' ]\n")       # refused: listed twice
    (tmp_path / 'd.cfg').write_bytes(b"pci = [ '\xff' ]\n")                       # not UTF-8
    (tmp_path / 'sub.cfg').mkdir()
    os.symlink(str(tmp_path / 'b.cfg'), str(tmp_path / 'link.cfg'))               # read through the link
    configs = read_guest_configs(str(tmp_path))
    a, b, link = (str(tmp_path / name) for name in ('a.cfg', 'b.cfg', 'link.cfg'))
    assert configs.naming == {'0000:03:00.0': [a, b, link], '0000:04:00.0': [a]}
    assert sorted(configs.unreadable) == [str(tmp_path / 'c.cfg'), str(tmp_path / 'd.cfg')]
    assert 'listed twice' in configs.unreadable[str(tmp_path / 'c.cfg')]
    assert configs.files_naming('0000:03:00.0', besides=b) == [a]                 # the link is b itself
    assert read_guest_configs(str(tmp_path / 'missing')).naming == {}
