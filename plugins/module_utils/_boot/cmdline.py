# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Kernel and Xen command lines: tokens, the parameters a task asks for, and edits that touch nothing else.

A command line is split the way Linux's ``next_arg()`` splits it: on blanks outside double
quotes, ``key=value`` at the first ``=``, quotes around the value or the whole parameter
removed. Xen's parser follows the same rules. Parameter names match with ``-`` and ``_``
taken as equal (both Linux and Xen do so). Everything after a lone ``--`` belongs to init,
not to the kernel, and is never edited.

An edit removes or replaces the tokens of the parameters it manages and keeps every other
token as it was written; when nothing changes the line is returned unchanged, byte for byte.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

BLANKS = ' \t\n\r\f\v'
SEPARATOR = '--'

_KEY_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z')


class CmdlineError(Exception):
    """A parameter or value this module cannot put on a command line."""


def normalize_key(key):
    """Linux and Xen compare parameter names with ``-`` and ``_`` taken as the same character."""
    return key.replace('-', '_')


class Token:
    """One parameter as written: ``raw`` text, ``key``, ``value`` (None for a bare key), span in the line."""

    __slots__ = ('raw', 'key', 'value', 'start', 'end')

    def __init__(self, raw, start=0, end=None):
        self.raw = raw
        self.start = start
        self.end = start + len(raw) if end is None else end
        self.key, self.value = _split(raw)

    @property
    def norm_key(self):
        return None if self.key is None else normalize_key(self.key)

    @property
    def occurrence(self):
        return (self.norm_key, self.value)

    def __repr__(self):
        return 'Token(%r)' % self.raw


def _split(raw):
    text = raw
    quoted = text.startswith('"')
    if quoted:
        text = text[1:]
    equals = text.find('=')
    if equals <= 0:
        if quoted and text.endswith('"'):
            text = text[:-1]
        return text, None
    key, value = text[:equals], text[equals + 1:]
    if value.startswith('"'):
        value = value[1:]
        if value.endswith('"'):
            value = value[:-1]
    elif quoted and value.endswith('"'):
        value = value[:-1]
    return key, value


def tokenize(line):
    """The tokens of ``line`` in order, each with its span."""
    tokens = []
    index = 0
    length = len(line)
    while index < length:
        while index < length and line[index] in BLANKS:
            index += 1
        if index >= length:
            break
        start = index
        in_quote = False
        while index < length and (in_quote or line[index] not in BLANKS):
            if line[index] == '"':
                in_quote = not in_quote
            index += 1
        tokens.append(Token(line[start:index], start, index))
    return tokens


def validate_key(key):
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CmdlineError('%r is not a parameter name (letters, digits, "_", "-" and "."; no "=" or blanks)' % (key,))
    return key


def validate_value(key, value):
    if '"' in value:
        raise CmdlineError('the value %r of %s contains a double quote, which a kernel command line cannot carry'
                           % (value, key))
    if not value.isprintable():
        raise CmdlineError('the value %r of %s contains a control character (a newline, a tab, ...); refused'
                           % (value, key))
    return value


def render(key, value):
    """``key``, ``key=value`` or ``key="value with blanks"``."""
    if value is None:
        return key
    if any(char in BLANKS for char in value):
        return '%s="%s"' % (key, value)
    return '%s=%s' % (key, value)


def _scalar(key, value, state):
    if value is None:
        return None
    if isinstance(value, bool):
        raise CmdlineError(
            'the value of %s is the boolean %s: YAML reads unquoted yes/no/on/off/true/false as booleans; write the value '
            'the kernel expects in quotes ("on", "1", "true"), or null for a bare %s' % (key, value, key))
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise CmdlineError('the value of %s must be a string, a number, null or (state=%s) a list of them' % (key, state))
    return validate_value(key, value)


