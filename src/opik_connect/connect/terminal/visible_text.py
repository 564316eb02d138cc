"""Text from the platform made safe to print: control and bidi characters shown, never obeyed.

A terminal obeys escape sequences and a bidi override reorders what follows, so a title or a
diff line could hide or rewrite the very text the user approves. `visible` turns each such
character into a visible stand-in: C0 controls (except newline and tab) into their Unicode
control pictures (ESC as `␛`), DEL into `␡`, C1 controls and the bidi embedding, override and
isolate characters into `⟨U+XXXX⟩`. Only the display changes: what is checked and applied stays
the exact text. `hidden_characters` counts them, for the approval panel's warning.
"""

from __future__ import annotations

import re

_BIDI = "\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]|\r(?!\n)")


def _stand_in(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"⟨U+{code:04X}⟩"


def visible(text: str) -> str:
    """The text with every control and bidi character replaced by a visible stand-in."""
    return _UNSAFE.sub(_stand_in, text)


def hidden_characters(*texts: str) -> int:
    """How many control or bidi characters the texts hold (a CR ending a line is not counted)."""
    return sum(len(_UNSAFE_IN_TEXT.findall(text)) for text in texts)
