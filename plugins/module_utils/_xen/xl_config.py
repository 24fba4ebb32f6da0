# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""xl guest configuration files (xl.cfg(5)): read the ``pci`` list, keep it in step, touch nothing else.

The file is read the way libxlutil reads it (``libxlu_cfg_l.l`` and ``libxlu_cfg_y.y``): names are
``[a-z][_0-9a-z]*``, numbers ``[0-9][0-9a-fx]*``, strings are single- or double-quoted on one line
with backslash escapes (the same escapes in both), blanks are spaces and tabs only, ``#`` starts a
comment that runs to the end of the line, a statement is ``name = value`` or ``name += value`` and
ends at a newline or ``;``, and a value is a string, a number or a ``[ ]`` list that may span lines
(comments included) and may end with a comma. A file xl's lexer or parser would refuse (an open
quote, a carriage return, ``512M``, Python, an escape xl cannot read) is refused here too, with
its line, and never edited; the one leniency is a last comment without a newline, which xl's
lexer wants and an appended ``pci`` line brings. Settings other than ``pci`` only have to be well
formed; their values are not interpreted.

``pci`` must be one ``pci = [ 'SPEC', ... ]`` of strings, each a PCI_SPEC_STRING
(xl-pci-configuration(5)): ``[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]`` or ``bdf=...`` among the keys,
with ``permissive``, ``msitranslate``, ``seize``, ``power_mgmt`` (0 or 1), ``rdm_policy``
(``strict`` or ``relaxed``) and ``vslot`` (a device number 0-1f, always hexadecimal). A ``pci``
given with ``+=`` or twice, an entry that is not a string, an unknown key, a malformed address, a
repeated address, ``name=`` (the device is only known when xl looks the name up) and ``BB:DD.*``
(every function) are refused, since an edit could not be sure of what the list means; so is an
empty value (``seize=``: the manual says it means the default, libxlutil reads 0). Options compare
as written: one left out is not the same as 0, because the file's ``pci_permissive``,
``pci_msitranslate``, ``pci_seize``, ``pci_power_mgmt`` and ``rdm`` settings give the defaults.

An edit changes the text of the ``pci`` list's ``[ ... ]`` and nothing else, or appends
``pci = [ ... ]`` when the file has none. Entries that stay keep their spelling; a changed one and
a new one are written the way xl's documentation spells them: ``'0000:03:00.0@08,permissive=1'``
(``@VSLOT`` rather than ``vslot=``, which the parser of Xen 4.14 and older does not know). A list on
one line stays on one line; a list whose entries each have a line of their own keeps its lines
(new ones take the indentation of the last one); any other multi-line list is rewritten with one
entry per line, keeping the comments it holds. When the last entry goes, ``pci = []`` stays, so
that the setting keeps its place in the file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
from collections import OrderedDict, namedtuple

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import PlannedFile, read_text_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import PciAddressError, parse_pci_address

PCI_SETTING = 'pci'
# Where xl's users keep guest configurations (xl.cfg(5): /etc/xen/NAME.cfg), and their suffix.
CONFIG_DIR = ('etc', 'xen')
CONFIG_SUFFIX = '.cfg'
BOOLEAN_OPTIONS = ('permissive', 'msitranslate', 'seize', 'power_mgmt')
RDM_POLICIES = ('strict', 'relaxed')
# The order options are written in after the address (vslot goes first, as @VSLOT).
OPTION_ORDER = BOOLEAN_OPTIONS + ('rdm_policy',)
OPTION_KEYS = ('vslot',) + OPTION_ORDER
_MAX_VSLOT = 0x1f

_TOKEN_RE = re.compile(
    r"(?P<ident>[a-z][_0-9a-z]*)"
    r"|(?P<number>[0-9][0-9a-fx]*)"
    r"|(?P<blank>[ \t]+)"
    r"|(?P<newline>\n|#[^\n]*(?:\n|\Z))"
    r"|(?P<string>'(?:[^'\\\n]|\\[^\n])*'|\"(?:[^\"\\\n]|\\[^\n])*\")"
    r"|(?P<punct>\+=|[,\[\]=;])"
)
_SIMPLE_ESCAPES = {'"': '"', "'": "'", '\\': '\\', 'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r',
                   't': '\t', 'v': '\v'}
