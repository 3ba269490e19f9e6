"""File names are bytes the file system gave: shown on one line, never trusted.

Python holds a name that is not UTF-8 as a `str` with surrogates
(surrogateescape); `os.fsencode` gives the bytes back. Everything catdog
prints or writes in a line-based format goes through `escape`, so a name with
a tab or a newline cannot forge a row.
"""

import os


def escape(text):
    """A file name as one line of printable text, reversibly.

    Backslash, tab, newline and carriage return become `\\\\`, `\\t`, `\\n`,
    `\\r`; other control characters and bytes that are not UTF-8 (which
    Python holds as surrogates) become `\\xHH` (the byte), C1 controls and
    Unicode line separators `\\uHHHH`. Ordinary names are unchanged.
    """
    text = os.fspath(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char in _SIMPLE:
            out.append(_SIMPLE[char])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0x80 <= code <= 0x9F or code in (0x2028, 0x2029) or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")  # C1 controls and line separators
        else:
            out.append(char)
    return "".join(out)


_SIMPLE = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
