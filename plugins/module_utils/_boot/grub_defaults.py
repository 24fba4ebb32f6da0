# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Debian/Ubuntu GRUB defaults: ``/etc/default/grub`` and ``/etc/default/grub.d/*.cfg``, read and edited safely.

update-grub sources ``/etc/default/grub`` and then every ``/etc/default/grub.d/*.cfg`` in glob
order, so a later file wins. ``/etc/grub.d/20_linux_xen`` builds the default Xen entry from them:
Xen gets ``GRUB_CMDLINE_XEN GRUB_CMDLINE_XEN_DEFAULT``; dom0's kernel gets ``GRUB_CMDLINE_LINUX
GRUB_CMDLINE_LINUX_DEFAULT``, each replaced by ``GRUB_CMDLINE_LINUX_XEN_REPLACE[_DEFAULT]`` when
that is not empty. ``10_linux`` gives a plain Linux entry ``GRUB_CMDLINE_LINUX
GRUB_CMDLINE_LINUX_DEFAULT``.

These files are shell. This module lexes every file completely (quotes, ``$(...)``, backquotes,
``${...}``; anything unbalanced is an error naming the line) and evaluates only what it fully
understands: ``NAME=word`` and ``export NAME=word`` whose word is made of literal text, single
or double quotes and ``$NAME`` / ``${NAME}`` / ``${NAME:-$OTHER}`` references. Every other line
is left to the shell, as long as it cannot change a command-line variable; a command-line
variable assigned in a way that is not understood (command substitution, inside ``if``, a
continuation line, a file that sources another) is an error naming the file and line, and
nothing is written.

Each literal piece of text remembers the file, line and variable it was written in, so the
effective command line is known token by token: which parameters this task's file holds, and
which come from somewhere else (a conflict is reported, never silently overridden).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import (
    PLACEHOLDER_FIRST,
    Cmdline,
    CmdlineError,
    tokenize,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import (
    FileEditError,
    PlannedFile,
    read_text_file,
)

CMDLINE_VARIABLES = (
    'GRUB_CMDLINE_LINUX',
    'GRUB_CMDLINE_LINUX_DEFAULT',
    'GRUB_CMDLINE_XEN',
    'GRUB_CMDLINE_XEN_DEFAULT',
    'GRUB_CMDLINE_LINUX_XEN_REPLACE',
    'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT',
)

# The variable this module edits for each target: the *_DEFAULT ones, which update-grub gives
# the default entries and not the recovery entries.
TARGET_VARIABLE = {
    'xen': 'GRUB_CMDLINE_XEN_DEFAULT',
    'dom0_linux': 'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT',
    'linux': 'GRUB_CMDLINE_LINUX_DEFAULT',
}

DROP_IN_NAME = 'zz-xenpci-passthrough.cfg'
DROP_IN_HEADER = (
    '# Boot command-line parameters set by the xenpci.passthrough.boot_cmdline Ansible module.\n'
    '# update-grub reads this file after /etc/default/grub and the other *.cfg files of this\n'
    '# directory (its name sorts last), and each line adds to what those files set.\n'
)

# Characters GRUB's own script language would interpret once update-grub has copied a value
# into grub.cfg; a parameter value holding one is refused for this back end.
GRUB_SPECIAL = set('$\\\'`;&|<>')

_NAME = r'[A-Za-z_][A-Za-z0-9_]*'
_ASSIGNMENT_RE = re.compile(r'^(%s)=' % _NAME)
_NAME_RE = re.compile(_NAME)
_BRACE_REF_RE = re.compile(r'\{(%s)\}' % _NAME)
_BRACE_ALT_RE = re.compile(r'\{(%s):-\$(?:(%s)|\{(%s)\})\}' % (_NAME, _NAME, _NAME))
# A word that can set a command-line variable: NAME=..., NAME+=..., or NAME itself (read, unset, for, printf -v ...).
_WRITE_RE = re.compile(r'^(%s)(?:\+?=|\[|$)' % '|'.join(CMDLINE_VARIABLES))
_OPERATORS = ('&&', '||', ';;', '>>', '<&', '>&', '<>', '>|', ';', '&', '|', '<', '>', '(', ')')
_OPENERS = {'if': 'fi', 'case': 'esac', 'for': 'done', 'while': 'done', 'until': 'done', 'select': 'done', '{': '}'}
_CLOSERS = set(_OPENERS.values())
_COMMAND_POSITION_WORDS = {'then', 'do', 'else', 'elif', '!', 'time'}
_COMMAND_POSITION_OPS = {';', ';;', '&', '&&', '|', '||', '('}
_SOURCING = {'.', 'source', 'eval'}
_PRIVATE_USE_RE = re.compile(u'[\ue000-\uf8ff]')


class GrubSyntaxError(Exception):
    """A GRUB defaults file this module will not edit; the message names the file and line."""


class _Unsupported(Exception):
    """A shell word this module does not evaluate (the reason says what it holds)."""


# ---------------------------------------------------------------------------------------------
# Writing shell


def shell_double_quote(text):
    """``text`` as one double-quoted shell word that means exactly ``text`` to sh, dash and bash.

    ``\\``, ``"``, ``$`` and backquotes are escaped; a newline, a carriage return or a NUL is
    refused (it would break the line structure of a configuration file).
    """
    if any(char in text for char in '\n\r\0'):
        raise CmdlineError('a newline, carriage return or NUL cannot be written to a GRUB defaults file')
    escaped = []
    for char in text:
        if char in '\\"$`':
            escaped.append('\\')
        escaped.append(char)
    return '"%s"' % ''.join(escaped)


# ---------------------------------------------------------------------------------------------
# Lexing: the whole file, so that an unbalanced quote anywhere is found


class _Lexer:
    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.newlines = [index for index, char in enumerate(text) if char == '\n']

    def line_of(self, offset):
        return bisect.bisect_left(self.newlines, offset) + 1

    def fail(self, offset, what):
        raise GrubSyntaxError('%s line %d: %s; the file was left as it was'
                              % (self.path, self.line_of(offset), what))

    def _unbalanced(self, offset, what):
        self.fail(offset, 'unbalanced %s (opened here and never closed)' % what)

    def skip_single(self, start):
        end = self.text.find("'", start + 1)
        if end < 0:
            self._unbalanced(start, 'single quote')
        return end + 1

    def skip_double(self, start):
        text = self.text
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == '\\':
                index += 2
            elif char == '"':
                return index + 1
            elif char == '`':
                index = self.skip_backquote(index)
            elif char == '$':
                index = self.skip_dollar(index)
            else:
                index += 1
        self._unbalanced(start, 'double quote')

    def skip_backquote(self, start):
        text = self.text
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == '\\':
                index += 2
            elif char == '`':
                return index + 1
            else:
                index += 1
        self._unbalanced(start, 'backquote (command substitution)')

    def skip_dollar(self, start):
        following = self.text[start + 1:start + 2]
        if following == '(':
            return self.skip_parenthesis(start + 1)
        if following == '{':
            return self.skip_brace(start + 1)
        return start + 1

    def skip_brace(self, start):
        text = self.text
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == '\\':
                index += 2
            elif char == '}':
                return index + 1
            elif char == "'":
                index = self.skip_single(index)
            elif char == '"':
                index = self.skip_double(index)
            elif char == '`':
                index = self.skip_backquote(index)
            elif char == '$':
                index = self.skip_dollar(index)
            else:
                index += 1
        self._unbalanced(start - 1, '"${"')

    def skip_parenthesis(self, start):
        text = self.text
        depth = 1
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == '\\':
                index += 2
            elif char == "'":
                index = self.skip_single(index)
            elif char == '"':
                index = self.skip_double(index)
            elif char == '`':
                index = self.skip_backquote(index)
            elif char == '$':
                index = self.skip_dollar(index)
            elif char == '#' and (index == 0 or text[index - 1] in ' \t\n;&|('):
                end = text.find('\n', index)
                index = len(text) if end < 0 else end
            elif char == '(':
                depth += 1
                index += 1
            elif char == ')':
                depth -= 1
                index += 1
                if depth == 0:
                    return index
            else:
                index += 1
        self._unbalanced(start - 1, '"$("')

    def tokens(self):
        """Words, operators and newlines at the top level: (kind, text, start, end)."""
        text = self.text
        result = []
        word_start = None
        index = 0

        def flush(end):
            if word_start is not None:
                result.append(('word', text[word_start:end], word_start, end))

        while index < len(text):
            char = text[index]
            if char == '\\' and text[index + 1:index + 2] == '\n' and word_start is None:
                index += 2
                continue
            if char in ' \t':
                flush(index)
                word_start = None
                index += 1
                continue
            if char == '\n':
                flush(index)
                word_start = None
                result.append(('newline', '\n', index, index + 1))
                index += 1
                continue
            if char == '#' and word_start is None:
                end = text.find('\n', index)
                index = len(text) if end < 0 else end
                continue
            operator = next((op for op in _OPERATORS if text.startswith(op, index)), None)
            if text.startswith('<<', index):
                self.fail(index, 'a here-document ("<<") is not supported')
            if operator is not None:
                flush(index)
                word_start = None
                result.append(('op', operator, index, index + len(operator)))
                index += len(operator)
                continue
            if word_start is None:
                word_start = index
            if char == '\\':
                index += 2
            elif char == "'":
                index = self.skip_single(index)
            elif char == '"':
                index = self.skip_double(index)
            elif char == '`':
                index = self.skip_backquote(index)
            elif char == '$':
                index = self.skip_dollar(index)
            else:
                index += 1
        flush(len(text))
        return result


# ---------------------------------------------------------------------------------------------
# Words: literal text and variable references


class _Ref:
    """``$NAME`` (``fallback`` None) or ``${NAME:-$FALLBACK}``."""

    def __init__(self, name, fallback=None):
        self.name = name
        self.fallback = fallback

    def render(self, next_char=''):
        if self.fallback is not None:
            return '${%s:-$%s}' % (self.name, self.fallback)
        if next_char and (next_char.isalnum() or next_char == '_'):
            return '${%s}' % self.name
        return '$' + self.name

    def names(self):
        return [self.name] if self.fallback is None else [self.name, self.fallback]


def _parse_dollar(word, index, parts):
    following = word[index + 1:index + 2]
    if following == '(':
        raise _Unsupported('a command substitution "$(...)"')
    if following == '{':
        match = _BRACE_REF_RE.match(word, index + 1)
        if match:
            parts.append(_Ref(match.group(1)))
            return match.end()
        match = _BRACE_ALT_RE.match(word, index + 1)
        if match:
            parts.append(_Ref(match.group(1), match.group(2) or match.group(3)))
            return match.end()
        raise _Unsupported('the parameter expansion "%s"' % word[index:word.find('}', index) + 1])
    match = _NAME_RE.match(word, index + 1)
    if match:
        parts.append(_Ref(match.group(0)))
        return match.end()
    if following and (following.isdigit() or following in '@*#?$!-'):
        raise _Unsupported('the special parameter "$%s"' % following)
    parts.append('$')
    return index + 1


def parse_word(word):
    """The parts of a shell word: literal strings and ``_Ref`` objects; _Unsupported otherwise."""
    parts = []
    index = 0
    while index < len(word):
        char = word[index]
        if char == '\\':
            if word[index + 1:index + 2] == '\n':
                raise _Unsupported('a continuation line')
            parts.append(word[index + 1:index + 2])
            index += 2
        elif char == "'":
            end = word.index("'", index + 1)
            parts.append(word[index + 1:end])
            index = end + 1
        elif char == '"':
            index += 1
            while word[index] != '"':
                char = word[index]
                if char == '\\' and word[index + 1] in '$`"\\\n':
                    if word[index + 1] == '\n':
                        raise _Unsupported('a continuation line')
                    parts.append(word[index + 1])
                    index += 2
                elif char == '$':
                    index = _parse_dollar(word, index, parts)
                elif char == '`':
                    raise _Unsupported('a command substitution in backquotes')
                else:
                    parts.append(char)
                    index += 1
            index += 1
        elif char == '$':
            index = _parse_dollar(word, index, parts)
        elif char == '`':
            raise _Unsupported('a command substitution in backquotes')
        elif char == '~' and index == 0:
            raise _Unsupported('a tilde expansion')
        else:
            parts.append(char)
            index += 1
    merged = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


# ---------------------------------------------------------------------------------------------
# Files


class Origin:
    """Where a piece of a command line was written."""

    __slots__ = ('path', 'line', 'variable')

    def __init__(self, path, line, variable):
        self.path = path
        self.line = line
        self.variable = variable

    def __eq__(self, other):
        return isinstance(other, Origin) and (self.path, self.line, self.variable) == (other.path, other.line, other.variable)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.path, self.line, self.variable))


class Assignment:
    """``[export ]NAME=word`` on one logical line; ``parts`` None when the word is not understood."""

    def __init__(self, name, line, start, end, parts, reason, conditional):
        self.name = name
        self.line = line
        self.start = start          # offset of the NAME=word in the file
        self.end = end
        self.parts = parts
        self.reason = reason
        self.conditional = conditional

    @property
    def self_referencing(self):
        return self.parts is not None and any(isinstance(part, _Ref) and part.name == self.name for part in self.parts)


class GrubFile:
    """One GRUB defaults file: its text and its assignments, in order."""

    def __init__(self, path, text):
        self.path = path
        self.text = text if text is not None else ''
        self.exists = text is not None
        self.lexer = _Lexer(path, self.text)
        self.assignments = []
        self._parse()

    def _parse(self):
        depth = []
        command = []
        for token in self.lexer.tokens() + [('newline', '\n', len(self.text), len(self.text))]:
            if token[0] != 'newline':
                command.append(token)
                continue
            if command:
                self._command(command, depth)
            command = []

    def _command(self, tokens, depth):
        line = self.lexer.line_of(tokens[0][2])
        words = [token for token in tokens if token[0] == 'word']
        assignment = None
        if all(token[0] == 'word' for token in tokens):
            if len(tokens) == 1:
                assignment = tokens[0]
            elif len(tokens) == 2 and tokens[0][1] == 'export':
                assignment = tokens[1]
        if assignment is not None and _ASSIGNMENT_RE.match(assignment[1]):
            self._assignment(assignment, line, bool(depth))
            return
        if words and len(words) == len(tokens) and words[0][1] == 'export' and \
                all(_NAME_RE.match(word[1]) and _NAME_RE.match(word[1]).end() == len(word[1]) for word in words[1:]):
            return  # "export NAME...": changes no value
        self._other_command(tokens, line, depth)

    def _assignment(self, token, line, conditional):
        match = _ASSIGNMENT_RE.match(token[1])
        name = match.group(1)
        parts = reason = None
        try:
            parts = parse_word(token[1][match.end():])
        except _Unsupported as exc:
            reason = str(exc)
        if parts is not None and conditional:
            reason = 'an assignment inside if/case/a loop/a block, which holds only sometimes'
            parts = None
        if name in CMDLINE_VARIABLES:
            if parts is None:
                raise GrubSyntaxError('%s line %d: %s is set with %s; this module only reads literal values and '
                                      '$VARIABLE references: rewrite that line or move the parameter out of it '
                                      '(nothing was changed)' % (self.path, line, name, reason))
            if any(isinstance(part, str) and ('\n' in part or '\r' in part) for part in parts):
                raise GrubSyntaxError('%s line %d: the value of %s spans several lines; nothing was changed'
                                      % (self.path, line, name))
            if any(isinstance(part, str) and _PRIVATE_USE_RE.search(part) for part in parts):
                raise GrubSyntaxError('%s line %d: the value of %s holds private-use characters; nothing was changed'
                                      % (self.path, line, name))
        self.assignments.append(Assignment(name, line, token[2], token[3], parts, reason, conditional))

    def _other_command(self, tokens, line, depth):
        for word in _track_depth(tokens, depth):
            if word in _SOURCING:
                raise GrubSyntaxError('%s line %d: "%s" runs shell text this module cannot follow, which could set the '
                                      'boot command line; nothing was changed' % (self.path, line, word))
        for kind, text, _start, _end in tokens:
            match = _WRITE_RE.match(text) if kind == 'word' else None
            if match:
                raise GrubSyntaxError('%s line %d: %s may be set by a shell command this module does not evaluate '
                                      '(only NAME=value lines are understood); nothing was changed'
                                      % (self.path, line, match.group(1)))

    def commands_left(self):
        """Whether anything but comments and blank lines is left."""
        return any(token[0] != 'newline' for token in self.lexer.tokens())


def _track_depth(tokens, depth):
    """Follow if/case/loops/blocks/subshells opened and closed by a command that is not an assignment.

    Returns the words in command position (the commands this line runs).
    """
    commands = []
    command_position = True
    for kind, text, _start, _end in tokens:
        if kind == 'word' and command_position:
            commands.append(text)
        if kind == 'op':
            if text == '(' and command_position:
                depth.append(')')
            elif text == ')' and depth and depth[-1] == ')':
                depth.pop()
            command_position = text in _COMMAND_POSITION_OPS or text == ')'
            continue
        if command_position and text in _OPENERS:
            depth.append(_OPENERS[text])
        elif command_position and text in _CLOSERS and depth and depth[-1] == text:
            depth.pop()
        command_position = text in _COMMAND_POSITION_WORDS or (command_position and text in _OPENERS and text != 'case'
                                                               and text not in ('for', 'select'))
    return commands


# ---------------------------------------------------------------------------------------------
# Evaluating: the value of each variable, with where each piece of text came from


class Segment:
    __slots__ = ('text', 'origin')

    def __init__(self, text, origin):
        self.text = text
        self.origin = origin


class Environment:
    """The variables after sourcing the files in order; ``assigned`` lists (file, Assignment) in that order."""

    def __init__(self, files):
        self.values = {}
        self.unknown = {}
        self.assigned = []
        for grub_file in files:
            for assignment in grub_file.assignments:
                self._assign(grub_file, assignment)

    def text(self, name):
        return ''.join(segment.text for segment in self.values.get(name, []))

    def _lookup(self, grub_file, assignment, name):
        if name in self.unknown and assignment.name in CMDLINE_VARIABLES:
            where = self.unknown[name]
            raise GrubSyntaxError('%s line %d: %s uses $%s, which %s line %d sets with %s; nothing was changed'
                                  % (grub_file.path, assignment.line, assignment.name, name, where[0], where[1], where[2]))
        return self.values.get(name, [])

    def _assign(self, grub_file, assignment):
        self.assigned.append((grub_file, assignment))
        if assignment.parts is None:
            self.unknown[assignment.name] = (grub_file.path, assignment.line, assignment.reason)
            self.values.pop(assignment.name, None)
            return
        origin = Origin(grub_file.path, assignment.line, assignment.name)
        segments = []
        unknown = False
        for part in assignment.parts:
            if isinstance(part, str):
                segments.append(Segment(part, origin))
                continue
            unknown = unknown or any(name in self.unknown for name in part.names())
            current = self._lookup(grub_file, assignment, part.name)
            if part.fallback is not None and not ''.join(segment.text for segment in current):
                current = self._lookup(grub_file, assignment, part.fallback)
            segments.extend(current)
        if unknown:
            self.unknown[assignment.name] = (grub_file.path, assignment.line, 'a value this module cannot evaluate')
            self.values.pop(assignment.name, None)
            return
        self.unknown.pop(assignment.name, None)
        self.values[assignment.name] = segments

    def target_segments(self, target):
        """The default entry's command line for ``target``, as update-grub builds it."""
        if target == 'xen':
            names = ['GRUB_CMDLINE_XEN', 'GRUB_CMDLINE_XEN_DEFAULT']
        elif target == 'linux':
            names = ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT']
        else:
            names = [
                'GRUB_CMDLINE_LINUX_XEN_REPLACE' if self.text('GRUB_CMDLINE_LINUX_XEN_REPLACE') else 'GRUB_CMDLINE_LINUX',
                'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT' if self.text('GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT')
                else 'GRUB_CMDLINE_LINUX_DEFAULT',
            ]
        segments = list(self.values.get(names[0], []))
        segments.append(Segment(' ', None))
        segments.extend(self.values.get(names[1], []))
        return segments


class LineToken:
    """A token of the effective command line and the places its text came from."""

    def __init__(self, token, origins):
        self.token = token
        self.origins = origins

    @property
    def origin(self):
        return self.origins[0] if len(self.origins) == 1 else None


def effective_tokens(segments):
    text = ''.join(segment.text for segment in segments)
    owners = []
    for segment in segments:
        owners.extend([segment.origin] * len(segment.text))
    result = []
    for token in tokenize(text):
        origins = []
        for origin in owners[token.start:token.end]:
            if origin is not None and origin not in origins:
                origins.append(origin)
        result.append(LineToken(token, origins))
    return result


def cmdline_text(line_tokens):
    return ' '.join(line_token.token.raw for line_token in line_tokens)


# ---------------------------------------------------------------------------------------------
# Editing one assignment's value


class _EditableValue:
    """An assignment's value as a command line in which each variable reference is one placeholder character."""

    def __init__(self, parts):
        self.refs = []
        chunks = []
        for part in parts:
            if isinstance(part, str):
                chunks.append(part)
            else:
                chunks.append(chr(PLACEHOLDER_FIRST + len(self.refs)))
                self.refs.append(part)
        self.cmdline = Cmdline(''.join(chunks))

    def is_placeholder(self, char):
        return PLACEHOLDER_FIRST <= ord(char) < PLACEHOLDER_FIRST + len(self.refs)

    def only_references_to(self, variable):
        """Whether nothing but blanks and references to ``variable`` itself is left."""
        return all(ref.name == variable for ref in self.refs) and all(
            char in ' \t' or self.is_placeholder(char) for char in self.cmdline.text)

    def render(self, name):
        """``NAME="..."``: literal text escaped for double quotes, references written back as references."""
        text = self.cmdline.text
        out = []
        literal = []
        for index, char in enumerate(text):
            if not self.is_placeholder(char):
                literal.append(char)
                continue
            if literal:
                out.append(shell_double_quote(''.join(literal))[1:-1])
                literal = []
            following = text[index + 1:index + 2]
            if following and self.is_placeholder(following):
                following = ''
            out.append(self.refs[ord(char) - PLACEHOLDER_FIRST].render(following))
        if literal:
            out.append(shell_double_quote(''.join(literal))[1:-1])
        return '%s="%s"' % (name, ''.join(out))


# ---------------------------------------------------------------------------------------------
# The plan


class GrubPlan:
    """What one task does to one GRUB defaults file, and what update-grub will then build."""

    def __init__(self, planned, cmdline_before, cmdline_after, conflicts, variable):
        self.planned = planned
        self.cmdline_before = cmdline_before
        self.cmdline_after = cmdline_after
        self.conflicts = conflicts
        self.variable = variable


def read_following_links(path):
    """A file update-grub sources (through symbolic links, as the shell does), or None when missing."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise FileEditError('cannot read %s: %s' % (path, exc))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise FileEditError('%s is not UTF-8 text (%s)' % (path, exc))


class GrubDefaults:
    """The GRUB defaults files of a host (``paths`` is a HostPaths) and the one this task edits."""

    def __init__(self, paths, grub_file=None):
        self.main = paths.join('etc', 'default', 'grub')
        self.drop_in_dir = paths.join('etc', 'default', 'grub.d')
        self.own_drop_in = os.path.join(self.drop_in_dir, DROP_IN_NAME)
        if grub_file is None:
            grub_file = self.own_drop_in if os.path.isdir(self.drop_in_dir) else self.main
        self.path = grub_file
        if self.path != self.main and not (os.path.dirname(self.path) == self.drop_in_dir and self.path.endswith('.cfg')
                                           and not os.path.basename(self.path).startswith('.')):
            raise GrubSyntaxError('%s is not read by update-grub: give %s or a *.cfg file in %s'
                                  % (self.path, self.main, self.drop_in_dir))

    def sources(self):
        """The files update-grub sources, in its order (``self.path`` included even when it does not exist yet)."""
        names = set()
        if os.path.isdir(self.drop_in_dir):
            names = set(name for name in os.listdir(self.drop_in_dir)
                        if name.endswith('.cfg') and not name.startswith('.')
                        and os.path.isfile(os.path.join(self.drop_in_dir, name)))
        if self.path != self.main:
            names.add(os.path.basename(self.path))
        return [self.main] + [os.path.join(self.drop_in_dir, name) for name in sorted(names)]

    def _load(self):
        files = []
        for path in self.sources():
            if path == self.path:
                text = read_text_file(path)
            else:
                text = read_following_links(path)
            files.append(GrubFile(path, text))
        return files

    def plan(self, target, params):
        """A GrubPlan for making the ``target`` line hold ``params`` (a list of _boot.cmdline.Param)."""
        variable = TARGET_VARIABLE[target]
        for param in params:
            for value in param.values or []:
                if value is not None and GRUB_SPECIAL.intersection(value):
                    raise CmdlineError('the value %r of %s holds one of %s, which GRUB would interpret once update-grub '
                                       'copies it into grub.cfg; refused'
                                       % (value, param.key, ' '.join(sorted(GRUB_SPECIAL))))
        files = self._load()
        own = next(grub_file for grub_file in files if grub_file.path == self.path)
        before_tokens = effective_tokens(Environment(files).target_segments(target))
        new_text = self._edit(own, variable, target, params, before_tokens)
        before = own.text if own.exists else None
        if new_text is None:
            files_after, after_tokens, after = files, before_tokens, before
        else:
            own_after = GrubFile(self.path, new_text)
            files_after = [own_after if grub_file is own else grub_file for grub_file in files]
            after_tokens = effective_tokens(Environment(files_after).target_segments(target))
            after = new_text
            if self.path == self.own_drop_in and not own_after.commands_left():
                after = None    # the collection's own file holds nothing any more: it goes
        conflicts = self._conflicts(params, after_tokens, files_after, variable, target)
        planned = PlannedFile(self.path, before, after, own_file=self.path == self.own_drop_in)
        return GrubPlan(planned, cmdline_text(before_tokens),
                        cmdline_text(after_tokens), conflicts, variable)

    def _editable(self, line_token, variable):
        origin = line_token.origin
        return origin is not None and origin.path == self.path and origin.variable == variable

    def _edit(self, own, variable, target, params, before_tokens):
        """The new text of the edited file, or None when it stays as it is."""
        lines = [assignment for assignment in own.assignments if assignment.name == variable]
        values = [_EditableValue(assignment.parts) for assignment in lines]
        new_line = Cmdline('')
        active = _before_separator(before_tokens)
        for param in params:
            if param.state == 'absent':
                for value in values:
                    value.cmdline.remove(param)
                new_line.remove(param)
                continue
            found = [line_token for line_token in active if line_token.token.norm_key == param.norm_key]
            mine = [line_token.token.occurrence for line_token in found if self._editable(line_token, variable)]
            others = [line_token.token for line_token in found if not self._editable(line_token, variable)]
            wanted = not param.satisfied_by(others)
            if mine == (param.desired if wanted else []):
                continue
            index = None
            for value in values:
                index = value.cmdline.remove(param, only_matching=False)
            new_index = new_line.remove(param, only_matching=False)
            if wanted and values:
                values[-1].cmdline.insert(param.tokens(), index)
            elif wanted:
                new_line.insert(param.tokens(), new_index)
        return self._render(own, variable, target, lines, values, new_line)

    def _render(self, own, variable, target, lines, values, new_line):
        text = own.text
        edits = []
        for assignment, value in zip(lines, values):
            if not value.cmdline.changed:
                continue
            if value.only_references_to(variable):
                # "NAME=\"$NAME\"" and the like do nothing: the line goes
                start = text.rfind('\n', 0, assignment.start) + 1
                end = text.find('\n', assignment.end)
                edits.append((start, len(text) if end < 0 else end + 1, ''))
            else:
                edits.append((assignment.start, assignment.end, value.render(variable)))
        for start, end, replacement in sorted(edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        if new_line.tokens:
            if target == 'dom0_linux':
                # 20_linux_xen gives dom0 GRUB_CMDLINE_LINUX_DEFAULT unless this one is set: start from the same
                prefix = '${%s:-$GRUB_CMDLINE_LINUX_DEFAULT} ' % variable
            elif self.path == self.main:
                prefix = ''
            else:
                prefix = '$%s ' % variable
            line = '%s="%s%s"\n' % (variable, prefix, shell_double_quote(new_line.text)[1:-1])
            if not own.exists and self.path == self.own_drop_in:
                text = DROP_IN_HEADER
            readers = [assignment for assignment in GrubFile(self.path, text).assignments
                       if assignment.name != variable and assignment.parts is not None
                       and any(isinstance(part, _Ref) and variable in part.names() for part in assignment.parts)]
            if readers:
                # before the first line that reads this variable, so that line sees the new value
                start = text.rfind('\n', 0, readers[0].start) + 1
                text = text[:start] + line + text[start:]
            else:
                if text and not text.endswith('\n'):
                    text += '\n'
                text += line
        if (own.exists and text == own.text) or (not own.exists and not text):
            return None
        return text

    def _conflicts(self, params, after_tokens, files_after, variable, target):
        conflicts = []
        active = _before_separator(after_tokens)
        for param in params:
            found = [line_token for line_token in active if line_token.token.norm_key == param.norm_key]
            if param.satisfied_by([line_token.token for line_token in found]):
                continue
            foreign = [line_token for line_token in found if not self._editable(line_token, variable)]
            added = [_conflict(param, line_token, target) for line_token in foreign
                     if param.state == 'present' or param.removes(line_token.token)]
            if param.state == 'present' and len(foreign) == len(found):
                added.append(self._lost(param, after_tokens, files_after, variable, target))
            if not added:
                added.append({'param': param.key, 'found': None, 'file': self.path, 'line': None, 'variable': variable,
                              'message': 'the %s command line would hold %s for %s' % (
                                  _TARGET_WORDS[target], ' '.join(token.token.raw for token in found) or 'nothing',
                                  param.key)})
            conflicts.extend(added)
        return conflicts

    def _lost(self, param, after_tokens, files_after, variable, target):
        """A conflict for a parameter written to this task's file that does not reach the command line."""
        later = []
        seen_own = False
        for grub_file, assignment in _assignments(files_after):
            if grub_file.path == self.path and assignment.name == variable:
                seen_own = True
                later = []
            elif seen_own and assignment.name == variable and not assignment.self_referencing:
                later.append('%s line %d' % (grub_file.path, assignment.line))
        if later:
            why = '%s is set again, without its earlier value, in %s' % (variable, ', '.join(later))
        elif any(line_token.token.raw == '--' for line_token in after_tokens):
            why = 'it lands after the "--" that hands the rest of the line to init'
        else:
            why = '%s is not used for this line' % variable
        return {
            'param': param.key,
            'found': None,
            'file': self.path,
            'line': None,
            'variable': variable,
            'message': '%s written to %s does not reach the %s command line: %s'
                       % (' '.join(param.tokens()), self.path, _TARGET_WORDS[target], why),
        }


_TARGET_WORDS = {'xen': 'Xen', 'dom0_linux': "dom0 kernel's", 'linux': 'Linux'}


def _assignments(files):
    for grub_file in files:
        for assignment in grub_file.assignments:
            yield grub_file, assignment


def _before_separator(line_tokens):
    result = []
    for line_token in line_tokens:
        if line_token.token.raw == '--':
            break
        result.append(line_token)
    return result


def _conflict(param, line_token, target):
    origin = line_token.origin
    if origin is None:
        where = 'a mix of variables' if line_token.origins else 'somewhere this module cannot tell'
        file_path = line = variable = None
    else:
        where = '%s in %s line %d' % (origin.variable, origin.path, origin.line)
        file_path, line, variable = origin.path, origin.line, origin.variable
    if param.state == 'present':
        message = '%s from %s stays on the %s command line next to %s' % (
            line_token.token.raw, where, _TARGET_WORDS[target], ' '.join(param.tokens()))
    else:
        message = '%s from %s stays on the %s command line; remove it there' % (
            line_token.token.raw, where, _TARGET_WORDS[target])
    return {'param': param.key, 'found': line_token.token.raw, 'file': file_path, 'line': line,
            'variable': variable, 'message': message}