_OCTAL_TAIL_RE = re.compile(r'[ \t\v\f\r]*[+-]?[0-9]+')
_VSLOT_RE = re.compile(r'^(?:0[xX])?[0-9a-fA-F]{1,2}\Z')
_BLANK_RE = re.compile(r'^[ \t]*\Z')


class XlConfigError(Exception):
    """A guest configuration or a request that cannot be used safely; nothing was changed.

    ``line`` is the 1-based line of the file the problem is on, or None when the problem is in
    the request rather than in the file.
    """

    def __init__(self, message, line=None, path=None):
        self.message = message
        self.line = line
        self.path = path
        where = ' '.join(part for part in (path, None if line is None else 'line %d' % line) if part)
        Exception.__init__(self, '%s: %s' % (where, message) if where else message)


# ---- lexing and parsing ------------------------------------------------------------------------

Token = namedtuple('Token', ['kind', 'text', 'start', 'end', 'line'])


def _line_text(text, line):
    lines = text.split('\n')
    shown = lines[line - 1] if 0 < line <= len(lines) else ''
    return shown if len(shown) <= 72 else shown[:69] + '...'


def _lexical_error(text, pos, line):
    char = text[pos]
    shown = _line_text(text, line)
    if char in '\'"':
        reason = 'the string opened here is not closed on this line (xl strings cannot span lines)'
    elif char == '\r':
        reason = 'a carriage return (CRLF line ends?), which xl refuses'
    elif char in '+-.():':
        reason = '%r outside a string: xl reads no Python or arithmetic' % char
    else:
        reason = ('%r outside a string: xl takes lower-case names, numbers, quoted strings, '
                  '[ ] , = += ; and # comments' % char)
    return XlConfigError('xl cannot read this line (%r): %s' % (shown, reason), line)


def tokenize(text):
    """The tokens of ``text`` as libxlutil's lexer makes them (blanks left out); XlConfigError where it is lost."""
    tokens = []
    pos = 0
    line = 1
    length = len(text)
    while pos < length:
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise _lexical_error(text, pos, line)
        kind = match.lastgroup
        if kind == 'string':
            _unescape(match.group(), line, False)
        if kind != 'blank':
            tokens.append(Token(kind, match.group(), pos, match.end(), line))
        line += match.group().count('\n')
        pos = match.end()
    return tokens


class Atom:
    """A string or number value."""

    def __init__(self, token):
        self.token = token
        self.start = token.start
        self.end = token.end
        self.line = token.line


class ListValue:
    """A ``[ ... ]`` value: its items, and every token between the brackets (for the layout)."""

    def __init__(self, open_token, close_token, items, body):
        self.open = open_token
        self.close = close_token
        self.items = items
        self.body = body
        self.start = open_token.start
        self.end = close_token.end
        self.line = open_token.line