class Param:
    """A parameter as the task asks for it: with ``state=present`` the exact ``values`` the key must end up with
    (None for a bare key); with ``state=absent`` the values to remove, or None for every occurrence."""

    def __init__(self, key, values, state):
        self.key = key
        self.norm_key = normalize_key(key)
        self.values = values
        self.state = state

    @property
    def desired(self):
        return [(self.norm_key, value) for value in self.values]

    def tokens(self):
        return [render(self.key, value) for value in self.values]

    def removes(self, token):
        """Whether ``state=absent`` takes this token away."""
        return token.norm_key == self.norm_key and (self.values is None or token.value in self.values)

    def satisfied_by(self, occurrences):
        """Whether the occurrences of this key on a line are what the task asks for."""
        if self.state == 'present':
            return [token.occurrence for token in occurrences] == self.desired
        return not any(self.removes(token) for token in occurrences)

    def __repr__(self):
        return 'Param(%r, %r, %r)' % (self.key, self.values, self.state)


def parse_params(params, state):
    """The module's ``params`` mapping as a list of ``Param``; CmdlineError for anything unusable."""
    if not isinstance(params, dict) or not params:
        raise CmdlineError('params must be a non-empty mapping of parameter names to values')
    result = []
    seen = {}
    for key in params:
        validate_key(key)
        norm = normalize_key(key)
        if norm in seen:
            raise CmdlineError('%s and %s name the same parameter ("-" and "_" are the same to the kernel and Xen)'
                               % (seen[norm], key))
        seen[norm] = key
        value = params[key]
        if isinstance(value, (list, tuple)):
            if not value:
                raise CmdlineError('%s is given an empty list; use state=absent to remove a parameter' % key)
            values = [_scalar(key, item, state) for item in value]
            if len(set(values)) != len(values) and state == 'absent':
                values = list(dict.fromkeys(values))
        elif value is None and state == 'absent':
            values = None
        else:
            values = [_scalar(key, value, state)]
        result.append(Param(key, values, state))
    return result


def occurrences(tokens, norm_key):
    """Tokens of one parameter before the ``--`` that hands the rest of the line to init."""
    found = []
    for token in tokens:
        if token.raw == SEPARATOR:
            break
        if token.norm_key == norm_key:
            found.append(token)
    return found


class Cmdline:
    """An editable command line; ``text`` is the original text until an edit changes something."""

    def __init__(self, text):
        self.original = text
        self.tokens = tokenize(text)
        self.changed = False

    @property
    def text(self):
        if not self.changed:
            return self.original
        return ' '.join(token.raw for token in self.tokens)

    def occurrences(self, norm_key):
        return occurrences(self.tokens, norm_key)

    def _separator_index(self):
        for index, token in enumerate(self.tokens):
            if token.raw == SEPARATOR:
                return index
        return len(self.tokens)

    def _commit(self, tokens):
        if [token.raw for token in tokens] != [token.raw for token in self.tokens]:
            self.tokens = tokens
            self.changed = True

    def remove(self, param, only_matching=True):
        """Remove the occurrences ``param`` takes away (``only_matching=False``: every occurrence of its key).

        Returns the index where the first removed token stood, or None.
        """
        limit = self._separator_index()
        kept = []
        first = None
        for index, token in enumerate(self.tokens):
            matches = token.norm_key == param.norm_key and index < limit
            if matches and (not only_matching or param.removes(token)):
                if first is None:
                    first = len(kept)
                continue
            kept.append(token)
        self._commit(kept)
        return first

    def insert(self, texts, index=None):
        """Insert rendered parameters at ``index``, by default at the end (before a ``--``)."""
        if index is None:
            index = self._separator_index()
        new = [Token(text) for text in texts]
        self._commit(self.tokens[:index] + new + self.tokens[index:])

    def apply(self, param):
        """Make this line hold what ``param`` asks for; returns whether it changed anything."""
        before = [token.raw for token in self.tokens]
        if param.state == 'absent':
            self.remove(param)
        elif not param.satisfied_by(self.occurrences(param.norm_key)):
            index = self.remove(param, only_matching=False)
            self.insert(param.tokens(), index)
        return before != [token.raw for token in self.tokens]