class Statement:
    """``name = value`` or ``name += value``: where it is."""

    def __init__(self, name_token, operator, value):
        self.name = name_token.text
        self.name_token = name_token
        self.operator = operator
        self.value = value
        self.start = name_token.start
        self.line = name_token.line


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self):
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, token, what):
        if token is None:
            last = self.tokens[-1].line if self.tokens else 1
            return XlConfigError('the file ends where %s was expected' % what, last)
        shown = 'a newline' if token.kind == 'newline' and token.text == '\n' else \
            'a comment' if token.kind == 'newline' else repr(token.text)
        return XlConfigError('xl cannot parse this line (%r): %s where %s was expected'
                             % (_line_text(self.text, token.line), shown, what), token.line)

    def statements(self):
        found = []
        while self.peek() is not None:
            token = self.take()
            if token.kind == 'newline' or token.text == ';':
                continue
            if token.kind != 'ident':
                raise self.error(token, 'a setting name')
            operator = self.peek()
            if operator is None or operator.text not in ('=', '+='):
                raise self.error(operator, '"=" or "+=" after %r' % token.text)
            self.take()
            value = self.value()
            end = self.peek()
            if end is not None and end.kind != 'newline' and end.text != ';':
                raise self.error(end, 'the end of the %r statement (a newline or ";")' % token.text)
            found.append(Statement(token, operator.text, value))
        return found

    def skip_newlines(self, body):
        while self.peek() is not None and self.peek().kind == 'newline':
            body.append(self.take())

    def value(self):
        token = self.peek()
        if token is None:
            raise self.error(None, 'a value')
        if token.kind in ('string', 'number'):
            return Atom(self.take())
        if token.text != '[':
            raise self.error(token, 'a value (a quoted string, a number or a [ list ])')
        open_token = self.take()
        items = []
        body = []
        self.skip_newlines(body)
        while True:
            token = self.peek()
            if token is None:
                raise XlConfigError('the list opened on line %d is not closed' % open_token.line, open_token.line)
            if token.text == ']':
                return ListValue(open_token, self.take(), items, body)
            item = self.value()
            items.append(item)
            body.append(item)
            self.skip_newlines(body)
            token = self.peek()
            if token is not None and token.text == ',':
                body.append(self.take())
                self.skip_newlines(body)
            elif token is not None and token.text != ']':
                raise self.error(token, '"," or "]" in the list opened on line %d' % open_token.line)


def parse_statements(text):
    """Every statement of an xl configuration, in file order; XlConfigError if xl could not read it."""
    return _Parser(text).statements()


def _unescape(token_text, line, strict):
    """A string token's value as libxlutil's dequoting makes it; XlConfigError where xl refuses it.

    xl refuses ``\\x`` (its length check can never pass) and any escape it does not know. An
    octal escape ``\\N`` is read as a decimal number of the next characters and the character is
    never stored: xl takes it when at least two characters follow that ``strtoul`` reads, and
    those vanish. ``strict`` (for pci entries) refuses such an escape too.
    """
    out = []
    body = token_text[1:-1]
    pos = 0
    while pos < len(body):
        char = body[pos]
        if char != '\\':
            out.append(char)
            pos += 1
            continue
        escape = body[pos + 1]
        pos += 2
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
        elif escape == 'x':
            raise XlConfigError('%s: xl cannot read the escape \\x (it refuses every \\x escape)' % token_text, line)
        elif escape in '01234567':
            digits = _OCTAL_TAIL_RE.match(body, pos, pos + 3)
            if digits is None or digits.end() - pos < 2:
                raise XlConfigError('%s: xl cannot read the octal escape \\%s' % (token_text, escape), line)
            if strict:
                raise XlConfigError('%s: xl drops the characters of the octal escape \\%s%s'
                                    % (token_text, escape, digits.group()), line)
            pos = digits.end()
        else:
            raise XlConfigError('%s: \\%s is not an escape xl knows' % (token_text, escape), line)
    return ''.join(out)


def dequote(token_text, line=None):
    """The value of a quoted string token, unescaped like libxlutil; numeric escapes (mangled by xl) refused."""
    return _unescape(token_text, line, True)


# ---- PCI_SPEC_STRING ---------------------------------------------------------------------------

def _bool_option(key, value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value in ('0', '1'):
        return int(value)
    raise XlConfigError('PCI option %s=%r: xl takes 0 or 1' % (key, value))


def _vslot_option(value):
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _VSLOT_RE.match(value):
        number = int(value, 16)
    if number is None or not 0 <= number <= _MAX_VSLOT:
        raise XlConfigError('PCI option vslot=%r: xl takes a device number 0-1f (hexadecimal in a string)' % (value,))
    return number


def option_value(key, value):
    """The canonical value of one PCI option (booleans 0/1, vslot a number, rdm_policy a word); XlConfigError otherwise."""
    if key in BOOLEAN_OPTIONS:
        return _bool_option(key, value)
    if key == 'vslot':
        return _vslot_option(value)
    if key == 'rdm_policy':
        if isinstance(value, str) and value in RDM_POLICIES:
            return value
        raise XlConfigError('PCI option rdm_policy=%r: xl takes strict or relaxed' % (value,))
    raise XlConfigError('unknown PCI option %s=%r: xl knows %s' % (key, value, ', '.join(OPTION_KEYS)))


def check_pci_options(options):
    """The canonical options dict for a request (keys xl knows, values of their type); None values are left out."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise XlConfigError('PCI options must be a dictionary, not %r' % (options,))
    result = {}
    for key, value in options.items():
        if value is None:
            continue
        if not isinstance(key, str):
            raise XlConfigError('unknown PCI option %r=%r: xl knows %s' % (key, value, ', '.join(OPTION_KEYS)))
        result[key] = option_value(key, value)
    return result


def _spec_address(text, spec):
    if text.endswith('*'):
        raise XlConfigError('%r names every function of a device (%s); give each function its own entry'
                            % (spec, text))
    try:
        return str(parse_pci_address(text))
    except PciAddressError as exc:
        raise XlConfigError('%r: %s' % (spec, exc))


def parse_pci_spec(spec):
    """``(address, options)`` of one PCI_SPEC_STRING, the address canonical; XlConfigError for anything else."""
    parts = spec.split(',')
    address = None
    options = {}
    seen = set()
    rest = parts[1:]
    if '=' in parts[0]:
        rest = parts
    else:
        bdf, at_sign, vslot = parts[0].partition('@')
        address = _spec_address(bdf, spec)
        seen.add('bdf')
        if at_sign:
            options['vslot'] = option_value('vslot', vslot)
            seen.add('vslot')
    if rest and rest[-1] == '':
        rest = rest[:-1]  # xl takes one trailing comma
    for part in rest:
        key, equals, value = part.partition('=')
        if not equals:
            raise XlConfigError('%r: %r is not KEY=VALUE' % (spec, part))
        if key in seen:
            raise XlConfigError('%r gives %s twice' % (spec, 'the address' if key == 'bdf' else key))
        seen.add(key)
        if key == 'bdf':
            address = _spec_address(value, spec)
        elif key == 'name':
            raise XlConfigError('%r names the device %s=%s: which device that is only xl knows when it looks the '
                                'name up; write its address instead' % (spec, key, value))
        elif key not in OPTION_KEYS:
            raise XlConfigError('%r: unknown PCI option %s=%r: xl knows %s'
                                % (spec, key, value, ', '.join(OPTION_KEYS)))
        else:
            try:
                options[key] = option_value(key, value)
            except XlConfigError as exc:
                raise XlConfigError('%r: %s' % (spec, exc))
    if address is None:
        raise XlConfigError('%r gives no device address' % (spec,))
    return address, options


def format_pci_spec(address, options):
    """xl's spelling of an entry: ``0000:03:00.0@08,permissive=1`` (address canonical, options in a fixed order)."""
    text = address
    if 'vslot' in options:
        text += '@%02x' % options['vslot']
    for key in OPTION_ORDER:
        if key in options:
            text += ',%s=%s' % (key, options[key])
    return text


# ---- the pci setting ---------------------------------------------------------------------------

class PciEntry(namedtuple('PciEntry', ['address', 'options', 'spec', 'line', 'start', 'end'])):
    """One ``pci`` list entry: canonical address, options, the string as written, its line and offsets."""

    __slots__ = ()


class PciSetting:
    """What a configuration says about ``pci``: the entries and where the list is (None: no ``pci``).

    ``start``/``end`` are the offsets of the value ``[ ... ]``, ``line`` the line of the statement.
    """

    def __init__(self, entries, statement=None):
        self.entries = entries
        self.statement = statement
        self.line = statement.line if statement else None
        self.start = statement.value.start if statement else None
        self.end = statement.value.end if statement else None

    @property
    def present(self):
        return self.statement is not None

    def addresses(self):
        return [entry.address for entry in self.entries]

    def as_dict(self):
        """``{address: options}`` in list order."""
        return OrderedDict((entry.address, entry.options) for entry in self.entries)


def _pci_statement(statements):
    found = None
    for statement in statements:
        if statement.name != PCI_SETTING:
            continue
        if statement.operator == '+=':
            raise XlConfigError('"pci +=" adds to a list set elsewhere; write the whole list in one "pci = [ ... ]"',
                                statement.line)
        if found is not None:
            raise XlConfigError('pci is set a second time (first on line %d); xl would use only the last one, '
                                'keep one "pci = [ ... ]"' % found.line, statement.line)
        found = statement
    return found


def parse_pci(text):
    """The PciSetting of a configuration's text; XlConfigError (with the line) for anything unsafe."""
    statement = _pci_statement(parse_statements(text))
    if statement is None:
        return PciSetting([])
    value = statement.value
    if not isinstance(value, ListValue):
        raise XlConfigError('pci is %s, not a list of strings: write pci = [ %s ]'
                            % (value.token.text, value.token.text if value.token.kind == 'string' else "'...'"),
                            statement.line)
    entries = []
    lines = {}
    for item in value.items:
        if not isinstance(item, Atom) or item.token.kind != 'string':
            shown = 'a list' if isinstance(item, ListValue) else 'the number %s' % item.token.text
            raise XlConfigError('pci holds %s, not a quoted PCI_SPEC_STRING (xl would stop reading the list '
                                'there)' % shown, item.line)
        spec = dequote(item.token.text, item.line)
        try:
            address, options = parse_pci_spec(spec)
        except XlConfigError as exc:
            raise XlConfigError(exc.message, item.line)
        if address in lines:
            raise XlConfigError('%s is listed twice in pci (also on line %d)' % (address, lines[address]), item.line)
        lines[address] = item.line
        entries.append(PciEntry(address, options, item.token.text, item.line, item.start, item.end))
    return PciSetting(entries, statement)


# ---- requests ----------------------------------------------------------------------------------

def _request_address(text):
    try:
        return str(parse_pci_address(text))
    except PciAddressError as exc:
        raise XlConfigError(str(exc))


def requested_entries(add):
    """``{address: options}`` for what a task adds: a dict, or a list of addresses or (address, options) pairs."""
    if isinstance(add, str):
        add = [add]
    pairs = add.items() if isinstance(add, dict) else add or ()
    wanted = OrderedDict()
    for pair in pairs:
        if isinstance(pair, str):
            address, options = pair, None
        elif isinstance(pair, (list, tuple)) and len(pair) == 2:
            address, options = pair
        else:
            raise XlConfigError('%r is neither an address nor an (address, options) pair' % (pair,))
        address = _request_address(address)
        try:
            options = check_pci_options(options)
        except XlConfigError as exc:
            raise XlConfigError('%s: %s' % (address, exc.message))
        if address in wanted and wanted[address] != options:
            raise XlConfigError('%s is requested twice with different options' % address)
        wanted[address] = options
    return wanted


# ---- editing -----------------------------------------------------------------------------------

class PciEdit(namedtuple('PciEdit', ['text', 'added', 'replaced', 'removed'])):
    """The new text and the canonical addresses added, replaced (other options) and removed."""

    __slots__ = ()

    @property
    def changed(self):
        return bool(self.added or self.replaced or self.removed)


def _line_start(text, pos):
    return text.rfind('\n', 0, pos) + 1


def _indent_of(text, pos):
    """The blanks before ``pos`` on its line, or '' when something else is there."""
    prefix = text[_line_start(text, pos):pos]
    return prefix if _BLANK_RE.match(prefix) else ''


def _column_indent(text, pos):
    """Blanks as wide as the text before ``pos`` on its line (tabs kept)."""
    return re.sub(r'[^\t]', ' ', text[_line_start(text, pos):pos])


def _quote(spec):
    return "'%s'" % spec


class _Item:
    """A list item and its surroundings in the list's token stream."""

    def __init__(self, body, position, entry):
        self.entry = entry
        self.token = body[position].token
        following = position + 1
        self.comma = following < len(body) and getattr(body[following], 'text', None) == ','
        if self.comma:
            following += 1
        self.after = body[following] if following < len(body) else None
        self.line_end = self.after.end if isinstance(self.after, Token) and self.after.kind == 'newline' else None


def _owns_line(text, item):
    return item.line_end is not None and _BLANK_RE.match(text[_line_start(text, item.token.start):item.token.start])


def _commas_follow_items(body):
    """True when every comma of the list is on the line of the entry it follows."""
    return all(position > 0 and isinstance(body[position - 1], Atom)
               for position, element in enumerate(body) if getattr(element, 'text', None) == ',')


def _render_one_line(text, value, final):
    body = value.body
    if not body:
        lead = tail = ' '
    else:
        lead = text[value.open.end:body[0].start]
        tail = text[body[-1].end:value.close.start]
    items = value.items
    sep = text[items[0].end:items[1].start] if len(items) >= 2 else ', '
    trailing = ',' if body and getattr(body[-1], 'text', None) == ',' else ''
    return '[' + lead + sep.join(final) + trailing + tail + ']'


def _render_owned_lines(text, value, items, outcome, new_specs):
    """Edits on a list whose every entry has a line of its own: ``[(start, end, replacement)]`` in the text."""
    edits = []
    for item in items:
        state = outcome[item.entry.address]
        if state is None:
            edits.append((_line_start(text, item.token.start), item.line_end, ''))
        elif state != item.token.text:
            edits.append((item.token.start, item.token.end, state))
    if new_specs:
        last = items[-1]
        indent = text[_line_start(text, last.token.start):last.token.start]
        if outcome[last.entry.address] is not None and not last.comma:
            edits.append((last.token.end, last.token.end, ','))
        lines = []
        for number, spec in enumerate(new_specs):
            comma = ',' if last.comma or number < len(new_specs) - 1 else ''
            lines.append(indent + spec + comma + '\n')
        edits.append((last.line_end, last.line_end, ''.join(lines)))
    return edits


def _render_rebuilt(text, value, statement, by_start, outcome, new_specs):
    """A multi-line list written again with one entry per line; comments kept, removed entries' own comments dropped."""
    body = value.body
    items = [element for element in body if isinstance(element, Atom)]
    starts_line = [item for item in items if _BLANK_RE.match(text[_line_start(text, item.start):item.start])]
    if starts_line:
        indent = text[_line_start(text, starts_line[0].start):starts_line[0].start]
    elif items:
        indent = _column_indent(text, items[0].start)
    else:
        indent = _indent_of(text, statement.start) + '    '
    index = 0
    if body and isinstance(body[0], Token) and body[0].kind == 'newline':
        head = text[value.open.end:body[0].end]
        index = 1
    else:
        head = '\n'
    lines = []
    on_this_line = None  # 'kept' / 'dropped' for the entry last seen on the current line
    previous_end = value.open.end
    for element in body[index:]:
        if isinstance(element, Atom):
            spec = outcome[by_start[element.start].address]
            if spec is None:
                on_this_line = 'dropped'
            else:
                lines.append(indent + spec + ',')
                on_this_line = 'kept'
        elif element.kind == 'newline':
            comment = element.text.rstrip('\n')
            if comment:
                if on_this_line == 'kept':
                    gap = text[previous_end:element.start]
                    lines[-1] += (gap if gap and _BLANK_RE.match(gap) else ' ') + comment
                elif on_this_line is None:
                    lines.append(indent + comment)
            on_this_line = None
        previous_end = element.end
    lines.extend(indent + spec + ',' for spec in new_specs)
    closing = text[body[-1].end:value.close.start] if body else ''
    if not (body and isinstance(body[-1], Token) and body[-1].kind == 'newline' and _BLANK_RE.match(closing)):
        closing = _indent_of(text, statement.start)
    return '[' + head + ''.join(line + '\n' for line in lines) + closing + ']'


def _apply(text, edits):
    out = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda edit: (edit[0], edit[1])):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return ''.join(out)


def edit_pci(text, add=None, remove=None):
    """The text with ``add`` (see requested_entries) in the pci list and ``remove`` (addresses) out of it.

    An entry already there with the same options is left as written; with other options it is
    written again in xl's spelling. Returns a PciEdit; ``text`` comes back unchanged (the same
    string) when nothing has to change.
    """
    wanted = requested_entries(add)
    if isinstance(remove, str):
        remove = [remove]
    dropping = OrderedDict((_request_address(address), True) for address in (remove or ()))
    both = [address for address in wanted if address in dropping]
    if both:
        raise XlConfigError('%s is both to be added and removed' % ', '.join(both))
    setting = parse_pci(text)
    outcome = OrderedDict()
    replaced = []
    removed = []
    for entry in setting.entries:
        if entry.address in dropping:
            outcome[entry.address] = None
            removed.append(entry.address)
        elif entry.address in wanted and wanted[entry.address] != entry.options:
            outcome[entry.address] = _quote(format_pci_spec(entry.address, wanted[entry.address]))
            replaced.append(entry.address)
        else:
            outcome[entry.address] = entry.spec
    added = [address for address in wanted if address not in outcome]
    new_specs = [_quote(format_pci_spec(address, wanted[address])) for address in added]
    if not (added or replaced or removed):
        return PciEdit(text, [], [], [])
    if not setting.present:
        separator = '' if text == '' or text.endswith('\n') else '\n'
        new_text = text + separator + 'pci = [ %s ]\n' % ', '.join(new_specs)
        return PciEdit(new_text, added, [], [])
    statement = setting.statement
    value = statement.value
    by_start = dict((entry.start, entry) for entry in setting.entries)
    final = [spec for spec in outcome.values() if spec is not None] + new_specs
    if not final:
        rendered = '[]'
    elif not any(isinstance(element, Token) and element.kind == 'newline' for element in value.body):
        rendered = _render_one_line(text, value, final)
    else:
        items = [_Item(value.body, position, by_start[element.start])
                 for position, element in enumerate(value.body) if isinstance(element, Atom)]
        if items and all(_owns_line(text, item) for item in items) and _commas_follow_items(value.body):
            return PciEdit(_apply(text, _render_owned_lines(text, value, items, outcome, new_specs)),
                           added, replaced, removed)
        rendered = _render_rebuilt(text, value, statement, by_start, outcome, new_specs)
    return PciEdit(text[:value.start] + rendered + text[value.end:], added, replaced, removed)


class GuestConfigs:
    """What the guest configurations in a directory say about PCI devices.

    ``naming`` is ``{address: [file, ...]}`` (sorted); ``unreadable`` is ``{file: reason}`` for a file whose ``pci``
    list could not be read (it names no device here).
    """

    def __init__(self, naming, unreadable):
        self.naming = naming
        self.unreadable = unreadable

    def files_naming(self, address, besides=None):
        """The files that name ``address``, without ``besides`` (a file, compared by its real path)."""
        files = self.naming.get(address, [])
        if not besides:
            return list(files)
        skip = os.path.realpath(besides)
        return [path for path in files if os.path.realpath(path) != skip]


def read_guest_configs(config_dir):
    """GuestConfigs for the ``*.cfg`` files directly in ``config_dir`` (xl's own ``xl.conf`` is not one).

    A file is read as it is, through a symbolic link too (nothing is written), and parsed as xl would
    read it; a missing directory names nothing.
    """
    naming = {}
    unreadable = {}
    try:
        names = sorted(os.listdir(config_dir))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(config_dir, name)
        if not name.endswith(CONFIG_SUFFIX) or not os.path.isfile(path):
            continue
        try:
            with open(path, 'rb') as handle:
                setting = parse_pci(handle.read().decode('utf-8'))
        except (OSError, UnicodeDecodeError) as exc:
            unreadable[path] = 'cannot read it: %s' % exc
            continue
        except XlConfigError as exc:
            unreadable[path] = str(exc)
            continue
        for address in setting.addresses():
            naming.setdefault(address, []).append(path)
    return GuestConfigs(naming, unreadable)


def plan_pci_edit(path, add=None, remove=None):
    """``(PlannedFile, PciEdit)`` for a guest configuration file; a missing file is refused (it is not created)."""
    before = read_text_file(path)
    if before is None:
        raise XlConfigError('it does not exist; a guest configuration is not created here', path=path)
    try:
        edit = edit_pci(before, add, remove)
    except XlConfigError as exc:
        raise XlConfigError('%s; it was left as it was' % exc.message, exc.line, path)
    return PlannedFile(path, before, edit.text), edit
